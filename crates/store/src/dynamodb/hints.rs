//! What this instance learned from reads that the optimistic first
//! attempt of an event may assume: the segment sets read full. Hints
//! only: every plan states what it assumed as a condition, so a stale
//! hint cancels a transaction, never miscounts.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::keys::NAMED_PLACES;
use lamed_core::model::Event;

/// Experiments whose full segment sets [`FullSegments`] remembers at most
/// (then it forgets them all and learns again): a few MB at most.
const FULL_SEGMENTS_KEPT: usize = 1_024;

/// Per experiment `(namespace, experiment)`, its full sets by dimension
/// (empty: not full).
type Known = HashMap<(String, String), [BTreeSet<String>; 3]>;

/// The segment sets this instance has read full, per experiment: a full
/// set never changes while its gate lives (the cap stops it growing), so
/// the optimistic first attempt can count a value past the cap as
/// `other` at once, under the condition that the set is still full and
/// lacks it, instead of failing on `contains` and reading the gate on
/// every such event (a country past the experiment's first 19). Only a
/// hint: a set that changed (the experiment deleted and counted again)
/// fails the condition, and the gate read then corrects the hint.
#[derive(Debug, Default)]
pub(super) struct FullSegments(Mutex<Known>);

impl FullSegments {
    fn lock(&self) -> MutexGuard<'_, Known> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Learns the full sets among a gate's `segments` (forgets the
    /// experiment when it has none).
    pub(super) fn learn(
        &self,
        namespace: &str,
        experiment: &str,
        segments: &[BTreeSet<String>; 3],
    ) {
        let full = segments.clone().map(|set| {
            if set.len() >= NAMED_PLACES {
                set
            } else {
                BTreeSet::new()
            }
        });
        let key = (namespace.to_owned(), experiment.to_owned());
        let mut known = self.lock();
        if full.iter().all(BTreeSet::is_empty) {
            known.remove(&key);
            return;
        }
        if known.len() >= FULL_SEGMENTS_KEPT && !known.contains_key(&key) {
            known.clear();
        }
        known.insert(key, full);
    }

    /// The sets of a view of `event`'s gate, with the full sets known of
    /// its experiment where they lack its value.
    pub(super) fn apply(&self, event: &Event, segments: &mut [BTreeSet<String>; 3]) {
        let known = self.lock();
        let Some(full) = known.get(&(event.namespace.clone(), event.experiment.clone())) else {
            return;
        };
        for (dimension, value) in event.segment.values() {
            let set = &full[dimension.index()];
            if !set.is_empty() && !set.contains(value) {
                segments[dimension.index()] = set.clone();
            }
        }
    }
}
