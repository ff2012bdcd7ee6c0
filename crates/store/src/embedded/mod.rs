//! The embedded store: SQLite in WAL mode behind one writer thread that
//! commits concurrent events together (group commit).
//!
//! Why one writer: SQLite allows one write transaction at a time, so many
//! writers would only queue on its lock. A single thread that drains every
//! waiting request into one transaction pays one commit for many events,
//! and keeps the in-memory catalog (used to enforce caps) consistent.
//!
//! Here: the handle and its [`Store`] impl. Beside it: [`schema`] (the
//! tables, opening connections), [`command`] (what callers ask the writer),
//! [`writer`] (the writer thread, group commit), [`prune`] (expiring dedupe
//! rows, folding old days), [`catalog`] (names, for the caps) and [`seen`]
//! (the dedupe memory); reads run on a few connections of their own
//! ([`readers`]).
//!
//! The queue to the writer is bounded ([`WRITER_QUEUE_COMMANDS`]): when the
//! writer falls behind (a slow or locked disk), callers get a
//! [`StoreError`] at once (503 + `Retry-After`, the client re-sends later)
//! instead of the queue growing without limit. A writer thread that dies
//! ends the process (see [`writer`]), so a supervisor restarts it.

mod backup;
mod catalog;
mod command;
mod dedupe_table;
mod durability;
mod memberships;
mod prune;
mod readers;
mod records;
mod schema;
mod seen;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};

use super::{Join, JoinAnswer, Kept, Precondition, PutOutcome, Store, StoreError, Versioned};
pub use backup::{backup, check_backup, is_in_use, restore, StoreSummary};
use catalog::{parse_record, Catalog};
use command::{
    Command, CountJoin, DeleteExperiment, DeleteKeptChunk, Heartbeat, ImportCounter, PutAlertState,
    PutOnce, PutRecord, Request, Track, Write,
};
pub use durability::Durability;
use durability::LogSyncer;
use lamed_core::clock::Clock;
use lamed_core::model::{Caps, Counter, DailyCounter, Event, TrackOutcome};
use lamed_core::registry::ExperimentRecord;
use lamed_core::segments::{sort_counters, SegmentCounter};
use lamed_core::value::{ValueTotals, LIMBS};
use memberships::{CommittedMembers, Memberships};
use prune::Pruner;
use readers::Readers;
use records::CommittedRecords;
use schema::{has_table, open_writer_connection};
use seen::{cutoff, SeenIndex};
use writer::Writer;

/// Most commands waiting for the writer. One command is one request (a
/// `POST /track` batch, a heartbeat...), so this holds a few seconds of a
/// busy server's writes; beyond it, requests are refused with a
/// [`StoreError`] rather than queued without limit.
pub const WRITER_QUEUE_COMMANDS: usize = 4096;

/// Most memberships or weights one write of a delete removes: about a
/// millisecond of the writer (1,000 rows of ~60 bytes, ~70 pages to log),
/// so a commit that carries a chunk keeps tracking waiting no longer.
const DELETE_CHUNK_ROWS: usize = 1_000;

/// How the embedded store is set up.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Directory holding `lamed.db` (created when missing).
    pub data_dir: PathBuf,
    /// Dedupe window in seconds; 0 keeps every uuid forever.
    pub uuid_expiry_seconds: u64,
    /// When the log is fsynced: what a power cut may cost.
    pub fsync: Durability,
    /// Caps on what the public endpoint may create.
    pub caps: Caps,
    /// Where "now" comes from: the dedupe window and the day of a count.
    pub clock: Clock,
}

/// The database file in the data directory.
const DB_FILE: &str = "lamed.db";

/// The data directory's lock file: one writer per data directory.
const LOCK_FILE: &str = "lamed.lock";

/// Another process (a running `lamed serve`, say) writes to the data
/// directory. Each writer keeps the registry and the caps in memory, so a
/// second one would act on records the first never sees.
#[derive(Debug, thiserror::Error)]
#[error("another lamed process is writing to data directory {}", .0.display())]
pub struct DataDirInUse(pub PathBuf);

impl DataDirInUse {
    /// True when `err` is this refusal.
    pub fn is_cause_of(err: &StoreError) -> bool {
        matches!(err, StoreError::Unavailable { source: Some(cause), .. } if cause.is::<DataDirInUse>())
    }
}

