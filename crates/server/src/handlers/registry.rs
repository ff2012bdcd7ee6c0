//! The registry API, behind the API key: `GET /api/experiments` (records
//! of a namespace, filtered by status), and on
//! `/api/experiments/{experiment}`: `GET` (one record), `PUT` (register or
//! redefine), `PATCH` (pause, resume, stop with a decision, archive, or a
//! new description) and `DELETE` (counts and record). Also
//! `GET /api/ignored`: the names most often ignored.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{experiment_and_namespace, namespace_param};
use crate::error::ApiError;
use crate::ignored::IgnoredSummary;
use crate::params::QueryParams;
use crate::state::AppState;
use lamed_core::clock::Clock;
use lamed_core::registry::{
    status_filter, Change, Definition, ExperimentRecord, RegistryError, Status,
};

/// Most rows of `GET /api/ignored`.
const IGNORED_ROWS: usize = 20;

/// The records of a namespace. `status` is a comma-separated list of
/// statuses, or `all`; by default every status but `archived`.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<ExperimentRecord>>, ApiError> {
    let params = QueryParams::parse(query.as_deref())?;
    let namespace = namespace_param(&params)?;
    let wanted = status_filter(params.optional("status")?).map_err(registry_error)?;
    let records = state.store.records(&namespace).await?;
    Ok(Json(
        records
            .into_iter()
            .filter(|r| wanted.contains(&r.status))
            .collect(),
    ))
}

/// One experiment's record.
pub async fn show(
    State(state): State<AppState>,
    experiment: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<ExperimentRecord>, ApiError> {
    let (namespace, experiment) = experiment_and_namespace(experiment, query.as_deref())?;
    Ok(Json(existing(&state, &namespace, &experiment).await?))
}

/// Registers an experiment (201) or redefines a registered one (200),
/// keeping its status, times and decision. Variants and goals can be
/// added, not removed: counts already carry them.
pub async fn put(
    State(state): State<AppState>,
    experiment: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (namespace, experiment) = experiment_and_namespace(experiment, query.as_deref())?;
    let definition: Definition = json_body(&body)?;
    let previous = state.store.record(&namespace, &experiment).await?;
    let created = previous.is_none();
    let record = ExperimentRecord::register(
        previous,
        &namespace,
        &experiment,
        definition,
        Clock::System.now_ms(),
    )
    .map_err(registry_error)?;
    state.store.put_record(record.clone()).await?;
    tracing::info!(%namespace, %experiment, created, "experiment registered");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record)).into_response())
}

/// What `PATCH` may change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    /// `running` (resume), `paused`, `stopped` or `archived`.
    status: Option<Status>,
    /// With `stopped`: the winning variant (omit or null: no winner).
    winner: Option<String>,
    /// With `stopped`: why.
    note: Option<String>,
    /// A new description.
    description: Option<String>,
}

/// Moves an experiment in its lifecycle, or changes its description.
pub async fn patch(
    State(state): State<AppState>,
    experiment: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Json<ExperimentRecord>, ApiError> {
    let (namespace, experiment) = experiment_and_namespace(experiment, query.as_deref())?;
    let patch: Patch = json_body(&body)?;
    let mut record = existing(&state, &namespace, &experiment).await?;
    if patch.status != Some(Status::Stopped) && (patch.winner.is_some() || patch.note.is_some()) {
        return Err(ApiError::BadRequest(
            "'winner' and 'note' go with \"status\": \"stopped\"".into(),
        ));
    }
    if let Some(description) = patch.description {
        let mut definition = record.definition();
        definition.description = description;
        record
            .redefine(definition.validated().map_err(registry_error)?)
            .map_err(registry_error)?;
    }
    if let Some(status) = patch.status {
        let change = Change::toward(status, patch.winner, patch.note.unwrap_or_default());
        record
            .apply(change, Clock::System.now_ms())
            .map_err(registry_error)?;
    }
    state.store.put_record(record.clone()).await?;
    tracing::info!(%namespace, %experiment, status = record.status.as_str(), "experiment changed");
    Ok(Json(record))
}

/// Removes an experiment: its counts and its record.
pub async fn delete(
    State(state): State<AppState>,
    experiment: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError> {
    let (namespace, experiment) = experiment_and_namespace(experiment, query.as_deref())?;
    if !state
        .store
        .delete_experiment(&namespace, &experiment)
        .await?
    {
        return Err(not_found(&namespace, &experiment));
    }
    tracing::info!(%namespace, %experiment, "experiment deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The names whose events were most often ignored in a namespace.
pub async fn ignored(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<IgnoredSummary>, ApiError> {
    let params = QueryParams::parse(query.as_deref())?;
    let namespace = namespace_param(&params)?;
    Ok(Json(state.ignored.top(&namespace, IGNORED_ROWS)))
}

async fn existing(
    state: &AppState,
    namespace: &str,
    experiment: &str,
) -> Result<ExperimentRecord, ApiError> {
    state
        .store
        .record(namespace, experiment)
        .await?
        .ok_or_else(|| not_found(namespace, experiment))
}

fn not_found(namespace: &str, experiment: &str) -> ApiError {
    registry_error(RegistryError::NotRegistered {
        namespace: namespace.to_owned(),
        name: experiment.to_owned(),
    })
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|err| ApiError::BadRequest(format!("body must be a JSON object: {err}")))
}

/// Lifecycle refusals are conflicts with the current state; the rest is
/// malformed input.
fn registry_error(err: RegistryError) -> ApiError {
    match err {
        RegistryError::Transition { .. } | RegistryError::Removed(_) => {
            ApiError::Conflict(err.to_string())
        }
        RegistryError::NotRegistered { .. } => ApiError::NotFound(err.to_string()),
        _ => ApiError::BadRequest(err.to_string()),
    }
}
