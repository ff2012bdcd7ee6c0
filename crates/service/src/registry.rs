//! Registry edits over a store: list, show, register or redefine, change
//! (status or description) and delete experiment records. The rules of a
//! record are [`lamed_core::registry`]'s; each edit here reads the record,
//! applies them and writes it back on the version it read
//! ([`Precondition::Version`]), one function per edit, so that each can
//! become one store call.
//!
//! A write that comes between an edit's read and its write is never lost:
//! an edit that names the version its caller read ([`Expected::OneOf`],
//! HTTP's `If-Match`) is refused ([`EditError::Moved`]); one that does not
//! is read and applied again, up to [`EDIT_ATTEMPTS`] times.

use serde::Deserialize;

use lamed_core::registry::{
    status_filter, Change, Definition, ExperimentRecord, RegistryError, Status,
};
use lamed_store::{Precondition, PutOutcome, Store, StoreError};

/// How many times an edit that names no version is read, applied and
/// written before giving up, when other writes keep coming between its
/// read and its write ([`EditError::Contended`]).
pub const EDIT_ATTEMPTS: usize = 8;

/// Why a registry edit cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The registry's rules refuse it (see [`RegistryError`]: a refused
    /// move, an unknown experiment, an invalid definition).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The record is not at a version the caller expected: it changed
    /// since the caller read it. Nothing was written.
    #[error("experiment '{name}' changed since it was read (it is {}): read it again and retry", at(*.current))]
    Moved {
        /// The experiment.
        name: String,
        /// Its record's version now; `None` when it has no record.
        current: Option<u64>,
    },
    /// Other writes came between every read and write of the edit,
    /// [`EDIT_ATTEMPTS`] times. Nothing was written.
    #[error("experiment '{name}' kept changing while this edit was applied ({attempts} attempts): retry")]
    Contended {
        /// The experiment.
        name: String,
        /// How many times the edit was tried.
        attempts: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn at(version: Option<u64>) -> String {
    version.map_or_else(
        || "not registered".to_owned(),
        |v| format!("at version {v}"),
    )
}

/// The record versions an edit accepts (HTTP's `If-Match`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Expected {
    /// Whatever is stored: the edit applies to the current record, read
    /// and applied again when another write comes between.
    #[default]
    Current,
    /// A record at any version, none at all is refused (`If-Match: *`).
    Exists,
    /// A record at one of these versions (the ones the caller read).
    OneOf(Vec<u64>),
}

impl Expected {
    /// Whether a record at `current` (`None`: no record) is one expected.
    pub fn allows(&self, current: Option<u64>) -> bool {
        match self {
            Expected::Current => true,
            Expected::Exists => current.is_some(),
            Expected::OneOf(versions) => current.is_some_and(|v| versions.contains(&v)),
        }
    }
}

