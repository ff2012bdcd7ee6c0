//! Which alerts an experiment raises, as a pure step from what the last
//! check remembered ([`Watch`]) and what this check sees
//! ([`Observation`]) to what to send. Every figure comes from the report
//! (its sample-ratio check, its goals' always-valid sequential tests);
//! nothing new is computed here.
//!
//! Each condition has a key (`srm`, `decision:<goal>:<variant>`,
//! `stalled`, `status:<status>`); an alert is raised when its key opens
//! and is not sent again while it stays open. It closes when the
//! condition clears, and a later recurrence is a new alert.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::Report;
use lamed_core::registry::Status;

/// The rules of one check, from the settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// A running experiment that had participants and got none for this
    /// long is stalled.
    pub stall_ms: i64,
}

/// What one check sees of one experiment.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// Its status; `None` when the experiment was deleted.
    pub status: Option<Status>,
    /// The winner the owner named when stopping it.
    pub winner: Option<String>,
    /// Participants counted so far, over every variant.
    pub participants: u64,
    /// Every event counted so far (participants and goals): a check
    /// makes a report only when this moved since the last one.
    pub events: u64,
    /// The report, when one was made (new traffic since the last check);
    /// `None` keeps the report's alerts as they were.
    pub report: Option<&'a Report>,
}

/// An alert that is open: raised, and not cleared since.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OpenAlert {
    /// When it was raised, in Unix milliseconds.
    pub raised_ms: i64,
    /// Its event type, for the dashboard's badge.
    #[serde(default)]
    pub event: String,
    /// Its sentence, for the badge's title.
    #[serde(default)]
    pub summary: String,
}

/// What a check remembers of one experiment, kept in the store between
/// checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Watch {
    /// Participants at the last check.
    pub participants: u64,
    /// Events at the last check.
    pub events: u64,
    /// When the participants last grew (or were first seen).
    pub changed_ms: i64,
    /// The status at the last check (`deleted` once gone); `None` before
    /// the first check.
    pub status: Option<String>,
    /// The open alerts by key.
    #[serde(default)]
    pub open: BTreeMap<String, OpenAlert>,
}

/// An alert to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Alert {
    /// Its condition's key (see the module documentation).
    pub key: String,
    /// The event type on the wire: `experiment.srm`,
    /// `experiment.decision`, `experiment.stalled`, `experiment.status`.
    pub event: String,
    /// One plain sentence, as a person would read it in a channel.
    pub summary: String,
    /// The figures that raised it.
    pub figures: serde_json::Value,
}

/// What a check does: the new watch to keep, the alerts to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// What to remember until the next check.
    pub watch: Watch,
    /// Alerts raised by this check (opened now).
    pub raised: Vec<(Alert, i64)>,
    /// Keys of alerts that cleared.
    pub cleared: Vec<String>,
}

/// The word of a status on the wire, `deleted` for `None`.
fn status_word(status: Option<Status>) -> &'static str {
    status.map_or("deleted", Status::as_str)
}

/// One check of one experiment at `now_ms`.
pub fn evaluate(previous: &Watch, seen: &Observation<'_>, now_ms: i64, rules: &Rules) -> Step {
    let mut active: BTreeMap<String, Alert> = BTreeMap::new();

    let status = status_word(seen.status);
    if status != Status::Running.as_str() {
        let key = format!("status:{status}");
        let changed = previous.status.as_deref().is_some_and(|s| s != status);
        if changed || previous.open.contains_key(&key) {
            let winner = seen.winner.as_deref();
            let summary = match (seen.status, winner) {
                (Some(Status::Stopped), Some(w)) => format!("stopped, with {w} as the winner"),
                (Some(Status::Stopped), None) => "stopped, with no winner".to_owned(),
                _ => status.to_owned(),
            };
            active.insert(
                key.clone(),
                Alert {
                    key,
                    event: "experiment.status".into(),
                    summary,
                    figures: serde_json::json!({
                        "status": status,
                        "previous_status": previous.status,
                        "winner": winner,
                    }),
                },
            );
        }
    }

    let grew = seen.participants != previous.participants || previous.status.is_none();
    let changed_ms = if grew { now_ms } else { previous.changed_ms };
    let stalled_for = now_ms - changed_ms;
    if seen.status == Some(Status::Running)
        && seen.participants > 0
        && stalled_for >= rules.stall_ms
    {
        let hours = stalled_for / 3_600_000;
        active.insert(
            "stalled".into(),
            Alert {
                key: "stalled".into(),
                event: "experiment.stalled".into(),
                summary: format!(
                    "no new participant for {hours} hours (after {} participants)",
                    seen.participants
                ),
                figures: serde_json::json!({
                    "participants": seen.participants,
                    "last_participant_ms": changed_ms,
                    "hours": hours,
                }),
            },
        );
    }

    match seen.report {
        Some(report) if seen.status.is_some() => {
            for alert in report_alerts(report) {
                active.insert(alert.key.clone(), alert);
            }
        }
        Some(_) => {}
        // No new traffic: the report's alerts stay as they were.
        None => {
            for key in previous.open.keys() {
                if (key == "srm" || key.starts_with("decision:")) && seen.status.is_some() {
                    active.entry(key.clone()).or_insert_with(|| Alert {
                        key: key.clone(),
                        event: String::new(),
                        summary: String::new(),
                        figures: serde_json::Value::Null,
                    });
                }
            }
        }
    }

    let mut open = BTreeMap::new();
    let mut raised = Vec::new();
    for (key, alert) in active {
        match previous.open.get(&key) {
            Some(was) => {
                open.insert(key, was.clone());
            }
            None => {
                open.insert(
                    key,
                    OpenAlert {
                        raised_ms: now_ms,
                        event: alert.event.clone(),
                        summary: alert.summary.clone(),
                    },
                );
                raised.push((alert, now_ms));
            }
        }
    }
    let cleared = previous
        .open
        .keys()
        .filter(|key| !open.contains_key(*key))
        .cloned()
        .collect();
    Step {
        watch: Watch {
            participants: seen.participants,
            events: seen.events,
            changed_ms,
            status: Some(status.to_owned()),
            open,
        },
        raised,
        cleared,
    }
}

