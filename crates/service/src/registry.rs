//! Registry edits over a store: list, show, register or redefine, change
//! (status or description) and delete experiment records. The rules of a
//! record are [`lamed_core::registry`]'s; each edit here reads the record,
//! applies them and writes it back, one function per edit, so that each
//! can become one store call.

use serde::Deserialize;

use lamed_core::registry::{
    status_filter, Change, Definition, ExperimentRecord, RegistryError, Status,
};
use lamed_store::{Store, StoreError};

/// Why a registry edit cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The registry's rules refuse it (see [`RegistryError`]: a refused
    /// move, an unknown experiment, an invalid definition).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn not_registered(namespace: &str, experiment: &str) -> EditError {
    EditError::Registry(RegistryError::NotRegistered {
        namespace: namespace.to_owned(),
        name: experiment.to_owned(),
    })
}

/// The records of a namespace whose status `status` names (a
/// comma-separated list, or `all`; by default every status but archived:
/// [`status_filter`]).
///
/// # Errors
///
/// A word that is no status, or the store failing.
pub async fn list(
    store: &dyn Store,
    namespace: &str,
    status: Option<&str>,
) -> Result<Vec<ExperimentRecord>, EditError> {
    let wanted = status_filter(status)?;
    let mut records = store.records(namespace).await?;
    records.retain(|r| wanted.contains(&r.status));
    Ok(records)
}

/// One experiment's record.
///
/// # Errors
///
/// [`RegistryError::NotRegistered`], or the store failing.
pub async fn show(
    store: &dyn Store,
    namespace: &str,
    experiment: &str,
) -> Result<ExperimentRecord, EditError> {
    store
        .record(namespace, experiment)
        .await?
        .ok_or_else(|| not_registered(namespace, experiment))
}

/// A registration's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The record as written.
    pub record: ExperimentRecord,
    /// True when the experiment had no record before.
    pub created: bool,
}

/// Registers an experiment, or redefines a registered one keeping its
/// status, times and decision ([`ExperimentRecord::register`]). Variants
/// and goals can be added, not removed: counts already carry them.
///
/// # Errors
///
/// The definition breaks a rule, or the store failing.
pub async fn put(
    store: &dyn Store,
    namespace: &str,
    experiment: &str,
    definition: Definition,
    now_ms: i64,
) -> Result<Registered, EditError> {
    let previous = store.record(namespace, experiment).await?;
    let created = previous.is_none();
    let record =
        ExperimentRecord::register(previous, namespace, experiment, definition, now_ms)?;
    store.put_record(record.clone()).await?;
    Ok(Registered { record, created })
}

/// What a change may set (the body of `PATCH`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    /// `running` (resume), `paused`, `stopped` or `archived`.
    pub status: Option<Status>,
    /// With `stopped`: the winning variant (omit or null: no winner).
    pub winner: Option<String>,
    /// With `stopped`: why.
    pub note: Option<String>,
    /// A new description.
    pub description: Option<String>,
}

impl Patch {
    /// A move toward `status` (a stop without a winner or note).
    pub fn status(status: Status) -> Self {
        Patch {
            status: Some(status),
            ..Patch::default()
        }
    }
}

/// Moves an experiment in its lifecycle ([`ExperimentRecord::apply`]),
/// or changes its description, or both (the description first).
///
/// # Errors
///
/// [`RegistryError::NotRegistered`]; a move the lifecycle does not allow
/// ([`RegistryError::Transition`]); a winner or note without `stopped`, or
/// another invalid value ([`RegistryError::Invalid`]); or the store
/// failing. Nothing is written then.
pub async fn change(
    store: &dyn Store,
    namespace: &str,
    experiment: &str,
    patch: Patch,
    now_ms: i64,
) -> Result<ExperimentRecord, EditError> {
    let mut record = show(store, namespace, experiment).await?;
    if patch.status != Some(Status::Stopped) && (patch.winner.is_some() || patch.note.is_some()) {
        return Err(RegistryError::Invalid(
            "'winner' and 'note' go with \"status\": \"stopped\"".into(),
        )
        .into());
    }
    if let Some(description) = patch.description {
        let mut definition = record.definition();
        definition.description = description;
        record.redefine(definition.validated()?)?;
    }
    if let Some(status) = patch.status {
        let change = Change::toward(status, patch.winner, patch.note.unwrap_or_default());
        record.apply(change, now_ms)?;
    }
    store.put_record(record.clone()).await?;
    Ok(record)
}

/// Removes an experiment: its counts, its record and its memberships.
///
/// # Errors
///
/// [`RegistryError::NotRegistered`] when it had neither counts nor a
/// record, or the store failing.
pub async fn delete(store: &dyn Store, namespace: &str, experiment: &str) -> Result<(), EditError> {
    if store.delete_experiment(namespace, experiment).await? {
        Ok(())
    } else {
        Err(not_registered(namespace, experiment))
    }
}
