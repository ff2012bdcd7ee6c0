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
//! (the dedupe memory).

mod catalog;
mod command;
mod prune;
mod schema;
mod seen;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use async_trait::async_trait;
use rusqlite::Connection;

use super::{Store, StoreError};
use crate::clock::Clock;
use crate::model::{Caps, Counter, DailyCounter, Event, TrackOutcome};
use catalog::Catalog;
use command::{Command, DeleteExperiment, Heartbeat, ImportCounter, Request, Track, Write};
use prune::Pruner;
pub use prune::DAILY_RETENTION_DAYS;
use schema::{open_reader_connection, open_writer_connection};
use seen::{cutoff, SeenIndex};
use writer::Writer;

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
    writer: Mutex<Option<mpsc::Sender<Box<dyn Command>>>>,
    /// Joined on close so that the last commit has happened when it returns.
    writer_thread: Mutex<Option<thread::JoinHandle<()>>>,
    /// Read-only connection for queries; std Mutex: only used inside
    /// `spawn_blocking`, never held across `.await`.
    reader: Arc<Mutex<Connection>>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `options.data_dir`.
    ///
    /// # Errors
    ///
    /// When the directory or database cannot be created or opened.
    pub fn open(options: EmbeddedOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&options.data_dir).map_err(|err| {
            StoreError::caused_by(
                format!(
                    "cannot create data directory {}",
                    options.data_dir.display()
                ),
                err,
            )
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
            pruner: Pruner::new(),
        };
        let writer_thread = thread::Builder::new()
            .name("lamed-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|err| StoreError::caused_by("cannot start writer", err))?;
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

    /// Sends a write to the writer and waits for its answer.
    async fn ask<W: Write>(&self, write: W) -> Result<W::Output, StoreError> {
        let (request, answer) = Request::new(write);
        {
            let writer = self.inner.writer.lock().expect("writer lock poisoned");
            let sender = writer.as_ref().ok_or(StoreError::Closed)?;
            sender
                .send(Box::new(request))
                .map_err(|_| StoreError::Closed)?;
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
        .map_err(|err| StoreError::caused_by("read task failed", err))?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn track(&self, events: Vec<Event>) -> Result<Vec<TrackOutcome>, StoreError> {
        self.ask(Track { events }).await
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
        self.ask(DeleteExperiment {
            namespace,
            experiment,
        })
        .await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.ask(Heartbeat).await
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PARTICIPATE;
    use crate::store::conformance;

    /// Opens a store on the system clock.
    pub(super) fn open(dir: &Path, window: u64, caps: Caps) -> EmbeddedStore {
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
}
