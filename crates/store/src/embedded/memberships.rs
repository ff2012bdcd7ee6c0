//! The memberships of the embedded store: the value (a Sixpack
//! alternative) each member of an experiment joined with, kept as long as
//! the experiment.
//!
//! Lookups go to memory ([`CommittedMembers`], ~20 bytes a membership);
//! the durable copy is an append-only log table, `member_log`, written in
//! the same transaction as the counts, as the dedupe memory's is (see
//! [`super::seen`]). A commit writes one log row per experiment it added
//! members to: the new members' 16-byte keys and values, concatenated.
//! Appending touches the last page of the table, where a table keyed by
//! member dirtied a random page per join (and a checkpoint wrote it
//! again): that was most of what a participation cost the writer. The
//! index is rebuilt from the log on start.
//!
//! Readers see only committed memberships: the writer keeps a
//! transaction's new members aside and publishes them after the commit
//! (a rollback drops them), as it publishes records.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use rusqlite::{params, Connection, OptionalExtension};

use lamed_core::names::hash_parts;

/// A membership's key: the 16 bytes of a hashed member (Sixpack's
/// members are already hashes, written as 32 hex digits), or of the hash
/// of any other member string.
type MemberKey = [u8; 16];

/// An experiment's name: namespace, experiment.
type ExperimentKey = (String, String);

/// Bytes of a key in a log row.
const KEY_BYTES: usize = 16;

/// Bytes of a value's length in a log row (little-endian).
const LENGTH_BYTES: usize = 2;

/// Most log rows one write of a delete removes. A row holds the members
/// one commit added to the experiment (up to a commit's events), so a
/// chunk stays about as short as the 1,000 rows of the other tables'.
pub(super) const DELETE_CHUNK_LOG_ROWS: usize = 16;

/// The key a member is kept under.
pub(super) fn member_key(member: &str) -> MemberKey {
    let mut key = [0; KEY_BYTES];
    if member.len() == 2 * KEY_BYTES && hex_decode(member, &mut key) {
        return key;
    }
    key.copy_from_slice(&hash_parts(&[b"lamed member", member.as_bytes()])[..KEY_BYTES]);
    key
}

/// Decodes lowercase hex into `out`; false when `hex` is not that.
fn hex_decode(hex: &str, out: &mut [u8]) -> bool {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(high), Some(low)) => *byte = high << 4 | low,
            _ => return false,
        }
    }
    true
}

/// One experiment's memberships: each distinct value once, and each
/// member's index into them.
#[derive(Debug, Default)]
struct ExperimentMembers {
    values: Vec<String>,
    members: HashMap<MemberKey, u32>,
}

impl ExperimentMembers {
    fn get(&self, key: &MemberKey) -> Option<&str> {
        self.members
            .get(key)
            .map(|&index| self.values[index as usize].as_str())
    }

    /// Adds a member not yet held.
    fn insert(&mut self, key: MemberKey, value: &str) {
        let index = match self.values.iter().position(|held| held == value) {
            Some(index) => index,
            None => {
                self.values.push(value.to_owned());
                self.values.len() - 1
            }
        };
        self.members.insert(key, index as u32);
    }
}

/// The committed memberships, shared by the writer and the readers.
#[derive(Debug, Default)]
pub(super) struct CommittedMembers {
    experiments: RwLock<HashMap<ExperimentKey, ExperimentMembers>>,
}

impl CommittedMembers {
    /// The value `member` joined `experiment` with, if it did.
    pub(super) fn get(&self, namespace: &str, experiment: &str, member: &str) -> Option<String> {
        self.get_key(namespace, experiment, &member_key(member))
    }

    fn get_key(&self, namespace: &str, experiment: &str, key: &MemberKey) -> Option<String> {
        let experiments = self
            .experiments
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        experiments
            .get(&(namespace.to_owned(), experiment.to_owned()))?
            .get(key)
            .map(str::to_owned)
    }

    /// How many members the experiment holds.
    pub(super) fn count(&self, namespace: &str, experiment: &str) -> u64 {
        let experiments = self
            .experiments
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        experiments
            .get(&(namespace.to_owned(), experiment.to_owned()))
            .map_or(0, |held| held.members.len() as u64)
    }

    /// Memberships held, all experiments together.
    pub(super) fn len(&self) -> usize {
        let experiments = self
            .experiments
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        experiments.values().map(|held| held.members.len()).sum()
    }
}

/// What a transaction changed, published after its commit.
#[derive(Debug, Default)]
struct Pending {
    /// New memberships, by experiment.
    added: HashMap<ExperimentKey, HashMap<MemberKey, String>>,
    /// Experiments deleted (their memberships go before `added` applies).
    forgotten: Vec<ExperimentKey>,
}

/// The writer's side: the committed memberships and what the open
/// transaction adds to them.
#[derive(Debug, Default)]
pub(super) struct Memberships {
    committed: std::sync::Arc<CommittedMembers>,
    pending: Pending,
}

