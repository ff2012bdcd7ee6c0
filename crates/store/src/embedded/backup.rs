//! Backing up the embedded store while a server writes to it, and putting
//! a backup back into a data directory that no process uses.
//!
//! Everything a store remembers lives in one SQLite database, `lamed.db`
//! (with its `-wal` and `-shm` files while it is open): the counters, the
//! dedupe log (see [`super::seen`]: its in-memory index is rebuilt from the
//! log on start), the registry and the memberships. Counts and the dedupe
//! log of an event are committed in one transaction, so one read snapshot
//! of that database holds both or neither. The backup is SQLite's online
//! backup API run in a single step: one read transaction copies every page
//! as of one commit (WAL readers never block the writer, nor it them),
//! so the copy is consistent and no write can make it restart. The data
//! directory's other files are not data: `lamed.lock` (the writer's lock)
//! and `api_key` (a secret, kept out of backups: keep it, or configure the
//! key, separately).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::schema::has_table;
use super::{lock_data_dir, DataDirInUse, DB_FILE};
use crate::StoreError;

/// Tables a backup must hold to be restored: a file without them is not a
/// lamed store.
const REQUIRED_TABLES: [&str; 4] = ["counters", "daily", "imported", "seen_log"];

/// What a store (or a backup of one) holds, as printed after a backup or
/// a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSummary {
    /// Events counted, over every counter (imported bases included).
    pub events: u64,
    /// Experiments, counted or registered.
    pub experiments: u64,
    /// Events in the dedupe log (those still inside the window are
    /// remembered when a server opens the store).
    pub remembered: u64,
    /// Size of the database file in bytes.
    pub bytes: u64,
}

/// Copies the store of `data_dir` into `file`, consistently, while a
/// server may be writing to it; `file` appears whole or not at all.
///
/// # Errors
///
/// When there is no store in `data_dir`, or the copy cannot be written.
pub fn backup(data_dir: &Path, file: &Path) -> Result<StoreSummary, StoreError> {
    let source_path = data_dir.join(DB_FILE);
    if !source_path.is_file() {
        return Err(StoreError::unavailable(format!(
            "no store at {} (has lamed serve run with this data directory?)",
            source_path.display()
        )));
    }
    let source = Connection::open_with_flags(
        &source_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| cannot(&source_path, "open", err))?;
    source.busy_timeout(Duration::from_secs(5))?;

    let partial = partial_path(file);
    let _ = std::fs::remove_file(&partial);
    let copied = copy_database(&source, &partial)
        .and_then(|()| single_file(&partial))
        .and_then(|()| summary(&partial));
    let summary = match copied {
        Ok(summary) => summary,
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            return Err(err);
        }
    };
    sync_file(&partial)?;
    std::fs::rename(&partial, file).map_err(|err| {
        let _ = std::fs::remove_file(&partial);
        StoreError::caused_by(format!("cannot write {}", file.display()), err)
    })?;
    sync_parent(file);
    Ok(summary)
}

/// Replaces the store of `data_dir` with the backup `file`, refusing while
/// any lamed process holds the data directory (a running server), and,
/// unless `force`, when the store there already counts events.
///
/// # Errors
///
/// [`DataDirInUse`] (as the cause) while a server uses `data_dir`; when
/// `file` is no lamed backup; when the store there holds events and
/// `force` is false; when the copy fails (the store is then unchanged:
/// the copy is one SQLite transaction).
pub fn restore(data_dir: &Path, file: &Path, force: bool) -> Result<StoreSummary, StoreError> {
    let backup_summary = check_backup(file)?;
    std::fs::create_dir_all(data_dir).map_err(|err| {
        StoreError::caused_by(
            format!("cannot create data directory {}", data_dir.display()),
            err,
        )
    })?;
    // Held until the restore is done: no server can start on it meanwhile.
    let _lock = lock_data_dir(data_dir)?;
    let target_path = data_dir.join(DB_FILE);
    if !force && target_path.is_file() {
        let existing = summary(&target_path)?;
        if existing.events > 0 || existing.experiments > 0 {
            return Err(StoreError::unavailable(format!(
                "{} holds a store with {} counted events in {} experiments; pass --force to replace it",
                target_path.display(),
                existing.events,
                existing.experiments
            )));
        }
    }
    let source = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|err| cannot(file, "open", err))?;
    let mut target =
        Connection::open(&target_path).map_err(|err| cannot(&target_path, "open", err))?;
    // Out of WAL mode first: this folds and removes the old `-wal` file
    // (which must not outlive the pages it belongs to), and lets the copy
    // change the page size. The server puts it back into WAL mode on start.
    let mode: String = target
        .query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))
        .map_err(|err| cannot(&target_path, "prepare", err))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(StoreError::unavailable(format!(
            "cannot take {} out of WAL mode (another process reads it?)",
            target_path.display()
        )));
    }
    run_backup(&source, &mut target).map_err(|err| cannot(&target_path, "write", err))?;
    drop(target);
    single_file(&target_path)?;
    summary(&target_path)?;
    Ok(backup_summary)
}

