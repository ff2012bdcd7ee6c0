//! The database file: its tables, and how the writer's and the readers'
//! connections to it are opened and tuned.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::memberships::convert_members_table;
use super::Durability;
use crate::StoreError;
use lamed_core::sixpack::hashed_legacy_member;

/// Milliseconds in a day: `daily` rows are keyed by UTC day number.
const MS_PER_DAY: i64 = 86_400_000;

/// Tables: `daily` holds one row per (namespace, experiment, event, variant,
/// UTC day): what tracking writes, and what trend charts read; `counters`
/// the totals of days older than the retention, folded out of `daily`
/// (a counter's total is its `counters` row plus its days plus its
/// `imported` base); `seen_log` is the append-only log of remembered events
/// (see [`super::seen`]): per row, the millisecond of a commit and the
/// 16-byte hashes of the identities it first saw then (a store written
/// before this layout had one row per event in `seen`, which opening
/// converts); `member_log` the append-only log of memberships (Sixpack's
/// clients, kept as long as their experiment; see [`super::memberships`]:
/// per row, the members one commit added to one experiment; older layouts
/// had a `members` table, which opening converts); `value_sums` the limbs of each counter's sum and
/// sum of squares of values (see [`lamed_core::value`]; a counter without
/// valued events has no row); `weights` each period's adaptive weights
/// (JSON, set once per period); `segments` the segment counters (issue 26:
/// per experiment, dimension, value, event and variant, the count and the
/// limbs of its values); `imported`
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
CREATE TABLE IF NOT EXISTS seen_log (
    id INTEGER PRIMARY KEY, first_seen INTEGER NOT NULL, keys BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS imported (
    namespace TEXT NOT NULL, experiment TEXT NOT NULL, event TEXT NOT NULL,
    variant TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (namespace, experiment, event, variant)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS registry (
    namespace TEXT NOT NULL, experiment TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (namespace, experiment)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS member_log (
    id INTEGER PRIMARY KEY, namespace TEXT NOT NULL, experiment TEXT NOT NULL,
    members INTEGER NOT NULL, entries BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS member_log_by_experiment ON member_log (namespace, experiment);
CREATE TABLE IF NOT EXISTS value_sums (
    namespace TEXT NOT NULL, experiment TEXT NOT NULL, event TEXT NOT NULL,
    variant TEXT NOT NULL, n INTEGER NOT NULL, s0 INTEGER NOT NULL, s1 INTEGER NOT NULL,
    q0 INTEGER NOT NULL, q1 INTEGER NOT NULL, q2 INTEGER NOT NULL,
    PRIMARY KEY (namespace, experiment, event, variant)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS weights (
    namespace TEXT NOT NULL, experiment TEXT NOT NULL, period INTEGER NOT NULL,
    weights TEXT NOT NULL,
    PRIMARY KEY (namespace, experiment, period)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS segments (
    namespace TEXT NOT NULL, experiment TEXT NOT NULL, dimension TEXT NOT NULL,
    value TEXT NOT NULL, event TEXT NOT NULL, variant TEXT NOT NULL,
    count INTEGER NOT NULL, n INTEGER NOT NULL, s0 INTEGER NOT NULL, s1 INTEGER NOT NULL,
    q0 INTEGER NOT NULL, q1 INTEGER NOT NULL, q2 INTEGER NOT NULL,
    PRIMARY KEY (namespace, experiment, dimension, value, event, variant)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_state (
    key TEXT PRIMARY KEY, version INTEGER NOT NULL, value TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS daily_by_day ON daily (day);
";

/// The UTC day number (days since the Unix epoch) of a Unix millisecond:
/// the `day` of a `daily` row.
pub(super) fn day_of(ms: i64) -> i64 {
    ms.div_euclid(MS_PER_DAY)
}

/// Whether the database has table `name`.
pub(super) fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |row| row.get(0),
    )
}

/// Opens a read-only connection for queries; it never blocks the writer.
pub(super) fn open_reader_connection(path: &Path) -> Result<Connection, StoreError> {
    let reader = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| cannot_open(path, err))?;
    reader.busy_timeout(Duration::from_secs(5))?;
    check_version(&reader)?;
    Ok(reader)
}

/// The layout version this lamed writes, kept in `PRAGMA user_version`:
/// 0 before versions (the tables up to `members`), 1 with `value_sums` and
/// `weights`, 2 with hashed memberships (no client id at rest) and the
/// daily fold's index, 3 with the memberships in a log, 4 with `segments`
/// (an older lamed would count without them, and leave them behind when it
/// deletes). A newer layout is refused rather than half
/// understood: an older lamed would count events without their values.
pub(super) const SCHEMA_VERSION: i64 = 4;

/// The first version whose memberships hold hashes, not client ids.
const HASHED_MEMBERS: i64 = 2;

/// The first version whose memberships are in `member_log`.
const LOGGED_MEMBERS: i64 = 3;

/// The data directory was written by a newer lamed.
#[derive(Debug, thiserror::Error)]
#[error(
    "data directory has store layout version {found}, newer than this lamed's {SCHEMA_VERSION}: \
     run the newer lamed, or restore the backup taken before the upgrade"
)]
pub struct NewerLayout {
    /// The version found.
    pub found: i64,
}

/// Refuses a database of a newer layout.
fn check_version(conn: &Connection) -> Result<i64, StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::caused_by(
            "cannot open the store",
            NewerLayout { found },
        ));
    }
    Ok(found)
}

