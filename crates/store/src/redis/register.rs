//! Registration: an experiment is listed in its namespace's set, and the
//! namespace in the set of namespaces, each under its cap (`register.lua`
//! adds atomically, so racing instances cannot exceed a cap together).
//! The lists live in other hash slots than the experiment's own keys, so
//! this is a step of its own before counting; a per-process cache of known
//! experiments makes it rare.
//!
//! Only experiments that exist may stay listed, or they would count
//! against the caps: a registration whose events are then not counted
//! (duplicates of an event sent before a delete) is taken back
//! ([`RedisStore::unregister`]), and so is a deleted experiment's.
//!
//! # Why the lists stay right
//!
//! A take-back cannot check that the experiment does not exist and unlist
//! it in one step (other slots). Unlisting first would free its place
//! under the cap for a moment, in which another experiment could take it;
//! checking first would let a creation come between. So each namespace
//! numbers its registrations and take-backs (`P:{N}:seq`), and a take-back
//! of an experiment goes in three steps:
//!
//! 1. in the list's slot, it marks the experiment as leaving, with a new
//!    number `t`; the experiment stays listed, so its place stays taken;
//! 2. in the experiment's slot, in one step (`fence.lua`), it finds the
//!    experiment (then it removes its mark, if still `t`, and is done), or
//!    raises the experiment's fence to `t`;
//! 3. in the list's slot, it unlists the experiment if its mark is still
//!    `t`.
//!
//! A registration answers a number, and the counting script creates an
//! experiment only for a number above its fence; refused, the events are
//! registered again. A registration that finds the experiment listed gets
//! the namespace's last number; one that finds it marked removes the mark
//! and gets a new number, and takes the experiment back in turn unless it
//! creates it; one that finds it unlisted lists it under the cap, with a
//! new number.
//!
//! - **No experiment that exists is unlisted.** Step 3 follows a fence
//!   that found no experiment, so a creation before the fence is found by
//!   it; after it, a creation under a cap needs a registration numbered
//!   above `t`. Every registration before the mark has a lower number;
//!   every one after it removed the mark (step 3 then does nothing), or
//!   came after step 3 and listed the experiment itself. An owner's
//!   record or an import creates without looking at the fence, and lists
//!   the experiment afterwards ([`RedisStore::relist`]): it removes the
//!   mark, or lists it again after step 3. A delete removes the keys
//!   (`delete.lua`), then takes the listing back the same way.
//! - **No cap is exceeded.** An experiment enters its list under the cap,
//!   or by an owner's record or an import (no cap, by design). As a
//!   creation under a cap keeps its registration's listing (above), its
//!   creator never lists the experiment again afterwards; that relisting
//!   once let a creation pass the cap after a take-back unlisted it.
//! - **No registration stays without its experiment** (a place taken by
//!   nothing): whoever listed an experiment, or kept it from a take-back,
//!   takes it back unless one of its events is counted, in a task that
//!   runs to its end when its caller stops waiting (`run_whole`).
//! - **A refused registration gets through.** A listed experiment without
//!   a mark has a fence below its namespace's last number: a fence is a
//!   take-back's number, and a mark is removed with a new number, or by
//!   the newest take-back when it found the experiment (raising no fence).
//!   So registering again gets a number above the fence, unless another
//!   take-back came between.
//!
//! The list of namespaces is kept as before: a take-back that empties a
//! namespace's list unlists the namespace, then lists it again if an
//! experiment was listed meanwhile, and a creator lists its namespace
//! again after creating. So a namespace is listed whenever it lists an
//! experiment, but one listed again that way is not counted under the
//! namespaces cap: a namespace registered in that moment may pass it.

use super::keys::{invocation, Key};
use super::store::RedisStore;
use crate::StoreError;
use lamed_core::model::{CapExceeded, Caps};

/// The keys `fence.lua` gets, in its order.
const FENCE_KEYS: [Key; 2] = [Key::Variants, Key::Fence];

