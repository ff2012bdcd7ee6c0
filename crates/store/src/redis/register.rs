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
//! ([`RedisStore::unregister`]).
//!
//! Why the lists stay right although they cannot change atomically with
//! the experiment's keys (other slots): whoever creates an experiment lists
//! it again afterwards ([`RedisStore::relist`]), and whoever unlists one
//! (taking back a registration, or deleting) checks afterwards whether it
//! exists and then lists it again ([`RedisStore::unregister`]). Either the
//! creator's relist comes after the unlisting, or the unlisting instance's
//! check comes after the creation and sees it.

use super::keys::Key;
use super::store::RedisStore;
use crate::StoreError;
use lamed_core::model::{CapExceeded, Caps};

/// What registering an experiment did.
#[derive(Debug)]
pub(super) enum Registration {
    /// It was listed already (it exists, or another request is creating
    /// it).
    Listed,
    /// This call listed it: the caller takes it back
    /// ([`RedisStore::unregister`]) unless one of its events gets counted.
    Added,
    /// A cap refused the namespace or the experiment.
    Refused(CapExceeded),
}

/// What [`RedisStore::add_capped`] did (`register.lua`'s answer).
#[derive(Debug, PartialEq, Eq)]
enum Added {
    Already,
    Now,
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
    /// namespaces and experiments caps (`None` = no cap, for imports).
    pub(super) async fn register(
        &self,
        namespace: &str,
        experiment: &str,
        caps: Option<&Caps>,
    ) -> Result<Registration, StoreError> {
        let limit = |n: usize| if caps.is_some() { n } else { 0 };
        let caps = caps.copied().unwrap_or_default();
        let namespaces = self.namespaces_key();
        if self
            .add_capped(&namespaces, namespace, limit(caps.max_namespaces))
            .await?
            == Added::Refused
        {
            return Ok(Registration::Refused(CapExceeded::Namespaces {
                namespace: namespace.to_owned(),
                limit: caps.max_namespaces,
            }));
        }
        let experiments = self.namespace_key(namespace);
        Ok(
            match self
                .add_capped(
                    &experiments,
                    experiment,
                    limit(caps.max_experiments_per_namespace),
                )
                .await?
            {
                Added::Already => Registration::Listed,
                Added::Now => Registration::Added,
                Added::Refused => Registration::Refused(CapExceeded::Experiments {
                    namespace: namespace.to_owned(),
                    experiment: experiment.to_owned(),
                    limit: caps.max_experiments_per_namespace,
                }),
            },
        )
    }

    /// Adds `member` to a capped set (`cap` 0 = no cap) atomically.
    async fn add_capped(&self, set: &str, member: &str, cap: usize) -> Result<Added, StoreError> {
        let answer: i64 = self
            .inner
            .scripts
            .register
            .key(set)
            .arg(member)
            .arg(cap)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        match answer {
            0 => Ok(Added::Refused),
            1 => Ok(Added::Already),
            2 => Ok(Added::Now),
            other => Err(StoreError::corrupt(format!(
                "unexpected register script answer {other}"
            ))),
        }
    }

