//! When the embedded store forces its log to disk ([`Durability`]), and the
//! thread that does it once a second in the default mode ([`LogSyncer`]).
//!
//! SQLite in WAL mode with `synchronous=NORMAL` writes each commit to the
//! log before answering, which survives a crash of lamed, but syncs the log
//! only at checkpoints (every 16 MiB of log): a power cut or kernel crash
//! could lose hours of answered events on a quiet site. `FULL` syncs every
//! commit, which costs one fsync per group commit on the writer's path. The
//! default sits between, as Redis's `appendfsync everysec` does: the log is
//! synced at most a second after each commit, by a thread of its own, so the
//! writer never waits for the disk.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize};

/// When the embedded store fsyncs its log, which is what a power cut or a
/// kernel crash may cost. A crash or `kill -9` of lamed alone loses nothing
/// answered 200 in every mode: the operating system has the bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fsync every commit before answering (`true`, the old `--fsync`).
    #[value(alias = "true")]
    Commit,
    /// fsync the log at most a second after each commit, off the writer's
    /// path.
    #[default]
    Second,
    /// fsync only at checkpoints (every 16 MiB of log): the operating
    /// system decides (`false`).
    #[value(alias = "false")]
    None,
}

impl Durability {
    /// What a power cut or kernel crash costs in this mode, for the start
    /// banner and the README.
    pub fn power_cut_cost(self) -> &'static str {
        match self {
            Durability::Commit => "nothing answered 200 (each commit is fsynced before its answer)",
            Durability::Second => {
                "at most the last second of events answered 200 (the log is fsynced once a second)"
            }
            Durability::None => {
                "every event since the last checkpoint (up to 16 MiB of log: on a quiet site, days)"
            }
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Durability::Commit => "commit",
            Durability::Second => "second",
            Durability::None => "none",
        })
    }
}

impl<'de> Deserialize<'de> for Durability {
    /// `"commit"`, `"second"` or `"none"`; also the boolean `fsync` of
    /// earlier config files: `true` is `commit`, `false` is `none` (what
    /// `false` did then).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Boolean(bool),
            Name(String),
        }
        match Given::deserialize(deserializer)? {
            Given::Boolean(true) => Ok(Durability::Commit),
            Given::Boolean(false) => Ok(Durability::None),
            Given::Name(name) => {
                <Durability as clap::ValueEnum>::from_str(&name, true).map_err(|_| {
                    serde::de::Error::custom(format!(
                        "unknown durability '{name}': expected commit, second or none"
                    ))
                })
            }
        }
    }
}

/// Longest a commit waits for its log to be fsynced in [`Durability::Second`],
/// and the shortest time between two fsyncs.
pub(super) const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// What the writer and the syncing thread share.
#[derive(Debug, Default)]
struct Shared {
    /// A commit wrote to the log since the last sync began.
    dirty: AtomicBool,
    /// Set when the store closes; guards the sleeps of the thread.
    stopping: Mutex<bool>,
    /// Wakes the thread: a first commit after a sync, or the close.
    wake: Condvar,
}

/// A thread that fdatasyncs the store's log (`lamed.db-wal`) after commits,
/// at most once per [`SYNC_INTERVAL`]: a commit is on disk at most about a
/// second after its answer, and the writer never waits for the disk. The
/// first commit after a quiet second is synced at once. Stopped (after a
/// last sync) when dropped.
#[derive(Debug)]
pub(super) struct LogSyncer {
    shared: Arc<Shared>,
    thread: Option<thread::JoinHandle<()>>,
}

