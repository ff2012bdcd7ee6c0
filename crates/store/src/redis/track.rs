//! Tracking: events of experiments not known here are registered
//! (`register.rs`), then all are counted by `track.lua`, one script call
//! per batch of one experiment's events.
//! Concurrent requests' events of one experiment share a call through the
//! [`Coalescer`](super::coalesce::Coalescer).

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::oneshot;

use super::keys::{invocation, Family, Key};
use super::register::{Registration, MAX_FENCED};
use super::store::RedisStore;
use crate::{Join, JoinAnswer, Joined, StoreError};
use lamed_core::model::{CapExceeded, Event, Ignored, TrackOutcome};
use lamed_core::registry::{RegistrationMode, Status, FIRST_VERSION};
use lamed_core::segments::{Segment, MAX_VALUES_PER_DIMENSION};
use lamed_core::value::Value;

/// Most events in one script call (the coalescer splits larger batches):
/// Redis runs nothing else meanwhile, so a call stays around a millisecond,
/// and a call touches at most this many distinct counters, variants, goals
/// and digests, far under any Lua limit (`unpack` fails past ~8,000 values;
/// the script also sends variadic commands in chunks of 1,000).
pub(super) const MAX_BATCH: usize = 256;

/// The keys `track.lua` gets, in its order.
const TRACK_KEYS: [Key; 11] = [
    Key::Variants,
    Key::Goals,
    Key::Slots,
    Key::Totals,
    Key::Values,
    Key::Registry,
    Key::Meta,
    Key::Days,
    Key::Members,
    Key::Fence,
    Key::Segments,
];

/// One event ready for the script.
struct Prepared {
    event: Event,
    base: String,
    digest: [u8; 8],
    join: JoinArgs,
}

/// What a join adds to its event, as the script reads it: empty strings
/// for a plain event.
#[derive(Debug, Clone, Default)]
struct JoinArgs {
    member: String,
    participant: String,
    /// The definition's record as JSON.
    definition: String,
}

/// What the script decided for one event.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// Tracking's outcome.
    Tracked(TrackOutcome),
    /// The member had joined already.
    Held,
    /// The participant does not hold the event's variant.
    NotParticipating,
}

/// One event waiting in the coalescer, with where its answer goes: the
/// script code and whether counting it created the experiment, or why the
/// batch failed.
#[derive(Debug)]
pub(super) struct Job {
    /// The registration number a creation of the experiment is allowed
    /// with; 0 when this event may not create it (`register.rs`).
    creates_with: u64,
    is_goal: bool,
    event: String,
    variant: String,
    digest: [u8; 8],
    /// The value's limbs as the script reads them; empty without a value.
    value_limbs: String,
    /// The segment as the script reads it ([`script_segment`]).
    segment: String,
    join: JoinArgs,
    reply: oneshot::Sender<Result<(i64, bool), StoreError>>,
}

/// What the tracking script answered for a batch.
struct BatchAnswer {
    created: bool,
    codes: Vec<i64>,
}