/// Takes the data directory's write lock (an advisory lock the OS drops
/// with the process, so a crash leaves nothing to clean up).
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| StoreError::caused_by(format!("cannot open {}", path.display()), err))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::caused_by(
            "cannot open the store",
            DataDirInUse(data_dir.to_owned()),
        )),
        Err(std::fs::TryLockError::Error(err)) => Err(StoreError::caused_by(
            format!("cannot lock {}", path.display()),
            err,
        )),
    }
}

/// SQLite-backed [`Store`]; cheap to clone, clones share the writer.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Requests to the writer thread (a bounded queue); `None` once closed.
    writer: Mutex<Option<mpsc::SyncSender<Box<dyn Command>>>>,
    /// Joined on close so that the last commit has happened when it returns.
    writer_thread: Mutex<Option<thread::JoinHandle<()>>>,
    /// Read-only connections for queries, used inside `spawn_blocking`.
    readers: Arc<Readers>,
    /// The records as committed, kept by the writer; `None` when
    /// read-only (another process writes, so records are read from disk).
    records: Option<Arc<CommittedRecords>>,
    /// How many uuids the dedupe memory holds, as the writer last saw it;
    /// `None` when read-only (no writer, no dedupe memory).
    remembered: Option<Arc<AtomicUsize>>,
    /// The memberships as committed, kept by the writer; `None` when
    /// read-only (they are read from the log on disk).
    members: Option<Arc<CommittedMembers>>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `options.data_dir`.
    ///
    /// # Errors
    ///
    /// When the directory or database cannot be created or opened.
    pub fn open(options: EmbeddedOptions) -> Result<Self, StoreError> {
        Self::open_with_queue(options, WRITER_QUEUE_COMMANDS)
    }

    /// [`EmbeddedStore::open`] with a writer queue of `queue_commands`.
    fn open_with_queue(
        options: EmbeddedOptions,
        queue_commands: usize,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&options.data_dir).map_err(|err| {
            StoreError::caused_by(
                format!(
                    "cannot create data directory {}",
                    options.data_dir.display()
                ),
                err,
            )
        })?;
        let lock = lock_data_dir(&options.data_dir)?;
        let path = options.data_dir.join(DB_FILE);
        let conn = open_writer_connection(&path, options.fsync)?;
        let log_syncer = match options.fsync {
            Durability::Second => Some(
                LogSyncer::start(&path)
                    .map_err(|err| StoreError::caused_by("cannot start the log's sync", err))?,
            ),
            Durability::Commit | Durability::None => None,
        };
        let mut catalog = Catalog::load(&conn)?;
        let records = Arc::new(CommittedRecords::default());
        catalog.publish(&records);
        let window_ms = options.uuid_expiry_seconds.saturating_mul(1000);
        let seen = SeenIndex::load(&conn, cutoff(options.clock.now_ms(), window_ms))?;
        tracing::debug!(remembered = seen.len(), "dedupe memory loaded");
        let memberships = Memberships::load(&conn)?;
        let members = memberships.committed();
        tracing::debug!(memberships = members.len(), "memberships loaded");
        let readers = Readers::open(&path, |_| Ok(()))?;

        let remembered = Arc::new(AtomicUsize::new(seen.len()));
        let (sender, receiver) = mpsc::sync_channel(queue_commands);
        let writer = Writer {
            conn,
            catalog,
            records: Arc::clone(&records),
            caps: options.caps,
            seen,
            memberships,
            window_ms,
            clock: options.clock,
            pruner: Pruner::new(),
            remembered: Arc::clone(&remembered),
            log_syncer,
        };
        let writer_thread = thread::Builder::new()
            .name("lamed-writer".into())
            .spawn(move || {
                // Held while the writer runs: released when it ends (close,
                // or every handle dropped) or the process exits.
                let _lock = lock;
                writer.run_or_end_process(receiver);
            })
            .map_err(|err| StoreError::caused_by("cannot start writer", err))?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                writer: Mutex::new(Some(sender)),
                writer_thread: Mutex::new(Some(writer_thread)),
                readers: Arc::new(readers),
                records: Some(records),
                remembered: Some(remembered),
                members: Some(members),
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
        let path = data_dir.join(DB_FILE);
        if !path.is_file() {
            return Err(StoreError::unavailable(format!(
                "no store at {} (has lamed serve run with this data directory?)",
                path.display()
            )));
        }
        // A store last written by a lamed from before the registry (or the
        // memberships, values, weights) lacks their tables until its server
        // restarts: read them as empty, on every connection (temporary
        // tables live in the connection that made them).
        let readers = Readers::open(&path, |reader| {
            Self::create_missing_tables(reader).map_err(StoreError::from)
        })?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                writer: Mutex::new(None),
                writer_thread: Mutex::new(None),
                readers: Arc::new(readers),
                records: None,
                remembered: None,
                members: None,
            }),
        })
    }

    /// Creates, as empty temporary tables, the tables a store written by
    /// an older lamed lacks.
    fn create_missing_tables(reader: &Connection) -> rusqlite::Result<()> {
        for (table, columns) in [
            ("registry", "namespace TEXT, experiment TEXT, record TEXT"),
            (
                "members",
                "namespace TEXT, experiment TEXT, member TEXT, value TEXT",
            ),
            (
                "member_log",
                "namespace TEXT, experiment TEXT, members INTEGER, entries BLOB",
            ),
            (
                "value_sums",
                "namespace TEXT, experiment TEXT, event TEXT, variant TEXT, \
                 n INTEGER, s0 INTEGER, s1 INTEGER, q0 INTEGER, q1 INTEGER, q2 INTEGER",
            ),
            (
                "weights",
                "namespace TEXT, experiment TEXT, period INTEGER, weights TEXT",
            ),
        ] {
            if !has_table(reader, table)? {
                reader.execute_batch(&format!("CREATE TEMP TABLE {table} ({columns})"))?;
            }
        }
        Ok(())
    }

    /// Sends a write to the writer and waits for its answer; refuses at
    /// once when the writer's queue is full.
    async fn ask<W: Write>(&self, write: W) -> Result<W::Output, StoreError> {
        let (request, answer) = Request::new(write);
        {
            let writer = self.inner.writer.lock().expect("writer lock poisoned");
            let sender = writer.as_ref().ok_or(StoreError::Closed)?;
            sender
                .try_send(Box::new(request))
                .map_err(|err| match err {
                    TrySendError::Full(_) => {
                        StoreError::unavailable("the writer's queue is full (the disk is behind)")
                    }
                    TrySendError::Disconnected(_) => StoreError::Closed,
                })?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Deletes an experiment: its memberships and weights, which may be
    /// millions of rows, in chunks, each its own short write, so no
    /// commit waits on them; then the rest, and what joined meanwhile, in
    /// one atomic write.
    async fn delete_in_chunks(
        self,
        namespace: String,
        experiment: String,
    ) -> Result<bool, StoreError> {
        loop {
            let chunk = DeleteKeptChunk {
                namespace: namespace.clone(),
                experiment: experiment.clone(),
            };
            let started = std::time::Instant::now();
            if self.ask(chunk).await? == 0 {
                break;
            }
            // Back-to-back chunks would hold the writer for the whole
            // delete (seconds for a million rows), and tracking would queue
            // behind them: pausing as long as a chunk took (its wait in the
            // queue included, so a busy writer slows the delete more)
            // leaves tracking at least half of the writer.
            tokio::time::sleep(started.elapsed()).await;
        }
        self.ask(DeleteExperiment {
            namespace,
            experiment,
        })
        .await
    }

    /// Runs a read query on a read connection off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = Arc::clone(&self.inner.readers);
        tokio::task::spawn_blocking(move || {
            readers.with(|conn| query(conn).map_err(StoreError::from))
        })
        .await
        .map_err(|err| {
            // A read that panicked is a bug; one cancelled (the runtime
            // shutting down) may pass.
            if err.is_panic() {
                StoreError::corrupt_because("read task panicked", err)
            } else {
                StoreError::caused_by("read task failed", err)
            }
        })?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn track(&self, events: Vec<Event>) -> Result<Vec<TrackOutcome>, StoreError> {
        self.ask(Track { events }).await
    }

    async fn counters(&self, namespace: &str) -> Result<Vec<Counter>, StoreError> {
        let namespace = namespace.to_owned();
        self.read(move |conn| read_counters(conn, &Counters::Namespace(&namespace)))
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
                 UNION SELECT experiment FROM imported WHERE namespace = ?1
                 UNION SELECT experiment FROM registry WHERE namespace = ?1 ORDER BY experiment",
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
        // A task of its own: a caller that stops waiting (its request's
        // deadline) must not leave the experiment half deleted, with its
        // counts but without the memberships that keep clients from being
        // counted again.
        let deletion = tokio::spawn(
            self.clone()
                .delete_in_chunks(namespace.to_owned(), experiment.to_owned()),
        );
        match deletion.await {
            Ok(deleted) => deleted,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => Err(StoreError::caused_by("a delete was stopped", err)),
        }
    }

    async fn record(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Option<ExperimentRecord>, StoreError> {
        if let Some(records) = &self.inner.records {
            return Ok(records.get(namespace, experiment));
        }
        let (namespace, experiment) = (namespace.to_owned(), experiment.to_owned());
        let json: Option<String> = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT record FROM registry WHERE namespace = ?1 AND experiment = ?2",
                )?
                .query_row([namespace, experiment], |row| row.get(0))
                .optional()
            })
            .await?;
        json.as_deref().map(parse_record).transpose()
    }

    async fn records(&self, namespace: &str) -> Result<Vec<ExperimentRecord>, StoreError> {
        if let Some(records) = &self.inner.records {
            return Ok(records.list(namespace));
        }
        let namespace = namespace.to_owned();
        let rows: Vec<String> = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT record FROM registry WHERE namespace = ?1 ORDER BY experiment",
                )?;
                let rows = stmt.query_map([namespace], |row| row.get(0))?;
                rows.collect()
            })
            .await?;
        rows.iter().map(|json| parse_record(json)).collect()
    }

    async fn put_record(
        &self,
        record: ExperimentRecord,
        precondition: Precondition,
    ) -> Result<PutOutcome, StoreError> {
        self.ask(PutRecord {
            record,
            precondition,
        })
        .await
    }

    async fn membership(
        &self,
        namespace: &str,
        experiment: &str,
        member: &str,
    ) -> Result<Option<String>, StoreError> {
        if let Some(members) = &self.inner.members {
            return Ok(members.get(namespace, experiment, member));
        }
        let [namespace, experiment, member] = [namespace, experiment, member].map(str::to_owned);
        self.read(move |conn| memberships::read_membership(conn, &namespace, &experiment, &member))
            .await
    }

    async fn member_count(&self, namespace: &str, experiment: &str) -> Result<u64, StoreError> {
        if let Some(members) = &self.inner.members {
            return Ok(members.count(namespace, experiment));
        }
        let [namespace, experiment] = [namespace, experiment].map(str::to_owned);
        self.read(move |conn| memberships::read_member_count(conn, &namespace, &experiment))
            .await
    }

    async fn count_join(&self, join: Join) -> Result<JoinAnswer, StoreError> {
        self.ask(CountJoin { join: Some(join) }).await
    }

    async fn put_once(
        &self,
        namespace: &str,
        experiment: &str,
        key: &Kept,
        value: &str,
    ) -> Result<String, StoreError> {
        self.ask(PutOnce {
            namespace: namespace.to_owned(),
            experiment: experiment.to_owned(),
            key: key.clone(),
            value: value.to_owned(),
        })
        .await
    }

    async fn weight_history(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let (namespace, experiment) = (namespace.to_owned(), experiment.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT period, weights FROM weights
                 WHERE namespace = ?1 AND experiment = ?2 ORDER BY period",
            )?;
            let rows = stmt.query_map([namespace, experiment], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
            rows.collect()
        })
        .await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.ask(Heartbeat).await
    }

    fn dedupe_entries(&self) -> Option<u64> {
        let remembered = self.inner.remembered.as_ref()?;
        Some(remembered.load(Ordering::Relaxed) as u64)
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
            segment: Default::default(),
            namespace: namespace.to_owned(),
            experiment: experiment.to_owned(),
            event: event.to_owned(),
            variant: variant.to_owned(),
            uuid: String::new(),
            value: None,
        };
        self.ask(ImportCounter { counter, count }).await
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
                .map_err(|err| StoreError::caused_by("close failed", err))?
                .map_err(|_| StoreError::unavailable("writer thread panicked"))?;
        }
        Ok(())
    }

    async fn experiment_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<Counter>, StoreError> {
        let (namespace, experiment) = (namespace.to_owned(), experiment.to_owned());
        self.read(move |conn| read_counters(conn, &Counters::Experiment(&namespace, &experiment)))
            .await
    }

    async fn segment_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<SegmentCounter>, StoreError> {
        let (namespace, experiment) = (namespace.to_owned(), experiment.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT dimension, value, event, variant, count, n, s0, s1, q0, q1, q2
                 FROM segments WHERE namespace = ?1 AND experiment = ?2",
            )?;
            let mut rows = stmt.query([namespace, experiment])?;
            let mut counters = Vec::new();
            while let Some(row) = rows.next()? {
                let dimension: String = row.get(0)?;
                let dimension = dimension.parse().map_err(|err| {
                    rusqlite::Error::FromSqlConversionFailure(
                        0,
                        rusqlite::types::Type::Text,
                        Box::new(err),
                    )
                })?;
                let mut limbs = [0i64; LIMBS];
                for (at, limb) in limbs.iter_mut().enumerate() {
                    *limb = row.get(5 + at)?;
                }
                counters.push(SegmentCounter {
                    dimension,
                    value: row.get(1)?,
                    event: row.get(2)?,
                    variant: row.get(3)?,
                    count: row.get::<_, i64>(4)? as u64,
                    values: ValueTotals::from_limbs(limbs),
                });
            }
            sort_counters(&mut counters);
            Ok(counters)
        })
        .await
    }

    async fn weights_of(
        &self,
        namespace: &str,
        experiment: &str,
        period: i64,
    ) -> Result<Option<String>, StoreError> {
        let (namespace, experiment) = (namespace.to_owned(), experiment.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT weights FROM weights
                 WHERE namespace = ?1 AND experiment = ?2 AND period = ?3",
            )?
            .query_row(rusqlite::params![namespace, experiment, period], |row| {
                row.get(0)
            })
            .optional()
        })
        .await
    }

    async fn namespaces(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT DISTINCT namespace FROM registry ORDER BY namespace")?;
            let rows = stmt.query_map([], |row| row.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn alert_state(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT version, value FROM alert_state WHERE key = ?1")?
                .query_row([key], |row| {
                    Ok(Versioned {
                        version: row.get::<_, i64>(0)? as u64,
                        value: row.get(1)?,
                    })
                })
                .optional()
        })
        .await
    }

    async fn alert_states(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |conn| {
            // `substr` rather than LIKE: keys hold `%` and `_`.
            let mut stmt = conn.prepare_cached(
                "SELECT key, version, value FROM alert_state
                 WHERE key >= ?1 AND substr(key, 1, length(?1)) = ?1 ORDER BY key",
            )?;
            let rows = stmt.query_map([prefix], |row| {
                Ok((
                    row.get(0)?,
                    Versioned {
                        version: row.get::<_, i64>(1)? as u64,
                        value: row.get(2)?,
                    },
                ))
            })?;
            rows.collect()
        })
        .await
    }

    async fn put_alert_state(
        &self,
        key: &str,
        value: Option<&str>,
        precondition: Precondition,
    ) -> Result<PutOutcome, StoreError> {
        self.ask(PutAlertState {
            key: key.to_owned(),
            value: value.map(str::to_owned),
            precondition,
        })
        .await
    }
}

