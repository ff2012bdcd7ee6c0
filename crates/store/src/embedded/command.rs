//! What callers ask of the writer thread.
//!
//! Each kind of write is a type implementing [`Write`]: it carries its
//! input and does its work inside the writer's open transaction. A
//! [`Request`] pairs a write with the channel its caller waits on; applying
//! it leaves an [`Answer`] that keeps the result until the transaction has
//! ended, then answers: with the result when it committed, or with the
//! error every caller of a failed transaction gets.

use rusqlite::{params, OptionalExtension};
use tokio::sync::oneshot;

use super::memberships::DELETE_CHUNK_LOG_ROWS;
use super::writer::Batch;
use crate::{Join, JoinAnswer, Joined, Kept, Precondition, PutOutcome, StoreError};
use lamed_core::model::{Event, TrackOutcome};
use lamed_core::registry::{ExperimentRecord, FIRST_VERSION};

/// One kind of write the writer does for a caller.
pub(super) trait Write: Send + 'static {
    /// What the caller gets once the transaction has committed.
    type Output: Send + 'static;

    /// Events this write adds to a transaction, which takes a bounded
    /// number of them.
    fn weight(&self) -> usize {
        1
    }

    /// Does the work inside the writer's open transaction.
    fn apply(&mut self, batch: &mut Batch<'_>) -> Result<Self::Output, StoreError>;
}

/// A caller's write waiting in the writer's queue, whatever its kind.
pub(super) trait Command: Send {
    /// Events it adds to a transaction (see [`Write::weight`]).
    fn weight(&self) -> usize;

    /// True when its caller stopped waiting (timed out, or its request was
    /// dropped): no one would hear the answer, so it need not be applied.
    fn caller_gone(&self) -> bool;

    /// Does its work in the open transaction; on success it becomes the
    /// answer that waits for the commit, on failure it comes back unapplied
    /// with the error that fails the whole transaction.
    fn apply(self: Box<Self>, batch: &mut Batch<'_>) -> Result<Box<dyn Answer>, NotApplied>;

    /// Its transaction failed before it was applied: answers the error.
    fn fail(self: Box<Self>, error: &StoreError);
}

/// A write applied inside a transaction, holding its result until the
/// transaction has ended.
pub(super) trait Answer: Send {
    /// The transaction committed: answers the caller with the result.
    fn send(self: Box<Self>);

    /// The transaction rolled back: answers the caller with its error.
    fn fail(self: Box<Self>, error: &StoreError);
}

/// A command whose work failed, and the error that fails its transaction.
pub(super) struct NotApplied {
    /// Why the work failed.
    pub(super) error: StoreError,
    /// The command, still owed an answer.
    pub(super) command: Box<dyn Command>,
}

/// Where a caller waits for its answer.
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write and the channel its caller waits on.
pub(super) struct Request<W: Write> {
    write: W,
    reply: Reply<W::Output>,
}

impl<W: Write> Request<W> {
    /// A request for `write`, and the receiver its answer arrives on.
    pub(super) fn new(write: W) -> (Self, oneshot::Receiver<Result<W::Output, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        (Request { write, reply }, answer)
    }
}

impl<W: Write> Command for Request<W> {
    fn weight(&self) -> usize {
        self.write.weight()
    }

    fn caller_gone(&self) -> bool {
        self.reply.is_closed()
    }

    fn apply(mut self: Box<Self>, batch: &mut Batch<'_>) -> Result<Box<dyn Answer>, NotApplied> {
        match self.write.apply(batch) {
            Ok(result) => Ok(Box::new(Applied {
                result,
                reply: self.reply,
            })),
            Err(error) => Err(NotApplied {
                error,
                command: self,
            }),
        }
    }

    fn fail(self: Box<Self>, error: &StoreError) {
        answer(self.reply, Err(error.clone()));
    }
}

/// The result of an applied write, waiting for the commit.
struct Applied<T> {
    result: T,
    reply: Reply<T>,
}

impl<T: Send> Answer for Applied<T> {
    fn send(self: Box<Self>) {
        answer(self.reply, Ok(self.result));
    }