/// What registering an experiment did, with the number a creation of it
/// is allowed with (see the module documentation).
#[derive(Debug)]
pub(super) enum Registration {
    /// It was listed already (it exists, or another request is creating
    /// it).
    Listed(u64),
    /// This call listed it, or kept it from a take-back: the caller takes
    /// it back ([`RedisStore::unregister`]) unless one of its events gets
    /// counted.
    Added(u64),
    /// A cap refused the namespace or the experiment.
    Refused(CapExceeded),
}

/// What `register.lua` answered to `add`.
#[derive(Debug, PartialEq, Eq)]
enum Added {
    Already,
    Now,
    Kept,
    Refused,
}

impl RedisStore {
    /// True when this process has seen the experiment (its key base)
    /// registered.
    pub(super) fn is_known(&self, base: &str) -> bool {
        self.inner
            .known
            .lock()
            .expect("known lock poisoned")
            .contains(base)
    }

    /// Records that the experiment is (or is no longer) registered.
    pub(super) fn set_known(&self, base: &str, known: bool) {
        let mut set = self.inner.known.lock().expect("known lock poisoned");
        if known {
            if !set.contains(base) {
                set.insert(base.to_owned());
            }
        } else {
            set.remove(base);
        }
    }

    /// Adds the namespace and the experiment to their lists, checking the
    /// namespaces and experiments caps (`None` = no cap, for imports and
    /// owners' records).
    pub(super) async fn register(
        &self,
        namespace: &str,
        experiment: &str,
        caps: Option<&Caps>,
    ) -> Result<Registration, StoreError> {
        let limit = |n: usize| if caps.is_some() { n } else { 0 };
        let caps = caps.copied().unwrap_or_default();
        let mut call = self.inner.scripts.register.prepare_invoke();
        call.key(self.namespaces_key());
        let (added, _) = self
            .add(call, namespace, limit(caps.max_namespaces))
            .await?;
        if added == Added::Refused {
            return Ok(Registration::Refused(CapExceeded::Namespaces {
                namespace: namespace.to_owned(),
                limit: caps.max_namespaces,
            }));
        }
        let call = self.list_call(namespace);
        let cap = limit(caps.max_experiments_per_namespace);
        Ok(match self.add(call, experiment, cap).await? {
            (Added::Already, number) => Registration::Listed(number),
            (Added::Now | Added::Kept, number) => Registration::Added(number),
            (Added::Refused, _) => Registration::Refused(CapExceeded::Experiments {
                namespace: namespace.to_owned(),
                experiment: experiment.to_owned(),
                limit: caps.max_experiments_per_namespace,
            }),
        })
    }

