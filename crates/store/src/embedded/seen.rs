//! The dedupe memory of the embedded store: which events were seen, and
//! when first.
//!
//! Lookups go to an in-memory table ([`DedupeTable`], 16 bytes a slot); the
//! durable copy is an append-only log table written in the same transaction
//! as the counters. Every event a commit sees first shares the commit's
//! millisecond, so a log row holds one millisecond and the 16-byte hashes
//! first seen then: about 16 bytes per event on disk under concurrent load,
//! where a row per event took ~34. Appending touches only the last page of
//! the table, where a keyed table would dirty one random page per event;
//! and the log's order is the order of first sightings, so expired rows
//! are always at its head and pruning is a range delete. The table is
//! rebuilt from the log on start.

use rusqlite::{params, Connection, Transaction};

use super::dedupe_table::DedupeTable;

/// Hashes the pruner forgets per step (whole rows, at least one), to keep
/// each step short.
const PRUNE_STEP_KEYS: usize = 20_000;

/// Bytes of one hash in a log row.
const KEY_BYTES: usize = 16;

/// The remembered events of the current window.
#[derive(Debug, Default)]
pub(super) struct SeenIndex {
    /// Dedupe key → millisecond of first sighting.
    first_seen: DedupeTable,
    /// What this transaction changed (the slot each insert replaced), to
    /// undo if it rolls back.
    undo: Vec<(u128, Option<u128>)>,
    /// Log rows of this transaction not yet written: a millisecond and the
    /// hashes first seen then, concatenated.
    pending: Vec<(i64, Vec<u8>)>,
}

impl SeenIndex {
    /// Loads every row still inside the window (later rows win), after
    /// converting a log of the older one-row-per-event layout.
    pub(super) fn load(conn: &Connection, cutoff: i64) -> rusqlite::Result<Self> {
        convert_legacy_log(conn)?;
        let bytes: i64 = conn.query_row(
            "SELECT coalesce(sum(length(keys)), 0) FROM seen_log WHERE first_seen > ?1",
            [cutoff],
            |row| row.get(0),
        )?;
        let mut index = SeenIndex {
            first_seen: DedupeTable::with_capacity(bytes as usize / KEY_BYTES),
            ..SeenIndex::default()
        };
        let mut stmt = conn
            .prepare("SELECT first_seen, keys FROM seen_log WHERE first_seen > ?1 ORDER BY id")?;
        let mut rows = stmt.query([cutoff])?;
        while let Some(row) = rows.next()? {
            let first_seen: i64 = row.get(0)?;
            for key in keys_of(row.get_ref(1)?.as_blob()?) {
                index.first_seen.insert(key, first_seen);
            }
        }
        Ok(index)
    }

    /// Remembers `key` as seen at `now` unless it was first seen after
    /// `cutoff`; returns whether it is new. The log row is written by
    /// [`SeenIndex::write_pending`] in the same transaction.
    pub(super) fn remember(&mut self, key: [u8; 16], now: i64, cutoff: i64) -> bool {
        let id = u128::from_le_bytes(key);
        if self
            .first_seen
            .first_seen(id, now)
            .is_some_and(|seen| seen > cutoff)
        {
            return false;
        }
        let replaced = self.first_seen.insert(id, now);
        self.undo.push((id, replaced));
        match self.pending.last_mut() {
            Some((ms, keys)) if *ms == now => keys.extend_from_slice(&key),
            _ => self.pending.push((now, key.to_vec())),
        }
        true
    }

    /// Appends the rows remembered since the last commit to the log: one
    /// row per millisecond (one, for a transaction's single "now").
    pub(super) fn write_pending(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let mut stmt =
            tx.prepare_cached("INSERT INTO seen_log (first_seen, keys) VALUES (?1, ?2)")?;
        for (first_seen, keys) in &self.pending {
            stmt.execute(params![first_seen, keys])?;
        }
        self.pending.clear();
        Ok(())
    }

    /// The transaction committed: its changes stay.
    pub(super) fn commit(&mut self) {
        self.undo.clear();
        self.pending.clear();
    }

    /// The transaction rolled back: forget what it remembered.
    pub(super) fn rollback(&mut self) {
        self.pending.clear();
        for (id, replaced) in self.undo.drain(..).rev() {
            self.first_seen.restore(id, replaced);
        }
    }

    /// Deletes up to one step of expired rows from the head of the log, and
    /// their table entries (unless the key was seen again since). Returns
    /// the hashes removed.
    pub(super) fn prune(&mut self, conn: &Connection, cutoff: i64) -> rusqlite::Result<usize> {
        let mut last_expired = None;
        let mut expired: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut keys = 0;
        {
            let mut stmt =
                conn.prepare_cached("SELECT id, first_seen, keys FROM seen_log ORDER BY id")?;
            let mut rows = stmt.query([])?;
            while keys < PRUNE_STEP_KEYS {
                let Some(row) = rows.next()? else { break };
                let first_seen: i64 = row.get(1)?;
                if first_seen > cutoff {
                    break;
                }
                last_expired = Some(row.get::<_, i64>(0)?);
                let blob: Vec<u8> = row.get(2)?;
                keys += blob.len() / KEY_BYTES;
                expired.push((first_seen, blob));
            }
        }
        let Some(last) = last_expired else {
            return Ok(0);
        };
        conn.execute("DELETE FROM seen_log WHERE id <= ?1", [last])?;
        for (first_seen, blob) in &expired {
            for key in keys_of(blob) {
                self.first_seen.forget(key, *first_seen);
            }
        }
        Ok(keys)
    }