impl LogSyncer {
    /// Starts the thread for the database at `db_path`.
    pub(super) fn start(db_path: &Path) -> std::io::Result<LogSyncer> {
        let shared = Arc::new(Shared::default());
        let mut log = LogFile::new(db_path);
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("lamed-log-sync".into())
                .spawn(move || run(&shared, &mut log))?
        };
        Ok(LogSyncer {
            shared,
            thread: Some(thread),
        })
    }

    /// Called by the writer after each commit, before it answers: cheap
    /// (an atomic swap) except for the first commit after a sync, which
    /// wakes the thread.
    pub(super) fn committed(&self) {
        if !self.shared.dirty.swap(true, Ordering::AcqRel) {
            let _guard = self.shared.stopping.lock().expect("sync lock poisoned");
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for LogSyncer {
    fn drop(&mut self) {
        *self.shared.stopping.lock().expect("sync lock poisoned") = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the syncing loop syncs: the log file (a recording one in tests).
trait Syncable {
    fn sync(&mut self) -> std::io::Result<()>;
}

/// The syncing loop: waits for a commit, waits out the interval since the
/// last sync, then syncs what every commit up to then wrote.
fn run(shared: &Shared, log: &mut impl Syncable) {
    let mut last_sync: Option<Instant> = None;
    loop {
        let mut stopping = shared.stopping.lock().expect("sync lock poisoned");
        while !shared.dirty.load(Ordering::Acquire) && !*stopping {
            stopping = shared.wake.wait(stopping).expect("sync lock poisoned");
        }
        if let Some(due) = last_sync.map(|last| last + SYNC_INTERVAL) {
            while !*stopping {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                stopping = shared
                    .wake
                    .wait_timeout(stopping, due - now)
                    .expect("sync lock poisoned")
                    .0;
            }
        }
        let stop = *stopping;
        drop(stopping);
        // Cleared before syncing: a commit that writes after this point
        // sets it again and is synced next time.
        if shared.dirty.swap(false, Ordering::AcqRel) {
            last_sync = Some(Instant::now());
            if let Err(err) = log.sync() {
                tracing::error!(cause = %err, "fsync of the store's log failed");
            }
        }
        if stop {
            return;
        }
    }
}

/// The log file, found by name each time: SQLite deletes it when the last
/// connection closes and creates it again on the next write.
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    dir: PathBuf,
    /// The inode last synced, so that a new log's directory entry is synced
    /// once too (a file whose name is not on disk is lost with its data).
    synced_inode: Option<u64>,
}

impl Syncable for LogFile {
    /// fdatasyncs the log, and its directory when the log is new; nothing
    /// when there is no log (everything is in the database file).
    fn sync(&mut self) -> std::io::Result<()> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err),
        };
        file.sync_data()?;
        let inode = file.metadata()?.ino();
        if self.synced_inode != Some(inode) {
            File::open(&self.dir)?.sync_all()?;
            self.synced_inode = Some(inode);
        }
        Ok(())
    }
}

impl LogFile {
    fn new(db_path: &Path) -> LogFile {
        let mut path = db_path.as_os_str().to_owned();
        path.push("-wal");
        LogFile {
            path: PathBuf::from(path),
            dir: db_path
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_owned),
            synced_inode: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mode names, the old booleans and the default, as flags and as
    /// config.json values.
    #[test]
    fn modes_parse_from_names_and_old_booleans() {
        use clap::ValueEnum;
        for (text, mode) in [
            ("commit", Durability::Commit),
            ("true", Durability::Commit),
            ("second", Durability::Second),
            ("none", Durability::None),
            ("false", Durability::None),
        ] {
            assert_eq!(Durability::from_str(text, true), Ok(mode), "{text}");
        }
        for (json, mode) in [
            (r#""commit""#, Durability::Commit),
            ("true", Durability::Commit),
            (r#""second""#, Durability::Second),
            (r#""none""#, Durability::None),
            ("false", Durability::None),
        ] {
            assert_eq!(serde_json::from_str::<Durability>(json).unwrap(), mode);
        }
        let err = serde_json::from_str::<Durability>(r#""always""#).unwrap_err();
        assert!(err.to_string().contains("commit, second or none"), "{err}");
        assert_eq!(Durability::default(), Durability::Second);
        assert_eq!(
            serde_json::to_string(&Durability::Second).unwrap(),
            r#""second""#
        );
    }

    /// Commits in a burst are synced at once and then at most once per
    /// interval; a quiet store is not synced at all; a close syncs what is
    /// left.
    #[test]
    fn syncs_after_commits_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("lamed.db");
        std::fs::write(dir.path().join("lamed.db-wal"), b"log").unwrap();
        let shared = Arc::new(Shared::default());
        let syncs = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let thread = {
            let shared = Arc::clone(&shared);
            let mut log = Recording {
                log: LogFile::new(&db),
                syncs: Arc::clone(&syncs),
            };
            thread::spawn(move || run(&shared, &mut log))
        };
        let syncer = LogSyncer {
            shared,
            thread: Some(thread),
        };
        thread::sleep(Duration::from_millis(100));
        assert!(syncs.lock().unwrap().is_empty(), "no commit, no sync");
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(1500) {
            syncer.committed();
            thread::sleep(Duration::from_millis(5));
        }
        drop(syncer);
        let syncs = syncs.lock().unwrap();
        // At once, after one interval, and the last on close.
        assert_eq!(syncs.len(), 3, "{syncs:?}");
        assert!(syncs[0] - started < Duration::from_millis(500));
        assert!(syncs[1] - syncs[0] >= SYNC_INTERVAL);
    }

    /// The log file, recording when each sync happened.
    struct Recording {
        log: LogFile,
        syncs: Arc<Mutex<Vec<Instant>>>,
    }

    impl Syncable for Recording {
        fn sync(&mut self) -> std::io::Result<()> {
            self.syncs.lock().unwrap().push(Instant::now());
            self.log.sync()
        }
    }
}
