//! `GET /api/experiments/{name}/report`: one experiment's statistics,
//! verdicts and daily series (API key), against the registered control and
//! weights unless the request names others.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::Json;

use super::experiment_and_namespace;
use crate::error::ApiError;
use crate::params::QueryParams;
use crate::state::AppState;
use lamed_service::report::{self, LoadError, Report, ReportError, ReportRequest};

/// Analyse one experiment against a control.
pub async fn report(
    State(state): State<AppState>,
    experiment: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<Report>, ApiError> {
    let (namespace, experiment) = experiment_and_namespace(experiment, query.as_deref())?;
    let params = QueryParams::parse(query.as_deref())?;
    let request = ReportRequest {
        control: params.optional("control")?.map(str::to_owned),
        goal: params.optional("goal")?.map(str::to_owned),
        weights: params
            .optional("weights")?
            .map(report::parse_weights)
            .transpose()
            .map_err(|err| ApiError::BadRequest(err.to_string()))?,
        srm: None,
        by: params.optional("by")?.map(str::parse).transpose().map_err(
            |err: lamed_core::segments::UnknownDimension| {
                ApiError::BadRequest(format!("by: {err}"))
            },
        )?,
        correction: params
            .optional("correction")?
            .map(report::segments::parse_correction)
            .transpose()
            .map_err(ApiError::BadRequest)?
            .unwrap_or_default(),
    };
    report::load(state.store.as_ref(), &namespace, &experiment, &request)
        .await
        .map(Json)
        .map_err(|err| match err {
            LoadError::Store(err) => ApiError::Store(err),
            LoadError::Report(err @ ReportError::UnknownExperiment(_)) => {
                ApiError::NotFound(format!("{err} in namespace '{namespace}'"))
            }
            LoadError::Report(err) => ApiError::BadRequest(err.to_string()),
        })
}
