//! `GET /experiments` (Lamed's results shape) and `DELETE /delete`, both
//! behind the API key.

use axum::extract::{RawQuery, State};
use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;

use super::namespace_param;
use crate::error::ApiError;
use crate::params::QueryParams;
use crate::state::AppState;
use lamed_core::model::{check_field, DEFAULT_NAMESPACE, MAX_NAME_BYTES};
use lamed_core::results::{experiments_response, scoped_experiments, ResultsEntry};

/// Longest `scope` accepted: room for many experiment names.
pub const MAX_SCOPE_BYTES: usize = 16 * 1024;

/// List the counts of a namespace's experiments (or of `scope`).
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<ResultsEntry>>, ApiError> {
    let params = QueryParams::parse(query.as_deref())?;
    let namespace = namespace_param(&params)?;
    let scope = params.optional("scope")?.map(str::to_owned);
    if let Some(scope) = scope.as_deref().filter(|s| !s.is_empty()) {
        check_field("scope", scope, MAX_SCOPE_BYTES)?;
    }
    let all = state.store.experiments(&namespace).await?;
    // The default namespace always exists, so a fresh server answers an
    // empty list; any other namespace with no data is probably a typo.
    if all.is_empty() && namespace != DEFAULT_NAMESPACE {
        return Err(ApiError::NotFound(format!(
            "namespace '{namespace}' has no experiments"
        )));
    }
    let experiments = scoped_experiments(scope.as_deref(), &all);
    let counters = state.store.counters(&namespace).await?;
    Ok(Json(experiments_response(scope, &experiments, &counters)))
}

/// The answer to a delete.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Deleted {
    /// The namespace.
    namespace: String,
    /// The experiment removed.
    deleted: String,
}

/// Remove an experiment's counters.
pub async fn delete(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Deleted>, ApiError> {
    let params = QueryParams::parse(query.as_deref())?;
    let namespace = namespace_param(&params)?;
    let experiment = params.required("experiment")?;
    check_field("experiment", experiment, MAX_NAME_BYTES)?;
    if !state
        .store
        .delete_experiment(&namespace, experiment)
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "experiment '{experiment}' not found in namespace '{namespace}'"
        )));
    }
    tracing::info!(%namespace, %experiment, "experiment deleted");
    Ok(Json(Deleted {
        namespace,
        deleted: experiment.to_owned(),
    }))
}
