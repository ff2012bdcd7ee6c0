//! `GET /health` (can the store take a write?) and `GET /metrics`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::server::state::AppState;

/// Report whether the store is writable; 503 says what is wrong.
pub async fn health(State(state): State<AppState>) -> Response {
    match state.store.check_writable().await {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(err) => (
            StatusCode::SERVICE_UNAVAILABLE,
            // `{:#}` gives the cause chain ("store unavailable: sqlite failed: database is locked").
            Json(
                json!({"status": "unavailable", "error": format!("{:#}", anyhow::Error::new(err))}),
            ),
        )
            .into_response(),
    }
}

/// The metrics in the Prometheus text format (the route table puts it
/// behind the API key).
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}