/// Reads the record, makes the new one from it and writes it on the
/// version read, until no other write comes between (at most
/// [`EDIT_ATTEMPTS`] times); answers the record written, with its new
/// version, and whether it is new. `make` gets `None` when there is no
/// record; `needs_record` refuses that first, as not registered, before
/// `expected` is checked (HTTP answers 404 before 412).
async fn edit(
    store: &dyn Store,
    namespace: &str,
    experiment: &str,
    expected: &Expected,
    needs_record: bool,
    mut make: impl FnMut(Option<ExperimentRecord>) -> Result<ExperimentRecord, EditError>,
) -> Result<(ExperimentRecord, bool), EditError> {
    for _ in 0..EDIT_ATTEMPTS {
        let current = store.record(namespace, experiment).await?;
        if needs_record && current.is_none() {
            return Err(not_registered(namespace, experiment));
        }
        let read = current.as_ref().map(|r| r.version);
        if !expected.allows(read) {
            return Err(EditError::Moved {
                name: experiment.to_owned(),
                current: read,
            });
        }
        let mut record = make(current)?;
        let precondition = read.map_or(Precondition::Absent, Precondition::Version);
        match store.put_record(record.clone(), precondition).await? {
            PutOutcome::Written { version } => {
                record.version = version;
                return Ok((record, read.is_none()));
            }
            // Read again: an expected version no longer matches then, and
            // anything else is applied to what the other write left.
            PutOutcome::Conflict { .. } => continue,
        }
    }
    Err(EditError::Contended {
        name: experiment.to_owned(),
        attempts: EDIT_ATTEMPTS,
    })
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
/// The definition breaks a rule, or the store failing;
/// [`EditError::Contended`] when other writes keep coming between.
pub async fn put(
    store: &dyn Store,
    namespace: &str,
    experiment: &str,
    definition: Definition,
    now_ms: i64,
) -> Result<Registered, EditError> {
    put_if(
        store,
        namespace,
        experiment,
        definition,
        now_ms,
        &Expected::Current,
    )
    .await
}

/// [`put`], when the record is at a version `expected` allows.
///
/// # Errors
///
/// As [`put`]; [`EditError::Moved`] when the record is not as expected.
pub async fn put_if(
    store: &dyn Store,
    namespace: &str,
    experiment: &str,
    definition: Definition,
    now_ms: i64,
    expected: &Expected,
) -> Result<Registered, EditError> {
    let (record, created) = edit(store, namespace, experiment, expected, false, |previous| {
        let definition = definition.clone();
        Ok(ExperimentRecord::register(
            previous, namespace, experiment, definition, now_ms,
        )?)
    })
    .await?;
    Ok(Registered { record, created })
}

/// What a change may set (the body of `PATCH`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
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
/// or changes its description, or both (the description first), on the
/// current record: a write that comes between is kept, and the change
/// applied over it (or refused, when the lifecycle no longer allows it).
///
/// # Errors
///
/// [`RegistryError::NotRegistered`]; a move the lifecycle does not allow
/// ([`RegistryError::Transition`]); a winner or note without `stopped`, or
/// another invalid value ([`RegistryError::Invalid`]);
/// [`EditError::Contended`] when other writes keep coming between; or the
/// store failing. Nothing is written then.
pub async fn change(
    store: &dyn Store,
    namespace: &str,
    experiment: &str,
    patch: Patch,
    now_ms: i64,
) -> Result<ExperimentRecord, EditError> {
    change_if(
        store,
        namespace,
        experiment,
        patch,
        now_ms,
        &Expected::Current,
    )
    .await
}

/// [`change`], when the record is at a version `expected` allows.
///
/// # Errors
///
/// As [`change`]; [`EditError::Moved`] when the record is not as
/// expected.
pub async fn change_if(
    store: &dyn Store,
    namespace: &str,
    experiment: &str,
    patch: Patch,
    now_ms: i64,
    expected: &Expected,
) -> Result<ExperimentRecord, EditError> {
    let (record, _) = edit(store, namespace, experiment, expected, true, |current| {
        let mut record = current.ok_or_else(|| not_registered(namespace, experiment))?;
        let patch = patch.clone();
        if patch.status != Some(Status::Stopped) && (patch.winner.is_some() || patch.note.is_some())
        {
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
        Ok(record)
    })
    .await?;
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

    /// An edit that expects a version the record has left is refused and
    /// writes nothing; with the current version it goes through, and the
    /// record answered carries its new version. `Exists` refuses a
    /// registration of a new experiment; an unknown one is not registered
    /// before it is moved.
    #[tokio::test]
    async fn expected_versions_guard_edits() {
        let store = store();
        let first = registered(&store).await;
        assert_eq!(first.version, 1);
        let described = Patch {
            description: Some("theirs".into()),
            ..Patch::default()
        };
        let theirs = change(&store, "ns", "e", described, 20).await.unwrap();
        assert_eq!(theirs.version, 2);
        let stale = Expected::OneOf(vec![1]);
        let refused = change_if(&store, "ns", "e", Patch::status(Status::Paused), 30, &stale).await;
        assert!(
            matches!(
                &refused,
                Err(EditError::Moved {
                    current: Some(2),
                    ..
                })
            ),
            "{refused:?}"
        );
        let again = definition(r#"{"variants": ["a", "b", "c"]}"#);
        let refused = put_if(&store, "ns", "e", again.clone(), 30, &stale).await;
        assert!(matches!(refused, Err(EditError::Moved { .. })));
        assert_eq!(show(&store, "ns", "e").await.unwrap(), theirs);

        let fresh = Expected::OneOf(vec![2]);
        let paused = change_if(&store, "ns", "e", Patch::status(Status::Paused), 40, &fresh)
            .await
            .unwrap();
        assert_eq!((paused.status, paused.version), (Status::Paused, 3));
        assert_eq!(show(&store, "ns", "e").await.unwrap(), paused);

        let new = put_if(&store, "ns", "new", again, 50, &Expected::Exists).await;
        assert!(matches!(new, Err(EditError::Moved { current: None, .. })));
        assert_eq!(store.record("ns", "new").await.unwrap(), None);
        let unknown = change_if(
            &store,
            "ns",
            "new",
            Patch::status(Status::Paused),
            60,
            &fresh,
        );
        assert!(matches!(
            unknown.await,
            Err(EditError::Registry(RegistryError::NotRegistered { .. }))
        ));
    }

    /// A pause racing other edits of the same record stays: each edit is
    /// written over the version it read, and applied again over the
    /// record another one left. Every edit is kept (the last version
    /// counts them all).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_edits_lose_nothing() {
        const EDITS: usize = 4;
        let store = std::sync::Arc::new(store());
        registered(&store).await;
        let mut tasks = Vec::new();
        for n in 0..=EDITS {
            let store = std::sync::Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let patch = match n {
                    0 => Patch::status(Status::Paused),
                    n => Patch {
                        description: Some(format!("edit {n}")),
                        ..Patch::default()
                    },
                };
                // At most EDITS others can come between: never contended.
                change(&*store, "ns", "e", patch, 20).await.unwrap()
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let record = show(&*store, "ns", "e").await.unwrap();
        assert_eq!(record.status, Status::Paused);
        assert_eq!(record.version, 1 + 1 + EDITS as u64);
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
