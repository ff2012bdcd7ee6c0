//! The experiments whose events were most often ignored, and why: so that
//! an owner sees a typo in a name, a missing registration or a forgotten
//! pause on the dashboard (`GET /api/ignored`).
//!
//! Kept in memory since the process started (on AWS Lambda, per function
//! instance), in a bounded table: anonymous requests can fill it with
//! made-up names, but not grow it.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use lamed_core::model::Ignored;

/// Most distinct (namespace, experiment, reason) rows remembered; later
/// new rows are only added to `others`.
const MAX_ROWS: usize = 1_000;

/// Ignored events per experiment name and reason.
#[derive(Debug, Default)]
pub struct IgnoredNames {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    rows: HashMap<(String, String, &'static str), u64>,
    /// Ignored events whose row did not fit.
    others: u64,
}

/// One row of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct IgnoredRow {
    /// The experiment name the events carried.
    pub experiment: String,
    /// Why they were ignored (see [`Ignored::reason`]).
    pub reason: &'static str,
    /// How many.
    pub events: u64,
}

/// The answer of `GET /api/ignored` for one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct IgnoredSummary {
    /// The most ignored names, most first.
    pub top: Vec<IgnoredRow>,
    /// Ignored events (all namespaces) not in the table because it was
    /// full.
    pub others: u64,
}

impl IgnoredNames {
    /// Notes one ignored event of `experiment` in `namespace`.
    pub fn note(&self, namespace: &str, experiment: &str, why: &Ignored) {
        let mut table = self.table.lock().expect("ignored-names lock poisoned");
        let key = (namespace.to_owned(), experiment.to_owned(), why.reason());
        let room = table.rows.len() < MAX_ROWS;
        match table.rows.get_mut(&key) {
            Some(events) => *events += 1,
            None if room => {
                table.rows.insert(key, 1);
            }
            None => table.others += 1,
        }
    }

    /// The `limit` most ignored names of a namespace, most first.
    pub fn top(&self, namespace: &str, limit: usize) -> IgnoredSummary {
        let table = self.table.lock().expect("ignored-names lock poisoned");
        let mut top: Vec<IgnoredRow> = table
            .rows
            .iter()
            .filter(|((ns, _, _), _)| ns == namespace)
            .map(|((_, experiment, reason), &events)| IgnoredRow {
                experiment: experiment.clone(),
                reason,
                events,
            })
            .collect();
        top.sort_by(|a, b| {
            (b.events, &a.experiment, a.reason).cmp(&(a.events, &b.experiment, b.reason))
        });
        top.truncate(limit);
        IgnoredSummary {
            top,
            others: table.others,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lamed_core::registry::Status;

    /// Most ignored first; other namespaces apart; the table stays bounded.
    #[test]
    fn ranks_and_stays_bounded() {
        let names = IgnoredNames::default();
        for _ in 0..3 {
            names.note("ns", "typo", &Ignored::Unregistered);
        }
        names.note("ns", "paused one", &Ignored::Inactive(Status::Paused));
        let top = names.top("ns", 10).top;
        assert_eq!(top[0].experiment, "typo");
        assert_eq!((top[0].reason, top[0].events), ("unregistered", 3));
        assert_eq!(top[1].reason, "paused");
        assert!(names.top("other", 10).top.is_empty());
        for i in 0..MAX_ROWS + 5 {
            names.note("ns", &format!("spam {i}"), &Ignored::Unregistered);
        }
        assert_eq!(names.table.lock().unwrap().rows.len(), MAX_ROWS);
        assert_eq!(names.top("ns", 1).others, 7);
    }
}
