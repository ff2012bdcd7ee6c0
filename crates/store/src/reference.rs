//! The reference store: the [`Store`] contract written as plainly as
//! possible, in memory, for tests to compare the real backends with.
//!
//! # What a store means
//!
//! - **Identity.** An event's identity is `(namespace, experiment, event,
//!   variant, uuid)`, compared exactly (no hash).
//! - **Order.** A batch is handled event by event, in order: an event sees
//!   what the events before it in the batch did.
//! - **Registry first.** An experiment with a record counts only while it
//!   is running; otherwise its events are `Ignored(Inactive)`. In required
//!   mode an event is `Ignored(Unregistered)` unless its experiment has a
//!   record and its variant and goal are known to it: named by a record
//!   written for it (names stay known once registered) or carried by one of
//!   its counters. Ignored events are not remembered.
//! - **Then caps.** An event that would create a name beyond a cap is
//!   `Ignored(Cap)`, checked in this order: namespaces, experiments in the
//!   namespace, variants in the experiment, goals (events other than
//!   `participate`) in the experiment. A name exists while a counter
//!   (tracked or imported) carries it, or a record registered it; names
//!   that exist never hit a cap. An event over a cap is
//!   `Ignored(Cap)` and not remembered.
//! - **Then dedupe.** An event whose identity was first seen less than
//!   `window` ms ago is a `Duplicate` (an event seen exactly `window` ms ago
//!   is outside); with window 0 it is a duplicate forever. A duplicate
//!   does not refresh the first sighting, and creates no name.
//! - **Else counted**: remembered as first seen now, and added to its
//!   counter and to its counter for the UTC day of now (the clock's time).
//!   An experiment without a record gets [`ExperimentRecord::automatic`]
//!   with now as its creation time.
//! - **Reads.** A counter reads as tracked plus imported; it exists while
//!   either does. Daily counters hold tracked events only, for the last
//!   [`DAILY_RETENTION_DAYS`] days. An experiment is listed while one of
//!   its counters or its record exists.
//! - **Records** are written whole and read back as written, with the
//!   version the store gave them: [`FIRST_VERSION`] for a new record (also
//!   the one tracking creates), one more than the stored one for a
//!   replacement. A write whose [`Precondition`] fails changes nothing and
//!   answers the current version. Writing one makes its variants and goals
//!   known, without caps. A deleted record's versions start over.
//! - **Delete** removes an experiment's counters, daily counters, imported
//!   bases and record (its names then stop counting towards caps); the
//!   dedupe memory stays, so a re-sent event is still a duplicate.
//!   Returns whether anything was removed.
//! - **Memberships** are set once per `(namespace, experiment, member)`:
//!   the first value joined stays, whatever is joined later, until the
//!   experiment is deleted. They create no experiment and count nothing.
//! - **Joins** ([`Store::count_join`]): a member that holds a value
//!   answers it (`Held`) and nothing changes; a join that needs a
//!   participant holding the event's variant answers `NotParticipating`
//!   without it; otherwise the event is tracked as above, and only when it
//!   is counted does the member hold its variant and, for an experiment
//!   with no record or an automatic one, the definition become its record.
//!   A duplicate or ignored event writes nothing.
//! - **Values**: a counted event's value (if any) is added to its
//!   counter's exact sum and sum of squares; a duplicate adds nothing (the
//!   first value wins). A counter reads its totals while it has a valued
//!   event; delete removes them.
//! - **Weight history**: one stored text per `(experiment, period)`, set
//!   once: the first text stored for a period stays. Listed by period,
//!   or read one period at a time; removed with the experiment.
//! - **One experiment's counters** are the namespace's counters of that
//!   experiment, in the same order.
//! - **Import** sets a counter's imported base, ignoring caps (but the
//!   names then exist), and returns the previous base.
//! - **Segments**: a counted event also adds one (and its value) to the
//!   segment counter of each value its segment carries, keyed by
//!   experiment, dimension, value, event and variant; a duplicate or
//!   ignored event adds nothing. An experiment holds at most
//!   `MAX_VALUES_PER_DIMENSION` values per dimension, `other` included:
//!   a new value past the named ones' share counts as `other`. Removed
//!   with the experiment.
//! - **Close**: every later call fails with [`StoreError::Closed`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::DAILY_RETENTION_DAYS;
use super::{
    Join, JoinAnswer, Joined, Kept, Precondition, PutOutcome, Store, StoreError, Versioned,
};
use lamed_core::clock::Clock;
use lamed_core::model::{
    CapExceeded, Caps, Counter, DailyCounter, Event, Ignored, TrackOutcome, PARTICIPATE,
};
use lamed_core::registry::{ExperimentRecord, RegistrationMode, FIRST_VERSION};
use lamed_core::segments::{capped, named_count, sort_counters, Dimension, SegmentCounter};
use lamed_core::value::ValueTotals;

