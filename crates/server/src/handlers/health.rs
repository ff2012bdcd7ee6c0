//! `GET /health` (can the store take a write?) and `GET /metrics`.
//!
//! `/health` is public and probed often, so it answers from the last write
//! check ([`HealthCheck`]): at most one write a second whatever the call
//! rate, and only "ok" or "unavailable". What is wrong goes to the log and
//! to `/metrics` (behind the API key), never to anonymous callers: the
//! store's errors name hosts.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tokio::sync::Mutex;

use crate::metrics::Metrics;
use crate::state::AppState;
use lamed_store::Store;

/// How long one write check answers for.
pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The last write check: whether it passed, and when it ended.
#[derive(Debug, Default)]
pub struct HealthCheck {
    last: Mutex<Option<(Instant, bool)>>,
}

impl HealthCheck {
    /// Whether the store takes writes: the last check's answer when it is
    /// younger than [`HEALTH_CHECK_INTERVAL`], else a new check. Callers
    /// arriving during a check wait for it and share its answer.
    pub async fn healthy(&self, store: &dyn Store, metrics: &Metrics) -> bool {
        let mut last = self.last.lock().await;
        if let Some((checked, healthy)) = *last {
            if checked.elapsed() < HEALTH_CHECK_INTERVAL {
                return healthy;
            }
        }
        let healthy = match store.check_writable().await {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(
                    cause = err.chain(),
                    "health check: the store takes no writes"
                );
                false
            }
        };
        metrics.health_check(healthy);
        *last = Some((Instant::now(), healthy));
        healthy
    }
}

/// Report whether the store is writable: 200 `{"status":"ok"}` or 503
/// `{"status":"unavailable"}`, nothing more.
pub async fn health(State(state): State<AppState>) -> Response {
    if state.health.healthy(&*state.store, &state.metrics).await {
        Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable"})),
        )
            .into_response()
    }
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