impl Memberships {
    /// Loads every membership from the log (converting the `members`
    /// table of an older layout first: see [`convert_members_table`]).
    pub(super) fn load(conn: &Connection) -> rusqlite::Result<Self> {
        let mut experiments: HashMap<ExperimentKey, ExperimentMembers> = HashMap::new();
        let mut stmt = conn.prepare("SELECT namespace, experiment, entries FROM member_log")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let held = experiments.entry((row.get(0)?, row.get(1)?)).or_default();
            for (key, value) in entries(row.get_ref(2)?.as_blob()?)? {
                held.insert(key, value);
            }
        }
        Ok(Memberships {
            committed: std::sync::Arc::new(CommittedMembers {
                experiments: RwLock::new(experiments),
            }),
            pending: Pending::default(),
        })
    }

    /// Where readers find the committed memberships.
    pub(super) fn committed(&self) -> std::sync::Arc<CommittedMembers> {
        std::sync::Arc::clone(&self.committed)
    }

    /// The value `member` holds in the experiment, this transaction's
    /// joins included.
    pub(super) fn held(&self, namespace: &str, experiment: &str, member: &str) -> Option<String> {
        let key = member_key(member);
        let experiment_key = (namespace.to_owned(), experiment.to_owned());
        if let Some(value) = self
            .pending
            .added
            .get(&experiment_key)
            .and_then(|added| added.get(&key))
        {
            return Some(value.clone());
        }
        if self.pending.forgotten.contains(&experiment_key) {
            return None;
        }
        self.committed.get_key(namespace, experiment, &key)
    }

    /// Keeps `member` with `value` in this transaction; the caller has
    /// checked that it holds nothing ([`Memberships::held`]).
    pub(super) fn add(&mut self, namespace: &str, experiment: &str, member: &str, value: &str) {
        self.pending
            .added
            .entry((namespace.to_owned(), experiment.to_owned()))
            .or_default()
            .insert(member_key(member), value.to_owned());
    }

    /// Drops the experiment's memberships in this transaction (the
    /// caller deletes its log rows).
    pub(super) fn forget(&mut self, namespace: &str, experiment: &str) {
        let experiment_key = (namespace.to_owned(), experiment.to_owned());
        self.pending.added.remove(&experiment_key);
        self.pending.forgotten.push(experiment_key);
    }

    /// Writes a log row per experiment that gained members, in the open
    /// transaction `conn` is in.
    pub(super) fn write_pending(&self, conn: &Connection) -> rusqlite::Result<()> {
        let mut append = conn.prepare_cached(
            "INSERT INTO member_log (namespace, experiment, members, entries)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for ((namespace, experiment), added) in &self.pending.added {
            let mut blob = Vec::with_capacity(added.len() * (KEY_BYTES + LENGTH_BYTES + 8));
            for (key, value) in added {
                blob.extend_from_slice(key);
                let length = u16::try_from(value.len()).map_err(|_| {
                    rusqlite::Error::ToSqlConversionFailure(
                        "a membership's value is too long".into(),
                    )
                })?;
                blob.extend_from_slice(&length.to_le_bytes());
                blob.extend_from_slice(value.as_bytes());
            }
            append.execute(params![namespace, experiment, added.len() as i64, blob])?;
        }
        Ok(())
    }

    /// The transaction committed: readers see its changes from now on.
    pub(super) fn commit(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        if pending.added.is_empty() && pending.forgotten.is_empty() {
            return;
        }
        let mut experiments = self
            .committed
            .experiments
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for experiment in &pending.forgotten {
            experiments.remove(experiment);
        }
        for (experiment, added) in pending.added {
            let held = experiments.entry(experiment).or_default();
            for (key, value) in added {
                held.insert(key, &value);
            }
        }
    }

    /// The transaction rolled back: its changes never happened.
    pub(super) fn rollback(&mut self) {
        self.pending = Pending::default();
    }
}

/// The (key, value) entries of a log row.
fn entries(blob: &[u8]) -> rusqlite::Result<Vec<(MemberKey, &str)>> {
    let corrupt = || {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            "a membership log row is cut short".into(),
        )
    };
    let mut entries = Vec::new();
    let mut rest = blob;
    while !rest.is_empty() {
        if rest.len() < KEY_BYTES + LENGTH_BYTES {
            return Err(corrupt());
        }
        let (key, tail) = rest.split_at(KEY_BYTES);
        let (length, tail) = tail.split_at(LENGTH_BYTES);
        let length = usize::from(u16::from_le_bytes([length[0], length[1]]));
        if tail.len() < length {
            return Err(corrupt());
        }
        let (value, tail) = tail.split_at(length);
        let value = std::str::from_utf8(value).map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, err.into())
        })?;
        entries.push((key.try_into().expect("16 bytes"), value));
        rest = tail;
    }
    Ok(entries)
}

