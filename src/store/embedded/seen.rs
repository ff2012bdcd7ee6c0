//! The dedupe memory of the embedded store: which events were seen, and
//! when first.
//!
//! Lookups go to an in-memory map; the durable copy is an append-only log
//! table written in the same transaction as the counters. Appending touches
//! only the last page of the table, where a keyed table would dirty one
//! random page per event; and the log's order is the order of first
//! sightings, so expired rows are always at its head and pruning is a
//! range delete. The map ([`DedupeTable`], 16 bytes a slot) is rebuilt
//! from the log on start.

use rusqlite::{Connection, Transaction};

use super::dedupe_table::DedupeTable;

/// Most rows written by one INSERT statement (a power of two).
const INSERT_CHUNK_ROWS: usize = 32;

/// Rows the pruner removes per step, to keep each step short.
const PRUNE_STEP_ROWS: usize = 20_000;

/// The remembered events of the current window.
#[derive(Debug, Default)]
pub(super) struct SeenIndex {
    /// Dedupe key → millisecond of first sighting.
    first_seen: DedupeTable,
    /// What this transaction changed (the slot each insert replaced), to
    /// undo if it rolls back.
    undo: Vec<(u128, Option<u128>)>,
    /// Log rows of this transaction not yet written.
    pending: Vec<([u8; 16], i64)>,
}

impl SeenIndex {
    /// Loads every row still inside the window (later rows win).
    pub(super) fn load(conn: &Connection, cutoff: i64) -> rusqlite::Result<Self> {
        let mut index = SeenIndex::default();
        let mut stmt =
            conn.prepare("SELECT key, first_seen FROM seen WHERE first_seen > ?1 ORDER BY id")?;
        let mut rows = stmt.query([cutoff])?;
        while let Some(row) = rows.next()? {
            let key: Vec<u8> = row.get(0)?;
            if let Some(key) = key_from_bytes(&key) {
                index.first_seen.insert(key, row.get(1)?);
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
        self.pending.push((key, now));
        true
    }

    /// Appends the rows remembered since the last commit to the log, many
    /// rows per statement (chunks of 32, then 16, 8, ... 1): per-statement
    /// overhead, not the insert itself, dominates for rows this small.
    pub(super) fn write_pending(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let mut rows = self.pending.as_slice();
        let mut chunk = INSERT_CHUNK_ROWS;
        while !rows.is_empty() {
            while chunk > rows.len() {
                chunk /= 2;
            }
            let sql = format!(
                "INSERT INTO seen (key, first_seen) VALUES {}",
                vec!["(?, ?)"; chunk].join(", ")
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            let (now, rest) = rows.split_at(chunk);
            for (i, (key, first_seen)) in now.iter().enumerate() {
                stmt.raw_bind_parameter(2 * i + 1, &key[..])?;
                stmt.raw_bind_parameter(2 * i + 2, first_seen)?;
            }
            stmt.raw_execute()?;
            rows = rest;
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
    /// their map entries (unless the key was seen again since). Returns the
    /// rows removed.
    pub(super) fn prune(&mut self, conn: &Connection, cutoff: i64) -> rusqlite::Result<usize> {
        let mut last_expired = None;
        let mut expired = Vec::new();
        {
            let mut stmt =
                conn.prepare_cached("SELECT id, key, first_seen FROM seen ORDER BY id LIMIT ?1")?;
            let mut rows = stmt.query([PRUNE_STEP_ROWS as i64])?;
            while let Some(row) = rows.next()? {
                let first_seen: i64 = row.get(2)?;
                if first_seen > cutoff {
                    break;
                }
                last_expired = Some(row.get::<_, i64>(0)?);
                let key: Vec<u8> = row.get(1)?;
                if let Some(key) = key_from_bytes(&key) {
                    expired.push((key, first_seen));
                }
            }
        }
        let Some(last) = last_expired else {
            return Ok(0);
        };
        let removed = conn.execute("DELETE FROM seen WHERE id <= ?1", [last])?;
        for (key, first_seen) in expired {
            self.first_seen.forget(key, first_seen);
        }
        Ok(removed)
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

fn key_from_bytes(bytes: &[u8]) -> Option<u128> {
    <[u8; 16]>::try_from(bytes).ok().map(u128::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::schema::open_writer_connection;

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