impl RedisStore {
    /// Counts a batch of events: one outcome per event, in order.
    pub(super) async fn track_events(
        &self,
        events: Vec<Event>,
    ) -> Result<Vec<TrackOutcome>, StoreError> {
        let prepared = events
            .into_iter()
            .map(|event| self.prepare(event, JoinArgs::default()))
            .collect();
        self.count_prepared(prepared)
            .await?
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Tracked(outcome) => Ok(outcome),
                other => Err(StoreError::corrupt(format!(
                    "the tracking script answered {other:?} for an event without a join"
                ))),
            })
            .collect()
    }

    /// A member joining with its event, in one script call (see
    /// [`crate::Store::count_join`]).
    pub(super) async fn join_event(&self, mut join: Join) -> Result<JoinAnswer, StoreError> {
        // A conversion counts on its participant's variant: read here, and
        // checked again by the script, in the same step as the write.
        if let Some(participant) = &join.participant {
            let (namespace, experiment) = (&join.event.namespace, &join.event.experiment);
            match self
                .read_membership(namespace, experiment, participant)
                .await?
            {
                Some(variant) if !variant.is_empty() => join.event.variant = variant,
                _ => return Ok(JoinAnswer::new(Joined::NotParticipating, "")),
            }
        }
        let definition = match &join.definition {
            Some(record) => serde_json::to_string(record)
                .map_err(|err| StoreError::caused_by("cannot encode a record", err))?,
            None => String::new(),
        };
        let args = JoinArgs {
            member: join.member.clone(),
            participant: join.participant.clone().unwrap_or_default(),
            definition,
        };
        let prepared = vec![self.prepare(join.event.clone(), args)];
        let outcome = self.count_prepared(prepared).await?.pop();
        let on_variant = |joined| Ok(JoinAnswer::new(joined, join.event.variant.clone()));
        match outcome {
            Some(Outcome::Tracked(TrackOutcome::Counted)) => on_variant(Joined::Counted),
            Some(Outcome::Tracked(TrackOutcome::Duplicate)) => on_variant(Joined::Duplicate),
            Some(Outcome::Tracked(TrackOutcome::Ignored(why))) => on_variant(Joined::Ignored(why)),
            // The participant's variant changed since it was read.
            Some(Outcome::NotParticipating) => Ok(JoinAnswer::new(Joined::NotParticipating, "")),
            Some(Outcome::Held) => {
                let (namespace, experiment) = (&join.event.namespace, &join.event.experiment);
                match self
                    .read_membership(namespace, experiment, &join.member)
                    .await?
                {
                    Some(value) => Ok(JoinAnswer::new(Joined::Held(value.clone()), value)),
                    // Deleted since: nothing is held any more.
                    None => Ok(JoinAnswer::new(Joined::NotParticipating, "")),
                }
            }
            None => Err(StoreError::corrupt("a join left unanswered")),
        }
    }

    /// An event and its join, ready for the script.
    fn prepare(&self, event: Event, join: JoinArgs) -> Prepared {
        let key = event.dedupe_key();
        let mut digest = [0u8; 8];
        digest.copy_from_slice(&key[..8]);
        Prepared {
            base: self.experiment_base(&event.namespace, &event.experiment),
            event,
            digest,
            join,
        }
    }

    /// Counts prepared events: one outcome per event, in order.
    async fn count_prepared(&self, prepared: Vec<Prepared>) -> Result<Vec<Outcome>, StoreError> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; prepared.len()];

        // Experiments known here: counted in one round, creating nothing.
        // Their events leave every cap as it is, so they need not wait for
        // the new experiments' events before them.
        // In required mode tracking creates nothing: every event is
        // counted as if its experiment were known, and the script ignores
        // what is not registered.
        let required = self.inner.options.caps.registration == RegistrationMode::Required;
        let (known, new): (Vec<usize>, Vec<usize>) =
            (0..prepared.len()).partition(|&i| required || self.is_known(&prepared[i].base));
        let mut new: BTreeSet<usize> = new.into_iter().collect();
        let selected: Vec<(usize, u64)> = known.into_iter().map(|i| (i, 0)).collect();
        for (i, code, _) in self.count(&prepared, &selected).await? {
            match self.outcome(&prepared[i].event, code)? {
                Some(outcome) => outcomes[i] = Some(outcome),
                // Deleted by another instance since we last saw it.
                None => {
                    self.set_known(&prepared[i].base, false);
                    new.insert(i);
                }
            }
        }

        // What this call creates stays listed through its registration
        // (see `register.rs`): nothing to list afterwards.
        self.track_new(&prepared, new, &mut outcomes).await?;
        outcomes
            .into_iter()
            .map(|o| o.ok_or_else(|| StoreError::corrupt("event left unanswered")))
            .collect()
    }

    /// Counts the events (indices into `prepared`) of experiments that may
    /// not exist yet, in order, as the embedded store would: an experiment
    /// is registered under the caps where its first event is, and counted;
    /// if none of its events is counted there (a duplicate creates
    /// nothing), the registration is taken back, and its next event is
    /// registered again where it stands. Experiments are done one after
    /// the other (a cap decision depends on the ones before); new
    /// experiments are rare.
    async fn track_new(
        &self,
        prepared: &[Prepared],
        mut pending: BTreeSet<usize>,
        outcomes: &mut [Option<Outcome>],
    ) -> Result<(), StoreError> {
        let mut fenced = 0;
        while let Some(first) = pending.pop_first() {
            let p = &prepared[first];
            let later: Vec<usize> = pending
                .iter()
                .copied()
                .filter(|&i| prepared[i].base == p.base)
                .collect();
            for i in &later {
                pending.remove(i);
            }
            let caps = Some(&self.inner.options.caps);
            let (added, number) = match self
                .register(&p.event.namespace, &p.event.experiment, caps)
                .await?
            {
                Registration::Listed(number) => (false, number),
                Registration::Added(number) => (true, number),
                // Lists only grow during this walk (what it takes back it
                // added itself), so the cap refuses the later events too.
                Registration::Refused(cap) => {
                    for i in std::iter::once(first).chain(later) {
                        let ignored = TrackOutcome::Ignored(Ignored::Cap(cap.clone()));
                        outcomes[i] = Some(Outcome::Tracked(ignored));
                    }
                    continue;
                }
            };
            // This registration's cap check holds for the experiment's
            // events up to another experiment's pending event; the events
            // after that may not create it (the script answers "unknown",
            // and they wait for their turn again).
            let barrier = pending.first().copied().unwrap_or(usize::MAX);
            let selected: Vec<(usize, u64)> = std::iter::once(first)
                .chain(later)
                .map(|i| (i, if i < barrier { number } else { 0 }))
                .collect();
            let mut counted = false;
            let answers = match self.count(prepared, &selected).await {
                Ok(answers) => answers,
                // A registration whose count failed would hold a place
                // under the cap while listed nowhere: take it back (a
                // retry registers it again).
                Err(err) => {
                    if added {
                        let (namespace, experiment) = (&p.event.namespace, &p.event.experiment);
                        if let Err(undo) = self.unregister(namespace, experiment).await {
                            tracing::warn!(
                                cause = undo.chain(),
                                "cannot take back a registration whose count failed"
                            );
                        }
                    }
                    return Err(err);
                }
            };
            for (i, code, _) in answers {
                match self.outcome(&prepared[i].event, code)? {
                    Some(outcome) => {
                        counted |= outcome == Outcome::Tracked(TrackOutcome::Counted);
                        outcomes[i] = Some(outcome);
                    }
                    None => {
                        // With a number: a take-back fenced this
                        // registration (see `register.rs`); the next one
                        // gets a number above the fence, unless the
                        // namespace's sequence went back.
                        if i < barrier {
                            fenced += 1;
                            if fenced > MAX_FENCED {
                                return Err(StoreError::corrupt(format!(
                                    "experiment {:?} of namespace {:?} refused {MAX_FENCED} registrations (did the namespace's sequence go back?)",
                                    p.event.experiment, p.event.namespace
                                )));
                            }
                        }
                        pending.insert(i);
                    }
                }
            }
            let exists = counted
                || !added
                || self
                    .unregister(&p.event.namespace, &p.event.experiment)
                    .await?;
            self.set_known(&p.base, exists);
        }
        Ok(())
    }

    /// Counts events through the coalescer: `(index, number a creation is
    /// allowed with)` per event. Returns `(index, script code, created)`
    /// per event.
    async fn count(
        &self,
        prepared: &[Prepared],
        selected: &[(usize, u64)],
    ) -> Result<Vec<(usize, i64, bool)>, StoreError> {
        let mut groups: BTreeMap<&str, Vec<Job>> = BTreeMap::new();
        let mut receivers = Vec::with_capacity(selected.len());
        for &(i, creates_with) in selected {
            let p = &prepared[i];
            let (reply, receiver) = oneshot::channel();
            groups.entry(p.base.as_str()).or_default().push(Job {
                creates_with,
                is_goal: !p.event.is_participation(),
                event: p.event.event.clone(),
                variant: p.event.variant.clone(),
                digest: p.digest,
                value_limbs: p.event.value.map(script_limbs).unwrap_or_default(),
                segment: script_segment(&p.event.segment),
                join: p.join.clone(),
                reply,
            });
            receivers.push((i, receiver));
        }
        for (base, jobs) in groups {
            self.send(base, jobs);
        }
        let mut answers = Vec::with_capacity(receivers.len());
        for (i, receiver) in receivers {
            match receiver.await {
                Ok(Ok((code, created))) => answers.push((i, code, created)),
                Ok(Err(err)) => return Err(err),
                Err(_) => return Err(StoreError::corrupt("event left unanswered")),
            }
        }
        Ok(answers)
    }

    /// Hands jobs for one experiment to the coalescer; when no batch of
    /// that experiment is in flight, a task starts sending batches.
    fn send(&self, base: &str, jobs: Vec<Job>) {
        if let Some(batch) = self.inner.coalescer.push(base, jobs) {
            let store = self.clone();
            let base = base.to_owned();
            tokio::spawn(async move { store.drain(base, batch).await });
        }
    }

    /// Sends batches for one experiment until none waits. Never panics: a
    /// key left busy would stall its experiment.
    async fn drain(self, base: String, mut batch: Vec<Job>) {
        loop {
            // Let the requests that are ready to run add their events first:
            // under load this makes batches larger at the cost of one turn
            // of the scheduler.
            tokio::task::yield_now().await;
            self.inner.coalescer.top_up(&base, &mut batch);
            // A job whose request gave up (deadline passed) is not sent.
            batch.retain(|job| !job.reply.is_closed());
            if !batch.is_empty() {
                match self.within_deadline(self.run_batch(&base, &batch)).await {
                    Ok(answer) => {
                        for (job, code) in batch.drain(..).zip(answer.codes) {
                            let created = answer.created && code == 0;
                            let _ = job.reply.send(Ok((code, created)));
                        }
                    }
                    Err(err) => {
                        for job in batch.drain(..) {
                            let _ = job.reply.send(Err(err.clone()));
                        }
                    }
                }
            }
            match self.inner.coalescer.next(&base) {
                Some(next) => batch = next,
                None => return,
            }
        }
    }

    /// One call of the tracking script for a batch of one experiment. A
    /// NOSCRIPT (Redis restarted without persistence, or SCRIPT FLUSH) did
    /// nothing; the invocation then loads the script and calls again.
    async fn run_batch(&self, base: &str, batch: &[Job]) -> Result<BatchAnswer, StoreError> {
        let options = &self.inner.options;
        let mut invocation = invocation(&self.inner.scripts.track, base, &TRACK_KEYS);
        invocation
            .arg(options.uuid_expiry_seconds.saturating_mul(1000))
            .arg(options.caps.max_variants_per_experiment)
            .arg(options.caps.max_goals_per_experiment)
            .arg(options.daily_retention_days)
            .arg(script_now(&options.clock))
            .arg(u8::from(
                options.caps.registration == RegistrationMode::Required,
            ))
            .arg(Family::Day.prefix_of(base))
            .arg(Family::DedupeShard.prefix_of(base))
            .arg(FIRST_VERSION)
            .arg(MAX_VALUES_PER_DIMENSION);
        for job in batch {
            invocation
                .arg(job.creates_with)
                .arg(&job.event)
                .arg(&job.variant)
                .arg(u8::from(job.is_goal))
                .arg(&job.digest[..])
                .arg(&job.value_limbs)
                .arg(&job.join.member)
                .arg(&job.join.participant)
                .arg(&job.join.definition)
                .arg(&job.segment);
        }
        let mut conn = self.conn();
        let answer: Vec<i64> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        match answer.split_first() {
            Some((&created, codes)) if codes.len() == batch.len() => Ok(BatchAnswer {
                created: created == 1,
                codes: codes.to_vec(),
            }),
            _ => Err(StoreError::corrupt(format!(
                "unexpected script answer of {} values for {} events",
                answer.len(),
                batch.len()
            ))),
        }
    }

    /// Turns one script code into an outcome; `None` for "unknown here"
    /// (in open mode: register it first).
    fn outcome(&self, event: &Event, code: i64) -> Result<Option<Outcome>, StoreError> {
        let caps = &self.inner.options.caps;
        let ignored = |why| Ok(Some(Outcome::Tracked(TrackOutcome::Ignored(why))));
        match code {
            0 => Ok(Some(Outcome::Tracked(TrackOutcome::Counted))),
            1 => Ok(Some(Outcome::Tracked(TrackOutcome::Duplicate))),
            2 => ignored(Ignored::Cap(CapExceeded::Variants {
                experiment: event.experiment.clone(),
                variant: event.variant.clone(),
                limit: caps.max_variants_per_experiment,
            })),
            3 => ignored(Ignored::Cap(CapExceeded::Goals {
                experiment: event.experiment.clone(),
                goal: event.event.clone(),
                limit: caps.max_goals_per_experiment,
            })),
            4 if caps.registration == RegistrationMode::Required => ignored(Ignored::Unregistered),
            4 => Ok(None),
            5 => ignored(Ignored::Inactive(Status::Paused)),
            6 => ignored(Ignored::Inactive(Status::Stopped)),
            7 => ignored(Ignored::Inactive(Status::Archived)),
            8 => ignored(Ignored::Unregistered),
            9 => Ok(Some(Outcome::Held)),
            10 => Ok(Some(Outcome::NotParticipating)),
            other => Err(StoreError::corrupt(format!(
                "unexpected script answer code {other}"
            ))),
        }
    }
}

