//! One module per resource; handlers only extract, validate, call the store
//! and shape the answer.

pub mod dashboard;
pub mod experiments;
pub mod health;
pub mod openapi;
pub mod registry;
pub mod report;
pub mod sixpack;
pub mod track;
pub mod webhooks;
pub mod weights;

use axum::extract::rejection::PathRejection;
use axum::extract::Path;

use crate::error::ApiError;
use crate::params::QueryParams;
use lamed_core::model::{
    check_field, InvalidField, DEFAULT_NAMESPACE, MAX_NAMESPACE_BYTES, MAX_NAME_BYTES,
};

/// The `namespace` parameter, defaulting to `alephbet` as AlephBet does.
fn namespace_param(params: &QueryParams) -> Result<String, InvalidField> {
    match params.optional("namespace")? {
        Some(namespace) => {
            check_field("namespace", namespace, MAX_NAMESPACE_BYTES)?;
            Ok(namespace.to_owned())
        }
        None => Ok(DEFAULT_NAMESPACE.to_owned()),
    }
}

/// The namespace (query) and experiment (path) of a request on
/// `/api/experiments/{experiment}...`, checked.
fn experiment_and_namespace(
    experiment: Result<Path<String>, PathRejection>,
    query: Option<&str>,
) -> Result<(String, String), ApiError> {
    let Path(experiment) = experiment.map_err(|rejection| {
        ApiError::BadRequest(format!(
            "experiment name in the path: {}",
            rejection.body_text()
        ))
    })?;
    check_field("experiment", &experiment, MAX_NAME_BYTES)?;
    let params = QueryParams::parse(query)?;
    Ok((namespace_param(&params)?, experiment))
}