/// Checks that `file` is a whole lamed store, and summarises it.
///
/// # Errors
///
/// When it cannot be read, is damaged, or lacks a store's tables.
pub fn check_backup(file: &Path) -> Result<StoreSummary, StoreError> {
    if !file.is_file() {
        return Err(StoreError::unavailable(format!(
            "no backup at {}",
            file.display()
        )));
    }
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|err| cannot(file, "open", err))?;
    let not_a_store = |why: String| {
        StoreError::unavailable(format!("{} is not a lamed backup: {why}", file.display()))
    };
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|err| not_a_store(err.to_string()))?;
    if check != "ok" {
        return Err(not_a_store(format!("damaged ({check})")));
    }
    for table in REQUIRED_TABLES {
        if !has_table(&conn, table)? {
            return Err(not_a_store(format!("it has no table '{table}'")));
        }
    }
    drop(conn);
    summary(file)
}

/// Copies every page of `source` into a new database at `path`.
fn copy_database(source: &Connection, path: &Path) -> Result<(), StoreError> {
    let mut target = Connection::open(path).map_err(|err| cannot(path, "create", err))?;
    run_backup(source, &mut target).map_err(|err| cannot(path, "write", err))
}

/// The online backup in one step (-1: every page), so that it reads one
/// snapshot; retried while the target or source is briefly locked.
fn run_backup(source: &Connection, target: &mut Connection) -> rusqlite::Result<()> {
    let backup = Backup::new(source, target)?;
    let mut waits = 0;
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::Busy | StepResult::Locked => {
                if waits == 100 {
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("the database stayed locked for 5 s".into()),
                    ));
                }
                waits += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            // `More` (not with -1 pages) and any later kind: step again.
            _ => {}
        }
    }
}

/// Makes the database at `path` a single self-contained file: the copy
/// keeps the WAL mode of its source in its header, so it is reopened and
/// set to the rollback journal (which leaves no `-wal` file beside it).
fn single_file(path: &Path) -> Result<(), StoreError> {
    let conn = Connection::open(path).map_err(|err| cannot(path, "open", err))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))
        .map_err(|err| cannot(path, "write", err))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(StoreError::unavailable(format!(
            "cannot take {} out of WAL mode",
            path.display()
        )));
    }
    Ok(())
}

/// What the database at `path` holds.
fn summary(path: &Path) -> Result<StoreSummary, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|err| cannot(path, "open", err))?;
    let has_registry: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'registry'",
        [],
        |row| row.get(0),
    )?;
    let registry = if has_registry {
        " UNION SELECT namespace, experiment FROM registry"
    } else {
        ""
    };
    let (events, experiments, remembered): (i64, i64, i64) = conn.query_row(
        &format!(
            "SELECT
               (SELECT coalesce(sum(count), 0) FROM (
                    SELECT count FROM counters UNION ALL SELECT count FROM daily
                    UNION ALL SELECT count FROM imported)),
               (SELECT count(*) FROM (
                    SELECT namespace, experiment FROM counters
                    UNION SELECT namespace, experiment FROM daily
                    UNION SELECT namespace, experiment FROM imported{registry})),
               (SELECT coalesce(sum(length(keys)), 0) / 16 FROM seen_log)"
        ),
        [],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    let bytes = std::fs::metadata(path).map_or(0, |meta| meta.len());
    Ok(StoreSummary {
        events: events.max(0) as u64,
        experiments: experiments.max(0) as u64,
        remembered: remembered.max(0) as u64,
        bytes,
    })
}