/// Opens the one connection that writes, creating the tables when missing
/// and upgrading an older layout to [`SCHEMA_VERSION`].
pub(super) fn open_writer_connection(
    path: &Path,
    fsync: Durability,
) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|err| cannot_open(path, err))?;
    // Only this writer writes, so waiting on a lock means something outside
    // lamed holds the database: fail within a second (503, the client
    // retries) rather than hold every request.
    conn.busy_timeout(Duration::from_secs(1))?;
    // WAL: a commit is one append to the log, and readers never block the
    // writer. NORMAL syncs only at checkpoints: a commit survives a crash
    // of this process (the OS has the bytes) but not a power loss, unless
    // the log is synced another way (Durability::Second: a thread of its
    // own, see super::durability); FULL fsyncs the log on every commit.
    // Small pages: each commit appends a few hundred bytes to the dedupe
    // log and bumps a few counters, and the WAL writes whole pages, so
    // 1 KiB pages write a quarter of the bytes of the default 4 KiB.
    // (Only takes effect when the database is created.)
    conn.pragma_update(None, "page_size", 1024)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let synchronous = match fsync {
        Durability::Commit => "FULL",
        Durability::Second | Durability::None => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    // Checkpoint every 16 MiB of log rather than every 1,000 pages: the hot
    // pages (counters, the log's tail) are rewritten in every commit, and a
    // checkpoint copies each only once however often it changed.
    conn.pragma_update(None, "wal_autocheckpoint", 16 * 1024)?;
    let found = check_version(&conn)?;
    conn.execute_batch(SCHEMA)?;
    if found < SCHEMA_VERSION {
        // Every other change up to this version only adds tables and
        // indexes, which the schema above just created.
        let upgrade = conn.unchecked_transaction()?;
        if found < LOGGED_MEMBERS && has_table(&upgrade, "members")? {
            let hashed = found >= HASHED_MEMBERS;
            let moved = convert_members_table(&upgrade, |member| match hashed {
                true => member.to_owned(),
                // No client id stays at rest.
                false => hashed_legacy_member(member),
            })?;
            if moved > 0 {
                tracing::info!(memberships = moved, "memberships moved to the log");
            }
        }
        upgrade.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        upgrade.commit()?;
    }
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

fn cannot_open(path: &Path, err: rusqlite::Error) -> StoreError {
    StoreError::sqlite(format!("cannot open database {}", path.display()), err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Days are UTC days, and the millisecond before the epoch is the day
    /// before it (not day 0, as truncating division would say).
    #[test]
    fn days_start_at_utc_midnight() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(MS_PER_DAY - 1), 0);
        assert_eq!(day_of(MS_PER_DAY), 1);
        assert_eq!(day_of(-1), -1);
    }

    /// Opening a store of layout 1 or 2 moves its `members` table into the
    /// log, each value kept: layout 1's client ids replaced by their
    /// hashes, layout 2's hashes as they are.
    #[test]
    fn memberships_move_to_the_log_on_upgrade() {
        use super::super::memberships::Memberships;
        let alice = "alice@example.com";
        let hashed = hashed_legacy_member(alice);
        for (version, stored) in [(1, alice.to_owned()), (2, hashed.clone())] {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("lamed.db");
            let old = Connection::open(&path).expect("create");
            old.execute_batch(&format!(
                "CREATE TABLE members (namespace TEXT NOT NULL, experiment TEXT NOT NULL,
                    member TEXT NOT NULL, value TEXT NOT NULL,
                    PRIMARY KEY (namespace, experiment, member)) WITHOUT ROWID;
                 INSERT INTO members VALUES ('sixpack', 'e', '{stored}', 'red');
                 INSERT INTO members VALUES ('sixpack', 'f', '{stored}', 'blue');
                 PRAGMA user_version = {version};"
            ))
            .expect("old rows");
            drop(old);
            let conn = open_writer_connection(&path, Durability::default()).expect("upgrade");
            assert!(!has_table(&conn, "members").unwrap(), "layout {version}");
            let members = Memberships::load(&conn).expect("load").committed();
            assert_eq!(members.get("sixpack", "e", &hashed).as_deref(), Some("red"));
            assert_eq!(
                members.get("sixpack", "f", &hashed).as_deref(),
                Some("blue")
            );
            assert_eq!(members.len(), 2, "layout {version}");
            let raw: Vec<Vec<u8>> = conn
                .prepare("SELECT entries FROM member_log")
                .expect("query")
                .query_map([], |row| row.get(0))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("log");
            assert!(raw
                .iter()
                .all(|row| !String::from_utf8_lossy(row).contains("alice")));
        }
    }

    /// A database of a newer layout is refused, for writing and reading,
    /// naming both versions; an older one is upgraded to this version.
    #[test]
    fn newer_layouts_are_refused_older_ones_upgraded() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("lamed.db");
        let old = Connection::open(&path).expect("create");
        old.execute_batch("CREATE TABLE counters (x)")
            .expect("old table");
        drop(old);
        let conn = open_writer_connection(&path, Durability::default()).expect("upgrade");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("pretend a newer lamed wrote it");
        drop(conn);
        for refused in [
            open_writer_connection(&path, Durability::default()).map(drop),
            open_reader_connection(&path).map(drop),
        ] {
            let err = refused.expect_err("newer layout refused");
            let text = format!("{:#}", anyhow::Error::new(err));
            assert!(
                text.contains(&format!(
                    "version {}, newer than this lamed's {SCHEMA_VERSION}",
                    SCHEMA_VERSION + 1
                )),
                "{text}"
            );
        }
    }
}