/// `(dimension, value, event, variant)`: one segment counter of an
/// experiment.
type SegmentKey = (Dimension, String, String, String);

/// `(namespace, experiment)`: one experiment.
type ExperimentKey = (String, String);

/// `(namespace, experiment, event, variant)`: one counter.
type CounterKey = (String, String, String, String);

/// `(namespace, experiment, event, variant, uuid)`: one event's identity.
type Identity = (String, String, String, String, String);

/// An in-memory [`Store`] that states the contract in code (see the module
/// documentation). Slow and simple on purpose.
#[derive(Debug)]
pub struct ReferenceStore {
    window_ms: i64,
    caps: Caps,
    clock: Clock,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    /// Identity → millisecond of its first sighting in the current window.
    first_seen: BTreeMap<Identity, i64>,
    /// Tracked counts per counter and UTC day.
    tracked: BTreeMap<CounterKey, BTreeMap<i64, u64>>,
    /// Imported bases.
    imported: BTreeMap<CounterKey, u64>,
    /// Registry records.
    records: BTreeMap<ExperimentKey, ExperimentRecord>,
    /// Variants and goals records have registered, per experiment.
    registered: BTreeMap<ExperimentKey, BTreeSet<(Kind, String)>>,
    /// What each experiment keeps once per key (memberships, weights).
    kept: BTreeMap<ExperimentKey, BTreeMap<Kept, String>>,
    /// Sums of the counted events' values, per counter with any.
    values: BTreeMap<CounterKey, ValueTotals>,
    /// The alerts' state documents.
    alerts: BTreeMap<String, Versioned>,
    /// Segment counters per experiment: count and value totals.
    segments: BTreeMap<ExperimentKey, BTreeMap<SegmentKey, (u64, ValueTotals)>>,
}

/// Whether a registered name is a variant or a goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Variant,
    Goal,
}

impl ReferenceStore {
    /// One event, as the contract says: registry, caps, dedupe, count.
    fn track_one(&self, state: &mut State, event: Event, now: i64) -> TrackOutcome {
        if let Some(ignored) = state.ignored_by_registry(&event, &self.caps) {
            return TrackOutcome::Ignored(ignored);
        }
        if let Some(cap) = state.cap_exceeded(&event, &self.caps) {
            return TrackOutcome::Ignored(Ignored::Cap(cap));
        }
        let identity = (
            event.namespace.clone(),
            event.experiment.clone(),
            event.event.clone(),
            event.variant.clone(),
            event.uuid.clone(),
        );
        let inside_window = |first: i64| self.window_ms == 0 || now - first < self.window_ms;
        if state
            .first_seen
            .get(&identity)
            .is_some_and(|&first| inside_window(first))
        {
            return TrackOutcome::Duplicate;
        }
        state.first_seen.insert(identity, now);
        state
            .records
            .entry((event.namespace.clone(), event.experiment.clone()))
            .or_insert_with(|| {
                ExperimentRecord::automatic(&event.namespace, &event.experiment, now)
            });
        let day = now.div_euclid(86_400_000);
        *state
            .tracked
            .entry(counter_key(&event))
            .or_default()
            .entry(day)
            .or_default() += 1;
        if let Some(value) = event.value {
            state
                .values
                .entry(counter_key(&event))
                .or_default()
                .add(value);
        }
        let segments = state
            .segments
            .entry((event.namespace.clone(), event.experiment.clone()))
            .or_default();
        for (dimension, value) in event.segment.values() {
            let held: BTreeSet<&str> = segments
                .keys()
                .filter(|key| key.0 == dimension)
                .map(|key| key.1.as_str())
                .collect();
            let value = capped(
                value,
                held.contains(value),
                named_count(held.iter().copied()),
            );
            let key = (
                dimension,
                value.to_owned(),
                event.event.clone(),
                event.variant.clone(),
            );
            let (count, totals) = segments.entry(key).or_default();
            *count += 1;
            if let Some(value) = event.value {
                totals.add(value);
            }
        }
        TrackOutcome::Counted
    }