/// Whose counters [`read_counters`] reads.
enum Counters<'a> {
    /// A namespace's.
    Namespace(&'a str),
    /// One experiment's: namespace and experiment.
    Experiment(&'a str, &'a str),
}

impl Counters<'_> {
    /// The rows' condition, over the parameters of [`Counters::params`];
    /// both name a prefix of every table's primary key.
    fn condition(&self) -> &'static str {
        match self {
            Counters::Namespace(_) => "namespace = ?1",
            Counters::Experiment(..) => "namespace = ?1 AND experiment = ?2",
        }
    }

    fn params(&self) -> Vec<&str> {
        match *self {
            Counters::Namespace(namespace) => vec![namespace],
            Counters::Experiment(namespace, experiment) => vec![namespace, experiment],
        }
    }
}

/// Counters (tracked plus imported, with their values' sums), sorted by
/// experiment, event and variant.
fn read_counters(conn: &Connection, of: &Counters<'_>) -> rusqlite::Result<Vec<Counter>> {
    let condition = of.condition();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT experiment, event, variant, SUM(count) FROM (
             SELECT experiment, event, variant, count FROM counters WHERE {condition}
             UNION ALL
             SELECT experiment, event, variant, count FROM daily WHERE {condition}
             UNION ALL
             SELECT experiment, event, variant, count FROM imported WHERE {condition})
         GROUP BY experiment, event, variant ORDER BY experiment, event, variant"
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(of.params()), |row| {
        Ok(Counter {
            experiment: row.get(0)?,
            event: row.get(1)?,
            variant: row.get(2)?,
            count: row.get::<_, i64>(3)? as u64,
            values: None,
        })
    })?;
    let mut counters: Vec<Counter> = rows.collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT experiment, event, variant, n, s0, s1, q0, q1, q2 FROM value_sums
         WHERE {condition}"
    ))?;
    let mut rows = stmt.query(rusqlite::params_from_iter(of.params()))?;
    while let Some(row) = rows.next()? {
        let names: (String, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let mut limbs = [0i64; LIMBS];
        for (i, limb) in limbs.iter_mut().enumerate() {
            *limb = row.get(3 + i)?;
        }
        // Both are sorted by the same names, so a binary search
        // finds the counter the sums belong to.
        if let Ok(at) = counters.binary_search_by(|c| {
            (&c.experiment, &c.event, &c.variant).cmp(&(&names.0, &names.1, &names.2))
        }) {
            counters[at].values = ValueTotals::from_limbs(limbs);
        }
    }
    Ok(counters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;
    use lamed_core::model::PARTICIPATE;
    use std::time::Duration;

    /// Opens a store on the system clock.
    pub(super) fn open(dir: &Path, window: u64, caps: Caps) -> EmbeddedStore {
        open_with_clock(dir, window, caps, Clock::System)
    }

    fn open_with_clock(dir: &Path, window: u64, caps: Caps, clock: Clock) -> EmbeddedStore {
        EmbeddedStore::open(options(dir, window, caps, clock)).expect("open store")
    }

    fn options(dir: &Path, window: u64, caps: Caps, clock: Clock) -> EmbeddedOptions {
        EmbeddedOptions {
            data_dir: dir.to_owned(),
            uuid_expiry_seconds: window,
            fsync: Durability::default(),
            caps,
            clock,
        }
    }

    async fn fresh(window: u64, caps: Caps, clock: Clock) -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open_with_clock(dir.path(), window, caps, clock);
        (dir, store)
    }

    conformance::conformance_tests!(fresh);

    /// One writer per data directory: a second open is refused, named as
    /// such, until the first is closed; readers are not affected.
    #[tokio::test]
    async fn second_writer_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = open(dir.path(), 60, Caps::default());
        let err = EmbeddedStore::open(options(dir.path(), 60, Caps::default(), Clock::System))
            .expect_err("second writer refused");
        assert!(DataDirInUse::is_cause_of(&err), "{err:?}");
        assert!(
            err.chain().contains("another lamed process is writing"),
            "{}",
            err.chain()
        );
        EmbeddedStore::open_read_only(dir.path()).expect("readers still open");
        first.close().await.unwrap();
        open(dir.path(), 60, Caps::default()).close().await.unwrap();
    }

    /// Reads run side by side: while slow reads hold all but one read
    /// connection, another read is answered at once; while they hold all,
    /// a read waits, and is answered once any one is free. The same on a
    /// read-only store, whose stand-in tables every connection has.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_do_not_queue_behind_a_slow_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path(), 86_400, Caps::default());
        store.track(vec![event(1)]).await.unwrap();
        reads_run_side_by_side(&store).await;
        store.close().await.unwrap();
        let conn = Connection::open(dir.path().join("lamed.db")).unwrap();
        conn.execute_batch("DROP TABLE member_log").unwrap();
        drop(conn);
        reads_run_side_by_side(&EmbeddedStore::open_read_only(dir.path()).unwrap()).await;
    }

    /// [`reads_do_not_queue_behind_a_slow_one`] on one store, which
    /// counted [`event`] 1.
    async fn reads_run_side_by_side(store: &EmbeddedStore) {
        let mut slow = Vec::new();
        for _ in 0..readers::READ_CONNECTIONS - 1 {
            slow.push(hold_a_connection(store).await);
        }
        let answered = tokio::time::timeout(Duration::from_secs(5), store.counters("n"))
            .await
            .expect("answered beside the slow reads")
            .unwrap();
        assert_eq!(answered[0].count, 1);
        let membership = store.membership("n", "e", "m");
        assert_eq!(membership.await.unwrap(), None);

        slow.push(hold_a_connection(store).await);
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { store.counters("n").await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "every connection is busy");
        let (release, held) = slow.remove(0);
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        let answered = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("answered once a connection is free");
        assert_eq!(answered.unwrap().unwrap()[0].count, 1);
        for (release, held) in slow {
            release.send(()).unwrap();
            held.await.unwrap().unwrap();
        }
    }

    /// A read that holds a connection until told to let go; returns once
    /// it holds it, having read the `member_log` table on it (so that
    /// holding every connection proves each has the table).
    async fn hold_a_connection(
        store: &EmbeddedStore,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), StoreError>>,
    ) {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (holding, held) = tokio::sync::oneshot::channel();
        let store = store.clone();
        let task = tokio::spawn(async move {
            store
                .read(move |conn| {
                    conn.query_row("SELECT count(*) FROM member_log", [], |row| {
                        row.get::<_, i64>(0)
                    })?;
                    holding.send(()).expect("test waits");
                    released.recv().expect("test releases");
                    Ok(())
                })
                .await
        });
        held.await.expect("the read holds a connection");
        (release, task)
    }

    /// Counts, remembered uuids and caps survive a reopen.
    #[tokio::test]
    async fn reopen_keeps_everything() {
        let dir = tempfile::tempdir().expect("temp dir");
        let e = Event {
            segment: Default::default(),
            namespace: "n".into(),
            experiment: "e".into(),
            variant: "a".into(),
            event: PARTICIPATE.into(),
            uuid: "u".into(),
            value: None,
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
            segment: Default::default(),
            variant: "b".into(),
            ..e
        };
        assert!(matches!(
            store.track(vec![other]).await.unwrap()[0],
            TrackOutcome::Ignored(lamed_core::model::Ignored::Cap(_))
        ));
        assert_eq!(store.counters("n").await.unwrap()[0].count, 1);
    }

    /// A store written before the registry existed reads as having no
    /// records, read-only (as `lamed report` opens it beside a server).
    #[tokio::test]
    async fn read_only_reads_a_store_from_before_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 86_400, Caps::default());
        store.track(vec![event(1)]).await.unwrap();
        store.close().await.unwrap();
        let conn = Connection::open(dir.path().join("lamed.db")).unwrap();
        conn.execute_batch("DROP TABLE registry").unwrap();
        drop(conn);
        let reader = EmbeddedStore::open_read_only(dir.path()).unwrap();
        assert_eq!(reader.records("n").await.unwrap(), vec![]);
        assert_eq!(reader.record("n", "e").await.unwrap(), None);
        assert_eq!(reader.experiments("n").await.unwrap(), vec!["e".to_owned()]);
    }

    /// A record that does not parse is a permanent failure (re-reading it
    /// fails the same way, so it must not be answered "retry later"),
    /// named as such in the chain: opening the store refuses it (its
    /// writer keeps every record in memory), and so do reads of the
    /// read-only store, which reads records from disk.
    #[tokio::test]
    async fn a_corrupt_record_is_a_permanent_failure() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 86_400, Caps::default());
        store.track(vec![event(1)]).await.unwrap();
        assert!(store.record("n", "e").await.unwrap().is_some());
        store.close().await.unwrap();
        let conn = Connection::open(dir.path().join("lamed.db")).unwrap();
        let changed = conn
            .execute(
                "UPDATE registry SET record = '{not json' WHERE experiment = 'e'",
                [],
            )
            .unwrap();
        assert_eq!(changed, 1);
        drop(conn);
        let reader = EmbeddedStore::open_read_only(dir.path()).unwrap();
        let opened =
            EmbeddedStore::open(options(dir.path(), 86_400, Caps::default(), Clock::System));
        for err in [
            opened.expect_err("a corrupt record refuses the open"),
            reader.record("n", "e").await.unwrap_err(),
            reader.records("n").await.unwrap_err(),
        ] {
            assert!(!err.is_transient(), "{err:?}");
            assert!(
                err.chain().contains("a stored record is corrupt"),
                "{}",
                err.chain()
            );
        }
    }

    fn event(uuid: usize) -> Event {
        Event {
            segment: Default::default(),
            namespace: "n".into(),
            experiment: "e".into(),
            variant: "a".into(),
            event: PARTICIPATE.into(),
            value: None,
            uuid: uuid.to_string(),
        }
    }

    /// Tracks one event until the store takes it (as a client re-sends
    /// after a 503).
    async fn track_until_taken(store: &EmbeddedStore, uuid: usize) -> TrackOutcome {
        loop {
            if let Ok(outcomes) = store.track(vec![event(uuid)]).await {
                return outcomes[0].clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// While the writer is stuck (another connection holds the write
    /// lock), requests beyond the queue's bound are refused at once; once
    /// it is free, everything taken is counted, and re-sending the refused
    /// events counts each exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_queue_refuses_at_once_and_loses_nothing() {
        const QUEUE: usize = 4;
        const SENT: usize = 20;
        let dir = tempfile::tempdir().expect("temp dir");
        let options = options(dir.path(), 86_400, Caps::default(), Clock::System);
        let store = EmbeddedStore::open_with_queue(options, QUEUE).expect("open store");
        let locker = rusqlite::Connection::open(dir.path().join("lamed.db")).unwrap();
        locker.execute_batch("BEGIN IMMEDIATE").unwrap();

        // The first request takes the writer, which then waits on the lock.
        let first = tokio::spawn({
            let store = store.clone();
            async move { store.track(vec![event(0)]).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let sent: Vec<_> = (1..=SENT)
            .map(|uuid| {
                let store = store.clone();
                tokio::spawn(async move { store.track(vec![event(uuid)]).await })
            })
            .collect();
        // Still locked: the requests beyond the queue (and the batch the
        // writer may have taken) are refused without waiting for it.
        let refusals = SENT - 2 * QUEUE;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while sent.iter().filter(|task| task.is_finished()).count() < refusals {
            assert!(std::time::Instant::now() < deadline, "refusals wait");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let answered: Vec<bool> = sent.iter().map(|task| task.is_finished()).collect();
        locker.execute_batch("ROLLBACK").unwrap();

        let mut refused = Vec::new();
        let mut queue_full = 0;
        for (uuid, (task, answered_while_locked)) in (1..).zip(sent.into_iter().zip(answered)) {
            match task.await.unwrap() {
                Ok(outcomes) => {
                    assert!(!answered_while_locked, "{uuid} answered Ok while locked");
                    assert_eq!(outcomes, vec![TrackOutcome::Counted]);
                }
                Err(err) => {
                    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
                    queue_full += usize::from(err.chain().contains("queue is full"));
                    refused.push(uuid);
                }
            }
        }
        assert!(queue_full >= refusals, "{refused:?}");
        if first.await.unwrap().is_err() {
            refused.push(0);
        }
        let taken = SENT + 1 - refused.len();
        assert_eq!(store.counters("n").await.unwrap()[0].count, taken as u64);

        for &uuid in &refused {
            assert_eq!(track_until_taken(&store, uuid).await, TrackOutcome::Counted);
        }
        // Everything once more: all duplicates now.
        for uuid in 0..=SENT {
            assert_eq!(
                track_until_taken(&store, uuid).await,
                TrackOutcome::Duplicate
            );
        }
        assert_eq!(store.counters("n").await.unwrap()[0].count, SENT as u64 + 1);
        assert_eq!(store.dedupe_entries(), Some(SENT as u64 + 1));
        store.close().await.unwrap();
    }
}
