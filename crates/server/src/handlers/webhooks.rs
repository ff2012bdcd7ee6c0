//! `GET /api/webhooks/deliveries`: the alerts' recent webhook deliveries,
//! their attempts and results.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;
use lamed_service::alerts::{self, delivery::Delivery};

/// Most deliveries listed.
const LISTED: usize = 100;

/// The answer.
#[derive(Debug, Serialize)]
pub struct Deliveries {
    /// Newest first.
    deliveries: Vec<Delivery>,
}

/// The most recent deliveries, newest first.
pub async fn deliveries(State(state): State<AppState>) -> Result<Json<Deliveries>, ApiError> {
    let mut deliveries = alerts::deliveries(state.store.as_ref())
        .await
        .map_err(ApiError::Store)?;
    deliveries.truncate(LISTED);
    Ok(Json(Deliveries { deliveries }))
}