    /// An empty store with a dedupe window in seconds (0 = forever).
    pub fn new(window_seconds: u64, caps: Caps, clock: Clock) -> Self {
        ReferenceStore {
            window_ms: i64::try_from(window_seconds.saturating_mul(1000)).unwrap_or(i64::MAX),
            caps,
            clock,
            state: Mutex::new(State::default()),
        }
    }

    /// The state, unless the store is closed.
    fn open_state(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        let state = self.state.lock().expect("reference store lock poisoned");
        if state.closed {
            return Err(StoreError::Closed);
        }
        Ok(state)
    }
}

impl State {
    /// Writes a record whole, one version above the one it replaces; its
    /// variants and goals become known. Answers the new version.
    fn put_record(&mut self, mut record: ExperimentRecord) -> u64 {
        let key = (record.namespace.clone(), record.name.clone());
        let current = self.records.get(&key).map(|r| r.version);
        record.version = current.map_or(FIRST_VERSION, |v| v + 1);
        let version = record.version;
        let names = self.registered.entry(key.clone()).or_default();
        names.extend(
            record
                .variants
                .iter()
                .map(|v| (Kind::Variant, v.name.clone())),
        );
        names.extend(record.goals.iter().map(|g| (Kind::Goal, g.name.clone())));
        self.records.insert(key, record);
        version
    }

    /// Every counter that exists, tracked or imported.
    fn counter_keys(&self) -> impl Iterator<Item = &CounterKey> {
        self.tracked.keys().chain(self.imported.keys())
    }

    /// Every experiment that exists: with a counter or a record.
    fn experiment_keys(&self) -> BTreeSet<ExperimentKey> {
        self.counter_keys()
            .map(|k| (k.0.clone(), k.1.clone()))
            .chain(self.records.keys().cloned())
            .collect()
    }

    /// The variants and goals an experiment knows: carried by its counters
    /// or registered.
    fn known_names(&self, namespace: &str, experiment: &str) -> BTreeSet<(Kind, String)> {
        let counted = self
            .counter_keys()
            .filter(|k| k.0 == namespace && k.1 == experiment)
            .flat_map(|k| {
                let goal = (k.2 != PARTICIPATE).then(|| (Kind::Goal, k.2.clone()));
                [Some((Kind::Variant, k.3.clone())), goal]
            })
            .flatten();
        let registered = self
            .registered
            .get(&(namespace.to_owned(), experiment.to_owned()))
            .into_iter()
            .flatten()
            .cloned();
        counted.chain(registered).collect()
    }

    /// Why the registry ignores `event`, if it does.
    fn ignored_by_registry(&self, event: &Event, caps: &Caps) -> Option<Ignored> {
        let key = (event.namespace.clone(), event.experiment.clone());
        let record = self.records.get(&key);
        if let Some(record) = record {
            if !record.counts() {
                return Some(Ignored::Inactive(record.status));
            }
        }
        if caps.registration == RegistrationMode::Required {
            let known = self.known_names(&event.namespace, &event.experiment);
            let goal_known =
                event.is_participation() || known.contains(&(Kind::Goal, event.event.clone()));
            if record.is_none()
                || !known.contains(&(Kind::Variant, event.variant.clone()))
                || !goal_known
            {
                return Some(Ignored::Unregistered);
            }
        }
        None
    }

