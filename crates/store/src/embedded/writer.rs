//! The writer thread: the only connection that writes, committing
//! concurrent commands together (group commit).
//!
//! It waits for a command, drains whatever else is already queued (up to
//! [`MAX_EVENTS_PER_COMMIT`] events) into the same transaction, commits
//! once, then answers every caller. When anything in the transaction
//! fails, it rolls back and every caller gets an error, and the in-memory
//! dedupe index and catalog are put back to what is really stored.
//!
//! A command whose caller stopped waiting (its request timed out) is
//! dropped unapplied: under overload the queue then sheds the work no one
//! waits for instead of doing it late. Its caller was not told it was
//! stored, and re-sends it; counting is idempotent.
//!
//! The writer ends when the store is closed (every sender dropped). Should
//! it die any other way (a panic), nothing could be counted any more, so it
//! ends the whole process with [`WRITER_DIED_EXIT_CODE`]: a supervisor
//! restarts Lamed instead of it answering 503 forever.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rusqlite::{params, Connection, Transaction};

use super::catalog::Catalog;
use super::command::{Answer, Command, NotApplied};
use super::durability::LogSyncer;
use super::memberships::Memberships;
use super::prune::Pruner;
use super::records::CommittedRecords;
use super::schema::day_of;
use super::seen::{cutoff, SeenIndex};
use crate::StoreError;
use lamed_core::clock::Clock;
use lamed_core::model::{Caps, Event};
use lamed_core::segments::Dimension;
use lamed_core::value::{add_limbs, LIMBS};

/// Most events the writer puts in one transaction; bounds commit latency.
const MAX_EVENTS_PER_COMMIT: usize = 8192;

/// How long the writer waits for more callers before committing, when the
/// last commit served several: under load, requests arrive a few
/// microseconds apart, and each commit costs SQLite the same fixed work
/// (locks, a log frame, the wal-index) however many events it holds, so a
/// wait much shorter than a request's own latency makes the groups, and
/// the cost per event, several times smaller. A lone caller never waits.
const GATHER: Duration = Duration::from_micros(100);

/// How long the writer waits for a command before pruning anyway.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// The process's exit code when the writer thread dies (`EX_SOFTWARE`,
/// an internal error, in `sysexits.h`).
pub(super) const WRITER_DIED_EXIT_CODE: i32 = 70;

/// The writer thread's state.
pub(super) struct Writer {
    /// The only connection that writes.
    pub(super) conn: Connection,
    /// The names that exist, to enforce the caps.
    pub(super) catalog: Catalog,
    /// Where reads find the records; changed only after a commit.
    pub(super) records: Arc<CommittedRecords>,
    /// Caps on what tracking may create.
    pub(super) caps: Caps,
    /// Which events were seen within the window.
    pub(super) seen: SeenIndex,
    /// Each experiment's members and the values they joined with.
    pub(super) memberships: Memberships,
    /// Dedupe window in milliseconds, 0 = forever.
    pub(super) window_ms: u64,
    /// Where "now" comes from.
    pub(super) clock: Clock,
    /// When dedupe rows and old days were last pruned.
    pub(super) pruner: Pruner,
    /// Where the store's handle reads how many uuids `seen` holds.
    pub(super) remembered: Arc<AtomicUsize>,
    /// Told of every commit, in [`super::Durability::Second`].
    pub(super) log_syncer: Option<LogSyncer>,
}

