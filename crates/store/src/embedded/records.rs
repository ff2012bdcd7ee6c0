//! The registry's committed records, in memory, so that `record` and
//! `records` answer without a query and a hop to a blocking thread: every
//! `/participate`, `/convert` and `/weights` reads one. The registry is
//! small (bounded by the caps), and the writer already keeps each record
//! in its catalog; it publishes the ones a transaction changed once that
//! transaction has committed, before answering its callers. So a read
//! never sees a write that may still roll back, and sees every write whose
//! caller was answered.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use lamed_core::registry::ExperimentRecord;

/// The committed records, by namespace, then experiment (sorted, as
/// `records` lists them).
#[derive(Debug, Default)]
pub(super) struct CommittedRecords {
    namespaces: RwLock<HashMap<String, BTreeMap<String, Arc<ExperimentRecord>>>>,
}

impl CommittedRecords {
    /// The experiment's record, if it has one.
    pub(super) fn get(&self, namespace: &str, experiment: &str) -> Option<ExperimentRecord> {
        let namespaces = self
            .namespaces
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        namespaces
            .get(namespace)?
            .get(experiment)
            .map(|record| ExperimentRecord::clone(record))
    }

    /// The namespace's records, by experiment name.
    pub(super) fn list(&self, namespace: &str) -> Vec<ExperimentRecord> {
        let namespaces = self
            .namespaces
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        namespaces
            .get(namespace)
            .map(|records| {
                records
                    .values()
                    .map(|record| ExperimentRecord::clone(record))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sets (or, with `None`, removes) the experiment's record.
    pub(super) fn set(
        &self,
        namespace: String,
        experiment: String,
        record: Option<Arc<ExperimentRecord>>,
    ) {
        // Each write is whole, so what a panicking reader left is sound.
        let mut namespaces = self
            .namespaces
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match record {
            Some(record) => {
                namespaces
                    .entry(namespace)
                    .or_default()
                    .insert(experiment, record);
            }
            None => {
                if let Some(records) = namespaces.get_mut(&namespace) {
                    records.remove(&experiment);
                    if records.is_empty() {
                        namespaces.remove(&namespace);
                    }
                }
            }
        }
    }
}
