//! The dashboard's files, embedded in the binary at compile time so it
//! works offline and needs no CDN.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lamed_core::registry::Status;
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::error::ApiError;

/// What the dashboard may load: its own scripts, styles and API (all
/// relative URLs, so also below a path prefix), the `data:` favicon, and
/// nothing inline; no page may frame it (its buttons delete experiments).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'none'";

/// (name, content type, contents) of every dashboard file.
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../assets/dashboard/app.js"),
    ),
    (
        "csv.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../assets/dashboard/csv.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../../../assets/dashboard/style.css"),
    ),
];

/// The names of the dashboard's files (`/dashboard/{asset}`).
pub fn asset_names() -> Vec<&'static str> {
    ASSETS.iter().map(|(name, _, _)| *name).collect()
}

/// The dashboard page.
pub async fn index() -> Response {
    dashboard_file(
        "text/html; charset=utf-8",
        include_str!("../../../../assets/dashboard/index.html"),
    )
}

/// One of the dashboard's scripts or stylesheets.
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .ok_or_else(|| ApiError::NotFound(format!("no dashboard file '{name}'")))?;
    Ok(dashboard_file(content_type, body))
}

/// One dashboard file with its type (never sniffed) and the policy.
fn dashboard_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The registry's lifecycle rules (public: they are the same for
/// everyone): every status, the moves each allows, and the statuses lists
/// show by default. The dashboard draws its buttons and its default filter
/// from these rather than restating them.
pub async fn lifecycle() -> Json<Lifecycle> {
    let transitions = Status::ALL
        .into_iter()
        .map(|from| {
            let to = Status::ALL
                .into_iter()
                .filter(|to| from.can_become(*to))
                .collect();
            (from.as_str(), to)
        })
        .collect();
    let listed = Status::ALL
        .into_iter()
        .filter(|s| s.listed_by_default())
        .collect();
    Json(Lifecycle {
        listed_by_default: listed,
        statuses: Status::ALL.to_vec(),
        transitions,
    })
}

/// The answer of `GET /api/lifecycle` (fields in wire order: sorted).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Lifecycle {
    /// The statuses lists show when none is asked for.
    listed_by_default: Vec<Status>,
    /// Every status, in lifecycle order.
    statuses: Vec<Status>,
    /// The statuses each status may become.
    transitions: BTreeMap<&'static str, Vec<Status>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The rules the dashboard reads are the registry's: a stopped
    /// experiment can only be archived, an archived one goes nowhere, and
    /// archived ones leave the default list.
    #[tokio::test]
    async fn lifecycle_states_the_registrys_rules() {
        let Json(rules) = lifecycle().await;
        let rules = serde_json::to_value(rules).unwrap();
        assert_eq!(rules["transitions"]["stopped"], json!(["archived"]));
        assert_eq!(rules["transitions"]["archived"], json!([]));
        assert_eq!(
            rules["transitions"]["running"],
            json!(["paused", "stopped", "archived"])
        );
        assert_eq!(
            rules["listed_by_default"],
            json!(["running", "paused", "stopped"])
        );
    }
}
