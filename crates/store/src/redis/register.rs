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
//! ([`RedisStore::unregister`]), and so is a deleted experiment's; a
//! namespace stays listed while it lists an experiment.
//!
//! # Why the lists stay right
//!
//! A take-back cannot check that the experiment does not exist and unlist
//! it in one step (other slots). Unlisting first would free its place
//! under the cap for a moment, in which another experiment could take it;
//! checking first would let a creation come between. So each list numbers
//! its registrations and take-backs (a sequence in its slot), and a
//! take-back goes in three steps:
//!
//! 1. in the list's slot, it marks the member as leaving, with a new
//!    number `t`; the member stays listed, so its place stays taken;
//! 2. in the member's slot, in one step (`fence.lua`), it finds the member
//!    (then it removes its mark, if still `t`, and is done), or raises the
//!    member's fence to `t`;
//! 3. in the list's slot, it unlists the member if its mark is still `t`.
//!
//! A registration answers a number, and the member is created only for a
//! number above its fence; refused, it is registered again. A
//! registration that finds the member listed gets the list's last number;
//! one that finds it marked removes the mark and gets a new number, and
//! takes the member back in turn unless it creates it; one that finds it
//! unlisted lists it under the cap, with a new number.
//!
//! The member is an experiment in its namespace's list: it exists while
//! its variants do, its fence is `P:{T}:t`, and `track.rs` creates it.
//! Or it is a namespace in the list of namespaces, one level up: it
//! exists while its list of experiments holds one (Redis removes an empty
//! set), its fence is `P:{N}:fence` in that list's slot, and
//! `register.lua` lists an experiment in an empty list only for a
//! registration of the namespace numbered above that fence. A take-back
//! that empties a namespace's list takes the namespace back.
//!
//! - **Nothing that exists is unlisted.** Step 3 follows a fence that
//!   found no member, so a creation before the fence is found by it; after
//!   it, a creation needs a registration numbered above `t`. Every
//!   registration before the mark has a lower number; every one after it
//!   removed the mark (step 3 then does nothing), or came after step 3 and
//!   listed the member itself. An owner's record or an import creates an
//!   experiment without looking at the fences, and lists it and its
//!   namespace afterwards ([`RedisStore::relist`]): that removes the
//!   marks, or lists them again after step 3. A delete removes the keys
//!   (`delete.lua`), then takes the listing back the same way.
//! - **No cap is exceeded.** A member enters its list under the cap, or
//!   by an owner's record or an import (no cap, by design). As a creation
//!   keeps its registration's listing (above), no creator lists anything
//!   again afterwards; that relisting once let a creation pass a cap
//!   after a take-back unlisted it.
//! - **No registration stays without what it registered** (a place taken
//!   by nothing): whoever listed an experiment, or kept it from a
//!   take-back, takes it back unless one of its events is counted, in a
//!   task that runs to its end when its caller stops waiting
//!   (`run_whole`), and the take-back that empties a namespace's list
//!   takes the namespace back.
//! - **A refused registration gets through.** A listed member without a
//!   mark has a fence below its list's last number: a fence is a
//!   take-back's number, and a mark is removed with a new number, or by
//!   the newest take-back when it found the member (raising no fence). So
//!   registering again gets a number above the fence, unless another
//!   take-back came between ([`MAX_FENCED`] bounds the tries).

use super::keys::Key;
use super::store::RedisStore;
use crate::StoreError;
use lamed_core::model::{CapExceeded, Caps};

/// Most registrations of one namespace (or creations of one experiment)
/// a call may find fenced before it gives up: each needs a take-back
/// between registering and creating, so a call that meets this many is
/// looping on a broken sequence, not racing.
pub(super) const MAX_FENCED: usize = 1_000;

