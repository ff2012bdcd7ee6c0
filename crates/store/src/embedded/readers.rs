//! The read connections: a few, so that reads run side by side (WAL lets
//! any number of readers run beside the writer) instead of queueing behind
//! one connection, where a dashboard's report reads made every
//! `/participate`, `/convert` and `/weights` wait.

use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;

use super::schema::open_reader_connection;
use crate::StoreError;

/// Read connections per store. Four: reads run in `spawn_blocking`, so
/// each busy connection is a busy thread, and the machines Lamed runs on
/// have two to four cores, so more connections would add CPU contention,
/// not throughput; yet four let a few slow reads (a dashboard's reports)
/// leave connections free for the short ones of the public endpoints.
/// Each connection keeps its own page cache (SQLite's default, up to
/// 2 MiB), so four cost at most 8 MiB.
pub(super) const READ_CONNECTIONS: usize = 4;

/// A fixed set of read-only connections, lent to one read at a time.
#[derive(Debug)]
pub(super) struct Readers {
    /// The connections no read holds. A stack: the connection used last,
    /// whose cache is warmest, is lent first. std Mutex: held to take or
    /// give back a connection only, inside `spawn_blocking`.
    idle: Mutex<Vec<Connection>>,
    /// Wakes a read waiting for a connection when one is given back.
    given_back: Condvar,
}

impl Readers {
    /// Opens [`READ_CONNECTIONS`] connections to the database at `path`,
    /// each set up by `prepare` (the read-only store's stand-in tables,
    /// which live in each connection).
    pub(super) fn open(
        path: &Path,
        prepare: impl Fn(&Connection) -> Result<(), StoreError>,
    ) -> Result<Self, StoreError> {
        let idle = (0..READ_CONNECTIONS)
            .map(|_| {
                let conn = open_reader_connection(path)?;
                prepare(&conn)?;
                Ok(conn)
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Readers {
            idle: Mutex::new(idle),
            given_back: Condvar::new(),
        })
    }

    /// Runs `query` on an idle connection, waiting for one when every one
    /// is busy. Blocks: call it inside `spawn_blocking`.
    pub(super) fn with<T>(&self, query: impl FnOnce(&Connection) -> T) -> T {
        let mut idle = self.idle();
        let conn = loop {
            match idle.pop() {
                Some(conn) => break conn,
                None => {
                    idle = self
                        .given_back
                        .wait(idle)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            }
        };
        drop(idle);
        let lent = Lent {
            readers: self,
            conn: Some(conn),
        };
        query(lent.conn.as_ref().expect("lent until dropped"))
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        // The list stays whole whatever panicked: it is only pushed to
        // and popped from.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection lent to a read: given back when the read ends, also when
/// it panics (a read's statements are dropped as it unwinds, so the
/// connection stays usable).
struct Lent<'a> {
    readers: &'a Readers,
    /// `Some` until given back.
    conn: Option<Connection>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.readers.idle().push(conn);
            self.readers.given_back.notify_one();
        }
    }
}