    /// Events remembered in memory.
    pub(super) fn len(&self) -> usize {
        self.first_seen.len()
    }
}

/// Events first seen at or before the returned millisecond are outside
/// the window; with no window (0) nothing is.
pub(super) fn cutoff(now_ms: i64, window_ms: u64) -> i64 {
    if window_ms == 0 {
        i64::MIN
    } else {
        now_ms - window_ms as i64
    }
}

/// The hashes of a log row (a trailing partial hash, which no write makes,
/// is ignored).
fn keys_of(blob: &[u8]) -> impl Iterator<Item = u128> + '_ {
    blob.chunks_exact(KEY_BYTES)
        .map(|key| u128::from_le_bytes(key.try_into().expect("chunks of KEY_BYTES")))
}

/// Converts the log of a store written before `seen_log` (table `seen`,
/// one row per event) into `seen_log` rows, in order, in one transaction,
/// and drops it.
fn convert_legacy_log(conn: &Connection) -> rusqlite::Result<()> {
    let legacy: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'seen'",
        [],
        |row| row.get(0),
    )?;
    if !legacy {
        return Ok(());
    }
    let tx = conn.unchecked_transaction()?;
    {
        let mut read = tx.prepare("SELECT first_seen, key FROM seen ORDER BY id")?;
        let mut write = tx.prepare("INSERT INTO seen_log (first_seen, keys) VALUES (?1, ?2)")?;
        let mut rows = read.query([])?;
        let mut group: Option<(i64, Vec<u8>)> = None;
        while let Some(row) = rows.next()? {
            let first_seen: i64 = row.get(0)?;
            let key = row.get_ref(1)?.as_blob()?;
            match &mut group {
                Some((ms, keys)) if *ms == first_seen => keys.extend_from_slice(key),
                _ => {
                    if let Some((ms, keys)) = group.take() {
                        write.execute(params![ms, keys])?;
                    }
                    group = Some((first_seen, key.to_vec()));
                }
            }
        }
        if let Some((ms, keys)) = group {
            write.execute(params![ms, keys])?;
        }
    }
    tx.execute("DROP TABLE seen", [])?;
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::schema::open_writer_connection;
    use crate::Durability;

    /// Expired rows leave the log and the map; live ones and keys seen
    /// again after expiring stay; the map is rebuilt from the log on load.
    #[test]
    fn pruning_removes_only_expired_rows() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut conn = open_writer_connection(&dir.path().join("p.db"), Durability::None).unwrap();
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
            .query_row("SELECT count(*) FROM seen_log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
        let reloaded = SeenIndex::load(&conn, old).unwrap();
        assert_eq!(reloaded.len(), 1);
    }

    /// A store written with one log row per event opens with the same
    /// memory, its log converted to one row per millisecond.
    #[test]
    fn a_legacy_log_is_converted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = open_writer_connection(&dir.path().join("l.db"), Durability::None).unwrap();
        conn.execute_batch(
            "CREATE TABLE seen (id INTEGER PRIMARY KEY, key BLOB NOT NULL, first_seen INTEGER NOT NULL)",
        )
        .unwrap();
        for (key, first_seen) in [(1u8, 10), (2, 10), (3, 20), (1, 30)] {
            conn.execute(
                "INSERT INTO seen (key, first_seen) VALUES (?1, ?2)",
                params![vec![key; 16], first_seen],
            )
            .unwrap();
        }
        let mut index = SeenIndex::load(&conn, 15).unwrap();
        // Key 1 was seen again at 30; key 2 expired with the cutoff at 15.
        assert_eq!(index.len(), 2);
        assert!(!index.remember([1; 16], 40, 15));
        assert!(!index.remember([3; 16], 40, 15));
        assert!(index.remember([2; 16], 40, 15));
        let rows: Vec<(i64, usize)> = conn
            .prepare("SELECT first_seen, length(keys) FROM seen_log ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, [(10, 32), (20, 16), (30, 16)]);
        let legacy: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'seen'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(legacy, 0);
    }

    /// A rolled-back transaction forgets what it remembered.
    #[test]
    fn rollback_forgets() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut conn = open_writer_connection(&dir.path().join("r.db"), Durability::None).unwrap();
        let mut seen = SeenIndex::default();
        let tx = conn.transaction().unwrap();
        assert!(seen.remember([7; 16], 5, i64::MIN));
        seen.write_pending(&tx).unwrap();
        drop(tx);
        seen.rollback();
        assert!(seen.remember([7; 16], 6, i64::MIN));
    }
}