    /// Which cap, if any, counting `event` would break.
    fn cap_exceeded(&self, event: &Event, caps: &Caps) -> Option<CapExceeded> {
        let experiment_keys = self.experiment_keys();
        let namespaces: BTreeSet<&str> = experiment_keys.iter().map(|k| k.0.as_str()).collect();
        let experiments: BTreeSet<&str> = experiment_keys
            .iter()
            .filter(|k| k.0 == event.namespace)
            .map(|k| k.1.as_str())
            .collect();
        let known = self.known_names(&event.namespace, &event.experiment);
        let names = |kind: Kind| -> BTreeSet<&str> {
            known
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, name)| name.as_str())
                .collect()
        };
        let (variants, goals) = (names(Kind::Variant), names(Kind::Goal));
        if !namespaces.contains(event.namespace.as_str()) {
            return (namespaces.len() >= caps.max_namespaces).then(|| CapExceeded::Namespaces {
                namespace: event.namespace.clone(),
                limit: caps.max_namespaces,
            });
        }
        if !experiments.contains(event.experiment.as_str()) {
            return (experiments.len() >= caps.max_experiments_per_namespace).then(|| {
                CapExceeded::Experiments {
                    namespace: event.namespace.clone(),
                    experiment: event.experiment.clone(),
                    limit: caps.max_experiments_per_namespace,
                }
            });
        }
        if !variants.contains(event.variant.as_str())
            && variants.len() >= caps.max_variants_per_experiment
        {
            return Some(CapExceeded::Variants {
                experiment: event.experiment.clone(),
                variant: event.variant.clone(),
                limit: caps.max_variants_per_experiment,
            });
        }
        if !event.is_participation()
            && !goals.contains(event.event.as_str())
            && goals.len() >= caps.max_goals_per_experiment
        {
            return Some(CapExceeded::Goals {
                experiment: event.experiment.clone(),
                goal: event.event.clone(),
                limit: caps.max_goals_per_experiment,
            });
        }
        None
    }
}

fn counter_key(event: &Event) -> CounterKey {
    (
        event.namespace.clone(),
        event.experiment.clone(),
        event.event.clone(),
        event.variant.clone(),
    )
}

#[async_trait]
impl Store for ReferenceStore {
    async fn track(&self, events: Vec<Event>) -> Result<Vec<TrackOutcome>, StoreError> {
        let mut state = self.open_state()?;
        let now = self.clock.now_ms();
        Ok(events
            .into_iter()
            .map(|event| self.track_one(&mut state, event, now))
            .collect())
    }

    async fn count_join(&self, join: Join) -> Result<JoinAnswer, StoreError> {
        let mut state = self.open_state()?;
        let Join {
            mut event,
            member,
            participant,
            definition,
        } = join;
        let key = (event.namespace.clone(), event.experiment.clone());
        let held = |state: &State, member: &str| {
            state
                .kept
                .get(&key)
                .and_then(|kept| kept.get(&Kept::Member(member.to_owned())))
                .cloned()
        };
        if let Some(value) = held(&state, &member) {
            return Ok(JoinAnswer::new(Joined::Held(value.clone()), value));
        }
        if let Some(participant) = participant {
            match held(&state, &participant) {
                Some(variant) if !variant.is_empty() => event.variant = variant,
                _ => return Ok(JoinAnswer::new(Joined::NotParticipating, "")),
            }
        }
        let variant = event.variant.clone();
        match self.track_one(&mut state, event, self.clock.now_ms()) {
            TrackOutcome::Counted => {}
            TrackOutcome::Duplicate => return Ok(JoinAnswer::new(Joined::Duplicate, variant)),
            TrackOutcome::Ignored(why) => {
                return Ok(JoinAnswer::new(Joined::Ignored(why), variant))
            }
        }
        state
            .kept
            .entry(key.clone())
            .or_default()
            .insert(Kept::Member(member), variant.clone());
        if let Some(definition) = definition {
            if state.records.get(&key).is_none_or(|r| r.automatic) {
                state.put_record(definition);
            }
        }
        Ok(JoinAnswer::new(Joined::Counted, variant))
    }

