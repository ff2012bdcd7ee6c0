//! The embedded store: SQLite in WAL mode behind one writer thread that
//! commits concurrent events together (group commit).
//!
//! Why one writer: SQLite allows one write transaction at a time, so many
//! writers would only queue on its lock. A single thread that drains every
//! waiting request into one transaction pays one commit for many events,
//! and keeps the in-memory catalog (used to enforce caps) consistent.

mod catalog;
mod seen;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

use super::{Store, StoreError};
use crate::clock::Clock;
use crate::model::{Caps, Counter, DailyCounter, Event, TrackOutcome};
use catalog::Catalog;
use seen::SeenIndex;

/// Most events the writer puts in one transaction; bounds commit latency.
const MAX_EVENTS_PER_COMMIT: usize = 8192;

/// How often the writer prunes expired dedupe rows (one bounded step).
const PRUNE_EVERY: Duration = Duration::from_millis(200);

/// Per-day counters older than this many days are deleted.
pub const DAILY_RETENTION_DAYS: i64 = 400;

/// How the embedded store is set up.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Directory holding `lamed.db` (created when missing).
    pub data_dir: PathBuf,
    /// Dedupe window in seconds; 0 keeps every uuid forever.
    pub uuid_expiry_seconds: u64,
    /// fsync every commit, so that a 200 also survives power loss.
    pub fsync: bool,
    /// Caps on what the public endpoint may create.
    pub caps: Caps,
    /// Where "now" comes from: the dedupe window and the day of a count.
    pub clock: Clock,
}

/// SQLite-backed [`Store`]; cheap to clone, clones share the writer.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Requests to the writer thread; `None` once closed.
    writer: Mutex<Option<mpsc::Sender<Command>>>,
    /// Joined on close so that the last commit has happened when it returns.
    writer_thread: Mutex<Option<thread::JoinHandle<()>>>,
    /// Read-only connection for queries; std Mutex: only used inside
    /// `spawn_blocking`, never held across `.await`.
    reader: Arc<Mutex<Connection>>,
}

