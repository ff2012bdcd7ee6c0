//! Keeping the database bounded: the writer, between commits, deletes
//! dedupe rows that left the window and folds per-day counters older than
//! the retention into the totals.

use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::schema::day_of;
use super::seen::{cutoff, SeenIndex};
use lamed_core::clock::Clock;

/// How often the writer prunes expired dedupe rows (one bounded step).
const PRUNE_EVERY: Duration = Duration::from_millis(200);

/// How often the writer folds old days.
const FOLD_EVERY: Duration = Duration::from_secs(3600);

/// Per-day counters older than this many days are deleted.
const DAILY_RETENTION_DAYS: i64 = crate::DAILY_RETENTION_DAYS as i64;

/// When the writer last pruned, so that it prunes on schedule however busy
/// it is.
#[derive(Debug)]
pub(super) struct Pruner {
    /// When expired dedupe rows were last pruned.
    last_prune: Instant,
    /// When old per-day rows were last folded (None = never).
    last_fold: Option<Instant>,
}

impl Pruner {
    /// The first dedupe prune is one [`PRUNE_EVERY`] away; the first fold
    /// comes with it.
    pub(super) fn new() -> Self {
        Pruner {
            last_prune: Instant::now(),
            last_fold: None,
        }
    }

    /// Every [`PRUNE_EVERY`], deletes one bounded step of expired dedupe
    /// rows (none with no window, `window_ms` 0), and every [`FOLD_EVERY`]
    /// folds per-day rows past the retention. Failures are logged: the
    /// next step retries.
    pub(super) fn prune_if_due(
        &mut self,
        conn: &mut Connection,
        seen: &mut SeenIndex,
        window_ms: u64,
        clock: &Clock,
    ) {
        if self.last_prune.elapsed() < PRUNE_EVERY {
            return;
        }
        self.last_prune = Instant::now();
        let now = clock.now_ms();
        if window_ms > 0 {
            match seen.prune(conn, cutoff(now, window_ms)) {
                Ok(0) => {}
                Ok(pruned) => tracing::debug!(pruned, "pruned expired dedupe entries"),
                Err(err) => tracing::warn!(cause = %err, "pruning dedupe entries failed"),
            }
        }
        if self
            .last_fold
            .is_some_and(|last| last.elapsed() < FOLD_EVERY)
        {
            return;
        }
        self.last_fold = Some(Instant::now());
        let oldest_day = day_of(now) - DAILY_RETENTION_DAYS;
        if let Err(err) = fold_old_days(conn, oldest_day) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::schema::open_writer_connection;
    use crate::embedded::tests::open;
    use crate::Durability;
    use crate::Store;
    use lamed_core::model::{Caps, Event, PARTICIPATE};

    /// Folding days past the retention into the totals keeps every count.
    #[tokio::test]
    async fn folding_old_days_keeps_totals() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path(), 86_400, Caps::default());
        let event = |uuid: &str| Event {
            segment: Default::default(),
            namespace: "n".into(),
            experiment: "e".into(),
            variant: "a".into(),
            event: PARTICIPATE.into(),
            uuid: uuid.into(),
            value: None,
        };
        store.track(vec![event("1"), event("2")]).await.unwrap();
        store.close().await.unwrap();
        let mut conn =
            open_writer_connection(&dir.path().join("lamed.db"), Durability::None).unwrap();
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
}
