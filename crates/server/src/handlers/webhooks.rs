//! `GET /api/webhooks/deliveries`: the alerts' recent webhook deliveries,
//! their attempts and results; `GET /api/alerts`: the open alerts of a
//! namespace's experiments.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;

use super::namespace_param;
use crate::error::ApiError;
use crate::params::QueryParams;
use crate::state::AppState;
use lamed_service::alerts::{self, delivery::Delivery, evaluate::OpenAlert};

/// Most deliveries listed.
const LISTED: usize = 100;

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
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

/// A namespace's open alerts, by experiment and key.
pub async fn open(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<BTreeMap<String, BTreeMap<String, OpenAlert>>>, ApiError> {
    let params = QueryParams::parse(query.as_deref())?;
    let namespace = namespace_param(&params)?;
    let open = alerts::open_alerts(state.store.as_ref(), &namespace)
        .await
        .map_err(ApiError::Store)?;
    Ok(Json(open))
}
