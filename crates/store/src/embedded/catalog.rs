//! The distinct names that exist in the store and each experiment's
//! registry status, kept in memory so that the registry and the caps are
//! applied without a query per event.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rusqlite::Connection;

use super::records::CommittedRecords;
use crate::StoreError;
use lamed_core::model::{CapExceeded, Caps, Event, Ignored, PARTICIPATE};
use lamed_core::registry::{ExperimentRecord, RegistrationMode, Status};
use lamed_core::segments::{capped, named_count, Dimension};

/// The distinct names that exist and the registry's statuses, kept in
/// memory to apply the registry and [`Caps`] without a query per event.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    namespaces: HashMap<String, HashMap<String, ExperimentNames>>,
    /// The experiments whose record changed since the last
    /// [`Catalog::publish`]: what a commit makes visible to reads.
    changed: HashSet<(String, String)>,
}

#[derive(Debug, Default)]
struct ExperimentNames {
    /// The record, as this transaction sees it (its status and version
    /// decide writes without a query); `None` without one.
    record: Option<Arc<ExperimentRecord>>,
    variants: HashSet<String>,
    goals: HashSet<String>,
    /// The segment values counted, by dimension (for their cap).
    segment_values: [HashSet<String>; 3],
}

impl Catalog {
    pub(super) fn load(conn: &Connection) -> Result<Self, StoreError> {
        let mut catalog = Catalog::default();
        let mut stmt = conn.prepare(
            "SELECT namespace, experiment, event, variant FROM counters
             UNION SELECT namespace, experiment, event, variant FROM daily
             UNION SELECT namespace, experiment, event, variant FROM imported",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let event = Event {
                segment: Default::default(),
                namespace: row.get(0)?,
                experiment: row.get(1)?,
                event: row.get(2)?,
                variant: row.get(3)?,
                uuid: String::new(),
                value: None,
            };
            catalog.insert(&event);
        }
        let mut stmt =
            conn.prepare("SELECT DISTINCT namespace, experiment, dimension, value FROM segments")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (namespace, experiment): (String, String) = (row.get(0)?, row.get(1)?);
            let dimension: String = row.get(2)?;
            let dimension: Dimension = dimension
                .parse()
                .map_err(|err| StoreError::corrupt_because("a stored segment is corrupt", err))?;
            catalog
                .namespaces
                .entry(namespace)
                .or_default()
                .entry(experiment)
                .or_default()
                .segment_values[dimension.index()]
            .insert(row.get(3)?);
        }
        let mut stmt = conn.prepare("SELECT record FROM registry")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            catalog.put_record(&parse_record(&row.get::<_, String>(0)?)?);
        }
        Ok(catalog)
    }

    /// Why `event` is not counted, if it is not: the registry (status,
    /// registration mode), then the caps.
    pub(super) fn check(&self, event: &Event, caps: &Caps) -> Option<Ignored> {
        let experiments = self.namespaces.get(&event.namespace);
        let names = experiments.and_then(|experiments| experiments.get(&event.experiment));
        if let Some(status) = names.and_then(|n| n.record.as_ref()).map(|r| r.status) {
            if status != Status::Running {
                return Some(Ignored::Inactive(status));
            }
        }
        if caps.registration == RegistrationMode::Required {
            let registered = names.is_some_and(|n| {
                n.record.is_some()
                    && n.variants.contains(&event.variant)
                    && (event.is_participation() || n.goals.contains(&event.event))
            });
            if !registered {
                return Some(Ignored::Unregistered);
            }
        }
        self.cap_exceeded(event, caps, experiments, names)
            .map(Ignored::Cap)
    }

    /// True when `event`'s experiment has no record yet: counting it
    /// registers it.
    pub(super) fn lacks_record(&self, event: &Event) -> bool {
        self.namespaces
            .get(&event.namespace)
            .and_then(|experiments| experiments.get(&event.experiment))
            .is_none_or(|names| names.record.is_none())
    }

    /// The experiment's record, as this transaction sees it.
    pub(super) fn record(&self, namespace: &str, experiment: &str) -> Option<&ExperimentRecord> {
        self.namespaces
            .get(namespace)?
            .get(experiment)?
            .record
            .as_deref()
    }

    /// The version of the experiment's record; `None` when it has none.
    pub(super) fn version(&self, namespace: &str, experiment: &str) -> Option<u64> {
        self.record(namespace, experiment).map(|r| r.version)
    }

    /// Takes in a record, and its names as known.
    pub(super) fn put_record(&mut self, record: &ExperimentRecord) {
        let key = (record.namespace.clone(), record.name.clone());
        let names = self
            .namespaces
            .entry(key.0.clone())
            .or_default()
            .entry(key.1.clone())
            .or_default();
        names.record = Some(Arc::new(record.clone()));
        names
            .variants
            .extend(record.variants.iter().map(|v| v.name.clone()));
        names
            .goals
            .extend(record.goals.iter().map(|g| g.name.clone()));
        self.changed.insert(key);
    }

    /// Makes the records changed since the last call visible to reads:
    /// call it once they are committed.
    pub(super) fn publish(&mut self, to: &CommittedRecords) {
        for (namespace, experiment) in self.changed.drain() {
            let record = self
                .namespaces
                .get(&namespace)
                .and_then(|experiments| experiments.get(&experiment))
                .and_then(|names| names.record.clone());
            to.set(namespace, experiment, record);
        }
    }

    /// Which cap, if any, counting `event` would break; `experiments` and
    /// `names` are its namespace's and experiment's entries, looked up once
    /// by [`Catalog::check`].
    fn cap_exceeded(
        &self,
        event: &Event,
        caps: &Caps,
        experiments: Option<&HashMap<String, ExperimentNames>>,
        names: Option<&ExperimentNames>,
    ) -> Option<CapExceeded> {
        let Some(experiments) = experiments else {
            return (self.namespaces.len() >= caps.max_namespaces).then(|| {
                CapExceeded::Namespaces {
                    namespace: event.namespace.clone(),
                    limit: caps.max_namespaces,
                }
            });
        };
        let Some(names) = names else {
            return (experiments.len() >= caps.max_experiments_per_namespace).then(|| {
                CapExceeded::Experiments {
                    namespace: event.namespace.clone(),
                    experiment: event.experiment.clone(),
                    limit: caps.max_experiments_per_namespace,
                }
            });
        };
        if !names.variants.contains(&event.variant)
            && names.variants.len() >= caps.max_variants_per_experiment
        {
            return Some(CapExceeded::Variants {
                experiment: event.experiment.clone(),
                variant: event.variant.clone(),
                limit: caps.max_variants_per_experiment,
            });
        }
        if !event.is_participation()
            && !names.goals.contains(&event.event)
            && names.goals.len() >= caps.max_goals_per_experiment
        {
            return Some(CapExceeded::Goals {
                experiment: event.experiment.clone(),
                goal: event.event.clone(),
                limit: caps.max_goals_per_experiment,
            });
        }
        None
    }

    pub(super) fn insert(&mut self, event: &Event) {
        let names = self
            .namespaces
            .entry(event.namespace.clone())
            .or_default()
            .entry(event.experiment.clone())
            .or_default();
        names.variants.insert(event.variant.clone());
        if event.event != PARTICIPATE {
            names.goals.insert(event.event.clone());
        }
    }

    /// The values `event`'s segment is counted under: each its own while
    /// the experiment has room for it, else `other` (see
    /// `lamed_core::segments::capped`); takes them in. Call after
    /// [`Catalog::insert`].
    pub(super) fn segment_values(&mut self, event: &Event) -> Vec<(Dimension, String)> {
        if event.segment.is_empty() {
            return Vec::new();
        }
        let Some(names) = self
            .namespaces
            .get_mut(&event.namespace)
            .and_then(|experiments| experiments.get_mut(&event.experiment))
        else {
            return Vec::new();
        };
        event
            .segment
            .values()
            .map(|(dimension, value)| {
                let held = &mut names.segment_values[dimension.index()];
                if held.contains(value) {
                    return (dimension, value.to_owned());
                }
                let value =
                    capped(value, false, named_count(held.iter().map(String::as_str))).to_owned();
                held.insert(value.clone());
                (dimension, value)
            })
            .collect()
    }

    /// Forgets an experiment: its names and its status.
    pub(super) fn remove_experiment(&mut self, namespace: &str, experiment: &str) {
        self.changed
            .insert((namespace.to_owned(), experiment.to_owned()));
        if let Some(experiments) = self.namespaces.get_mut(namespace) {
            experiments.remove(experiment);
            if experiments.is_empty() {
                self.namespaces.remove(namespace);
            }
        }
    }
}

/// A stored record, read back; one that does not parse is corrupt (a
/// permanent failure: re-reading it fails the same way).
pub(super) fn parse_record(json: &str) -> Result<ExperimentRecord, StoreError> {
    serde_json::from_str(json)
        .map_err(|err| StoreError::corrupt_because("a stored record is corrupt", err))
}