    async fn counters(&self, namespace: &str) -> Result<Vec<Counter>, StoreError> {
        let state = self.open_state()?;
        let mut sums: BTreeMap<&CounterKey, u64> = BTreeMap::new();
        for (key, days) in &state.tracked {
            *sums.entry(key).or_default() += days.values().sum::<u64>();
        }
        for (key, base) in &state.imported {
            *sums.entry(key).or_default() += base;
        }
        Ok(sums
            .into_iter()
            .filter(|(key, _)| key.0 == namespace)
            .map(|(key, count)| Counter {
                experiment: key.1.clone(),
                event: key.2.clone(),
                variant: key.3.clone(),
                count,
                values: state.values.get(key).copied(),
            })
            .collect())
    }

    async fn daily_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<DailyCounter>, StoreError> {
        let state = self.open_state()?;
        let oldest_day =
            self.clock.now_ms().div_euclid(86_400_000) - i64::from(DAILY_RETENTION_DAYS);
        let mut daily: Vec<DailyCounter> = state
            .tracked
            .iter()
            .filter(|(key, _)| key.0 == namespace && key.1 == experiment)
            .flat_map(|((_, _, event, variant), days)| {
                days.iter().map(|(&day, &count)| DailyCounter {
                    event: event.clone(),
                    variant: variant.clone(),
                    day,
                    count,
                })
            })
            .filter(|d| d.day >= oldest_day)
            .collect();
        daily.sort_by(|a, b| (a.day, &a.event, &a.variant).cmp(&(b.day, &b.event, &b.variant)));
        Ok(daily)
    }

    async fn experiments(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        let state = self.open_state()?;
        Ok(state
            .experiment_keys()
            .into_iter()
            .filter(|key| key.0 == namespace)
            .map(|key| key.1)
            .collect())
    }