    fn fail(self: Box<Self>, error: &StoreError) {
        answer(self.reply, Err(error.clone()));
    }
}

/// Sends an answer; a dropped receiver means the caller went away, which
/// changes nothing about what was stored.
fn answer<T>(reply: Reply<T>, result: Result<T, StoreError>) {
    let _ = reply.send(result);
}

/// Counts events: each is counted, a duplicate within the dedupe window,
/// or ignored (by the registry or a cap).
pub(super) struct Track {
    /// Already validated events, answered in this order.
    pub(super) events: Vec<Event>,
}

impl Write for Track {
    type Output = Vec<TrackOutcome>;

    fn weight(&self) -> usize {
        self.events.len()
    }

    fn apply(&mut self, batch: &mut Batch<'_>) -> Result<Vec<TrackOutcome>, StoreError> {
        self.events
            .drain(..)
            .map(|event| track_one(batch, event))
            .collect()
    }
}

fn track_one(batch: &mut Batch<'_>, event: Event) -> Result<TrackOutcome, StoreError> {
    if let Some(ignored) = batch.catalog.check(&event, batch.caps) {
        return Ok(TrackOutcome::Ignored(ignored));
    }
    if !batch
        .seen
        .remember(event.dedupe_key(), batch.now_ms, batch.cutoff)
    {
        return Ok(TrackOutcome::Duplicate);
    }
    if batch.catalog.lacks_record(&event) {
        let mut record =
            ExperimentRecord::automatic(&event.namespace, &event.experiment, batch.now_ms);
        write_record(batch, &mut record)?;
    }
    batch.catalog.insert(&event);
    batch.count(event);
    Ok(TrackOutcome::Counted)
}

/// Gives an experiment's record the next version (the catalog knows the
/// current one), writes it and takes it into the catalog; answers the
/// version written.
fn write_record(batch: &mut Batch<'_>, record: &mut ExperimentRecord) -> Result<u64, StoreError> {
    record.version = batch
        .catalog
        .version(&record.namespace, &record.name)
        .map_or(FIRST_VERSION, |v| v + 1);
    let json = serde_json::to_string(record)
        .map_err(|err| StoreError::caused_by("cannot encode a record", err))?;
    batch.tx.execute(
        "INSERT INTO registry (namespace, experiment, record) VALUES (?1, ?2, ?3)
         ON CONFLICT DO UPDATE SET record = excluded.record",
        params![record.namespace, record.name, json],
    )?;
    batch.catalog.put_record(record);
    Ok(record.version)
}

/// Creates or replaces an experiment's registry record when its
/// precondition holds. The check and the write happen in the writer's
/// transaction, after every write queued before it, so no other write
/// comes between them.
pub(super) struct PutRecord {
    pub(super) record: ExperimentRecord,
    pub(super) precondition: Precondition,
}

impl Write for PutRecord {
    type Output = PutOutcome;

    fn apply(&mut self, batch: &mut Batch<'_>) -> Result<PutOutcome, StoreError> {
        let current = batch
            .catalog
            .version(&self.record.namespace, &self.record.name);
        if !self.precondition.holds(current) {
            return Ok(PutOutcome::Conflict { current });
        }
        Ok(PutOutcome::Written {
            version: write_record(batch, &mut self.record)?,
        })
    }
}

/// Removes an experiment's counters and record; answers whether it had
/// any.
pub(super) struct DeleteExperiment {
    pub(super) namespace: String,
    pub(super) experiment: String,
}

impl Write for DeleteExperiment {
    type Output = bool;

