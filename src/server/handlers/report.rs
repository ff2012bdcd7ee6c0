//! `GET /api/experiments/{name}/report`: one experiment's statistics,
//! verdicts and daily series (API key).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::Json;

use super::namespace_param;
use crate::model::{check_field, MAX_NAME_BYTES};
use crate::report::{self, Report, ReportError, ReportRequest};
use crate::server::error::ApiError;
use crate::server::params::QueryParams;
use crate::server::state::AppState;

/// Analyse one experiment against a control.
pub async fn report(
    State(state): State<AppState>,
    experiment: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<Report>, ApiError> {
    let Path(experiment) = experiment.map_err(|rejection| {
        ApiError::BadRequest(format!(
            "experiment name in the path: {}",
            rejection.body_text()
        ))
    })?;
    check_field("experiment", &experiment, MAX_NAME_BYTES)?;
    let params = QueryParams::parse(query.as_deref())?;
    let namespace = namespace_param(&params)?;
    let request = ReportRequest {
        control: params.optional("control")?.map(str::to_owned),
        goal: params.optional("goal")?.map(str::to_owned),
        weights: params
            .optional("weights")?
            .map(report::parse_weights)
            .transpose()
            .map_err(|err| ApiError::BadRequest(err.to_string()))?,
    };
    let counters = state.store.counters(&namespace).await?;
    let daily = state.store.daily_counters(&namespace, &experiment).await?;
    // The statistics take milliseconds of CPU: keep them off the async
    // workers that serve tracking.
    let built = {
        let namespace = namespace.clone();
        tokio::task::spawn_blocking(move || {
            report::build(&namespace, &experiment, &counters, &daily, &request)
        })
        .await
        .map_err(|err| {
            ApiError::Unavailable(crate::store::StoreError::unavailable(format!(
                "report task failed: {err}"
            )))
        })?
    };
    built.map(Json).map_err(|err| match err {
        ReportError::UnknownExperiment(_) => {
            ApiError::NotFound(format!("{err} in namespace '{namespace}'"))
        }
        _ => ApiError::BadRequest(err.to_string()),
    })
}