/// One of the lists (`register.lua`).
#[derive(Debug, Clone, Copy)]
enum List<'a> {
    /// The list of namespaces.
    Namespaces,
    /// A namespace's list of experiments.
    Experiments(&'a str),
}

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
    /// The namespace's registration was taken back since.
    Fenced,
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
        let experiments = List::Experiments(namespace);
        for _ in 0..MAX_FENCED {
            let cap = limit(caps.max_namespaces);
            let (added, number) = self.add(List::Namespaces, namespace, cap, 0).await?;
            if added == Added::Refused {
                return Ok(Registration::Refused(CapExceeded::Namespaces {
                    namespace: namespace.to_owned(),
                    limit: caps.max_namespaces,
                }));
            }
            let cap = limit(caps.max_experiments_per_namespace);
            return Ok(
                match self.add(experiments, experiment, cap, number).await? {
                    (Added::Already, number) => Registration::Listed(number),
                    (Added::Now | Added::Kept, number) => Registration::Added(number),
                    (Added::Refused, _) => Registration::Refused(CapExceeded::Experiments {
                        namespace: namespace.to_owned(),
                        experiment: experiment.to_owned(),
                        limit: caps.max_experiments_per_namespace,
                    }),
                    // The namespace's registration was taken back meanwhile.
                    (Added::Fenced, _) => continue,
                },
            );
        }
        Err(StoreError::corrupt(format!(
            "namespace {namespace:?} refused {MAX_FENCED} registrations (did its sequence go back?)"
        )))
    }

    /// A call of `register.lua` on `list`, with its marks and sequence.
    fn list_call(&self, list: List<'_>) -> redis::ScriptInvocation<'_> {
        let mut call = self.inner.scripts.register.prepare_invoke();
        match list {
            List::Namespaces => call
                .key(self.namespaces_key())
                .key(self.namespaces_leaving_key())
                .key(self.namespaces_sequence_key()),
            List::Experiments(namespace) => call
                .key(self.namespace_key(namespace))
                .key(self.leaving_key(namespace))
                .key(self.sequence_key(namespace))
                .key(self.namespace_fence_key(namespace)),
        };
        call
    }

    /// Adds `member` to `list` under `cap` (0 = no cap) atomically, with
    /// the number of the namespace's registration for a list of
    /// experiments; answers what it did and the number a creation is
    /// allowed with.
    async fn add(
        &self,
        list: List<'_>,
        member: &str,
        cap: usize,
        namespace_number: u64,
    ) -> Result<(Added, u64), StoreError> {
        let (answer, number): (i64, u64) = self
            .list_call(list)
            .arg("add")
            .arg(member)
            .arg(cap)
            .arg(namespace_number)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        let added = match answer {
            0 => Added::Refused,
            1 => Added::Already,
            2 => Added::Now,
            3 => Added::Kept,
            4 => Added::Fenced,
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
    /// it exists and unlists it ([`settle`](Self::settle)), and its
    /// namespace the same way when that emptied the namespace's list; see
    /// the module documentation for why this order is race-safe. Returns
    /// whether it exists.
    pub(super) async fn unregister(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<bool, StoreError> {
        match self.leave(List::Experiments(namespace), experiment).await? {
            Some(number) => self.settle(namespace, experiment, number).await,
            // Not listed: whoever creates it lists it.
            None => self.exists(namespace, experiment).await,
        }
    }

    /// Step 1 of a take-back: marks the listed `member` of `list` as
    /// leaving, with a new number; `None` when it is not listed.
    async fn leave(&self, list: List<'_>, member: &str) -> Result<Option<u64>, StoreError> {
        let number: u64 = self
            .list_call(list)
            .arg("leave")
            .arg(member)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        Ok((number > 0).then_some(number))
    }

    /// Steps 2 and 3 of the experiment's take-back numbered `number`:
    /// unmarks the experiment if it exists, else fences its creation and
    /// unlists it, then takes the namespace back if its list is empty.
    /// Returns whether the experiment exists.
    async fn settle(
        &self,
        namespace: &str,
        experiment: &str,
        number: u64,
    ) -> Result<bool, StoreError> {
        let base = self.experiment_base(namespace, experiment);
        let exists = self
            .fence(&Key::Variants.of(&base), &Key::Fence.of(&base), number)
            .await?;
        let list = List::Experiments(namespace);
        if exists {
            self.unmark(list, experiment, number).await?;
        } else if self.go(list, experiment, number).await? == 0 {
            if let Some(number) = self.leave(List::Namespaces, namespace).await? {
                self.settle_namespace(namespace, number).await?;
            }
        }
        Ok(exists)
    }

    /// Steps 2 and 3 of the namespace's take-back numbered `number`: the
    /// namespace exists while its list holds an experiment.
    async fn settle_namespace(&self, namespace: &str, number: u64) -> Result<(), StoreError> {
        let exists = self
            .fence(
                &self.namespace_key(namespace),
                &self.namespace_fence_key(namespace),
                number,
            )
            .await?;
        if exists {
            self.unmark(List::Namespaces, namespace, number).await
        } else {
            self.go(List::Namespaces, namespace, number).await.map(drop)
        }
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
    /// `exists` does (the member exists); else no registration numbered
    /// up to `number` creates it any more (`fence` is its fence).
    async fn fence(&self, exists: &str, fence: &str, number: u64) -> Result<bool, StoreError> {
        let answer: i64 = self
            .inner
            .scripts
            .fence
            .key(exists)
            .key(fence)
            .arg(number)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        Ok(answer == 1)
    }

    /// Step 3 of a take-back numbered `number` that found the member:
    /// removes its mark, unless another call took it over since.
    async fn unmark(&self, list: List<'_>, member: &str, number: u64) -> Result<(), StoreError> {
        self.list_call(list)
            .arg("stay")
            .arg(member)
            .arg(number)
            .invoke_async::<i64>(&mut self.conn())
            .await
            .map_err(|e| self.error(e))
            .map(drop)
    }

    /// Step 3 of a take-back numbered `number` that found no member:
    /// unlists it, unless another call took it over since, so that it no
    /// longer counts towards its cap (as in the embedded store). Returns
    /// how many the list holds then, or -1 when it was taken over.
    async fn go(&self, list: List<'_>, member: &str, number: u64) -> Result<i64, StoreError> {
        self.list_call(list)
            .arg("go")
            .arg(member)
            .arg(number)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))
    }

    /// Lists an experiment that an owner's record or an import created
    /// (no cap), unmarked, then its namespace: a take-back may have
    /// unlisted them between their registration and the creation, which
    /// did not look at the fences.
    pub(super) async fn relist(&self, namespace: &str, experiment: &str) -> Result<(), StoreError> {
        for (list, member) in [
            (List::Experiments(namespace), experiment),
            (List::Namespaces, namespace),
        ] {
            self.list_call(list)
                .arg("relist")
                .arg(member)
                .invoke_async::<i64>(&mut self.conn())
                .await
                .map_err(|e| self.error(e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{List, Registration};
    use crate::redis::keys::Key;
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
            segment: Default::default(),
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
            segment: Default::default(),
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

    /// How many of namespace `n`'s experiments, and of the namespaces, are
    /// marked as leaving.
    async fn leaving(store: &RedisStore) -> usize {
        let mut marked = 0;
        for key in [store.leaving_key("n"), store.namespaces_leaving_key()] {
            let n: usize = redis::cmd("HLEN")
                .arg(key)
                .query_async(&mut store.conn())
                .await
                .unwrap();
            marked += n;
        }
        marked
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
        let number = a
            .leave(List::Experiments("n"), "e")
            .await
            .unwrap()
            .expect("listed");
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
        let number = a
            .leave(List::Experiments("n"), "e")
            .await
            .unwrap()
            .expect("listed");
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
        let number = a
            .leave(List::Experiments("n"), "e")
            .await
            .unwrap()
            .expect("listed");
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
        let number = a
            .leave(List::Experiments("n"), "e")
            .await
            .unwrap()
            .expect("listed");
        b.register("n", "e", Some(&ONE)).await.unwrap();
        assert!(!a.settle("n", "e", number).await.unwrap());
        assert!(!b.unregister("n", "e").await.unwrap(), "b creates nothing");
        assert_eq!(listed(&a).await, (vec![], vec![]));
        assert_eq!(leaving(&a).await, 0);
    }

    /// A namespace whose last experiment was taken back keeps its place
    /// under the namespaces cap until its own take-back knows whether it
    /// lists an experiment again: another namespace is refused meanwhile,
    /// and the namespace that gets an experiment stays listed.
    async fn a_namespace_take_back_keeps_its_place(redis: Redis) {
        let caps = Caps {
            max_namespaces: 1,
            ..Caps::DEFAULT
        };
        let (a, b, c) = (
            redis.instance(caps).await,
            redis.instance(caps).await,
            redis.instance(caps).await,
        );
        assert!(matches!(
            a.register("n", "e", Some(&caps)).await.unwrap(),
            Registration::Added(_)
        ));
        // a takes "e" back, which empties "n"; then a marks "n" leaving.
        let number = a.leave(List::Experiments("n"), "e").await.unwrap().unwrap();
        let base = a.experiment_base("n", "e");
        let (variants, fence) = (Key::Variants.of(&base), Key::Fence.of(&base));
        assert!(!a.fence(&variants, &fence, number).await.unwrap());
        assert_eq!(a.go(List::Experiments("n"), "e", number).await.unwrap(), 0);
        let number = a.leave(List::Namespaces, "n").await.unwrap().unwrap();
        // Meanwhile c would create namespace "m": "n" still holds the place.
        let elsewhere = Event {
            segment: Default::default(),
            namespace: "m".into(),
            ..event("1")
        };
        assert_eq!(
            c.track(vec![elsewhere]).await.unwrap(),
            [TrackOutcome::Ignored(Ignored::Cap(
                CapExceeded::Namespaces {
                    namespace: "m".into(),
                    limit: 1,
                }
            ))]
        );
        // And b creates "f" in "n", keeping "n".
        assert_eq!(
            b.track(vec![other("2")]).await.unwrap(),
            [TrackOutcome::Counted]
        );
        a.settle_namespace("n", number).await.unwrap();
        assert_eq!(listed(&a).await, (vec!["n".into()], vec!["f".into()]));
        assert_eq!(leaving(&a).await, 0);
    }

    #[tokio::test]
    async fn a_namespace_take_back_never_lets_a_namespace_past_the_cap() {
        a_namespace_take_back_keeps_its_place(Redis::standalone()).await;
    }

    #[tokio::test]
    async fn a_namespace_take_back_never_lets_a_namespace_past_the_cap_on_a_cluster() {
        a_namespace_take_back_keeps_its_place(Redis::cluster("takeback-ns-place")).await;
    }

    /// A registration of a namespace taken back for good before it lists
    /// an experiment there lists nothing: the namespace's fence refuses
    /// it, and it registers the namespace again, under the cap, which
    /// another namespace took meanwhile.
    async fn a_fenced_namespace_registers_again(redis: Redis) {
        let caps = Caps {
            max_namespaces: 1,
            ..Caps::DEFAULT
        };
        let (a, b, c) = (
            redis.instance(caps).await,
            redis.instance(caps).await,
            redis.instance(caps).await,
        );
        a.register("n", "e", Some(&caps)).await.unwrap();
        // b registers "n" (listed by a), not yet "e".
        let (added, number) = b.add(List::Namespaces, "n", 1, 0).await.unwrap();
        assert_eq!(added, super::Added::Already);
        // a's event was a duplicate: a takes "e", then "n", back.
        assert!(!a.unregister("n", "e").await.unwrap());
        assert_eq!(listed(&a).await, (vec![], vec![]));
        let elsewhere = Event {
            segment: Default::default(),
            namespace: "m".into(),
            ..event("1")
        };
        assert_eq!(
            c.track(vec![elsewhere]).await.unwrap(),
            [TrackOutcome::Counted],
            "m takes the place n left"
        );
        let (added, _) = b.add(List::Experiments("n"), "e", 0, number).await.unwrap();
        assert_eq!(added, super::Added::Fenced);
        assert_eq!(
            b.track(vec![event("2")]).await.unwrap(),
            [TrackOutcome::Ignored(Ignored::Cap(
                CapExceeded::Namespaces {
                    namespace: "n".into(),
                    limit: 1,
                }
            ))],
            "registered again: the cap is taken"
        );
        assert_eq!(listed(&a).await, (vec!["m".into()], vec![]));
    }

    #[tokio::test]
    async fn a_fenced_namespace_registration_lists_nothing() {
        a_fenced_namespace_registers_again(Redis::standalone()).await;
    }

    #[tokio::test]
    async fn a_fenced_namespace_registration_lists_nothing_on_a_cluster() {
        a_fenced_namespace_registers_again(Redis::cluster("takeback-ns-fence")).await;
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
            segment: Default::default(),
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