    async fn delete_experiment(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<bool, StoreError> {
        let mut state = self.open_state()?;
        let doomed = |key: &CounterKey| key.0 == namespace && key.1 == experiment;
        let before = state.tracked.len() + state.imported.len();
        state.tracked.retain(|key, _| !doomed(key));
        state.imported.retain(|key, _| !doomed(key));
        state.values.retain(|key, _| !doomed(key));
        let key = (namespace.to_owned(), experiment.to_owned());
        state.registered.remove(&key);
        state.kept.remove(&key);
        state.segments.remove(&key);
        let had_record = state.records.remove(&key).is_some();
        Ok(state.tracked.len() + state.imported.len() < before || had_record)
    }

    async fn record(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Option<ExperimentRecord>, StoreError> {
        let state = self.open_state()?;
        Ok(state
            .records
            .get(&(namespace.to_owned(), experiment.to_owned()))
            .cloned())
    }

    async fn records(&self, namespace: &str) -> Result<Vec<ExperimentRecord>, StoreError> {
        let state = self.open_state()?;
        Ok(state
            .records
            .iter()
            .filter(|(key, _)| key.0 == namespace)
            .map(|(_, record)| record.clone())
            .collect())
    }

    async fn put_record(
        &self,
        record: ExperimentRecord,
        precondition: Precondition,
    ) -> Result<PutOutcome, StoreError> {
        let mut state = self.open_state()?;
        let key = (record.namespace.clone(), record.name.clone());
        let current = state.records.get(&key).map(|r| r.version);
        if !precondition.holds(current) {
            return Ok(PutOutcome::Conflict { current });
        }
        Ok(PutOutcome::Written {
            version: state.put_record(record),
        })
    }

    async fn import_counter(
        &self,
        namespace: &str,
        experiment: &str,
        event: &str,
        variant: &str,
        count: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut state = self.open_state()?;
        let key = (
            namespace.to_owned(),
            experiment.to_owned(),
            event.to_owned(),
            variant.to_owned(),
        );
        Ok(state.imported.insert(key, count))
    }

    async fn membership(
        &self,
        namespace: &str,
        experiment: &str,
        member: &str,
    ) -> Result<Option<String>, StoreError> {
        let state = self.open_state()?;
        Ok(state
            .kept
            .get(&(namespace.to_owned(), experiment.to_owned()))
            .and_then(|kept| kept.get(&Kept::Member(member.to_owned())))
            .cloned())
    }

    async fn member_count(&self, namespace: &str, experiment: &str) -> Result<u64, StoreError> {
        let state = self.open_state()?;
        let kept = state
            .kept
            .get(&(namespace.to_owned(), experiment.to_owned()));
        Ok(kept
            .into_iter()
            .flatten()
            .filter(|(key, _)| matches!(key, Kept::Member(_)))
            .count() as u64)
    }

    async fn put_once(
        &self,
        namespace: &str,
        experiment: &str,
        key: &Kept,
        value: &str,
    ) -> Result<String, StoreError> {
        let mut state = self.open_state()?;
        Ok(state
            .kept
            .entry((namespace.to_owned(), experiment.to_owned()))
            .or_default()
            .entry(key.clone())
            .or_insert_with(|| value.to_owned())
            .clone())
    }

    async fn weight_history(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let state = self.open_state()?;
        let kept = state
            .kept
            .get(&(namespace.to_owned(), experiment.to_owned()));
        // Kept orders weights by period, as the contract sorts them.
        Ok(kept
            .into_iter()
            .flatten()
            .filter_map(|(key, weights)| match key {
                Kept::Weights(period) => Some((*period, weights.clone())),
                Kept::Member(_) => None,
            })
            .collect())
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.open_state().map(drop)
    }

    fn dedupe_entries(&self) -> Option<u64> {
        None
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.state
            .lock()
            .expect("reference store lock poisoned")
            .closed = true;
        Ok(())
    }

    async fn experiment_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<Counter>, StoreError> {
        // The namespace's counters are sorted by experiment, event and
        // variant: filtered, they are sorted as the contract asks.
        let mut counters = self.counters(namespace).await?;
        counters.retain(|c| c.experiment == experiment);
        Ok(counters)
    }

    async fn segment_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<SegmentCounter>, StoreError> {
        let state = self.open_state()?;
        let mut counters: Vec<SegmentCounter> = state
            .segments
            .get(&(namespace.to_owned(), experiment.to_owned()))
            .into_iter()
            .flatten()
            .map(
                |((dimension, value, event, variant), (count, totals))| SegmentCounter {
                    dimension: *dimension,
                    value: value.clone(),
                    event: event.clone(),
                    variant: variant.clone(),
                    count: *count,
                    values: (totals.valued > 0).then_some(*totals),
                },
            )
            .collect();
        sort_counters(&mut counters);
        Ok(counters)
    }

    async fn weights_of(
        &self,
        namespace: &str,
        experiment: &str,
        period: i64,
    ) -> Result<Option<String>, StoreError> {
        let state = self.open_state()?;
        Ok(state
            .kept
            .get(&(namespace.to_owned(), experiment.to_owned()))
            .and_then(|kept| kept.get(&Kept::Weights(period)))
            .cloned())
    }

    async fn namespaces(&self) -> Result<Vec<String>, StoreError> {
        let state = self.open_state()?;
        let names: BTreeSet<String> = state.records.keys().map(|(n, _)| n.clone()).collect();
        Ok(names.into_iter().collect())
    }

    async fn alert_state(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        Ok(self.open_state()?.alerts.get(key).cloned())
    }

    async fn alert_states(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        let state = self.open_state()?;
        Ok(state
            .alerts
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, doc)| (key.clone(), doc.clone()))
            .collect())
    }

    async fn put_alert_state(
        &self,
        key: &str,
        value: Option<&str>,
        precondition: Precondition,
    ) -> Result<PutOutcome, StoreError> {
        let mut state = self.open_state()?;
        let current = state.alerts.get(key).map(|doc| doc.version);
        if !precondition.holds(current) {
            return Ok(PutOutcome::Conflict { current });
        }
        let Some(value) = value else {
            state.alerts.remove(key);
            return Ok(PutOutcome::Written { version: 0 });
        };
        let version = current.map_or(FIRST_VERSION, |v| v + 1);
        state.alerts.insert(
            key.to_owned(),
            Versioned {
                version,
                value: value.to_owned(),
            },
        );
        Ok(PutOutcome::Written { version })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    async fn fresh(window: u64, caps: Caps, clock: Clock) -> ((), ReferenceStore) {
        ((), ReferenceStore::new(window, caps, clock))
    }

    conformance::conformance_tests!(fresh);
}
