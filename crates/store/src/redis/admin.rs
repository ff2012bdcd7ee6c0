//! Administration: deleting an experiment, importing counters, the health
//! check's write, and closing.

use std::sync::atomic::Ordering;

use super::keys::{invocation, Family, Key};
use super::store::RedisStore;
use crate::StoreError;

/// The keys `delete.lua` gets, in its order: the days, the dedupe meta
/// (whose last day counted it forgets), then the keys it removes, every
/// one but the meta and the fence, of which the first [`DELETE_TELLING`] tell whether the
/// experiment existed.
const DELETE_KEYS: [Key; 13] = [
    Key::Days,
    Key::Meta,
    Key::Variants,
    Key::Totals,
    Key::Imported,
    Key::Registry,
    Key::Goals,
    Key::Slots,
    Key::Days,
    Key::Members,
    Key::Values,
    Key::Weights,
    Key::Segments,
];

/// How many of the keys `delete.lua` removes tell whether the experiment
/// existed: its variants, totals, imported bases and registry record.
const DELETE_TELLING: usize = 4;

/// The keys `import.lua` gets, in its order.
const IMPORT_KEYS: [Key; 3] = [Key::Variants, Key::Goals, Key::Imported];

impl RedisStore {
    /// Removes an experiment's counters (`delete.lua`), then takes its
    /// listing back unless it exists again
    /// ([`unregister`](Self::unregister)); true when it existed.
    ///
    /// Why a track on another instance counts either in the experiment
    /// deleted or in one that stays listed, never in a hidden one: its
    /// script runs either before `delete.lua` (the event is deleted with
    /// the experiment) or after it, when it finds no experiment and
    /// creates one only with a registration numbered above the fence: the
    /// take-back then either finds it and keeps it listed, or marked it
    /// before that registration, which then kept the listing or listed it
    /// anew (see `register.rs`).
    /// Taking the listing back before `delete.lua` instead would leave
    /// listed an experiment that a concurrent registration listed again
    /// and whose event then counted just before `delete.lua`, which exists
    /// no more.
    pub(super) async fn delete(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<bool, StoreError> {
        let existed = self.delete_keys(namespace, experiment).await?;
        self.unregister(namespace, experiment).await?;
        Ok(existed)
    }

    /// The first step of [`delete`](Self::delete): removes the
    /// experiment's counters (`delete.lua`); true when it existed.
    async fn delete_keys(&self, namespace: &str, experiment: &str) -> Result<bool, StoreError> {
        let base = self.experiment_base(namespace, experiment);
        self.set_known(&base, false);
        let existed: i64 = invocation(&self.inner.scripts.delete, &base, &DELETE_KEYS)
            .arg(Family::Day.prefix_of(&base))
            .arg(DELETE_TELLING)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        Ok(existed == 1)
    }

    /// Sets one counter's imported base (`import.lua`), registering the
    /// experiment without caps; returns the previous base.
    pub(super) async fn import(
        &self,
        namespace: &str,
        experiment: &str,
        event: &str,
        variant: &str,
        count: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.register(namespace, experiment, None).await?;
        let base = self.experiment_base(namespace, experiment);
        let mut conn = self.conn();
        let is_goal = event != lamed_core::model::PARTICIPATE;
        let (previous, _created): (i64, i64) =
            invocation(&self.inner.scripts.import, &base, &IMPORT_KEYS)
                .arg(event)
                .arg(variant)
                .arg(u8::from(is_goal))
                .arg(count)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
        // Listed again in case a concurrent delete unlisted it.
        self.relist(namespace, experiment).await?;
        self.set_known(&base, true);
        Ok(u64::try_from(previous).ok())
    }

    /// The health check: a write that expires, stamped with the store's
    /// clock.
    pub(super) async fn write_heartbeat(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        redis::cmd("SET")
            .arg(self.heartbeat_key())
            .arg(self.inner.options.clock.now_ms())
            .arg("PX")
            .arg(60_000)
            .exec_async(&mut conn)
            .await
            .map_err(|e| self.error(e))
    }

    /// Refuses every later operation. Every answer already waited for
    /// Redis: nothing to flush.
    pub(super) fn mark_closed(&self) {
        self.inner.closed.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::{DELETE_KEYS, DELETE_TELLING};
    use crate::redis::keys::Key;
    use crate::redis::testing::RedisServer;
    use crate::redis::tests::open;
    use crate::redis::RedisStore;
    use crate::Store;
    use lamed_core::clock::Clock;
    use lamed_core::model::{Caps, Event, PARTICIPATE};

    /// A participation in experiment `e` of namespace `n`.
    fn event(uuid: String) -> Event {
        Event {
            segment: Default::default(),
            namespace: "n".into(),
            experiment: "e".into(),
            variant: "v".into(),
            event: PARTICIPATE.into(),
            uuid,
            value: None,
        }
    }

    /// Whether `e` of namespace `n` has counters, and whether it is in
    /// its namespace's list and its namespace in the list of namespaces,
    /// read from the keys themselves (the store's reads skip what is not
    /// listed).
    async fn state(store: &RedisStore) -> (bool, bool, bool) {
        let (counters, listed, namespace): (bool, bool, bool) = redis::pipe()
            .cmd("EXISTS")
            .arg(store.experiment_key("n", "e", Key::Totals))
            .cmd("SISMEMBER")
            .arg(store.namespace_key("n"))
            .arg("e")
            .cmd("SISMEMBER")
            .arg(store.namespaces_key())
            .arg("n")
            .query_async(&mut store.conn())
            .await
            .unwrap();
        (counters, listed, namespace)
    }

    /// A delete removes every key of an experiment but the dedupe meta
    /// (its dedupe memory expires on its own) and the fence (registrations
    /// fenced before may still come: see `register.rs`), so a key added
    /// to the layout is removed too once it is added to `DELETE_KEYS`.
    #[test]
    fn a_delete_names_every_key_but_the_meta_and_the_fence() {
        let removed = &DELETE_KEYS[2..];
        for key in Key::ALL {
            let kept = [Key::Meta, Key::Fence].contains(&key);
            assert_eq!(removed.contains(&key), !kept, "{key:?}");
        }
        assert_eq!(DELETE_KEYS[..2], [Key::Days, Key::Meta]);
        assert!(DELETE_TELLING <= removed.len());
    }

    /// The interleaving a delete used to lose: another instance re-creates
    /// the experiment right after its counters are removed, before the
    /// delete takes the listing back. The delete's fence finds it, and it
    /// stays listed.
    #[tokio::test]
    async fn an_experiment_recreated_during_a_delete_stays_listed() {
        let server = RedisServer::start();
        let a = open(&server.url(), "r", 86_400, Caps::default(), Clock::System).await;
        let b = open(&server.url(), "r", 86_400, Caps::default(), Clock::System).await;
        b.track(vec![event("1".into())]).await.unwrap();
        assert!(a.delete_keys("n", "e").await.unwrap());
        b.track(vec![event("2".into())]).await.unwrap();
        assert!(a.unregister("n", "e").await.unwrap(), "b re-created it");
        assert_eq!(state(&a).await, (true, true, true));
        assert_eq!(a.counters("n").await.unwrap()[0].count, 1);
    }

    /// A delete on one instance racing a track on another, 200 times:
    /// after both finish, the experiment has counters exactly when it is
    /// listed (and its namespace too), and then the reads show it. Both
    /// outcomes of the race occur.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delete_racing_a_track_never_hides_an_experiment() {
        let server = RedisServer::start();
        let a = open(&server.url(), "r", 86_400, Caps::default(), Clock::System).await;
        let b = open(&server.url(), "r", 86_400, Caps::default(), Clock::System).await;
        let (mut kept, mut gone) = (0, 0);
        for round in 0..200 {
            a.track(vec![event(format!("a{round}"))]).await.unwrap();
            let deleting = tokio::spawn({
                let a = a.clone();
                async move { a.delete_experiment("n", "e").await }
            });
            let tracking = tokio::spawn({
                let b = b.clone();
                let event = event(format!("b{round}"));
                async move { b.track(vec![event]).await }
            });
            assert!(deleting.await.unwrap().unwrap(), "round {round}");
            tracking.await.unwrap().unwrap();
            let (counters, listed, namespace) = state(&a).await;
            assert_eq!(
                (listed, namespace),
                (counters, counters),
                "round {round}: counters {counters}, listed {listed}, namespace {namespace}"
            );
            if counters {
                kept += 1;
                assert_eq!(b.experiments("n").await.unwrap(), ["e"]);
                assert_eq!(b.counters("n").await.unwrap()[0].count, 1);
            } else {
                gone += 1;
                assert!(b.experiments("n").await.unwrap().is_empty());
            }
        }
        assert!(kept > 0 && gone > 0, "kept {kept}, gone {gone}: no race");
    }
}
