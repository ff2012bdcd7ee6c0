//! `GET /track` (one event in the query, as AlephBet sends it) and
//! `POST /track` (a JSON array of events, for server-side senders).

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use super::namespace_param;
use crate::model::{Event, InvalidField, TrackOutcome};
use crate::server::error::ApiError;
use crate::server::params::QueryParams;
use crate::server::state::AppState;

/// Count one event; 200 `{}` for a new event and a duplicate alike.
pub async fn track_one(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let event = event_from_query(query.as_deref()).inspect_err(|err| {
        state.metrics.reject(err.kind());
    })?;
    let outcome = store_events(&state, vec![event]).await?.pop();
    match outcome {
        Some(TrackOutcome::Rejected(cap)) => Err(cap.into()),
        Some(_) => Ok(empty_ok()),
        None => Err(ApiError::Unavailable(
            crate::store::StoreError::unavailable("store returned no outcome"),
        )),
    }
}

/// 200 with body `{}`: all AlephBet needs to drop the event from its queue.
pub fn empty_ok() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
}

/// Count a JSON array of events, answering one result per event.
///
/// 200 when every event was counted or was a duplicate; 422 when some were
/// refused (the others are stored, so re-sending the whole batch is safe).
pub async fn track_batch(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        state.metrics.reject("body_too_large");
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(format!(
                "request body is too large: {}",
                rejection.body_text()
            )),
            _ => ApiError::BadRequest(rejection.body_text()),
        }
    })?;
    let items: Vec<Value> = serde_json::from_slice(&body).map_err(|err| {
        state.metrics.reject("malformed_json");
        ApiError::BadRequest(format!("body must be a JSON array of events: {err}"))
    })?;
    if items.is_empty() {
        state.metrics.reject("empty_batch");
        return Err(ApiError::BadRequest("batch holds no events".into()));
    }
    if items.len() > state.max_batch_events {
        state.metrics.reject("batch_too_large");
        return Err(ApiError::TooLarge(format!(
            "batch holds {} events; the limit is {}",
            items.len(),
            state.max_batch_events
        )));
    }
    state.metrics.batch_size(items.len());

    let mut results: Vec<EventResult> = Vec::with_capacity(items.len());
    let mut valid = Vec::with_capacity(items.len());
    let mut valid_positions = Vec::with_capacity(items.len());
    for (position, item) in items.iter().enumerate() {
        match event_from_json(item) {
            Ok(event) => {
                valid.push(event);
                valid_positions.push(position);
                results.push(EventResult::refused(String::new()));
            }
            Err(err) => {
                state.metrics.reject(err.kind());
                results.push(EventResult::refused(format!("event {position}: {err}")));
            }
        }
    }
    if !valid.is_empty() {
        let outcomes = store_events(&state, valid).await?;
        for (position, outcome) in valid_positions.into_iter().zip(outcomes) {
            results[position] = EventResult::from(outcome);
        }
    }
    let summary = BatchResponse::new(results);
    let status = if summary.refused == 0 {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(summary)).into_response())
}

/// Hands validated events to the store, recording latency and outcomes.
async fn store_events(state: &AppState, events: Vec<Event>) -> Result<Vec<TrackOutcome>, ApiError> {
    let started = Instant::now();
    let outcomes = state.store.track(events).await.inspect_err(|_| {
        state.metrics.reject("store_unavailable");
    })?;
    state.metrics.store_latency(started.elapsed());
    state.metrics.outcomes(&outcomes);
    Ok(outcomes)
}

fn event_from_query(query: Option<&str>) -> Result<Event, InvalidField> {
    let mut params = QueryParams::parse(query).map_err(|_| InvalidField::InvalidUtf8("query"))?;
    let event = Event {
        namespace: namespace_param(&params)?,
        experiment: params.take("experiment")?,
        variant: params.take("variant")?,
        event: params.take("event")?,
        uuid: params.take("uuid")?,
    };
    event.validate()?;
    Ok(event)
}

fn event_from_json(item: &Value) -> Result<Event, InvalidField> {
    let object = item.as_object().ok_or(InvalidField::NotAnObject)?;
    let field = |name: &'static str| -> Result<Option<String>, InvalidField> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(InvalidField::NotAString(name)),
        }
    };
    let required = |name: &'static str| field(name)?.ok_or(InvalidField::Missing(name));
    let event = Event {
        namespace: field("namespace")?.unwrap_or_else(|| crate::model::DEFAULT_NAMESPACE.into()),
        experiment: required("experiment")?,
        variant: required("variant")?,
        event: required("event")?,
        uuid: required("uuid")?,
    };
    event.validate()?;
    Ok(event)
}

/// The answer to a batch.
#[derive(Debug, Serialize)]
struct BatchResponse {
    /// Events counted now.
    counted: usize,
    /// Events already seen within the window.
    duplicates: usize,
    /// Events refused (invalid or over a cap); see `results`.
    refused: usize,
    /// Present when something was refused, as for every 4xx.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// One result per event, in order.
    results: Vec<EventResult>,
}

impl BatchResponse {
    fn new(results: Vec<EventResult>) -> Self {
        let count = |status| results.iter().filter(|r| r.status == status).count();
        let (counted, duplicates, refused) =
            (count("counted"), count("duplicate"), count("refused"));
        let error = results.iter().find_map(|r| r.error.as_ref()).map(|first| {
            format!(
                "{refused} of {} events were refused (first: {first}); see results",
                results.len()
            )
        });
        BatchResponse {
            counted,
            duplicates,
            refused,
            error,
            results,
        }
    }
}

/// What happened to one event of a batch.
#[derive(Debug, Serialize)]
struct EventResult {
    /// `counted`, `duplicate` or `refused`.
    status: &'static str,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl EventResult {
    fn refused(error: String) -> Self {
        EventResult {
            status: "refused",
            error: Some(error),
        }
    }
}

impl From<TrackOutcome> for EventResult {
    fn from(outcome: TrackOutcome) -> Self {
        match outcome {
            TrackOutcome::Counted => EventResult {
                status: "counted",
                error: None,
            },
            TrackOutcome::Duplicate => EventResult {
                status: "duplicate",
                error: None,
            },
            TrackOutcome::Rejected(cap) => EventResult::refused(cap.to_string()),
        }
    }
}
