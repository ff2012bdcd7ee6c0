//! One module per resource; handlers only extract, validate, call the store
//! and shape the answer.

pub mod dashboard;
pub mod experiments;
pub mod health;
pub mod registry;
pub mod report;
pub mod track;

use crate::model::{check_field, InvalidField, DEFAULT_NAMESPACE, MAX_NAMESPACE_BYTES};
use crate::server::params::QueryParams;

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