/// Work for the writer thread, each with the channel its answer goes to.
enum Command {
    Track {
        events: Vec<Event>,
        reply: oneshot::Sender<Result<Vec<TrackOutcome>, StoreError>>,
    },
    Delete {
        namespace: String,
        experiment: String,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    Heartbeat {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Import {
        /// Carries the counter's names; its uuid is unused.
        counter: Event,
        count: u64,
        reply: oneshot::Sender<Result<Option<u64>, StoreError>>,
    },
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `options.data_dir`.
    ///
    /// # Errors
    ///
    /// When the directory or database cannot be created or opened.
    pub fn open(options: EmbeddedOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&options.data_dir).map_err(|err| {
            StoreError::unavailable(format!(
                "cannot create data directory {}: {err}",
                options.data_dir.display()
            ))
        })?;
        let path = options.data_dir.join("lamed.db");
        let conn = open_writer_connection(&path, options.fsync)?;
        let catalog = Catalog::load(&conn)?;
        let window_ms = options.uuid_expiry_seconds.saturating_mul(1000);
        let seen = SeenIndex::load(&conn, cutoff(options.clock.now_ms(), window_ms))?;
        tracing::debug!(remembered = seen.len(), "dedupe memory loaded");
        let reader = open_reader_connection(&path)?;

        let (sender, receiver) = mpsc::channel();
        let writer = Writer {
            conn,
            catalog,
            caps: options.caps,
            seen,
            window_ms,
            clock: options.clock,
            last_prune: Instant::now(),
            last_daily_prune: None,
        };
        let writer_thread = thread::Builder::new()
            .name("lamed-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|err| StoreError::unavailable(format!("cannot start writer: {err}")))?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                writer: Mutex::new(Some(sender)),
                writer_thread: Mutex::new(Some(writer_thread)),
                reader: Arc::new(Mutex::new(reader)),
            }),
        })
    }

    /// Opens an existing store for reading only (reports), alongside a
    /// server that may be writing to it; writes answer [`StoreError::Closed`].
    ///
    /// # Errors
    ///
    /// When there is no store in `data_dir` or it cannot be opened.
    pub fn open_read_only(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("lamed.db");
        if !path.is_file() {
            return Err(StoreError::unavailable(format!(
                "no store at {} (has lamed serve run with this data directory?)",
                path.display()
            )));
        }
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                writer: Mutex::new(None),
                writer_thread: Mutex::new(None),
                reader: Arc::new(Mutex::new(open_reader_connection(&path)?)),
            }),
        })
    }

    /// Sends a command to the writer and waits for its answer.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        {
            let writer = self.inner.writer.lock().expect("writer lock poisoned");
            let sender = writer.as_ref().ok_or(StoreError::Closed)?;
            sender.send(make(reply)).map_err(|_| StoreError::Closed)?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a read query on the reader connection off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = Arc::clone(&self.inner.reader);
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().expect("reader lock poisoned");
            query(&conn).map_err(StoreError::from)
        })
        .await
        .map_err(|err| StoreError::unavailable(format!("read task failed: {err}")))?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn track(&self, events: Vec<Event>) -> Result<Vec<TrackOutcome>, StoreError> {
        self.ask(|reply| Command::Track { events, reply }).await
    }

    async fn counters(&self, namespace: &str) -> Result<Vec<Counter>, StoreError> {
        let namespace = namespace.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT experiment, event, variant, SUM(count) FROM (
                     SELECT experiment, event, variant, count FROM counters WHERE namespace = ?1
                     UNION ALL
                     SELECT experiment, event, variant, count FROM daily WHERE namespace = ?1
                     UNION ALL
                     SELECT experiment, event, variant, count FROM imported WHERE namespace = ?1)
                 GROUP BY experiment, event, variant ORDER BY experiment, event, variant",
            )?;
            let rows = stmt.query_map([namespace], |row| {
                Ok(Counter {
                    experiment: row.get(0)?,
                    event: row.get(1)?,
                    variant: row.get(2)?,
                    count: row.get::<_, i64>(3)? as u64,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn daily_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<DailyCounter>, StoreError> {
        let (namespace, experiment) = (namespace.to_owned(), experiment.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT event, variant, day, count FROM daily
                 WHERE namespace = ?1 AND experiment = ?2 ORDER BY day, event, variant",
            )?;
            let rows = stmt.query_map([namespace, experiment], |row| {
                Ok(DailyCounter {
                    event: row.get(0)?,
                    variant: row.get(1)?,
                    day: row.get(2)?,
                    count: row.get::<_, i64>(3)? as u64,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn experiments(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        let namespace = namespace.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT experiment FROM counters WHERE namespace = ?1
                 UNION SELECT experiment FROM daily WHERE namespace = ?1
                 UNION SELECT experiment FROM imported WHERE namespace = ?1 ORDER BY experiment",
            )?;
            let rows = stmt.query_map([namespace], |row| row.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn delete_experiment(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<bool, StoreError> {
        let (namespace, experiment) = (namespace.to_owned(), experiment.to_owned());
        self.ask(|reply| Command::Delete {
            namespace,
            experiment,
            reply,
        })
        .await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.ask(|reply| Command::Heartbeat { reply }).await
    }

    async fn import_counter(
        &self,
        namespace: &str,
        experiment: &str,
        event: &str,
        variant: &str,
        count: u64,
    ) -> Result<Option<u64>, StoreError> {
        let counter = Event {
            namespace: namespace.to_owned(),
            experiment: experiment.to_owned(),
            event: event.to_owned(),
            variant: variant.to_owned(),
            uuid: String::new(),
        };
        self.ask(|reply| Command::Import {
            counter,
            count,
            reply,
        })
        .await
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Dropping the only sender ends the writer loop after it has
        // committed everything already queued.
        let sender = self
            .inner
            .writer
            .lock()
            .expect("writer lock poisoned")
            .take();
        drop(sender);
        let handle = self
            .inner
            .writer_thread
            .lock()
            .expect("writer thread lock poisoned")
            .take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|err| StoreError::unavailable(format!("close failed: {err}")))?
                .map_err(|_| StoreError::unavailable("writer thread panicked"))?;
        }
        Ok(())
    }
}

fn open_reader_connection(path: &Path) -> Result<Connection, StoreError> {
    let reader = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| {
        StoreError::unavailable(format!("cannot open database {}: {err}", path.display()))
    })?;
    reader.busy_timeout(Duration::from_secs(5))?;
    Ok(reader)
}

fn open_writer_connection(path: &Path, fsync: bool) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|err| {
        StoreError::unavailable(format!("cannot open database {}: {err}", path.display()))
    })?;
    // Only this writer writes, so waiting on a lock means something outside
    // lamed holds the database: fail within a second (503, the client
    // retries) rather than hold every request.
    conn.busy_timeout(Duration::from_secs(1))?;
    // WAL: a commit is one append to the log, and readers never block the
    // writer. NORMAL syncs only at checkpoints: a commit survives a crash
    // of this process (the OS has the bytes) but not a power loss; FULL
    // fsyncs the log on every commit.
    // Small pages: each commit appends a few hundred bytes to the dedupe
    // log and bumps a few counters, and the WAL writes whole pages, so
    // 1 KiB pages write a quarter of the bytes of the default 4 KiB.
    // (Only takes effect when the database is created.)
    conn.pragma_update(None, "page_size", 1024)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", if fsync { "FULL" } else { "NORMAL" })?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    // Checkpoint every 16 MiB of log rather than every 1,000 pages: the hot
    // pages (counters, the log's tail) are rewritten in every commit, and a
    // checkpoint copies each only once however often it changed.
    conn.pragma_update(None, "wal_autocheckpoint", 16 * 1024)?;
    conn.execute_batch(SCHEMA)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Tables: `daily` holds one row per (namespace, experiment, event, variant,
/// UTC day): what tracking writes, and what trend charts read; `counters`
/// the totals of days older than the retention, folded out of `daily`
/// (a counter's total is its `counters` row plus its days plus its
/// `imported` base); `seen` is the
/// append-only log of remembered events (see [`seen`]): a 16-byte hash of
/// the event's identity and the millisecond it was first seen; `imported`
/// the base each counter was given by `lamed import` (reads add it to
/// `counters`, so re-importing replaces it instead of adding twice).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS counters (
    namespace TEXT NOT NULL, experiment TEXT NOT NULL, event TEXT NOT NULL,
    variant TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (namespace, experiment, event, variant)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS daily (
    namespace TEXT NOT NULL, experiment TEXT NOT NULL, event TEXT NOT NULL,
    variant TEXT NOT NULL, day INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (namespace, experiment, event, variant, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen (
    id INTEGER PRIMARY KEY, key BLOB NOT NULL, first_seen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS imported (
    namespace TEXT NOT NULL, experiment TEXT NOT NULL, event TEXT NOT NULL,
    variant TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (namespace, experiment, event, variant)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
";

/// The writer thread's state: the only connection that writes.
struct Writer {
    conn: Connection,
    catalog: Catalog,
    caps: Caps,
    /// Which events were seen within the window.
    seen: SeenIndex,
    /// Dedupe window in milliseconds, 0 = forever.
    window_ms: u64,
    /// Where "now" comes from.
    clock: Clock,
    /// When expired rows were last pruned.
    last_prune: Instant,
    /// When old per-day rows were last pruned (hourly; None = never).
    last_daily_prune: Option<Instant>,
}

/// What a command asks the transaction to do.
enum Work {
    Track(Vec<Event>),
    Delete {
        namespace: String,
        experiment: String,
    },
    Heartbeat,
    Import {
        counter: Event,
        count: u64,
    },
}

/// What a piece of work produced, answered once the transaction committed.
enum Done {
    Track(Vec<TrackOutcome>),
    Delete(bool),
    Heartbeat,
    Import(Option<u64>),
}

/// Where a command's answer goes.
enum Responder {
    Track(oneshot::Sender<Result<Vec<TrackOutcome>, StoreError>>),
    Delete(oneshot::Sender<Result<bool, StoreError>>),
    Heartbeat(oneshot::Sender<Result<(), StoreError>>),
    Import(oneshot::Sender<Result<Option<u64>, StoreError>>),
}

impl Command {
    fn split(self) -> (Work, Responder) {
        match self {
            Command::Track { events, reply } => (Work::Track(events), Responder::Track(reply)),
            Command::Delete {
                namespace,
                experiment,
                reply,
            } => (
                Work::Delete {
                    namespace,
                    experiment,
                },
                Responder::Delete(reply),
            ),
            Command::Heartbeat { reply } => (Work::Heartbeat, Responder::Heartbeat(reply)),
            Command::Import {
                counter,
                count,
                reply,
            } => (Work::Import { counter, count }, Responder::Import(reply)),
        }
    }
}

impl Responder {
    /// Sends the committed result, or the error every command of a failed
    /// transaction gets. A dropped receiver means the client went away.
    fn send(self, result: Result<Done, &StoreError>) {
        let err = |err: &StoreError| err.clone();
        let _ = match (self, result) {
            (Responder::Track(tx), Ok(Done::Track(outcomes))) => {
                tx.send(Ok(outcomes)).map_err(drop)
            }
            (Responder::Delete(tx), Ok(Done::Delete(found))) => tx.send(Ok(found)).map_err(drop),
            (Responder::Heartbeat(tx), Ok(Done::Heartbeat)) => tx.send(Ok(())).map_err(drop),
            (Responder::Import(tx), Ok(Done::Import(previous))) => {
                tx.send(Ok(previous)).map_err(drop)
            }
            (Responder::Track(tx), Err(e)) => tx.send(Err(err(e))).map_err(drop),
            (Responder::Delete(tx), Err(e)) => tx.send(Err(err(e))).map_err(drop),
            (Responder::Heartbeat(tx), Err(e)) => tx.send(Err(err(e))).map_err(drop),
            (Responder::Import(tx), Err(e)) => tx.send(Err(err(e))).map_err(drop),
            // Work and responder come from the same command.
            _ => unreachable!("a command's result does not match its kind"),
        };
    }
}

impl Writer {
    fn run(mut self, receiver: mpsc::Receiver<Command>) {
        loop {
            let first = match receiver.recv_timeout(Duration::from_millis(250)) {
                Ok(command) => command,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.prune_if_due();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            let mut events: usize = batch_events(&batch);
            while events < MAX_EVENTS_PER_COMMIT {
                match receiver.try_recv() {
                    Ok(command) => {
                        events += batch_events(std::slice::from_ref(&command));
                        batch.push(command);
                    }
                    Err(_) => break,
                }
            }
            self.commit(batch);
            self.prune_if_due();
        }
        // Fold the log into the database file so a clean stop leaves one file.
        if let Err(err) = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
            tracing::warn!(cause = %err, "wal checkpoint on close failed");
        }
    }

    /// Applies a batch of commands in one transaction, then answers them:
    /// every one with its result after the commit, or every one with the
    /// error when anything failed (the transaction then rolled back).
    fn commit(&mut self, batch: Vec<Command>) {
        let (works, responders): (Vec<Work>, Vec<Responder>) =
            batch.into_iter().map(Command::split).unzip();
        match self.apply(works, self.clock.now_ms()) {
            Ok(done) => {
                self.seen.commit();
                for (responder, done) in responders.into_iter().zip(done) {
                    responder.send(Ok(done));
                }
            }
            Err(err) => {
                self.seen.rollback();
                tracing::error!(cause = %err, "store write failed; answering 503");
                for responder in responders {
                    responder.send(Err(&err));
                }
                // Rebuild what the rolled-back work may have added to the
                // catalog from what is really stored.
                match Catalog::load(&self.conn) {
                    Ok(catalog) => self.catalog = catalog,
                    Err(err) => tracing::error!(cause = %err, "catalog reload failed"),
                }
            }
        }
    }

    fn apply(&mut self, works: Vec<Work>, now_ms: i64) -> Result<Vec<Done>, StoreError> {
        let cutoff = cutoff(now_ms, self.window_ms);
        let day = now_ms.div_euclid(86_400_000);
        let tx = self.conn.transaction()?;
        let mut increments: HashMap<(String, String, String, String), i64> = HashMap::new();
        let mut done = Vec::with_capacity(works.len());
        for work in works {
            done.push(match work {
                Work::Track(events) => {
                    let mut outcomes = Vec::with_capacity(events.len());
                    for event in events {
                        if let Some(exceeded) = self.catalog.check(&event, &self.caps) {
                            outcomes.push(TrackOutcome::Rejected(exceeded));
                            continue;
                        }
                        if !self.seen.remember(event.dedupe_key(), now_ms, cutoff) {
                            outcomes.push(TrackOutcome::Duplicate);
                            continue;
                        }
                        self.catalog.insert(&event);
                        *increments
                            .entry((
                                event.namespace,
                                event.experiment,
                                event.event,
                                event.variant,
                            ))
                            .or_default() += 1;
                        outcomes.push(TrackOutcome::Counted);
                    }
                    Done::Track(outcomes)
                }
                Work::Delete {
                    namespace,
                    experiment,
                } => {
                    // Increments queued earlier in this batch belong to the
                    // experiment being deleted: drop them too.
                    increments
                        .retain(|(ns, exp, _, _), _| !(ns == &namespace && exp == &experiment));
                    let mut removed = 0;
                    for table in ["counters", "daily", "imported"] {
                        removed += tx.execute(
                            &format!(
                                "DELETE FROM {table} WHERE namespace = ?1 AND experiment = ?2"
                            ),
                            params![namespace, experiment],
                        )?;
                    }
                    self.catalog.remove_experiment(&namespace, &experiment);
                    Done::Delete(removed > 0)
                }
                Work::Heartbeat => {
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES ('heartbeat', ?1)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        [now_ms],
                    )?;
                    Done::Heartbeat
                }
                Work::Import { counter, count } => {
                    let previous: Option<i64> = tx
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
                    tx.execute(
                        "INSERT INTO imported (namespace, experiment, event, variant, count)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT DO UPDATE SET count = excluded.count",
                        params![
                            counter.namespace,
                            counter.experiment,
                            counter.event,
                            counter.variant,
                            i64::try_from(count).unwrap_or(i64::MAX)
                        ],
                    )?;
                    // Imports are an operator's act: caps do not apply, but
                    // the names now count towards them.
                    self.catalog.insert(&counter);
                    Done::Import(previous.map(|c| c as u64))
                }
            });
        }
        self.seen.write_pending(&tx)?;
        {
            // Only today's row changes: totals are the sum of the days (plus
            // what was folded out of the retention, plus imports), so each
            // commit touches one row per counter instead of two.
            let mut add_daily = tx.prepare_cached(
                "INSERT INTO daily (namespace, experiment, event, variant, day, count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT DO UPDATE SET count = count + excluded.count",
            )?;
            for ((namespace, experiment, event, variant), count) in &increments {
                add_daily.execute(params![namespace, experiment, event, variant, day, count])?;
            }
        }
        tx.commit()?;
        Ok(done)
    }

    /// Every [`PRUNE_EVERY`], deletes one bounded step of expired dedupe
    /// rows, and per-day rows past the retention.
    fn prune_if_due(&mut self) {
        if self.last_prune.elapsed() < PRUNE_EVERY {
            return;
        }
        self.last_prune = Instant::now();
        let now = self.clock.now_ms();
        if self.window_ms > 0 {
            match self.seen.prune(&self.conn, cutoff(now, self.window_ms)) {
                Ok(0) => {}
                Ok(pruned) => tracing::debug!(pruned, "pruned expired dedupe entries"),
                Err(err) => tracing::warn!(cause = %err, "pruning dedupe entries failed"),
            }
        }
        if self
            .last_daily_prune
            .is_some_and(|last| last.elapsed() < Duration::from_secs(3600))
        {
            return;
        }
        self.last_daily_prune = Some(Instant::now());
        let oldest_day = now.div_euclid(86_400_000) - DAILY_RETENTION_DAYS;
        if let Err(err) = fold_old_days(&mut self.conn, oldest_day) {
            tracing::warn!(cause = %err, "folding old daily counters failed");
        }
    }
}

/// Moves the days before `oldest_day` out of `daily` into the `counters`
/// totals, in one transaction, so totals stay and storage stays bounded.
fn fold_old_days(conn: &mut Connection, oldest_day: i64) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO counters (namespace, experiment, event, variant, count)
         SELECT namespace, experiment, event, variant, SUM(count) FROM daily
         WHERE day < ?1 GROUP BY namespace, experiment, event, variant
         ON CONFLICT DO UPDATE SET count = count + excluded.count",
        [oldest_day],
    )?;
    tx.execute("DELETE FROM daily WHERE day < ?1", [oldest_day])?;
    tx.commit()
}

/// Events first seen at or before the returned millisecond are outside
/// the window; with no window (0) nothing is.
fn cutoff(now_ms: i64, window_ms: u64) -> i64 {
    if window_ms == 0 {
        i64::MIN
    } else {
        now_ms - window_ms as i64
    }
}

fn batch_events(batch: &[Command]) -> usize {
    batch
        .iter()
        .map(|command| match command {
            Command::Track { events, .. } => events.len(),
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PARTICIPATE;
    use crate::store::conformance;

    fn open(dir: &Path, window: u64, caps: Caps) -> EmbeddedStore {
        open_with_clock(dir, window, caps, Clock::System)
    }

    fn open_with_clock(dir: &Path, window: u64, caps: Caps, clock: Clock) -> EmbeddedStore {
        EmbeddedStore::open(EmbeddedOptions {
            data_dir: dir.to_owned(),
            uuid_expiry_seconds: window,
            fsync: false,
            caps,
            clock,
        })
        .expect("open store")
    }

    async fn fresh(window: u64, caps: Caps, clock: Clock) -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open_with_clock(dir.path(), window, caps, clock);
        (dir, store)
    }

    conformance::conformance_tests!(fresh);

    /// Counts, remembered uuids and caps survive a reopen.
    #[tokio::test]
    async fn reopen_keeps_everything() {
        let dir = tempfile::tempdir().expect("temp dir");
        let e = Event {
            namespace: "n".into(),
            experiment: "e".into(),
            variant: "a".into(),
            event: PARTICIPATE.into(),
            uuid: "u".into(),
        };
        let store = open(
            dir.path(),
            86_400,
            Caps {
                max_variants_per_experiment: 1,
                ..Caps::default()
            },
        );
        store.track(vec![e.clone()]).await.unwrap();
        store.close().await.unwrap();
        let store = open(
            dir.path(),
            86_400,
            Caps {
                max_variants_per_experiment: 1,
                ..Caps::default()
            },
        );
        assert_eq!(
            store.track(vec![e.clone()]).await.unwrap(),
            vec![TrackOutcome::Duplicate]
        );
        let other = Event {
            variant: "b".into(),
            ..e
        };
        assert!(matches!(
            store.track(vec![other]).await.unwrap()[0],
            TrackOutcome::Rejected(_)
        ));
        assert_eq!(store.counters("n").await.unwrap()[0].count, 1);
    }

    /// Expired rows leave the log and the map; live ones and keys seen
    /// again after expiring stay; the map is rebuilt from the log on load.
    #[test]
    fn pruning_removes_only_expired_rows() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut conn = open_writer_connection(&dir.path().join("p.db"), false).unwrap();
        let mut seen = SeenIndex::default();
        let (old, now) = (1_000, 10_000);
        let tx = conn.transaction().unwrap();
        for i in 0..100u8 {
            assert!(seen.remember([i; 16], old, i64::MIN));
        }
        // Key 0 expired and was seen again: a second, live row.
        assert!(seen.remember([0; 16], now, old));
        assert!(!seen.remember([1; 16], now, old - 1));
        seen.write_pending(&tx).unwrap();
        tx.commit().unwrap();
        seen.commit();
        assert_eq!(seen.prune(&conn, old).unwrap(), 100);
        assert_eq!(seen.prune(&conn, old).unwrap(), 0);
        assert_eq!(seen.len(), 1);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM seen", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
        let reloaded = SeenIndex::load(&conn, old).unwrap();
        assert_eq!(reloaded.len(), 1);
    }

    /// Folding days past the retention into the totals keeps every count.
    #[tokio::test]
    async fn folding_old_days_keeps_totals() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path(), 86_400, Caps::default());
        let event = |uuid: &str| Event {
            namespace: "n".into(),
            experiment: "e".into(),
            variant: "a".into(),
            event: PARTICIPATE.into(),
            uuid: uuid.into(),
        };
        store.track(vec![event("1"), event("2")]).await.unwrap();
        store.close().await.unwrap();
        let mut conn = open_writer_connection(&dir.path().join("lamed.db"), false).unwrap();
        conn.execute(
            "INSERT INTO daily VALUES ('n', 'e', 'participate', 'a', 3, 5)",
            [],
        )
        .unwrap();
        fold_old_days(&mut conn, 4).unwrap();
        fold_old_days(&mut conn, 4).unwrap();
        let days: i64 = conn
            .query_row("SELECT count(*) FROM daily", [], |r| r.get(0))
            .unwrap();
        assert_eq!(days, 1, "only today is left");
        drop(conn);
        let store = open(dir.path(), 86_400, Caps::default());
        assert_eq!(store.counters("n").await.unwrap()[0].count, 7);
        assert_eq!(store.experiments("n").await.unwrap(), vec!["e"]);
        assert!(store.delete_experiment("n", "e").await.unwrap());
        assert!(store.counters("n").await.unwrap().is_empty());
    }

    /// A rolled-back transaction forgets what it remembered.
    #[test]
    fn rollback_forgets() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut conn = open_writer_connection(&dir.path().join("r.db"), false).unwrap();
        let mut seen = SeenIndex::default();
        let tx = conn.transaction().unwrap();
        assert!(seen.remember([7; 16], 5, i64::MIN));
        seen.write_pending(&tx).unwrap();
        drop(tx);
        seen.rollback();
        assert!(seen.remember([7; 16], 6, i64::MIN));
    }
}
