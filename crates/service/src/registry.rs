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
    let record = ExperimentRecord::register(previous, namespace, experiment, definition, now_ms)?;
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

    /// The patch that makes `change` (a stop carries its decision).
    pub fn change(change: &Change) -> Self {
        match change {
            Change::Stop { winner, note } => Patch {
                winner: winner.clone(),
                note: Some(note.clone()),
                ..Patch::status(Status::Stopped)
            },
            other => Patch::status(other.target()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use lamed_core::clock::Clock;
    use lamed_core::model::Caps;
    use lamed_store::reference::ReferenceStore;

    fn store() -> ReferenceStore {
        ReferenceStore::new(0, Caps::default(), Clock::manual(0))
    }

    fn definition(json: &str) -> Definition {
        serde_json::from_str(json).unwrap()
    }

    async fn registered(store: &ReferenceStore) -> ExperimentRecord {
        put(
            store,
            "ns",
            "e",
            definition(r#"{"variants": ["a", "b"]}"#),
            10,
        )
        .await
        .unwrap()
        .record
    }

    /// A first registration creates; a second redefines, keeping the
    /// creation time and status; removing a variant is refused and leaves
    /// the stored record as it was.
    #[tokio::test]
    async fn registering_then_redefining() {
        let store = store();
        let first = put(
            &store,
            "ns",
            "e",
            definition(r#"{"variants": ["a", "b"]}"#),
            10,
        )
        .await
        .unwrap();
        assert!(first.created);
        assert_eq!(first.record.status, Status::Running);
        let again = put(
            &store,
            "ns",
            "e",
            definition(r#"{"variants": ["a", "b", "c"]}"#),
            20,
        )
        .await
        .unwrap();
        assert!(!again.created);
        assert_eq!(again.record.created_ms, 10);
        assert_eq!(again.record.variants.len(), 3);
        let removed = put(
            &store,
            "ns",
            "e",
            definition(r#"{"variants": ["a", "c"]}"#),
            30,
        )
        .await;
        assert!(matches!(
            removed,
            Err(EditError::Registry(RegistryError::Removed(name))) if name == "b"
        ));
        assert_eq!(show(&store, "ns", "e").await.unwrap(), again.record);
    }

    /// A stopped experiment keeps its decision; resuming it is refused and
    /// writes nothing.
    #[tokio::test]
    async fn a_move_the_lifecycle_refuses_writes_nothing() {
        let store = store();
        registered(&store).await;
        let stop = Patch {
            winner: Some("b".into()),
            note: Some("clear".into()),
            ..Patch::status(Status::Stopped)
        };
        let stopped = change(&store, "ns", "e", stop, 50).await.unwrap();
        assert_eq!(stopped.status, Status::Stopped);
        assert_eq!(stopped.stopped_ms, Some(50));
        let refused = change(&store, "ns", "e", Patch::status(Status::Running), 60).await;
        assert!(matches!(
            refused,
            Err(EditError::Registry(RegistryError::Transition {
                from: Status::Stopped,
                to: Status::Running
            }))
        ));
        assert_eq!(show(&store, "ns", "e").await.unwrap(), stopped);
    }

    /// A winner or note goes with a stop only; a description changes
    /// alone; an unknown experiment is not registered.
    #[tokio::test]
    async fn changes_check_what_goes_together() {
        let store = store();
        let before = registered(&store).await;
        let pause_with_winner = Patch {
            winner: Some("a".into()),
            ..Patch::status(Status::Paused)
        };
        let refused = change(&store, "ns", "e", pause_with_winner, 50).await;
        assert!(
            matches!(&refused, Err(EditError::Registry(RegistryError::Invalid(why))) if why.contains("'winner'")),
            "{refused:?}"
        );
        assert_eq!(show(&store, "ns", "e").await.unwrap(), before);
        let described = Patch {
            description: Some("colours".into()),
            ..Patch::default()
        };
        let after = change(&store, "ns", "e", described, 60).await.unwrap();
        assert_eq!(
            (after.description.as_str(), after.status),
            ("colours", Status::Running)
        );
        assert!(matches!(
            change(&store, "ns", "other", Patch::status(Status::Paused), 70).await,
            Err(EditError::Registry(RegistryError::NotRegistered { .. }))
        ));
    }

    /// The list leaves archived experiments out unless asked; deleting
    /// removes the record, and deleting again finds nothing.
    #[tokio::test]
    async fn listing_and_deleting() {
        let store = store();
        registered(&store).await;
        put(
            &store,
            "ns",
            "old",
            definition(r#"{"variants": ["x", "y"]}"#),
            10,
        )
        .await
        .unwrap();
        change(&store, "ns", "old", Patch::status(Status::Archived), 20)
            .await
            .unwrap();
        let names = |records: Vec<ExperimentRecord>| -> Vec<String> {
            records.into_iter().map(|r| r.name).collect()
        };
        assert_eq!(names(list(&store, "ns", None).await.unwrap()), ["e"]);
        assert_eq!(
            names(list(&store, "ns", Some("all")).await.unwrap()),
            ["e", "old"]
        );
        assert!(matches!(
            list(&store, "ns", Some("draft")).await,
            Err(EditError::Registry(RegistryError::Invalid(_)))
        ));
        delete(&store, "ns", "e").await.unwrap();
        assert!(store.record("ns", "e").await.unwrap().is_none());
        assert!(matches!(
            delete(&store, "ns", "e").await,
            Err(EditError::Registry(RegistryError::NotRegistered { .. }))
        ));
    }
}