/// The report's own alerts: its sample-ratio check, and every goal's
/// always-valid sequential test that crossed its boundary.
fn report_alerts(report: &Report) -> Vec<Alert> {
    let mut alerts = Vec::new();
    if let Some(srm) = report.srm.as_ref().filter(|s| s.mismatch) {
        let observed: BTreeMap<&str, u64> = report
            .variants
            .iter()
            .map(|v| (v.label.as_str(), v.participants))
            .collect();
        let expected: BTreeMap<&str, f64> = report
            .variants
            .iter()
            .zip(&srm.expected)
            .map(|(v, e)| (v.label.as_str(), (e * 10.0).round() / 10.0))
            .collect();
        alerts.push(Alert {
            key: "srm".into(),
            event: "experiment.srm".into(),
            summary: format!(
                "participants do not match the configured split (p = {:.2e}); \
                 check assignment and tracking before reading results",
                srm.test.p_value
            ),
            figures: serde_json::json!({
                "p_value": srm.test.p_value,
                "observed": observed,
                "expected": expected,
            }),
        });
    }
    for goal in &report.goals {
        let Some(analysis) = &goal.analysis else {
            continue;
        };
        let control = analysis.variants.get(analysis.control);
        for variant in &analysis.variants {
            let Some(sequential) = variant.comparison.and_then(|c| c.sequential) else {
                continue;
            };
            if !sequential.significant {
                continue;
            }
            let direction = if sequential.difference > 0.0 {
                "better"
            } else {
                "worse"
            };
            let control_label = control.map_or("the control", |c| c.label.as_str());
            alerts.push(Alert {
                key: format!("decision:{}:{}", goal.goal, variant.label),
                event: "experiment.decision".into(),
                summary: format!(
                    "{} does {direction} than {control_label} on {} \
                     (always-valid p = {:.2e}): {}",
                    variant.label, goal.goal, sequential.p_value, goal.verdict
                ),
                figures: serde_json::json!({
                    "goal": goal.goal,
                    "variant": variant.label,
                    "control": control_label,
                    "direction": direction,
                    "difference": sequential.difference,
                    "p_value": sequential.p_value,
                    "interval": sequential.interval,
                    "verdict": goal.verdict,
                }),
            });
        }
    }
    alerts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::counter;
    use crate::report::{build, ReportRequest};
    use lamed_core::model::Counter;

    const HOUR: i64 = 3_600_000;
    const RULES: Rules = Rules { stall_ms: 6 * HOUR };

    fn report(counters: &[Counter]) -> Report {
        build("ns", "e", counters, &[], &ReportRequest::default()).expect("report")
    }

    fn running(report: Option<&Report>, participants: u64) -> Observation<'_> {
        Observation {
            status: Some(Status::Running),
            winner: None,
            participants,
            events: participants,
            report,
        }
    }

    fn keys(step: &Step) -> Vec<&str> {
        step.raised.iter().map(|(a, _)| a.key.as_str()).collect()
    }

    /// 1,000 against 1,200 on an even split is p ≈ 1e-5: one alert, not
    /// repeated while it holds, and a new one after it clears and recurs.
    #[test]
    fn a_sample_ratio_mismatch_is_raised_once_until_it_clears() {
        let broken = report(&[
            counter("participate", "a", 1000),
            counter("participate", "b", 1200),
        ]);
        let first = evaluate(&Watch::default(), &running(Some(&broken), 2200), 0, &RULES);
        assert_eq!(keys(&first), ["srm"]);
        assert!(first.raised[0].0.figures["p_value"].as_f64().unwrap() < 0.001);
        let again = evaluate(&first.watch, &running(Some(&broken), 2200), HOUR, &RULES);
        assert!(again.raised.is_empty(), "sent once: {:?}", again.raised);
        let quiet = evaluate(&again.watch, &running(None, 2200), 2 * HOUR, &RULES);
        assert!(quiet.raised.is_empty() && quiet.cleared.is_empty());
        let fixed = report(&[
            counter("participate", "a", 1200),
            counter("participate", "b", 1200),
        ]);
        let cleared = evaluate(&quiet.watch, &running(Some(&fixed), 2400), 3 * HOUR, &RULES);
        assert_eq!(cleared.cleared, ["srm"]);
        let recur = evaluate(
            &cleared.watch,
            &running(Some(&broken), 2500),
            4 * HOUR,
            &RULES,
        );
        assert_eq!(keys(&recur), ["srm"]);
        assert_eq!(recur.raised[0].1, 4 * HOUR, "a new alert, a new id");
    }

    /// p = 0.01 is a warning elsewhere (Statsig), not an alert here.
    #[test]
    fn a_mild_imbalance_raises_nothing() {
        let mild = report(&[
            counter("participate", "a", 1000),
            counter("participate", "b", 1090),
        ]);
        let p = mild.srm.as_ref().unwrap().test.p_value;
        assert!(p > 0.001 && p < 0.1, "p = {p}");
        let step = evaluate(&Watch::default(), &running(Some(&mild), 2090), 0, &RULES);
        assert!(step.raised.is_empty());
    }

    /// A clear winner crosses the sequential boundary: one decision alert,
    /// for the variant and goal, saying which way.
    #[test]
    fn a_clear_winner_raises_one_decision() {
        let clear = report(&[
            counter("participate", "a", 5000),
            counter("participate", "b", 5000),
            counter("buy", "a", 500),
            counter("buy", "b", 800),
        ]);
        let step = evaluate(&Watch::default(), &running(Some(&clear), 10_000), 0, &RULES);
        assert_eq!(keys(&step), ["decision:buy:b"]);
        assert_eq!(step.raised[0].0.figures["direction"], "better");
        let close = report(&[
            counter("participate", "a", 5000),
            counter("participate", "b", 5000),
            counter("buy", "a", 500),
            counter("buy", "b", 520),
        ]);
        let none = evaluate(&Watch::default(), &running(Some(&close), 10_000), 0, &RULES);
        assert!(none.raised.is_empty(), "{:?}", none.raised);
    }

    /// Stalled after `stall_ms` without a new participant, not before;
    /// cleared by the next participant; never before the first one.
    #[test]
    fn a_running_experiment_without_participants_stalls() {
        let first = evaluate(&Watch::default(), &running(None, 10), 0, &RULES);
        let early = evaluate(&first.watch, &running(None, 10), 6 * HOUR - 1, &RULES);
        assert!(early.raised.is_empty());
        let stalled = evaluate(&early.watch, &running(None, 10), 6 * HOUR, &RULES);
        assert_eq!(keys(&stalled), ["stalled"]);
        let still = evaluate(&stalled.watch, &running(None, 10), 9 * HOUR, &RULES);
        assert!(still.raised.is_empty());
        let back = evaluate(&still.watch, &running(None, 11), 10 * HOUR, &RULES);
        assert_eq!(back.cleared, ["stalled"]);
        let empty = evaluate(&Watch::default(), &running(None, 0), 0, &RULES);
        let never = evaluate(&empty.watch, &running(None, 0), 100 * HOUR, &RULES);
        assert!(never.raised.is_empty(), "no participant yet is not a stall");
        let paused = Observation {
            status: Some(Status::Paused),
            ..running(None, 10)
        };
        let quiet = evaluate(&first.watch, &paused, 100 * HOUR, &RULES);
        assert_eq!(
            keys(&quiet),
            ["status:paused"],
            "a paused one does not stall"
        );
    }

    /// A status change raises one alert naming it (and the winner); the
    /// first check of an experiment already stopped raises nothing.
    #[test]
    fn status_changes_raise_once() {
        let first = evaluate(&Watch::default(), &running(None, 10), 0, &RULES);
        let stopped = Observation {
            status: Some(Status::Stopped),
            winner: Some("b".into()),
            ..running(None, 10)
        };
        let step = evaluate(&first.watch, &stopped, HOUR, &RULES);
        assert_eq!(keys(&step), ["status:stopped"]);
        assert_eq!(step.raised[0].0.figures["winner"], "b");
        assert_eq!(step.raised[0].0.figures["previous_status"], "running");
        assert!(evaluate(&step.watch, &stopped, 2 * HOUR, &RULES)
            .raised
            .is_empty());
        let deleted = Observation {
            status: None,
            ..running(None, 0)
        };
        let gone = evaluate(&step.watch, &deleted, 3 * HOUR, &RULES);
        assert_eq!(keys(&gone), ["status:deleted"]);
        assert_eq!(gone.cleared, ["status:stopped"]);
        let unseen = evaluate(&Watch::default(), &stopped, 0, &RULES);
        assert!(unseen.raised.is_empty());
    }
}