    /// A call of `register.lua` on a namespace's list of experiments, with
    /// its marks and sequence.
    fn list_call(&self, namespace: &str) -> redis::ScriptInvocation<'_> {
        let mut call = self.inner.scripts.register.prepare_invoke();
        call.key(self.namespace_key(namespace))
            .key(self.leaving_key(namespace))
            .key(self.sequence_key(namespace));
        call
    }

    /// Adds `member` to a capped list (`cap` 0 = no cap) atomically;
    /// answers what it did and the number a creation is allowed with.
    async fn add(
        &self,
        mut call: redis::ScriptInvocation<'_>,
        member: &str,
        cap: usize,
    ) -> Result<(Added, u64), StoreError> {
        let (answer, number): (i64, u64) = call
            .arg("add")
            .arg(member)
            .arg(cap)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        let added = match answer {
            0 => Added::Refused,
            1 => Added::Already,
            2 => Added::Now,
            3 => Added::Kept,
            other => {
                return Err(StoreError::corrupt(format!(
                    "unexpected register script answer {other}"
                )))
            }
        };
        Ok((added, number))
    }

    /// Takes the experiment's listing back unless it exists: a
    /// registration that led to no counted event, or the end of a delete.
    /// Marks it ([`leave`](Self::leave)), then fences its creation unless
    /// it exists and unlists it ([`settle`](Self::settle)); see the module
    /// documentation for why this order is race-safe. Returns whether it
    /// exists.
    pub(super) async fn unregister(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<bool, StoreError> {
        match self.leave(namespace, experiment).await? {
            Some(number) => self.settle(namespace, experiment, number).await,
            // Not listed: whoever creates it lists it.
            None => self.exists(namespace, experiment).await,
        }
    }

    /// Step 1 of a take-back: marks the listed experiment as leaving, with
    /// a new number; `None` when it is not listed.
    pub(super) async fn leave(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Option<u64>, StoreError> {
        let number: u64 = self
            .list_call(namespace)
            .arg("leave")
            .arg(experiment)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        Ok((number > 0).then_some(number))
    }

    /// Steps 2 and 3 of the take-back numbered `number`: unmarks the
    /// experiment if it exists, else fences its creation and unlists it.
    /// Returns whether it exists.
    pub(super) async fn settle(
        &self,
        namespace: &str,
        experiment: &str,
        number: u64,
    ) -> Result<bool, StoreError> {
        let exists = self.fence(namespace, experiment, number).await?;
        if exists {
            self.list_call(namespace)
                .arg("stay")
                .arg(experiment)
                .arg(number)
                .invoke_async::<i64>(&mut self.conn())
                .await
                .map_err(|e| self.error(e))?;
        } else {
            self.go(namespace, experiment, number).await?;
        }
        Ok(exists)
    }

    /// Whether the experiment exists now.
    async fn exists(&self, namespace: &str, experiment: &str) -> Result<bool, StoreError> {
        redis::cmd("EXISTS")
            .arg(self.experiment_key(namespace, experiment, Key::Variants))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))
    }

    /// Step 2 of a take-back numbered `number` (`fence.lua`): true when
    /// the experiment exists; else no registration numbered up to
    /// `number` creates it any more.
    async fn fence(
        &self,
        namespace: &str,
        experiment: &str,
        number: u64,
    ) -> Result<bool, StoreError> {
        let base = self.experiment_base(namespace, experiment);
        let exists: i64 = invocation(&self.inner.scripts.fence, &base, &FENCE_KEYS)
            .arg(number)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        Ok(exists == 1)
    }

    /// Step 3 of a take-back numbered `number`: unlists the experiment
    /// unless another call kept it since, and the namespace from the list
    /// of namespaces when that was its last experiment, so that neither
    /// counts towards its cap any more (as in the embedded store).
    async fn go(&self, namespace: &str, experiment: &str, number: u64) -> Result<(), StoreError> {
        let left: i64 = self
            .list_call(namespace)
            .arg("go")
            .arg(experiment)
            .arg(number)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        if left != 0 {
            return Ok(());
        }
        let mut conn = self.conn();
        redis::cmd("SREM")
            .arg(self.namespaces_key())
            .arg(namespace)
            .exec_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        // An experiment listed since the count keeps its namespace: a
        // creator listing it after this check adds the namespace itself
        // ([`add_namespace`](Self::add_namespace)).
        let listed: i64 = redis::cmd("SCARD")
            .arg(self.namespace_key(namespace))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        if listed > 0 {
            self.add_namespace(namespace).await?;
        }
        Ok(())
    }

    /// Lists an experiment that an owner's record or an import created
    /// (no cap), unmarked: a take-back may have unlisted it between its
    /// registration and its creation, which did not look at the fence.
    /// Then its namespace ([`add_namespace`](Self::add_namespace)).
    pub(super) async fn relist(&self, namespace: &str, experiment: &str) -> Result<(), StoreError> {
        self.list_call(namespace)
            .arg("relist")
            .arg(experiment)
            .invoke_async::<i64>(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        self.add_namespace(namespace).await
    }

    /// Lists the namespace again (no cap) after one of its experiments was
    /// created: a take-back emptying the namespace's list may have
    /// unlisted it since its registration, before that experiment was
    /// listed; it then either saw the experiment or is followed by this.
    pub(super) async fn add_namespace(&self, namespace: &str) -> Result<(), StoreError> {
        redis::cmd("SADD")
            .arg(self.namespaces_key())
            .arg(namespace)
            .exec_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::Registration;
    use crate::redis::testing::{RedisCluster, RedisServer};
    use crate::redis::tests::open;
    use crate::redis::RedisStore;
    use crate::Store;
    use lamed_core::clock::Clock;
    use lamed_core::model::{CapExceeded, Caps, Event, Ignored, TrackOutcome, PARTICIPATE};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Where a test's instances meet: a private standalone server, or the
    /// shared cluster under a key prefix of the test's own.
    enum Redis {
        Standalone(RedisServer),
        Cluster(Arc<RedisCluster>, &'static str),
    }

    impl Redis {
        fn standalone() -> Redis {
            Redis::Standalone(RedisServer::start())
        }

        fn cluster(prefix: &'static str) -> Redis {
            Redis::Cluster(RedisCluster::shared(), prefix)
        }

        /// One more instance, with `caps`.
        async fn instance(&self, caps: Caps) -> RedisStore {
            let (urls, prefix) = match self {
                Redis::Standalone(server) => (server.url(), "p"),
                Redis::Cluster(cluster, prefix) => (cluster.urls(), *prefix),
            };
            open(&urls, prefix, 86_400, caps, Clock::System).await
        }
    }

    /// Caps of one experiment per namespace.
    const ONE: Caps = Caps {
        max_experiments_per_namespace: 1,
        ..Caps::DEFAULT
    };

    /// A participation in experiment `n`/`e`, variant `v`.
    fn event(uuid: &str) -> Event {
        Event {
            namespace: "n".into(),
            experiment: "e".into(),
            variant: "v".into(),
            event: PARTICIPATE.into(),
            uuid: uuid.into(),
            value: None,
        }
    }

    /// The same in experiment `f`.
    fn other(uuid: &str) -> Event {
        Event {
            experiment: "f".into(),
            ..event(uuid)
        }
    }

    /// The raw lists: the namespaces, and namespace `n`'s experiments, each
    /// sorted.
    async fn listed(store: &RedisStore) -> (Vec<String>, Vec<String>) {
        let mut conn = store.conn();
        let mut namespaces: Vec<String> = redis::cmd("SMEMBERS")
            .arg(store.namespaces_key())
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut experiments: Vec<String> = redis::cmd("SMEMBERS")
            .arg(store.namespace_key("n"))
            .query_async(&mut conn)
            .await
            .unwrap();
        namespaces.sort();
        experiments.sort();
        (namespaces, experiments)
    }

    /// How many of namespace `n`'s experiments are marked as leaving.
    async fn leaving(store: &RedisStore) -> usize {
        redis::cmd("HLEN")
            .arg(store.leaving_key("n"))
            .query_async(&mut store.conn())
            .await
            .unwrap()
    }

    /// Taking back a registration while another instance creates the
    /// experiment leaves it listed, in both orders of the race: the creator
    /// counts before the take-back starts (its check sees it), or after it
    /// marked the experiment, before its check (the check sees it too).
    #[tokio::test]
    async fn unregistering_never_unlists_a_created_experiment() {
        let redis = Redis::standalone();
        let (a, b) = (
            redis.instance(Caps::DEFAULT).await,
            redis.instance(Caps::DEFAULT).await,
        );
        let caps = Some(&Caps::DEFAULT);
        let whole = (vec!["n".to_owned()], vec!["e".to_owned()]);

        // b creates "e" between a's registration and a's take-back.
        assert!(matches!(
            a.register("n", "e", caps).await.unwrap(),
            Registration::Added(_)
        ));
        assert_eq!(
            b.track(vec![event("1")]).await.unwrap(),
            [TrackOutcome::Counted]
        );
        assert!(a.unregister("n", "e").await.unwrap(), "it exists");
        assert_eq!(listed(&a).await, whole);

        // b creates "e" after a marked it, before a checks.
        assert!(b.delete_experiment("n", "e").await.unwrap());
        assert!(matches!(
            a.register("n", "e", caps).await.unwrap(),
            Registration::Added(_)
        ));
        let number = a.leave("n", "e").await.unwrap().expect("listed");
        assert_eq!(
            b.track(vec![event("2")]).await.unwrap(),
            [TrackOutcome::Counted]
        );
        assert!(a.settle("n", "e", number).await.unwrap(), "it exists");
        assert_eq!(listed(&a).await, whole);
        assert_eq!(leaving(&a).await, 0, "unmarked");

        // Nobody creates it: nothing stays listed.
        assert!(b.delete_experiment("n", "e").await.unwrap());
        a.register("n", "e", caps).await.unwrap();
        assert!(!a.unregister("n", "e").await.unwrap());
        assert_eq!(listed(&a).await, (vec![], vec![]));
        assert_eq!(leaving(&a).await, 0);
    }

    /// A registration being taken back keeps its place under the cap until
    /// the take-back knows whether the experiment exists: an experiment
    /// registered meanwhile is refused, and the one found to exist stays
    /// listed. (Unlisting first, the take-back once freed the place for a
    /// moment: found by the services' fault test,
    /// `crates/service/tests/faults.rs`, about one Redis run in fifty.)
    async fn a_take_back_keeps_its_place(redis: Redis) {
        let (a, b, c) = (
            redis.instance(ONE).await,
            redis.instance(ONE).await,
            redis.instance(ONE).await,
        );
        // a registers "e"; b creates it (its registration finds "e"
        // listed), so a's own event is a duplicate and a takes its
        // registration back: marks "e" leaving, then finds it exists.
        assert!(matches!(
            a.register("n", "e", Some(&ONE)).await.unwrap(),
            Registration::Added(_)
        ));
        b.track(vec![event("1")]).await.unwrap();
        let number = a.leave("n", "e").await.unwrap().expect("listed");
        // Meanwhile c would create "f": "e" still holds the place.
        assert_eq!(
            c.track(vec![other("2")]).await.unwrap(),
            [TrackOutcome::Ignored(Ignored::Cap(
                CapExceeded::Experiments {
                    namespace: "n".into(),
                    experiment: "f".into(),
                    limit: 1,
                }
            ))]
        );
        assert!(a.settle("n", "e", number).await.unwrap(), "it exists");
        assert_eq!(a.experiments("n").await.unwrap(), ["e"]);
        assert_eq!(listed(&a).await.1, ["e"]);
    }

    #[tokio::test]
    async fn a_take_back_never_lets_an_experiment_past_the_cap() {
        a_take_back_keeps_its_place(Redis::standalone()).await;
    }

    #[tokio::test]
    async fn a_take_back_never_lets_an_experiment_past_the_cap_on_a_cluster() {
        a_take_back_keeps_its_place(Redis::cluster("takeback-place")).await;
    }

    /// A registration whose listing is taken back for good before it
    /// creates the experiment creates nothing: the fence refuses it, and
    /// its events register again, under the cap, which another experiment
    /// took meanwhile. (Were it to create the experiment and list it
    /// again, as creators once did, the namespace would list two
    /// experiments under a cap of one.)
    async fn a_fenced_registration_registers_again(redis: Redis) {
        let (a, b, c) = (
            redis.instance(ONE).await,
            redis.instance(ONE).await,
            redis.instance(ONE).await,
        );
        assert!(matches!(
            a.register("n", "e", Some(&ONE)).await.unwrap(),
            Registration::Added(_)
        ));
        let Registration::Listed(number) = b.register("n", "e", Some(&ONE)).await.unwrap() else {
            panic!("a listed e")
        };
        // a's event was a duplicate: a takes its registration back.
        assert!(!a.unregister("n", "e").await.unwrap(), "nobody created e");
        assert_eq!(
            c.track(vec![other("1")]).await.unwrap(),
            [TrackOutcome::Counted],
            "f takes the place e left"
        );
        // b counts its event with its registration: refused.
        assert_eq!(b.count_with(event("2"), number).await, 4, "fenced");
        assert_eq!(
            b.track(vec![event("2")]).await.unwrap(),
            [TrackOutcome::Ignored(Ignored::Cap(
                CapExceeded::Experiments {
                    namespace: "n".into(),
                    experiment: "e".into(),
                    limit: 1,
                }
            ))],
            "registered again: the cap is taken"
        );
        assert_eq!(a.experiments("n").await.unwrap(), ["f"]);
        assert_eq!(listed(&a).await.1, ["f"]);

        // Once f is deleted, e registers again, above the fence.
        assert!(c.delete_experiment("n", "f").await.unwrap());
        assert_eq!(
            b.track(vec![event("3")]).await.unwrap(),
            [TrackOutcome::Counted]
        );
        assert_eq!(listed(&a).await, (vec!["n".into()], vec!["e".into()]));
    }

    #[tokio::test]
    async fn a_fenced_registration_never_creates() {
        a_fenced_registration_registers_again(Redis::standalone()).await;
    }

    #[tokio::test]
    async fn a_fenced_registration_never_creates_on_a_cluster() {
        a_fenced_registration_registers_again(Redis::cluster("takeback-fence")).await;
    }

    /// A registration that finds its experiment being taken back keeps
    /// it, and then answers for it: the take-back leaves it listed, and
    /// the keeper takes it back in turn when it creates nothing.
    #[tokio::test]
    async fn a_registration_keeps_an_experiment_being_taken_back() {
        let redis = Redis::standalone();
        let (a, b) = (redis.instance(ONE).await, redis.instance(ONE).await);
        a.register("n", "e", Some(&ONE)).await.unwrap();
        let number = a.leave("n", "e").await.unwrap().expect("listed");
        let Registration::Added(kept) = b.register("n", "e", Some(&ONE)).await.unwrap() else {
            panic!("b keeps e")
        };
        assert!(kept > number, "numbered after the take-back");
        assert!(!a.settle("n", "e", number).await.unwrap());
        assert_eq!(listed(&a).await.1, ["e"], "kept by b");
        assert_eq!(b.count_with(event("1"), kept).await, 0, "b creates e");
        assert_eq!(a.experiments("n").await.unwrap(), ["e"]);

        assert!(a.delete_experiment("n", "e").await.unwrap());
        a.register("n", "e", Some(&ONE)).await.unwrap();
        let number = a.leave("n", "e").await.unwrap().expect("listed");
        b.register("n", "e", Some(&ONE)).await.unwrap();
        assert!(!a.settle("n", "e", number).await.unwrap());
        assert!(!b.unregister("n", "e").await.unwrap(), "b creates nothing");
        assert_eq!(listed(&a).await, (vec![], vec![]));
        assert_eq!(leaving(&a).await, 0);
    }

    /// Three instances race on four experiments under a cap of two: new
    /// events (creations), duplicates of deleted experiments' events
    /// (registrations taken back) and deletes. After every round the
    /// namespace lists at most two experiments, exactly those that exist,
    /// none left marked. (The narrow interleavings are the tests above:
    /// this one rarely meets them, so it checks the steps together.)
    async fn racing_take_backs(redis: Redis) {
        let caps = Caps {
            max_experiments_per_namespace: 2,
            ..Caps::DEFAULT
        };
        let stores = [
            redis.instance(caps).await,
            redis.instance(caps).await,
            redis.instance(caps).await,
        ];
        let names = ["e0", "e1", "e2", "e3"];
        let in_experiment = |name: &str, uuid: String| Event {
            experiment: name.into(),
            ..event(&uuid)
        };
        // Each experiment's "old" event, then deleted: sent again, it is a
        // duplicate whose registration is taken back.
        for name in names {
            stores[0]
                .track(vec![in_experiment(name, "old".into())])
                .await
                .unwrap();
            stores[0].delete_experiment("n", name).await.unwrap();
        }
        for round in 0..30usize {
            let tasks: Vec<_> = stores
                .iter()
                .enumerate()
                .map(|(j, store)| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        for step in 0..8usize {
                            let name = names[(round + j * 3 + step) % 4];
                            if (round + step + j) % 7 == 0 {
                                store.delete_experiment("n", name).await.unwrap();
                                continue;
                            }
                            let uuid = if (step + j) % 2 == 0 {
                                "old".to_owned()
                            } else {
                                format!("r{round}.{j}.{step}")
                            };
                            store.track(vec![in_experiment(name, uuid)]).await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            let context = format!("round {round}");
            assert_lists_whole(&stores[0], &context).await;
            let listed = listed(&stores[0]).await.1;
            assert!(listed.len() <= 2, "{context}: {listed:?} under a cap of 2");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_take_backs_never_pass_the_cap() {
        racing_take_backs(Redis::standalone()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_take_backs_never_pass_the_cap_on_a_cluster() {
        racing_take_backs(Redis::cluster("takeback-race")).await;
    }

    /// Runs `operation` until `cut` has passed, then drops it wherever it
    /// is, as a server's time-out or a closed connection does; the
    /// cancellation point moves by microseconds (tokio's timers tick by
    /// milliseconds, so this spins).
    async fn cut_short<T>(operation: impl std::future::Future<Output = T>, cut: Duration) {
        let started = Instant::now();
        let spin = async {
            while started.elapsed() < cut {
                tokio::task::yield_now().await;
            }
        };
        tokio::select! {
            _ = operation => {}
            _ = spin => {}
        }
    }

    /// Once the store is quiet, a namespace lists exactly the experiments
    /// that exist, none marked as leaving, and the namespace is listed
    /// exactly when it lists one. What was cut short finishes on its own
    /// (or never): looks again for up to two seconds, as a loaded machine
    /// may run it late.
    async fn assert_lists_whole(store: &RedisStore, context: &str) {
        let look = || async {
            let (namespaces, experiments) = listed(store).await;
            let exists = store.experiments("n").await.unwrap();
            (namespaces, experiments, exists, leaving(store).await)
        };
        let mut seen = look().await;
        for _ in 0..200 {
            let (namespaces, experiments, exists, leaving) = &seen;
            if experiments == exists
                && namespaces.is_empty() == experiments.is_empty()
                && *leaving == 0
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            seen = look().await;
        }
        let (namespaces, experiments, exists, leaving) = seen;
        assert_eq!(experiments, exists, "{context}: listed ≠ existing");
        assert_eq!(
            namespaces.is_empty(),
            experiments.is_empty(),
            "{context}: namespaces"
        );
        assert_eq!(leaving, 0, "{context}: a take-back left half-done");
    }

    /// A caller that stops waiting at any point of a creation, a
    /// take-back (a duplicate of a deleted experiment's event) or a delete
    /// leaves the lists whole: no registration without its experiment
    /// (a place under the cap taken by nothing), no experiment unlisted
    /// (its counts invisible, and outside the cap).
    async fn cut_short_operations(redis: Redis) {
        let (a, b) = (
            redis.instance(Caps::DEFAULT).await,
            redis.instance(Caps::DEFAULT).await,
        );
        for i in 0..40u64 {
            let cut = Duration::from_micros(i * 50);
            let uuid = format!("c{i}");
            cut_short(a.track(vec![event(&uuid)]), cut).await;
            assert_lists_whole(&a, &format!("creation cut at {cut:?}")).await;
            b.track(vec![event(&format!("d{i}"))]).await.unwrap();
            cut_short(a.delete_experiment("n", "e"), cut).await;
            assert_lists_whole(&a, &format!("delete cut at {cut:?}")).await;
            a.delete_experiment("n", "e").await.unwrap();
            // A duplicate creates nothing: its registration is taken back.
            cut_short(a.track(vec![event(&uuid)]), cut).await;
            assert_lists_whole(&a, &format!("take-back cut at {cut:?}")).await;
            a.delete_experiment("n", "e").await.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operations_cut_short_leave_the_lists_whole() {
        cut_short_operations(Redis::standalone()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operations_cut_short_leave_the_lists_whole_on_a_cluster() {
        cut_short_operations(Redis::cluster("takeback-cut")).await;
    }

    /// An experiment deleted through another instance is registered again
    /// (listed, and counted) by an instance that had it cached.
    #[tokio::test]
    async fn delete_by_another_instance_is_noticed() {
        let redis = Redis::standalone();
        let (a, b) = (
            redis.instance(Caps::DEFAULT).await,
            redis.instance(Caps::DEFAULT).await,
        );
        a.track(vec![event("1")]).await.unwrap();
        assert!(b.delete_experiment("n", "e").await.unwrap());
        assert!(a.experiments("n").await.unwrap().is_empty());
        assert_eq!(
            a.track(vec![event("2")]).await.unwrap(),
            vec![TrackOutcome::Counted]
        );
        assert_eq!(b.experiments("n").await.unwrap(), vec!["e"]);
        assert_eq!(b.counters("n").await.unwrap()[0].count, 1);
    }
}