    /// Unlists the experiment unless it exists: takes back a registration
    /// that led to no counted event, and ends a delete. Unlists it, then
    /// lists it again if it exists after all (another request created it
    /// meanwhile; see the module documentation for why this order is
    /// race-safe). Returns whether it exists.
    pub(super) async fn unregister(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<bool, StoreError> {
        self.unlist(namespace, experiment).await?;
        let exists: bool = redis::cmd("EXISTS")
            .arg(self.experiment_key(namespace, experiment, Key::Variants))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        if exists {
            self.relist(namespace, experiment).await?;
        }
        Ok(exists)
    }

    /// How many experiments the namespace list `list` holds now.
    async fn listed_in(&self, list: &str) -> Result<i64, StoreError> {
        redis::cmd("SCARD")
            .arg(list)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))
    }

    /// Removes the experiment from its namespace's list, and the namespace
    /// from the list of namespaces when that was its last experiment, so
    /// that neither counts towards its cap any more (as in the embedded
    /// store). Not atomic with a concurrent creation in the namespace
    /// (other slots): the creator's [`relist`](Self::relist) repairs it.
    pub(super) async fn unlist(&self, namespace: &str, experiment: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let list = self.namespace_key(namespace);
        redis::cmd("SREM")
            .arg(&list)
            .arg(experiment)
            .exec_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        if self.listed_in(&list).await? == 0 {
            redis::cmd("SREM")
                .arg(self.namespaces_key())
                .arg(namespace)
                .exec_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            // An experiment listed since the count keeps its namespace: a
            // relist after this check adds the namespace itself (it lists
            // the experiment first).
            if self.listed_in(&list).await? > 0 {
                self.add_namespace(namespace).await?;
            }
        }
        Ok(())
    }

    /// Puts a newly created experiment in its lists again: a delete on
    /// another instance may have removed it between registering and
    /// counting (the lists live in other hash slots than the experiment).
    /// The experiment first, then its namespace, so that an
    /// [`unlist`](Self::unlist) emptying the namespace meanwhile either
    /// sees the experiment or is followed by the namespace's addition.
    pub(super) async fn relist(&self, namespace: &str, experiment: &str) -> Result<(), StoreError> {
        redis::cmd("SADD")
            .arg(self.namespace_key(namespace))
            .arg(experiment)
            .exec_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        self.add_namespace(namespace).await
    }

    /// Adds the namespace to the list of namespaces (no cap).
    async fn add_namespace(&self, namespace: &str) -> Result<(), StoreError> {
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
    use crate::redis::testing::RedisServer;
    use crate::redis::tests::open;
    use crate::redis::RedisStore;
    use crate::Store;
    use lamed_core::clock::Clock;
    use lamed_core::model::{Caps, Event, TrackOutcome, PARTICIPATE};
    use std::time::{Duration, Instant};

    /// Two instances on one Redis, with the same prefix and window.
    async fn two_instances(server: &RedisServer) -> (RedisStore, RedisStore) {
        let url = server.url();
        let open_one = || open(&url, "p", 86_400, Caps::default(), Clock::System);
        (open_one().await, open_one().await)
    }

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

    /// Taking back a registration while another instance creates the
    /// experiment leaves it listed, in both orders of the race: the creator
    /// counts before the unlisting instance checks (the check sees it), or
    /// after it unlisted (the creator lists it again).
    #[tokio::test]
    async fn unregistering_never_unlists_a_created_experiment() {
        let server = RedisServer::start();
        let (a, b) = two_instances(&server).await;
        let listed = |store: RedisStore| async move {
            let mut conn = store.conn();
            let namespaces: Vec<String> = redis::cmd("SMEMBERS")
                .arg(store.namespaces_key())
                .query_async(&mut conn)
                .await
                .unwrap();
            let experiments: Vec<String> = redis::cmd("SMEMBERS")
                .arg(store.namespace_key("n"))
                .query_async(&mut conn)
                .await
                .unwrap();
            (namespaces, experiments)
        };
        let caps = Some(&Caps::default());

        // b creates "e" between a's registration and a's take-back.
        assert!(matches!(
            a.register("n", "e", caps).await.unwrap(),
            Registration::Added
        ));
        assert_eq!(
            b.track(vec![event("1")]).await.unwrap(),
            [TrackOutcome::Counted]
        );
        assert!(a.unregister("n", "e").await.unwrap(), "it exists");
        assert_eq!(
            listed(a.clone()).await,
            (vec!["n".into()], vec!["e".into()])
        );

        // b creates "e" after a unlisted it, before a checks.
        assert!(b.delete_experiment("n", "e").await.unwrap());
        assert!(matches!(
            a.register("n", "e", caps).await.unwrap(),
            Registration::Added
        ));
        a.unlist("n", "e").await.unwrap();
        assert_eq!(
            b.track(vec![event("2")]).await.unwrap(),
            [TrackOutcome::Counted]
        );
        assert_eq!(
            listed(a.clone()).await,
            (vec!["n".into()], vec!["e".into()]),
            "the creator listed it"
        );
        assert!(a.unregister("n", "e").await.unwrap(), "it exists");
        assert_eq!(
            listed(a.clone()).await,
            (vec!["n".into()], vec!["e".into()])
        );

        // Nobody creates it: nothing stays listed.
        assert!(b.delete_experiment("n", "e").await.unwrap());
        a.register("n", "e", caps).await.unwrap();
        assert!(!a.unregister("n", "e").await.unwrap());
        assert_eq!(listed(a).await, (vec![], vec![]));
    }

    /// A registration taken back while another instance creates the
    /// experiment frees its place under the cap for a moment (unlisted,
    /// found to exist, listed again); an experiment registered in that
    /// moment takes the place, and the namespace then lists one more
    /// experiment than its cap allows. Found by the services' fault test
    /// (`crates/service/tests/faults.rs`): with four tasks tracking seven
    /// experiments under a cap of five, about one Redis run in fifty.
    #[tokio::test]
    #[ignore = "bug: a take-back racing a creation lets another experiment past the cap"]
    async fn a_take_back_never_lets_an_experiment_past_the_cap() {
        let server = RedisServer::start();
        let caps = Caps {
            max_experiments_per_namespace: 1,
            ..Caps::default()
        };
        let url = server.url();
        let open_one = || open(&url, "p", 86_400, caps, Clock::System);
        let (a, b, c) = (open_one().await, open_one().await, open_one().await);
        // a registers "e"; b creates it (its registration finds "e"
        // listed), so a's own event is a duplicate and a takes its
        // registration back: unlists "e", then finds it exists.
        assert!(matches!(
            a.register("n", "e", Some(&caps)).await.unwrap(),
            Registration::Added
        ));
        b.track(vec![event("1")]).await.unwrap();
        a.unlist("n", "e").await.unwrap();
        // Meanwhile c creates "f" in the place "e" left.
        let other = Event {
            experiment: "f".into(),
            ..event("2")
        };
        let outcome = c.track(vec![other]).await.unwrap();
        // a lists "e" again, as it exists.
        assert!(a.unregister("n", "e").await.unwrap());
        let listed = a.experiments("n").await.unwrap();
        assert!(
            listed.len() <= 1,
            "{listed:?} listed under a cap of 1 (f was {outcome:?})"
        );
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
    /// that exist, and the namespace is listed exactly when it lists one.
    async fn assert_lists_whole(store: &RedisStore, context: &str) {
        // What was cut short finishes first (or never).
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut conn = store.conn();
        let mut listed: Vec<String> = redis::cmd("SMEMBERS")
            .arg(store.namespace_key("n"))
            .query_async(&mut conn)
            .await
            .unwrap();
        listed.sort();
        let namespaces: Vec<String> = redis::cmd("SMEMBERS")
            .arg(store.namespaces_key())
            .query_async(&mut conn)
            .await
            .unwrap();
        let exists = store.experiments("n").await.unwrap();
        assert_eq!(listed, exists, "{context}: listed ≠ existing");
        assert_eq!(
            namespaces.is_empty(),
            listed.is_empty(),
            "{context}: namespaces"
        );
    }

    /// A caller that stops waiting at any point of a creation, a
    /// take-back (a duplicate of a deleted experiment's event) or a delete
    /// leaves the lists whole: no registration without its experiment
    /// (a place under the cap taken by nothing), no experiment unlisted
    /// (its counts invisible, and outside the cap).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operations_cut_short_leave_the_lists_whole() {
        let server = RedisServer::start();
        let (a, b) = two_instances(&server).await;
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

    /// An experiment deleted through another instance is registered again
    /// (listed, and counted) by an instance that had it cached.
    #[tokio::test]
    async fn delete_by_another_instance_is_noticed() {
        let server = RedisServer::start();
        let (a, b) = two_instances(&server).await;
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