/// The value `member` holds, read from the log on disk: for a read-only
/// store, which has no index. Scans the experiment's rows.
pub(super) fn read_membership(
    conn: &Connection,
    namespace: &str,
    experiment: &str,
    member: &str,
) -> rusqlite::Result<Option<String>> {
    let key = member_key(member);
    let mut stmt = conn.prepare_cached(
        "SELECT entries FROM member_log WHERE namespace = ?1 AND experiment = ?2",
    )?;
    let mut rows = stmt.query(params![namespace, experiment])?;
    while let Some(row) = rows.next()? {
        if let Some((_, value)) = entries(row.get_ref(0)?.as_blob()?)?
            .into_iter()
            .find(|(held, _)| *held == key)
        {
            return Ok(Some(value.to_owned()));
        }
    }
    // A store an older lamed still serves keeps them in its table.
    conn.prepare_cached(
        "SELECT value FROM members WHERE namespace = ?1 AND experiment = ?2 AND member = ?3",
    )?
    .query_row(params![namespace, experiment, member], |row| row.get(0))
    .optional()
}

/// How many members the experiment holds, read from disk (read-only
/// stores; an older layout's table counted too).
pub(super) fn read_member_count(
    conn: &Connection,
    namespace: &str,
    experiment: &str,
) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "SELECT (SELECT coalesce(sum(members), 0) FROM member_log
                 WHERE namespace = ?1 AND experiment = ?2)
              + (SELECT count(*) FROM members WHERE namespace = ?1 AND experiment = ?2)",
    )?
    .query_row(params![namespace, experiment], |row| row.get::<_, i64>(0))
    .map(|n| n as u64)
}

/// Moves the rows of the `members` table (layouts up to 2) into the log,
/// each member as `key_of` names it, then drops the table; in the
/// caller's transaction. Answers how many moved.
pub(super) fn convert_members_table(
    conn: &Connection,
    key_of: impl Fn(&str) -> String,
) -> rusqlite::Result<usize> {
    let rows: Vec<(String, String, String, String)> = conn
        .prepare(
            "SELECT namespace, experiment, member, value FROM members
             ORDER BY namespace, experiment",
        )?
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut log = Memberships::default();
    for (namespace, experiment, member, value) in &rows {
        log.add(namespace, experiment, &key_of(member), value);
    }
    log.write_pending(conn)?;
    conn.execute("DROP TABLE members", [])?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_members_keep_their_bytes_and_others_are_hashed() {
        let hex = "00ff10a0b1c2d3e4f5061728394a5b6c";
        assert_eq!(member_key(hex)[..2], [0x00, 0xff]);
        assert_eq!(member_key(hex)[15], 0x6c);
        // Upper case, short or not hex: hashed, and apart from each other.
        let others = ["00FF10A0B1C2D3E4F5061728394A5B6C", "alice", "zz"].map(member_key);
        assert_ne!(others[0], member_key(hex));
        assert_ne!(others[1], others[2]);
    }

    #[test]
    fn log_rows_round_trip_and_short_rows_are_refused() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE member_log (id INTEGER PRIMARY KEY, namespace TEXT NOT NULL,
             experiment TEXT NOT NULL, members INTEGER NOT NULL, entries BLOB NOT NULL)",
        )
        .unwrap();
        let mut log = Memberships::load(&conn).unwrap();
        log.add("n", "e", "alice", "red");
        log.add("n", "e", "bob", "blue");
        log.add("n", "f", "alice", "");
        assert_eq!(log.held("n", "e", "alice").as_deref(), Some("red"));
        assert_eq!(
            log.committed().get("n", "e", "alice"),
            None,
            "not committed yet"
        );
        {
            let tx = conn.unchecked_transaction().unwrap();
            log.write_pending(&tx).unwrap();
            tx.commit().unwrap();
        }
        log.commit();
        assert_eq!(
            log.committed().get("n", "e", "bob").as_deref(),
            Some("blue")
        );
        let loaded = Memberships::load(&conn).unwrap();
        assert_eq!(loaded.committed().count("n", "e"), 2);
        assert_eq!(
            loaded.committed().get("n", "f", "alice").as_deref(),
            Some("")
        );
        assert_eq!(read_member_count_log(&conn), 3);
        assert!(entries(&[1, 2, 3]).is_err());
        let mut cut = vec![0; KEY_BYTES];
        cut.extend_from_slice(&5u16.to_le_bytes());
        cut.extend_from_slice(b"red");
        assert!(entries(&cut).is_err());
    }

    fn read_member_count_log(conn: &Connection) -> i64 {
        conn.query_row("SELECT sum(members) FROM member_log", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn a_rollback_forgets_and_a_delete_hides_at_once() {
        let mut log = Memberships::default();
        log.add("n", "e", "alice", "red");
        log.rollback();
        assert_eq!(log.held("n", "e", "alice"), None);
        log.add("n", "e", "alice", "red");
        log.commit();
        log.forget("n", "e");
        assert_eq!(
            log.held("n", "e", "alice"),
            None,
            "deleted in this transaction"
        );
        assert_eq!(log.committed().count("n", "e"), 1, "until it commits");
        log.commit();
        assert_eq!(log.committed().count("n", "e"), 0);
    }
}