/// Where a backup is written before it is renamed into place.
fn partial_path(file: &Path) -> PathBuf {
    let mut name = file
        .file_name()
        .map(|name| name.to_os_string())
        .unwrap_or_else(|| "lamed-backup".into());
    name.push(format!(".partial-{}", std::process::id()));
    file.with_file_name(name)
}

/// fsyncs a finished copy before it is renamed into place.
fn sync_file(path: &Path) -> Result<(), StoreError> {
    std::fs::File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|err| StoreError::caused_by(format!("cannot sync {}", path.display()), err))
}

/// fsyncs the directory of `path`, so its rename survives a power loss
/// (best effort: not every file system allows it).
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
}

fn cannot(path: &Path, what: &str, err: rusqlite::Error) -> StoreError {
    StoreError::sqlite(format!("cannot {what} database {}", path.display()), err)
}

/// True when `err` says a lamed process holds the data directory.
pub fn is_in_use(err: &StoreError) -> bool {
    DataDirInUse::is_cause_of(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::tests::open;
    use crate::Store;
    use lamed_core::model::{Caps, Event, TrackOutcome, PARTICIPATE};

    fn event(uuid: usize) -> Event {
        Event {
            segment: Default::default(),
            namespace: "n".into(),
            experiment: "e".into(),
            variant: "a".into(),
            event: PARTICIPATE.into(),
            uuid: uuid.to_string(),
            value: None,
        }
    }

    /// A backup taken while the store is open restores to the same counts
    /// and dedupe memory; restore refuses while a store is open on the
    /// target, and over counted events without `force`.
    #[tokio::test]
    async fn backup_then_restore_keeps_counts_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (live, other) = (dir.path().join("live"), dir.path().join("other"));
        let store = open(&live, 0, Caps::default());
        store.track((0..10).map(event).collect()).await.unwrap();
        let file = dir.path().join("backup.db");
        let summary = backup(&live, &file).unwrap();
        assert_eq!(
            (summary.events, summary.experiments, summary.remembered),
            (10, 1, 10)
        );
        assert!(!dir.path().join("backup.db-wal").exists());
        store.track((10..15).map(event).collect()).await.unwrap();

        let err = restore(&live, &file, true).expect_err("in use");
        assert!(is_in_use(&err), "{err:?}");
        store.close().await.unwrap();
        // Its read connection too: an open WAL connection keeps the
        // database from leaving WAL mode, as another process would.
        drop(store);
        let err = restore(&live, &file, false).expect_err("holds events");
        assert!(err.chain().contains("--force"), "{}", err.chain());
        assert_eq!(restore(&live, &file, true).unwrap().events, 10);
        assert_eq!(restore(&other, &file, false).unwrap().events, 10);

        for data_dir in [&live, &other] {
            let store = open(data_dir, 0, Caps::default());
            assert_eq!(store.counters("n").await.unwrap()[0].count, 10);
            let outcomes = store.track((0..15).map(event).collect()).await.unwrap();
            assert_eq!(outcomes[..10], vec![TrackOutcome::Duplicate; 10][..]);
            assert_eq!(outcomes[10..], vec![TrackOutcome::Counted; 5][..]);
            store.close().await.unwrap();
        }
    }

    /// A file that is not a store is refused, naming why.
    #[test]
    fn restore_refuses_what_is_not_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("junk");
        std::fs::write(&file, b"not a database at all, just text").unwrap();
        let err = restore(&dir.path().join("data"), &file, false).expect_err("refused");
        assert!(
            err.chain().contains("is not a lamed backup"),
            "{}",
            err.chain()
        );
        let empty = dir.path().join("empty.db");
        Connection::open(&empty)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let err = check_backup(&empty).expect_err("refused");
        assert!(
            err.chain().contains("no table 'counters'"),
            "{}",
            err.chain()
        );
    }
}