/// A write transaction as commands see it: the transaction itself, the
/// in-memory state it changes, and its "now".
pub(super) struct Batch<'conn> {
    /// The open transaction.
    pub(super) tx: Transaction<'conn>,
    /// The names that exist, including those this transaction added.
    pub(super) catalog: &'conn mut Catalog,
    /// Caps on what tracking may create.
    pub(super) caps: &'conn Caps,
    /// Which events were seen, including in this transaction.
    pub(super) seen: &'conn mut SeenIndex,
    /// The memberships, including this transaction's.
    pub(super) memberships: &'conn mut Memberships,
    /// The transaction's time, in Unix milliseconds.
    pub(super) now_ms: i64,
    /// Events first seen at or before this are outside the dedupe window.
    pub(super) cutoff: i64,
    /// Counted events per counter, written to today's rows on commit.
    counts: HashMap<CounterKey, i64>,
    /// The limbs of the counted events' values per counter, added to
    /// `value_sums` on commit.
    values: HashMap<CounterKey, [i64; LIMBS]>,
    /// Counted events and the limbs of their values per segment counter,
    /// by counter (a handful each, searched in order: no key built per
    /// event), added to `segments` on commit.
    segments: HashMap<CounterKey, Vec<SegmentCell>>,
}

/// One segment counter of a counter: its dimension and value, the events
/// counted and the limbs of their values.
type SegmentCell = (Dimension, String, i64, [i64; LIMBS]);

/// A counter's names: namespace, experiment, event, variant.
type CounterKey = (String, String, String, String);

/// A transaction that rolled back, and the callers it owes its error.
struct Failed {
    error: StoreError,
    /// The command whose work failed; `None` when the transaction itself
    /// failed (to begin or to commit).
    culprit: Option<Box<dyn Command>>,
    applied: Vec<Box<dyn Answer>>,
    unapplied: Vec<Box<dyn Command>>,
}

impl Failed {
    /// What the callers other than the culprit are answered. A permanent
    /// failure of one command is not theirs: their writes were rolled back
    /// only for sharing its transaction, and re-sent they are applied, so
    /// they get a transient error (503, not 500) that names the cause.
    fn error_for_others(&self) -> StoreError {
        if self.culprit.is_some() && !self.error.is_transient() {
            StoreError::caused_by(
                "rolled back with another write that failed",
                self.error.clone(),
            )
        } else {
            self.error.clone()
        }
    }
}

impl Writer {
    /// Runs the writer; ends the process when it panics (see the module
    /// documentation). The panic message was already logged by the hook.
    pub(super) fn run_or_end_process(self, receiver: mpsc::Receiver<Box<dyn Command>>) {
        // Unwind safety: nothing of the writer is used after a panic.
        if panic::catch_unwind(AssertUnwindSafe(|| self.run(receiver))).is_err() {
            tracing::error!(
                exit_code = WRITER_DIED_EXIT_CODE,
                "the store's writer thread died; exiting so that a supervisor restarts lamed"
            );
            std::process::exit(WRITER_DIED_EXIT_CODE);
        }
    }

    /// Runs until every sender is dropped, then checkpoints the log.
    fn run(mut self, receiver: mpsc::Receiver<Box<dyn Command>>) {
        let mut previous_group = 0;
        loop {
            let first = match receiver.recv_timeout(IDLE_WAIT) {
                Ok(command) => command,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.prune_if_due();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut commands = vec![first];
            let events = drain(&receiver, &mut commands);
            // Callers were concurrent last time: give the ones being
            // handled right now a moment to join this commit (see GATHER).
            if previous_group > 1
                && commands.len() < previous_group
                && events < MAX_EVENTS_PER_COMMIT
            {
                std::thread::sleep(GATHER);
                drain(&receiver, &mut commands);
            }
            previous_group = commands.len();
            self.commit(commands);
            self.prune_if_due();
        }
        // Fold the log into the database file so a clean stop leaves one file.
        if let Err(err) = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
            tracing::warn!(cause = %err, "wal checkpoint on close failed");
        }
    }

    fn prune_if_due(&mut self) {
        self.pruner
            .prune_if_due(&mut self.conn, &mut self.seen, self.window_ms, &self.clock);
        self.publish_remembered();
    }

    /// Tells the store's handle how many uuids are remembered, which
    /// commits, rollbacks and prunes change.
    fn publish_remembered(&self) {
        self.remembered.store(self.seen.len(), Ordering::Relaxed);
    }

