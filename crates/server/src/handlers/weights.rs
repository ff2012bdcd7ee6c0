//! `GET /api/experiments/{experiment}/weights`: the weights a page gives
//! AlephBet's variants before it builds the experiment. Public and
//! cacheable until the period ends, like the tracking endpoint. The
//! weights are [`lamed_service::weights`]'s; this answers them.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::experiment_and_namespace;
use crate::error::ApiError;
use crate::state::AppState;
use lamed_core::clock::Clock;
use lamed_service::adaptive::WeightsError;
use lamed_service::weights as service;
use lamed_store::StoreError;

/// Seconds a registered (not adaptive) experiment's weights may be cached.
const FIXED_WEIGHTS_MAX_AGE: i64 = 300;

/// The answer: integer weights summing to 100, by variant in AlephBet's
/// order.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WeightsAnswer {
    /// The namespace.
    namespace: String,
    /// The experiment.
    experiment: String,
    /// False for an experiment whose weights are its registered ones.
    adaptive: bool,
    /// The period the weights hold for (adaptive only).
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<i64>,
    /// When they stop holding, in Unix milliseconds (adaptive only).
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_ms: Option<i64>,
    /// True while the weights wait for every variant's burn-in.
    burn_in: bool,
    /// Variant → weight, in the registered order.
    weights: OrderedWeights,
}

/// Variant → weight as a JSON object whose keys keep the registered order.
#[derive(Debug)]
struct OrderedWeights(Vec<(String, u32)>);

impl JsonSchema for OrderedWeights {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OrderedWeights".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "Variant → weight, integers summing to 100, in the registered order.",
            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100}
        })
    }
}

impl Serialize for OrderedWeights {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (variant, weight) in &self.0 {
            map.serialize_entry(variant, weight)?;
        }
        map.end()
    }
}

/// The experiment's weights for now: for an adaptive experiment those of
/// the current period (computed by its first request), otherwise the
/// registered weights scaled to 100. 404 for an experiment without
/// registered variants.
pub async fn weights(
    State(state): State<AppState>,
    experiment: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (namespace, experiment) = experiment_and_namespace(experiment, query.as_deref())?;
    let now_ms = Clock::System.now_ms();
    let (store, flights) = (state.store.as_ref(), &state.weight_flights);
    let found = service::weights(store, flights, &namespace, &experiment, now_ms)
        .await
        .map_err(|err| match err {
            WeightsError::Store(err) => ApiError::Store(err),
            // Stored weights that do not parse, or a record whose options
            // the statistics refuse (they were checked when registered):
            // every retry would fail the same way, so 500, not 503.
            WeightsError::Invalid(why) => ApiError::Store(StoreError::corrupt(format!(
                "weights of experiment '{experiment}' in namespace '{namespace}': {why}"
            ))),
        })?;
    let Some(found) = found else {
        return Err(ApiError::NotFound(format!(
            "experiment '{experiment}' has no registered variants in namespace '{namespace}'"
        )));
    };
    // Cacheable until the period ends.
    let max_age = match found.expires_ms {
        Some(expires_ms) => ((expires_ms - now_ms + 999) / 1000).max(1),
        None => FIXED_WEIGHTS_MAX_AGE,
    };
    let answer = WeightsAnswer {
        namespace,
        experiment,
        adaptive: found.adaptive,
        period: found.period,
        expires_ms: found.expires_ms,
        burn_in: found.burn_in,
        weights: OrderedWeights(found.weights),
    };
    Ok((
        [(header::CACHE_CONTROL, format!("public, max-age={max_age}"))],
        Json(answer),
    )
        .into_response())
}