/// The script's "now" argument: a manual clock's time in Unix ms, or empty
/// for the system clock, which makes the script read Redis's `TIME` so
/// that every instance sharing one Redis agrees on the window.
/// A segment as `track.lua` reads it: `dimension \x1f value` pairs joined
/// by `\x1e` (names and values hold no control characters); empty without
/// one.
fn script_segment(segment: &Segment) -> String {
    segment
        .values()
        .map(|(dimension, value)| format!("{dimension}\x1f{value}"))
        .collect::<Vec<_>>()
        .join("\x1e")
}

/// A value's limbs as `track.lua` reads them: integers separated by
/// spaces.
fn script_limbs(value: Value) -> String {
    value.limbs().map(|limb| limb.to_string()).join(" ")
}

fn script_now(clock: &lamed_core::clock::Clock) -> String {
    clock
        .manual_ms()
        .map_or_else(String::new, |ms| ms.to_string())
}

#[cfg(test)]
impl RedisStore {
    /// Counts one event in one script call, creating its experiment only
    /// with a registration numbered `creates_with`, without registering:
    /// the script's code (4: refused, register first).
    pub(super) async fn count_with(&self, event: Event, creates_with: u64) -> i64 {
        let p = self.prepare(event, JoinArgs::default());
        let job = Job {
            creates_with,
            is_goal: !p.event.is_participation(),
            event: p.event.event.clone(),
            variant: p.event.variant.clone(),
            digest: p.digest,
            value_limbs: String::new(),
            segment: String::new(),
            join: JoinArgs::default(),
            reply: oneshot::channel().0,
        };
        let answer = self
            .run_batch(&p.base, &[job])
            .await
            .expect("a script call");
        answer.codes[0]
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::redis::keys::{Family, Key};
    use crate::redis::testing::RedisServer;
    use crate::redis::tests::{fresh, open};
    use crate::redis::RedisStore;
    use crate::reference::ReferenceStore;
    use crate::{Counter, Store, StoreError};
    use lamed_core::clock::Clock;
    use lamed_core::model::{CapExceeded, Caps, Event, TrackOutcome, PARTICIPATE};

    fn event(experiment: &str, uuid: &str) -> Event {
        Event {
            segment: Default::default(),
            namespace: "b".into(),
            experiment: experiment.into(),
            variant: "v".into(),
            event: PARTICIPATE.into(),
            uuid: uuid.into(),
            value: None,
        }
    }

    /// A batch spanning experiments (so hash slots) is counted with the
    /// right outcome per event, also after the scripts were flushed
    /// (NOSCRIPT: the script is sent again).
    #[tokio::test]
    async fn batches_survive_script_flush() {
        let (server, store) = fresh(86_400, Caps::default(), Clock::System).await;
        let batch = vec![event("x", "1"), event("y", "1"), event("x", "1")];
        use TrackOutcome::*;
        assert_eq!(
            store.track(batch.clone()).await.unwrap(),
            vec![Counted, Counted, Duplicate]
        );
        assert!(server.cmd("SCRIPT FLUSH").starts_with("+OK"));
        let mut more = batch;
        more.push(event("x", "2"));
        assert_eq!(
            store.track(more).await.unwrap(),
            vec![Duplicate, Duplicate, Duplicate, Counted]
        );
    }

    /// A duplicate of a deleted experiment takes no place under the
    /// experiments cap, not even within its batch: the cap is checked where
    /// the experiment's first counted event stands, as in the reference
    /// store, which the batch is also run against.
    #[tokio::test]
    async fn duplicates_take_no_cap_place_within_a_batch() {
        let caps = Caps {
            max_experiments_per_namespace: 2,
            ..Caps::default()
        };
        let (_server, store) = fresh(86_400, caps, Clock::System).await;
        let reference = ReferenceStore::new(86_400, caps, Clock::System);
        for s in [&store as &dyn Store, &reference] {
            s.track(vec![event("gone", "1"), event("kept", "1")])
                .await
                .unwrap();
            assert!(s.delete_experiment("b", "gone").await.unwrap());
        }
        // "gone"/1 is a duplicate, so "new" fits beside "kept"; then "gone"
        // would be a third experiment, and a fourth event of "new" counts.
        let batch = vec![
            event("gone", "1"),
            event("new", "1"),
            event("gone", "2"),
            event("new", "2"),
        ];
        let expected = reference.track(batch.clone()).await.unwrap();
        use TrackOutcome::*;
        assert_eq!(
            expected,
            [
                Duplicate,
                Counted,
                Ignored(lamed_core::model::Ignored::Cap(CapExceeded::Experiments {
                    namespace: "b".into(),
                    experiment: "gone".into(),
                    limit: 2,
                })),
                Counted
            ]
        );
        assert_eq!(store.track(batch).await.unwrap(), expected);
        assert_eq!(store.experiments("b").await.unwrap(), ["kept", "new"]);
        // A duplicate followed by a new event of the same experiment, with
        // nothing between them: both in one script call, the second creates.
        assert!(store.delete_experiment("b", "new").await.unwrap());
        assert_eq!(
            store
                .track(vec![event("new", "1"), event("new", "3")])
                .await
                .unwrap(),
            [Duplicate, Counted]
        );
        assert_eq!(store.experiments("b").await.unwrap(), ["kept", "new"]);
    }

    /// With a manual clock, the script takes "now" from the clock, not from
    /// Redis: the window follows the clock's steps (no sleeping), even for
    /// a clock set years in the past, and the events land on the clock's
    /// day, which the daily counters keep (not expired at once).
    #[tokio::test]
    async fn a_manual_clock_drives_window_and_days() {
        // 2001-09-09T01:46:40Z: day 11574, at the start of a window bucket.
        let clock = Clock::manual(1_000_000_000_000);
        let (_server, store) = fresh(2, Caps::default(), clock.clone()).await;
        use TrackOutcome::*;
        assert_eq!(store.track(vec![event("x", "1")]).await.unwrap(), [Counted]);
        clock.advance(Duration::from_millis(1_900));
        assert_eq!(
            store.track(vec![event("x", "1")]).await.unwrap(),
            [Duplicate],
            "1.9 s later, inside the 2 s window"
        );
        clock.advance(Duration::from_millis(200));
        assert_eq!(
            store.track(vec![event("x", "1")]).await.unwrap(),
            [Counted],
            "2.1 s after the first sighting, outside the window"
        );
        clock.advance(Duration::from_secs(86_400));
        assert_eq!(store.track(vec![event("x", "2")]).await.unwrap(), [Counted]);
        let days: Vec<(i64, u64)> = store
            .daily_counters("b", "x")
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.day, d.count))
            .collect();
        assert_eq!(days, [(11_574, 2), (11_575, 1)]);
    }

    /// The dedupe window stays exact across bucket boundaries and shard
    /// splits: over three seconds with a one-second window, every 100 ms a
    /// round sends 200 new uuids (counted), re-sends those of 5 rounds ago
    /// (0.5 s old: duplicates) and those of 15 rounds ago (1.5 s old:
    /// counted again). Afterwards every dedupe hash is still in the compact
    /// listpack encoding and expires (Redis's own clock: a system clock).
    #[tokio::test]
    async fn window_is_exact_across_buckets_and_splits() {
        let (_server, store) = fresh(1, Caps::default(), Clock::System).await;
        let round_uuids = |round: usize| {
            (0..200)
                .map(move |i| format!("{round}-{i}"))
                .collect::<Vec<_>>()
        };
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        for round in 0..30 {
            ticker.tick().await;
            let mut events = Vec::new();
            let mut expected = Vec::new();
            let mut add = |uuids: Vec<String>, outcome: TrackOutcome| {
                for uuid in uuids {
                    events.push(Event {
                        segment: Default::default(),
                        namespace: "w".into(),
                        experiment: "e".into(),
                        variant: "v".into(),
                        event: PARTICIPATE.into(),
                        value: None,
                        uuid,
                    });
                    expected.push(outcome.clone());
                }
            };
            add(round_uuids(round), TrackOutcome::Counted);
            if round >= 5 {
                add(round_uuids(round - 5), TrackOutcome::Duplicate);
            }
            if round >= 15 {
                add(round_uuids(round - 15), TrackOutcome::Counted);
            }
            assert_eq!(
                store.track(events).await.unwrap(),
                expected,
                "round {round}"
            );
        }
        let mut conn = store.conn();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(Family::DedupeShard.pattern(store.prefix()))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(keys.len() > 50, "splits made many shards: {}", keys.len());
        for key in keys {
            // Read together, atomically: the oldest bucket may expire
            // between KEYS and now, which is the expiry at work.
            let (encoding, ttl): (Option<String>, i64) = redis::pipe()
                .atomic()
                .cmd("OBJECT")
                .arg("ENCODING")
                .arg(&key)
                .cmd("PTTL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let Some(encoding) = encoding else { continue };
            assert_eq!(encoding, "listpack", "{key}");
            assert!(ttl > 0 && ttl <= 3_000, "{key} expires in {ttl} ms");
        }
    }

    /// The dedupe memory costs at most half of Lamed's one key per event:
    /// INFO used_memory grows by less than half as much for the same
    /// 20,000 unique events (Lamed: a 40-hex key with a TTL each).
    #[tokio::test]
    async fn dedupe_memory_is_under_half_of_lamed() {
        let (server, store) = fresh(86_400, Caps::default(), Clock::System).await;
        let used = || -> i64 {
            let info = server.cmd("INFO memory");
            info.lines()
                .find_map(|l| l.strip_prefix("used_memory:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("used_memory in INFO")
        };
        let n = 20_000;
        let before = used();
        let mut conn = store.conn();
        for chunk in (0..n).collect::<Vec<u32>>().chunks(1000) {
            let mut pipe = redis::pipe();
            for i in chunk {
                let key: String = blake3::hash(&i.to_le_bytes()).as_bytes()[..20]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                pipe.cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("EX")
                    .arg(86_400)
                    .ignore();
            }
            pipe.exec_async(&mut conn).await.unwrap();
        }
        let lamed = used() - before;
        let before = used();
        for chunk in (0..n).collect::<Vec<u32>>().chunks(500) {
            let events = chunk
                .iter()
                .map(|i| Event {
                    segment: Default::default(),
                    namespace: "m".into(),
                    experiment: "e".into(),
                    variant: format!("v{}", i % 3),
                    value: None,
                    event: PARTICIPATE.into(),
                    uuid: format!("{i:08x}-uuid"),
                })
                .collect();
            store.track(events).await.unwrap();
        }
        let ours = used() - before;
        let ratio = ours as f64 / lamed as f64;
        eprintln!(
            "bytes per event: lamed {:.1}, ours {:.1}, ratio {ratio:.3}",
            lamed as f64 / n as f64,
            ours as f64 / n as f64
        );
        assert!(ratio <= 0.5, "ratio {ratio}");
    }

    /// Counters of namespace "b" as `(experiment, event, variant, count)`.
    async fn counts(store: &RedisStore) -> Vec<(String, String, String, u64)> {
        let mut counts: Vec<_> = store
            .counters("b")
            .await
            .unwrap()
            .into_iter()
            .map(|c: Counter| (c.experiment, c.event, c.variant, c.count))
            .collect();
        counts.sort();
        counts
    }

    /// `n` events of experiment `experiment`, each its own variant and uuid
    /// (so each its own counter).
    fn distinct_counters(experiment: &str, n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| Event {
                segment: Default::default(),
                variant: format!("v{i}"),
                ..event(experiment, &format!("u{i}"))
            })
            .collect()
    }

    /// A batch touching 5,000 distinct counters (over Lua's `unpack`
    /// limit at four values per counter) is counted exactly, and a re-send
    /// counts nothing more. Through the store the batch leaves in calls of
    /// at most `MAX_BATCH` events; one direct script call of 3,000 counters
    /// checks the script alone copes too (its commands go in chunks).
    #[tokio::test]
    async fn thousands_of_counters_count_exactly_once() {
        let caps = Caps {
            max_variants_per_experiment: 5_000,
            ..Caps::default()
        };
        let (_server, store) = fresh(86_400, caps, Clock::System).await;
        let batch = distinct_counters("big", 5_000);
        use TrackOutcome::*;
        // On a loaded machine a call may pass the store's deadline: sent
        // again, as a client would, what the first call counted is now a
        // duplicate, and the counts below stay exact.
        let mut outcomes = store.track(batch.clone()).await;
        while outcomes.as_ref().is_err_and(StoreError::is_transient) {
            outcomes = store.track(batch.clone()).await;
        }
        assert!(outcomes
            .unwrap()
            .iter()
            .all(|o| *o == Counted || *o == Duplicate));
        let after_first = counts(&store).await;
        assert_eq!(after_first.len(), 5_000);
        assert!(after_first.iter().all(|c| c.3 == 1), "each counted once");
        assert!(store
            .track(batch)
            .await
            .unwrap()
            .iter()
            .all(|o| *o == Duplicate));
        assert_eq!(counts(&store).await, after_first, "a re-send adds nothing");

        let base = store.experiment_base("b", "huge");
        let jobs = || -> Vec<super::Job> {
            (0..3_000u32)
                .map(|i| {
                    let mut digest = [0u8; 8];
                    digest[..4].copy_from_slice(&i.to_be_bytes());
                    super::Job {
                        creates_with: 1,
                        is_goal: false,
                        event: PARTICIPATE.into(),
                        variant: format!("v{i}"),
                        digest,
                        value_limbs: String::new(),
                        segment: String::new(),
                        join: super::JoinArgs::default(),
                        reply: tokio::sync::oneshot::channel().0,
                    }
                })
                .collect()
        };
        let first = store.run_batch(&base, &jobs()).await.unwrap();
        assert!(first.created);
        assert!(first.codes.iter().all(|&c| c == 0), "all counted");
        let again = store.run_batch(&base, &jobs()).await.unwrap();
        assert!(again.codes.iter().all(|&c| c == 1), "all duplicates");
        let mut conn = store.conn();
        let slots: usize = redis::cmd("HLEN")
            .arg(Key::Slots.of(&base))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(slots, 3_000);
    }

    /// A call that fails midway changes nothing: with a key of the wrong
    /// type planted where the goals set of experiment "x" belongs, the
    /// third event (a new goal) fails the call; its first two events (new
    /// uuids) were not remembered, so once the key is gone the same batch
    /// counts all three.
    #[tokio::test]
    async fn a_failing_call_changes_nothing() {
        let (_server, store) = fresh(86_400, Caps::default(), Clock::System).await;
        use TrackOutcome::*;
        assert_eq!(store.track(vec![event("x", "0")]).await.unwrap(), [Counted]);
        let before = counts(&store).await;
        let goals = store.experiment_key("b", "x", Key::Goals);
        let mut conn = store.conn();
        let _: () = redis::cmd("SET")
            .arg(&goals)
            .arg("planted")
            .query_async(&mut conn)
            .await
            .unwrap();
        let batch = vec![
            event("x", "1"),
            event("x", "2"),
            Event {
                segment: Default::default(),
                event: "buy".into(),
                ..event("x", "3")
            },
        ];
        let err = store.track(batch.clone()).await.unwrap_err();
        assert!(err.chain().contains("WRONGTYPE"), "{}", err.chain());
        assert!(!err.is_transient(), "a planted key is no outage: {err:?}");
        assert_eq!(counts(&store).await, before, "nothing counted");
        let _: () = redis::cmd("DEL")
            .arg(&goals)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            store.track(batch).await.unwrap(),
            [Counted, Counted, Counted],
            "nothing of the failed call was remembered"
        );
    }

    /// Redis out of memory under `noeviction`: a call is refused whole (an
    /// error, so 503 over HTTP) and changes nothing. Once memory is freed,
    /// re-sending everything counts each event exactly once.
    #[tokio::test]
    async fn out_of_memory_changes_nothing() {
        let server = RedisServer::start_noeviction("4mb");
        let store = open(&server.url(), "lmd", 86_400, Caps::default(), Clock::System).await;
        use TrackOutcome::*;
        let old: Vec<Event> = (0..10).map(|i| event("x", &format!("old{i}"))).collect();
        assert!(store
            .track(old.clone())
            .await
            .unwrap()
            .iter()
            .all(|o| *o == Counted));
        let before = counts(&store).await;

        // One big unrelated key takes Redis over its maxmemory (a write is
        // refused only when memory is already over the limit): SETRANGE far
        // into a new string allocates 5 MB from a small request.
        let mut conn = store.conn();
        let _: i64 = redis::cmd("SETRANGE")
            .arg("filler")
            .arg(5 << 20)
            .arg("x")
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut batch: Vec<Event> = (0..20).map(|i| event("x", &format!("new{i}"))).collect();
        batch.extend(distinct_counters("x", 3));
        batch.push(event("y", "new"));
        batch.extend(old.iter().take(3).cloned());
        for _ in 0..3 {
            let err = store.track(batch.clone()).await.unwrap_err();
            assert!(err.chain().contains("OOM"), "{}", err.chain());
            assert!(err.is_transient(), "memory can be freed: {err:?}");
        }
        assert_eq!(counts(&store).await, before, "nothing counted");

        let _: () = redis::cmd("DEL")
            .arg("filler")
            .query_async(&mut conn)
            .await
            .unwrap();
        let outcomes = store.track(batch.clone()).await.unwrap();
        let expected: Vec<TrackOutcome> = (0..batch.len())
            .map(|i| if i < 24 { Counted } else { Duplicate })
            .collect();
        assert_eq!(outcomes, expected);
        assert_eq!(
            store.track(batch.clone()).await.unwrap(),
            vec![Duplicate; batch.len()]
        );
        let total = |counts: &[(String, String, String, u64)], experiment: &str| -> u64 {
            counts
                .iter()
                .filter(|c| c.0 == experiment)
                .map(|c| c.3)
                .sum()
        };
        let after = counts(&store).await;
        assert_eq!(total(&after, "x"), 10 + 20 + 3);
        assert_eq!(total(&after, "y"), 1);
    }
}
