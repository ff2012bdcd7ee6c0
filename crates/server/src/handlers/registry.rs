//! The registry API, behind the API key: `GET /api/experiments` (records
//! of a namespace, filtered by status), and on
//! `/api/experiments/{experiment}`: `GET` (one record), `PUT` (register or
//! redefine), `PATCH` (pause, resume, stop with a decision, archive, or a
//! new description) and `DELETE` (counts and record). Also
//! `GET /api/ignored`: the names most often ignored. The edits are
//! [`lamed_service::registry`]'s; these parse the request and answer.
//!
//! One record is answered with its version as `ETag`; `PUT` and `PATCH`
//! with `If-Match` answer 412 when the record changed since (see
//! [`crate::etag`]), and without one they apply to the current record.

use super::{experiment_and_namespace, namespace_param};
use crate::error::ApiError;
use crate::etag::{etag, if_match};
use crate::ignored::IgnoredSummary;
use crate::params::QueryParams;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::ETAG;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lamed_core::clock::Clock;
use lamed_core::registry::{Definition, ExperimentRecord, RegistryError};
use lamed_service::registry::{self, EditError, Patch, Registered};

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
    let status = params.optional("status")?;
    Ok(Json(
        registry::list(&*state.store, &namespace, status)
            .await
            .map_err(edit_error)?,
    ))
}

/// One experiment's record, with its version as `ETag`.
pub async fn show(
    State(state): State<AppState>,
    experiment: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (namespace, experiment) = experiment_and_namespace(experiment, query.as_deref())?;
    let record = registry::show(&*state.store, &namespace, &experiment)
        .await
        .map_err(edit_error)?;
    Ok(tagged(StatusCode::OK, record))
}

/// Registers an experiment (201) or redefines a registered one (200),
/// keeping its status, times and decision. Variants and goals can be
/// added, not removed: counts already carry them.
pub async fn put(
    State(state): State<AppState>,
    experiment: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (namespace, experiment) = experiment_and_namespace(experiment, query.as_deref())?;
    let expected = if_match(&headers)?;
    let definition: Definition = json_body(&body)?;
    let Registered { record, created } = registry::put_if(
        &*state.store,
        &namespace,
        &experiment,
        definition,
        Clock::System.now_ms(),
        &expected,
    )
    .await
    .map_err(edit_error)?;
    tracing::info!(%namespace, %experiment, created, version = record.version, "experiment registered");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(tagged(status, record))
}

/// Moves an experiment in its lifecycle, or changes its description.
pub async fn patch(
    State(state): State<AppState>,
    experiment: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (namespace, experiment) = experiment_and_namespace(experiment, query.as_deref())?;
    let expected = if_match(&headers)?;
    let patch: Patch = json_body(&body)?;
    let record = registry::change_if(
        &*state.store,
        &namespace,
        &experiment,
        patch,
        Clock::System.now_ms(),
        &expected,
    )
    .await
    .map_err(edit_error)?;
    tracing::info!(%namespace, %experiment, status = record.status.as_str(), version = record.version, "experiment changed");
    Ok(tagged(StatusCode::OK, record))
}

/// A record as JSON, with its version as `ETag`.
fn tagged(status: StatusCode, record: ExperimentRecord) -> Response {
    let etag = etag(record.version);
    (status, [(ETAG, etag)], Json(record)).into_response()
}

/// Removes an experiment: its counts and its record.
pub async fn delete(
    State(state): State<AppState>,
    experiment: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError> {
    let (namespace, experiment) = experiment_and_namespace(experiment, query.as_deref())?;
    registry::delete(&*state.store, &namespace, &experiment)
        .await
        .map_err(edit_error)?;
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

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|err| ApiError::BadRequest(format!("body must be a JSON object: {err}")))
}

/// Lifecycle refusals are conflicts with the current state, as are edits
/// other writes kept coming between; a record not at the version
/// `If-Match` names fails the precondition; an unknown experiment is not
/// found; the rest is malformed input.
fn edit_error(err: EditError) -> ApiError {
    let err = match err {
        EditError::Store(err) => return ApiError::Store(err),
        EditError::Moved { current, .. } => {
            return ApiError::PreconditionFailed {
                message: err.to_string(),
                current,
            }
        }
        // Writes of other clients kept coming between: the state the
        // edit met was not the one it could be applied to.
        EditError::Contended { .. } => return ApiError::Conflict(err.to_string()),
        EditError::Registry(err) => err,
    };
    match err {
        RegistryError::Transition { .. } | RegistryError::Removed(_) => {
            ApiError::Conflict(err.to_string())
        }
        RegistryError::NotRegistered { .. } => ApiError::NotFound(err.to_string()),
        _ => ApiError::BadRequest(err.to_string()),
    }
}