    /// Applies the commands in one transaction, then answers them: every
    /// one with its result after the commit, or every one with an error
    /// when anything failed (the transaction then rolled back). Commands
    /// whose callers stopped waiting are dropped first.
    fn commit(&mut self, mut commands: Vec<Box<dyn Command>>) {
        let queued = commands.len();
        commands.retain(|command| !command.caller_gone());
        let skipped = queued - commands.len();
        if skipped > 0 {
            tracing::debug!(skipped, "dropped writes whose callers stopped waiting");
        }
        if commands.is_empty() {
            return;
        }
        match self.apply(commands) {
            Ok(applied) => {
                if let Some(syncer) = &self.log_syncer {
                    syncer.committed();
                }
                self.seen.commit();
                self.memberships.commit();
                self.publish_remembered();
                self.catalog.publish(&self.records);
                for answer in applied {
                    answer.send();
                }
            }
            Err(failed) => {
                self.seen.rollback();
                self.memberships.rollback();
                self.publish_remembered();
                tracing::error!(
                    cause = failed.error.chain(),
                    "store write failed; rolled back"
                );
                let others = failed.error_for_others();
                if let Some(culprit) = failed.culprit {
                    culprit.fail(&failed.error);
                }
                for answer in failed.applied {
                    answer.fail(&others);
                }
                for command in failed.unapplied {
                    command.fail(&others);
                }
                // Rebuild what the rolled-back work may have added to the
                // catalog from what is really stored.
                match Catalog::load(&self.conn) {
                    Ok(catalog) => {
                        self.catalog = catalog;
                        // The same records as published: nothing changes.
                        self.catalog.publish(&self.records);
                    }
                    Err(err) => tracing::error!(cause = %err, "catalog reload failed"),
                }
            }
        }
    }

    /// Applies the commands in order in one transaction and commits it;
    /// stops at the first failure (dropping the transaction rolls it back).
    fn apply(&mut self, commands: Vec<Box<dyn Command>>) -> Result<Vec<Box<dyn Answer>>, Failed> {
        let now_ms = self.clock.now_ms();
        let mut applied = Vec::with_capacity(commands.len());
        let mut commands = commands.into_iter();
        let tx = match self.conn.transaction() {
            Ok(tx) => tx,
            Err(err) => {
                return Err(Failed {
                    error: err.into(),
                    culprit: None,
                    applied,
                    unapplied: commands.collect(),
                })
            }
        };
        let mut batch = Batch {
            tx,
            catalog: &mut self.catalog,
            caps: &self.caps,
            seen: &mut self.seen,
            memberships: &mut self.memberships,
            now_ms,
            cutoff: cutoff(now_ms, self.window_ms),
            counts: HashMap::new(),
            values: HashMap::new(),
            segments: HashMap::new(),
        };
        while let Some(command) = commands.next() {
            match command.apply(&mut batch) {
                Ok(answer) => applied.push(answer),
                Err(NotApplied { error, command }) => {
                    return Err(Failed {
                        error,
                        culprit: Some(command),
                        applied,
                        unapplied: commands.collect(),
                    })
                }
            }
        }
        match batch.commit() {
            Ok(()) => Ok(applied),
            Err(error) => Err(Failed {
                error,
                culprit: None,
                applied,
                unapplied: Vec::new(),
            }),
        }
    }
}

/// Moves what is queued into `commands`, up to the events one commit
/// takes; returns the events they hold.
fn drain(
    receiver: &mpsc::Receiver<Box<dyn Command>>,
    commands: &mut Vec<Box<dyn Command>>,
) -> usize {
    let mut events: usize = commands.iter().map(|c| c.weight()).sum();
    while events < MAX_EVENTS_PER_COMMIT {
        match receiver.try_recv() {
            Ok(command) => {
                events += command.weight();
                commands.push(command);
            }
            Err(_) => break,
        }
    }
    events
}

