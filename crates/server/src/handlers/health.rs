//! `GET /health` (can the store take a write?) and `GET /metrics`.
//!
//! `/health` is public and probed often, so it answers from the last write
//! check (`crate::health::HealthCheck`): at most one write a second whatever the call
//! rate, and only "ok" or "unavailable". What is wrong goes to the log and
//! to `/metrics` (behind the API key), never to anonymous callers: the
//! store's errors name hosts.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;

use crate::state::AppState;

/// Report whether the store is writable: 200 `{"status":"ok"}` or 503
/// `{"status":"unavailable"}`, nothing more.
pub async fn health(State(state): State<AppState>) -> Response {
    if state.health.healthy(&*state.store, &state.metrics).await {
        Json(Health { status: "ok" }).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
            }),
        )
            .into_response()
    }
}

/// The answer of `/health`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    /// `ok` (200) or `unavailable` (503).
    status: &'static str,
}

/// The metrics in the Prometheus text format (the route table puts it
/// behind the API key), with the store's health and dedupe memory as of
/// now.
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.health.healthy(&*state.store, &state.metrics).await;
    if let Some(entries) = state.store.dedupe_entries() {
        state.metrics.dedupe_entries(entries);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}