    fn apply(&mut self, batch: &mut Batch<'_>) -> Result<bool, StoreError> {
        let (namespace, experiment) = (&self.namespace, &self.experiment);
        // Counts queued earlier in this transaction belong to the
        // experiment being deleted: drop them too.
        batch.forget_counts(namespace, experiment);
        let mut removed = 0;
        for table in ["counters", "daily", "imported", "registry", "value_sums"] {
            removed += batch.tx.execute(
                &format!("DELETE FROM {table} WHERE namespace = ?1 AND experiment = ?2"),
                params![namespace, experiment],
            )?;
        }
        // Memberships and weights alone do not make an experiment exist.
        for table in ["member_log", "weights", "segments"] {
            batch.tx.execute(
                &format!("DELETE FROM {table} WHERE namespace = ?1 AND experiment = ?2"),
                params![namespace, experiment],
            )?;
        }
        batch.memberships.forget(namespace, experiment);
        batch.catalog.remove_experiment(namespace, experiment);
        Ok(removed > 0)
    }
}

/// Removes up to [`DELETE_CHUNK_LOG_ROWS`] of an experiment's membership
/// log rows, then up to [`super::DELETE_CHUNK_ROWS`] of its weights;
/// answers how many rows went. The memberships stay in memory until the
/// experiment's delete ([`DeleteExperiment`]) commits.
pub(super) struct DeleteKeptChunk {
    pub(super) namespace: String,
    pub(super) experiment: String,
}

impl Write for DeleteKeptChunk {
    type Output = usize;

    fn apply(&mut self, batch: &mut Batch<'_>) -> Result<usize, StoreError> {
        for (table, key, limit) in [
            ("member_log", "id", DELETE_CHUNK_LOG_ROWS),
            ("weights", "period", super::DELETE_CHUNK_ROWS),
        ] {
            let removed = batch.tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE namespace = ?1 AND experiment = ?2
                     AND {key} IN (SELECT {key} FROM {table}
                                   WHERE namespace = ?1 AND experiment = ?2 LIMIT ?3)"
                ),
                params![self.namespace, self.experiment, limit as i64],
            )?;
            if removed > 0 {
                return Ok(removed);
            }
        }
        Ok(0)
    }
}

/// Keeps a value under a key unless the experiment keeps one there;
/// answers the value held. Memberships and weights have a table each.
pub(super) struct PutOnce {
    pub(super) namespace: String,
    pub(super) experiment: String,
    pub(super) key: Kept,
    pub(super) value: String,
}

impl Write for PutOnce {
    type Output = String;

    fn apply(&mut self, batch: &mut Batch<'_>) -> Result<String, StoreError> {
        let (namespace, experiment) = (&self.namespace, &self.experiment);
        let period = match &self.key {
            Kept::Member(member) => {
                if let Some(held) = batch.memberships.held(namespace, experiment, member) {
                    return Ok(held);
                }
                batch
                    .memberships
                    .add(namespace, experiment, member, &self.value);
                return Ok(self.value.clone());
            }
            Kept::Weights(period) => *period,
        };
        let held: String = batch.tx.query_row(
            "INSERT INTO weights (namespace, experiment, period, weights)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO UPDATE SET weights = weights
             RETURNING weights",
            params![namespace, experiment, period, self.value],
            |row| row.get(0),
        )?;
        Ok(held)
    }
}

/// Writes or removes an alert-state document under a precondition
/// (see [`crate::Store::put_alert_state`]).
pub(super) struct PutAlertState {
    pub(super) key: String,
    pub(super) value: Option<String>,
    pub(super) precondition: Precondition,
}

impl Write for PutAlertState {
    type Output = PutOutcome;

    fn apply(&mut self, batch: &mut Batch<'_>) -> Result<PutOutcome, StoreError> {
        let current: Option<i64> = batch
            .tx
            .query_row(
                "SELECT version FROM alert_state WHERE key = ?1",
                [&self.key],
                |row| row.get(0),
            )
            .optional()?;
        let current = current.map(|v| v as u64);
        if !self.precondition.holds(current) {
            return Ok(PutOutcome::Conflict { current });
        }
        let Some(value) = &self.value else {
            batch
                .tx
                .execute("DELETE FROM alert_state WHERE key = ?1", [&self.key])?;
            return Ok(PutOutcome::Written { version: 0 });
        };
        let version = current.map_or(FIRST_VERSION, |v| v + 1);
        batch.tx.execute(
            "INSERT INTO alert_state (key, version, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET version = excluded.version, value = excluded.value",
            params![self.key, version as i64, value],
        )?;
        Ok(PutOutcome::Written { version })
    }
}