impl Batch<'_> {
    /// Adds one to today's row of the event's counter, and its value to
    /// the counter's sums.
    pub(super) fn count(&mut self, event: Event) {
        let segment = self.catalog.segment_values(&event);
        let key = (
            event.namespace,
            event.experiment,
            event.event,
            event.variant,
        );
        if !segment.is_empty() {
            if !self.segments.contains_key(&key) {
                self.segments.insert(key.clone(), Vec::new());
            }
            let cells = self.segments.get_mut(&key).expect("inserted above");
            for (dimension, value) in segment {
                let at = match cells.iter().position(|c| c.0 == dimension && c.1 == value) {
                    Some(at) => at,
                    None => {
                        cells.push((dimension, value, 0, [0; LIMBS]));
                        cells.len() - 1
                    }
                };
                let cell = &mut cells[at];
                cell.2 += 1;
                if let Some(value) = event.value {
                    add_limbs(&mut cell.3, value);
                }
            }
        }
        if let Some(value) = event.value {
            add_limbs(self.values.entry(key.clone()).or_default(), value);
        }
        *self.counts.entry(key).or_default() += 1;
    }

    /// Drops the counts of one experiment queued in this transaction.
    pub(super) fn forget_counts(&mut self, namespace: &str, experiment: &str) {
        let other = |(ns, exp, _, _): &CounterKey| !(ns == namespace && exp == experiment);
        self.counts.retain(|key, _| other(key));
        self.values.retain(|key, _| other(key));
        self.segments.retain(|key, _| other(key));
    }

    /// Writes what the commands left in memory (dedupe log rows, counts),
    /// then commits.
    fn commit(self) -> Result<(), StoreError> {
        self.seen.write_pending(&self.tx)?;
        self.memberships.write_pending(&self.tx)?;
        {
            // Only today's row changes: totals are the sum of the days (plus
            // what was folded out of the retention, plus imports), so each
            // commit touches one row per counter instead of two.
            let mut add_daily = self.tx.prepare_cached(
                "INSERT INTO daily (namespace, experiment, event, variant, day, count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT DO UPDATE SET count = count + excluded.count",
            )?;
            let day = day_of(self.now_ms);
            for ((namespace, experiment, event, variant), count) in &self.counts {
                add_daily.execute(params![namespace, experiment, event, variant, day, count])?;
            }
            let mut add_values = self.tx.prepare_cached(
                "INSERT INTO value_sums
                 (namespace, experiment, event, variant, n, s0, s1, q0, q1, q2)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT DO UPDATE SET n = n + excluded.n,
                 s0 = s0 + excluded.s0, s1 = s1 + excluded.s1,
                 q0 = q0 + excluded.q0, q1 = q1 + excluded.q1, q2 = q2 + excluded.q2",
            )?;
            for ((namespace, experiment, event, variant), [n, s0, s1, q0, q1, q2]) in &self.values {
                add_values.execute(params![
                    namespace, experiment, event, variant, n, s0, s1, q0, q1, q2
                ])?;
            }
        }
        if !self.segments.is_empty() {
            let mut add_segments = self.tx.prepare_cached(
                "INSERT INTO segments (namespace, experiment, dimension, value, event, variant,
                 count, n, s0, s1, q0, q1, q2)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT DO UPDATE SET count = count + excluded.count, n = n + excluded.n,
                 s0 = s0 + excluded.s0, s1 = s1 + excluded.s1,
                 q0 = q0 + excluded.q0, q1 = q1 + excluded.q1, q2 = q2 + excluded.q2",
            )?;
            let cells = self
                .segments
                .iter()
                .flat_map(|(key, cells)| cells.iter().map(move |cell| (key, cell)));
            for ((namespace, experiment, event, variant), (dimension, value, count, limbs)) in cells
            {
                let [n, s0, s1, q0, q1, q2] = limbs;
                add_segments.execute(params![
                    namespace,
                    experiment,
                    dimension.as_str(),
                    value,
                    event,
                    variant,
                    count,
                    n,
                    s0,
                    s1,
                    q0,
                    q1,
                    q2
                ])?;
            }
        }
        self.tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::command::Write;
    use super::Batch;
    use super::WRITER_DIED_EXIT_CODE;
    use crate::embedded::tests::open;
    use crate::{Store, StoreError};
    use lamed_core::model::{Caps, Event, TrackOutcome, PARTICIPATE};

    /// While something outside lamed holds the write lock, every command of
    /// the failed transactions gets the error, and what they remembered and
    /// named is forgotten: once the lock is gone, the same uuid counts and
    /// the rolled-back variant no longer fills the cap.
    #[tokio::test]
    async fn failed_transaction_answers_every_command_and_forgets() {
        let dir = tempfile::tempdir().expect("temp dir");
        let caps = Caps {
            max_variants_per_experiment: 1,
            ..Caps::default()
        };
        let store = open(dir.path(), 86_400, caps);
        let event = |experiment: &str, variant: &str| Event {
            segment: Default::default(),
            namespace: "n".into(),
            experiment: experiment.into(),
            variant: variant.into(),
            event: PARTICIPATE.into(),
            uuid: "u".into(),
            value: None,
        };
        let locker = rusqlite::Connection::open(dir.path().join("lamed.db")).unwrap();
        locker.execute_batch("BEGIN IMMEDIATE").unwrap();

        // Tracking is applied in memory, then the commit fails.
        assert!(matches!(
            store.track(vec![event("e", "a"), event("f", "a")]).await,
            Err(StoreError::Unavailable { .. })
        ));
        // The heartbeat fails first; the commands after it in the same
        // transaction are never applied, and get the same error.
        let (heartbeat, tracked, imported) = tokio::join!(
            store.check_writable(),
            store.track(vec![event("g", "a")]),
            store.import_counter("n", "h", PARTICIPATE, "a", 5),
        );
        for result in [heartbeat.err(), tracked.err(), imported.err()] {
            assert!(matches!(result, Some(StoreError::Unavailable { .. })));
        }

        locker.execute_batch("ROLLBACK").unwrap();
        assert_eq!(
            store
                .track(vec![event("e", "b"), event("f", "a")])
                .await
                .unwrap(),
            vec![TrackOutcome::Counted, TrackOutcome::Counted]
        );
        assert_eq!(store.experiments("n").await.unwrap(), vec!["e", "f"]);
        store.close().await.unwrap();
    }

    /// A write that holds the writer for a while, so that what is sent
    /// meanwhile queues and is applied together in the next transaction.
    struct Slow(Duration);

    impl Write for Slow {
        type Output = ();

        fn apply(&mut self, _batch: &mut Batch<'_>) -> Result<(), StoreError> {
            std::thread::sleep(self.0);
            Ok(())
        }
    }

    /// A write that finds the store inconsistent: a permanent failure.
    struct Inconsistent;

    impl Write for Inconsistent {
        type Output = ();

        fn apply(&mut self, _batch: &mut Batch<'_>) -> Result<(), StoreError> {
            Err(StoreError::corrupt("a planted inconsistency"))
        }
    }

    fn participation(experiment: &str, uuid: &str) -> Event {
        Event {
            segment: Default::default(),
            namespace: "n".into(),
            experiment: experiment.into(),
            variant: "a".into(),
            event: PARTICIPATE.into(),
            uuid: uuid.into(),
            value: None,
        }
    }

    /// Holds the writer in a [`Slow`] write of `for_ms` and returns once
    /// it has taken it; the task answers when the write is done.
    async fn hold_writer(
        store: &crate::EmbeddedStore,
        for_ms: u64,
    ) -> tokio::task::JoinHandle<Result<(), StoreError>> {
        let slow = tokio::spawn({
            let store = store.clone();
            async move { store.ask(Slow(Duration::from_millis(for_ms))).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        slow
    }

    /// A write whose caller stopped waiting before the writer reached it
    /// is dropped unapplied: of two events queued behind a slow write, the
    /// one whose caller timed out is neither counted nor remembered (sent
    /// again, it counts), the one whose caller waits is counted.
    #[tokio::test]
    async fn a_write_whose_caller_is_gone_is_skipped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path(), 86_400, Caps::default());
        let slow = hold_writer(&store, 300).await;
        let gone = tokio::time::timeout(
            Duration::from_millis(10),
            store.track(vec![participation("gone", "u")]),
        )
        .await;
        assert!(
            gone.is_err(),
            "the caller gave up while the writer was busy"
        );
        assert_eq!(
            store.track(vec![participation("kept", "u")]).await.unwrap(),
            vec![TrackOutcome::Counted]
        );
        slow.await.unwrap().unwrap();
        assert_eq!(store.experiments("n").await.unwrap(), vec!["kept"]);
        assert_eq!(
            store.track(vec![participation("gone", "u")]).await.unwrap(),
            vec![TrackOutcome::Counted],
            "the skipped event was not remembered"
        );
        store.close().await.unwrap();
    }

    /// A permanent failure is its own write's: the write that fails gets
    /// it, while an event applied before it in the same transaction, rolled
    /// back with it, gets a transient error (503: sent again, it counts).
    #[tokio::test]
    async fn a_permanent_failure_fails_only_its_own_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path(), 86_400, Caps::default());
        let slow = hold_writer(&store, 200).await;
        let (tracked, inconsistent) = tokio::join!(
            store.track(vec![participation("e", "u")]),
            store.ask(Inconsistent),
        );
        slow.await.unwrap().unwrap();
        let err = inconsistent.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        let err = tracked.unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        assert!(
            err.chain()
                .contains("rolled back with another write that failed"),
            "{}",
            err.chain()
        );
        assert_eq!(
            store.track(vec![participation("e", "u")]).await.unwrap(),
            vec![TrackOutcome::Counted]
        );
        store.close().await.unwrap();
    }

    /// A write that panics inside the writer: a real fault in the writer
    /// thread, sent the way every write is.
    struct Explode;

    impl Write for Explode {
        type Output = ();

        fn apply(&mut self, _batch: &mut Batch<'_>) -> Result<(), StoreError> {
            panic!("a write blew up in the writer");
        }
    }

    /// Set in the child process that [`dead_writer_ends_the_process`] runs.
    const CHILD: &str = "LAMED_TEST_WRITER_DIES";

    /// A writer that dies ends the process with its exit code, so that a
    /// supervisor restarts Lamed. The test runs itself in a child process
    /// (this test only, with [`CHILD`] set), which kills its writer.
    #[tokio::test]
    async fn dead_writer_ends_the_process() {
        if std::env::var_os(CHILD).is_some() {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = open(dir.path(), 86_400, Caps::default());
            assert!(store.ask(Explode).await.is_err());
            // The process ends from the writer thread; a normal end of this
            // test would exit 0 and fail the parent.
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        }
        let name = concat!(module_path!(), "::dead_writer_ends_the_process");
        let name = name.split_once("::").expect("crate name").1;
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .expect("run the child test");
        let stderr = String::from_utf8_lossy(&child.stderr);
        assert_eq!(child.status.code(), Some(WRITER_DIED_EXIT_CODE), "{stderr}");
        assert!(stderr.contains("a write blew up"), "{stderr}");
    }

    /// A normal close ends the writer without ending the process.
    #[tokio::test]
    async fn close_ends_the_writer_cleanly() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path(), 86_400, Caps::default());
        store.check_writable().await.unwrap();
        store.close().await.unwrap();
        assert!(matches!(
            store.check_writable().await,
            Err(StoreError::Closed)
        ));
    }
}
