//! The distinct names that exist in the store, kept in memory so that caps
//! are enforced without a query per event.

use std::collections::{HashMap, HashSet};

use rusqlite::Connection;

use crate::model::{CapExceeded, Caps, Event, PARTICIPATE};
use crate::store::StoreError;

/// The distinct names that exist, kept in memory to enforce [`Caps`]
/// without a query per event.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    namespaces: HashMap<String, HashMap<String, ExperimentNames>>,
}

#[derive(Debug, Default)]
struct ExperimentNames {
    variants: HashSet<String>,
    goals: HashSet<String>,
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
                namespace: row.get(0)?,
                experiment: row.get(1)?,
                event: row.get(2)?,
                variant: row.get(3)?,
                uuid: String::new(),
            };
            catalog.insert(&event);
        }
        Ok(catalog)
    }

    /// Which cap, if any, counting `event` would break.
    pub(super) fn check(&self, event: &Event, caps: &Caps) -> Option<CapExceeded> {
        let Some(experiments) = self.namespaces.get(&event.namespace) else {
            return (self.namespaces.len() >= caps.max_namespaces).then(|| {
                CapExceeded::Namespaces {
                    namespace: event.namespace.clone(),
                    limit: caps.max_namespaces,
                }
            });
        };
        let Some(names) = experiments.get(&event.experiment) else {
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

    pub(super) fn remove_experiment(&mut self, namespace: &str, experiment: &str) {
        if let Some(experiments) = self.namespaces.get_mut(namespace) {
            experiments.remove(experiment);
            if experiments.is_empty() {
                self.namespaces.remove(namespace);
            }
        }
    }
}