/// A member joining an experiment with the event that counts it, in the
/// writer's transaction (see [`crate::Store::count_join`]).
pub(super) struct CountJoin {
    pub(super) join: Option<Join>,
}

impl Write for CountJoin {
    type Output = JoinAnswer;

    fn apply(&mut self, batch: &mut Batch<'_>) -> Result<JoinAnswer, StoreError> {
        let Some(Join {
            mut event,
            member,
            participant,
            definition,
        }) = self.join.take()
        else {
            return Err(StoreError::corrupt("a join was applied twice"));
        };
        let held = |batch: &Batch<'_>, member: &str| {
            batch
                .memberships
                .held(&event.namespace, &event.experiment, member)
        };
        if let Some(value) = held(batch, &member) {
            return Ok(JoinAnswer::new(Joined::Held(value.clone()), value));
        }
        if let Some(participant) = &participant {
            match held(batch, participant) {
                Some(variant) if !variant.is_empty() => event.variant = variant,
                _ => return Ok(JoinAnswer::new(Joined::NotParticipating, "")),
            }
        }
        let (namespace, experiment, variant) = (
            event.namespace.clone(),
            event.experiment.clone(),
            event.variant.clone(),
        );
        let answer = |joined| Ok(JoinAnswer::new(joined, variant.clone()));
        match track_one(batch, event)? {
            TrackOutcome::Counted => {}
            TrackOutcome::Duplicate => return answer(Joined::Duplicate),
            TrackOutcome::Ignored(why) => return answer(Joined::Ignored(why)),
        }
        batch
            .memberships
            .add(&namespace, &experiment, &member, &variant);
        if let Some(mut definition) = definition {
            let automatic = batch
                .catalog
                .record(&namespace, &experiment)
                .is_none_or(|current| current.automatic);
            if automatic {
                write_record(batch, &mut definition)?;
            }
        }
        answer(Joined::Counted)
    }
}

/// Writes a heartbeat row: proves the database takes writes right now.
pub(super) struct Heartbeat;

impl Write for Heartbeat {
    type Output = ();

    fn apply(&mut self, batch: &mut Batch<'_>) -> Result<(), StoreError> {
        batch.tx.execute(
            "INSERT INTO meta (key, value) VALUES ('heartbeat', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [batch.now_ms],
        )?;
        Ok(())
    }
}

/// Sets one counter's imported base; answers the previous base.
pub(super) struct ImportCounter {
    /// Carries the counter's names; its uuid is unused.
    pub(super) counter: Event,
    pub(super) count: u64,
}

impl Write for ImportCounter {
    type Output = Option<u64>;

    fn apply(&mut self, batch: &mut Batch<'_>) -> Result<Option<u64>, StoreError> {
        let counter = &self.counter;
        let previous: Option<i64> = batch
            .tx
            .query_row(
                "SELECT count FROM imported WHERE namespace = ?1
                 AND experiment = ?2 AND event = ?3 AND variant = ?4",
                params![
                    counter.namespace,
                    counter.experiment,
                    counter.event,
                    counter.variant
                ],
                |row| row.get(0),
            )
            .optional()?;
        batch.tx.execute(
            "INSERT INTO imported (namespace, experiment, event, variant, count)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO UPDATE SET count = excluded.count",
            params![
                counter.namespace,
                counter.experiment,
                counter.event,
                counter.variant,
                i64::try_from(self.count).unwrap_or(i64::MAX)
            ],
        )?;
        // Imports are an operator's act: caps do not apply, but the names
        // now count towards them.
        batch.catalog.insert(counter);
        Ok(previous.map(|c| c as u64))
    }
}
