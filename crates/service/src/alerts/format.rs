//! The bodies an alert is sent as: `standard` (a JSON event, signed per
//! Standard Webhooks) or `slack` (Slack's incoming-webhook `{"text"}`).

use serde::{Deserialize, Serialize};

use super::evaluate::Alert;
use lamed_core::clock::civil_date;

/// How an endpoint wants its messages.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A JSON event, signed per Standard Webhooks.
    #[default]
    Standard,
    /// Slack's incoming webhook: `{"text": ...}`.
    Slack,
}

impl Format {
    /// Its name in the settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Standard => "standard",
            Format::Slack => "slack",
        }
    }
}

/// Where an alert comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Origin {
    /// The namespace.
    pub namespace: String,
    /// The experiment.
    pub experiment: String,
    /// The dashboard's address for this experiment's namespace.
    pub dashboard: String,
}

/// `YYYY-MM-DDTHH:MM:SSZ` of Unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        civil_date(days),
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The body of one alert in `format`.
pub fn body(format: Format, alert: &Alert, origin: &Origin, raised_ms: i64) -> String {
    let value = match format {
        Format::Standard => serde_json::json!({
            "type": alert.event,
            "timestamp": rfc3339(raised_ms),
            "data": {
                "namespace": origin.namespace,
                "experiment": origin.experiment,
                "alert": alert.key,
                "summary": alert.summary,
                "figures": alert.figures,
                "dashboard": origin.dashboard,
            },
        }),
        Format::Slack => serde_json::json!({
            "text": format!(
                ":rotating_light: *{}* ({}): {}\n<{}|Open the dashboard>",
                slack_escape(&origin.experiment),
                slack_escape(&origin.namespace),
                slack_escape(&alert.summary),
                origin.dashboard
            ),
        }),
    };
    value.to_string()
}

/// Slack's three control characters in message text.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            key: "srm".into(),
            event: "experiment.srm".into(),
            summary: "participants do not match <the split>".into(),
            figures: serde_json::json!({"p_value": 1e-5}),
        }
    }

    fn origin() -> Origin {
        Origin {
            namespace: "shop".into(),
            experiment: "checkout & pay".into(),
            dashboard: "http://127.0.0.1:8080/dashboard#namespace=shop".into(),
        }
    }

    #[test]
    fn the_standard_body_names_event_experiment_figures_and_link() {
        let body: serde_json::Value = serde_json::from_str(&body(
            Format::Standard,
            &alert(),
            &origin(),
            1_796_601_600_000,
        ))
        .expect("json");
        assert_eq!(body["type"], "experiment.srm");
        assert_eq!(body["timestamp"], "2026-12-07T00:00:00Z");
        assert_eq!(body["data"]["namespace"], "shop");
        assert_eq!(body["data"]["experiment"], "checkout & pay");
        assert_eq!(body["data"]["figures"]["p_value"], 1e-5);
        assert_eq!(body["data"]["dashboard"], origin().dashboard);
    }

    #[test]
    fn the_slack_body_is_text_only_and_escaped() {
        let body: serde_json::Value =
            serde_json::from_str(&body(Format::Slack, &alert(), &origin(), 0)).expect("json");
        let object = body.as_object().expect("object");
        assert_eq!(object.keys().collect::<Vec<_>>(), ["text"]);
        let text = body["text"].as_str().expect("text");
        assert!(text.contains("*checkout &amp; pay* (shop)"), "{text}");
        assert!(text.contains("&lt;the split&gt;"), "{text}");
        assert!(text.ends_with("|Open the dashboard>"), "{text}");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_652_712_345), "2026-12-07T14:11:52Z");
    }
}
