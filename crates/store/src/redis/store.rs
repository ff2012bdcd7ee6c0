//! [`RedisStore`]: the [`Store`] on a standalone Redis or a Redis Cluster.
//! This file holds its state and the trait impl; each operation lives in
//! the module of its concept (see the table in `mod.rs`).
//!
//! Why scripts: dedupe and counting of one event must be one atomic step,
//! or two instances racing on the same uuid could both count it. A Lua
//! script is that step, costs one round trip (EVALSHA; the script is sent
//! again only after a NOSCRIPT), and needs no WATCH/MULTI retry loop.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use redis::Script;

use super::coalesce::Coalescer;
use super::connection::{connect, Conn};
use super::options::RedisOptions;
use super::track::{Job, MAX_BATCH};
use crate::{Join, JoinAnswer, Kept, Precondition, PutOutcome, Store, StoreError, Versioned};
use lamed_core::model::{Counter, DailyCounter, Event, TrackOutcome};
use lamed_core::registry::ExperimentRecord;

/// [`Store`] on Redis; cheap to clone, clones share the connection.
#[derive(Debug, Clone)]
pub struct RedisStore {
    pub(super) inner: Arc<Inner>,
}

/// What the clones of one store share.
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) conn: Conn,
    /// The nodes, without password, for messages.
    pub(super) target: String,
    /// True when talking to a Redis Cluster.
    pub(super) cluster: bool,
    pub(super) options: RedisOptions,
    pub(super) scripts: Scripts,
    /// Experiment base keys this process has seen registered in their
    /// namespace's list, so that steady-state tracking is one round trip.
    /// A stale entry (the experiment was deleted elsewhere) is harmless: the
    /// script then answers "unknown" and the experiment is registered again.
    /// std Mutex: never held across `.await`.
    pub(super) known: Mutex<HashSet<String>>,
    /// Events per experiment waiting for the script call in flight.
    pub(super) coalescer: Coalescer<Job>,
    pub(super) closed: AtomicBool,
}

/// The Lua scripts, each beside the module that calls it.
#[derive(Debug)]
pub(super) struct Scripts {
    pub(super) track: Script,
    pub(super) register: Script,
    pub(super) fence: Script,
    pub(super) delete: Script,
    pub(super) import: Script,
    pub(super) put_record: Script,
    pub(super) alerts: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            track: Script::new(include_str!("track.lua")),
            register: Script::new(include_str!("register.lua")),
            fence: Script::new(include_str!("fence.lua")),
            delete: Script::new(include_str!("delete.lua")),
            import: Script::new(include_str!("import.lua")),
            put_record: Script::new(include_str!("put_record.lua")),
            alerts: Script::new(include_str!("alerts.lua")),
        }
    }

    fn all(&self) -> [&Script; 7] {
        [
            &self.track,
            &self.register,
            &self.fence,
            &self.delete,
            &self.import,
            &self.put_record,
            &self.alerts,
        ]
    }
}

impl RedisStore {
    /// Connects, detects a cluster, loads the scripts and runs the health
    /// check (eviction policy, a write), and compares the dedupe window and
    /// key layout with those stored by the instances before (`layout.rs`),
    /// so that a wrong host, password or TLS setting, a Redis that may
    /// evict lamed's keys, or another window on the same keys, is reported
    /// at start rather than on the first event.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] naming the node (without password), with
    /// the Redis error as its source; or naming the eviction policy found
    /// and its fix; or naming the stored and configured windows (or layout
    /// versions) and the fix.
    pub async fn open(options: RedisOptions) -> Result<Self, StoreError> {
        let target = options.settings.redacted();
        let (conn, cluster) = connect(&options.settings, &target).await?;
        let store = RedisStore {
            inner: Arc::new(Inner {
                conn,
                target: target.clone(),
                cluster,
                options,
                scripts: Scripts::new(),
                known: Mutex::new(HashSet::new()),
                coalescer: Coalescer::new(MAX_BATCH),
                closed: AtomicBool::new(false),
            }),
        };
        store
            .run(async {
                let mut conn = store.conn();
                for script in store.inner.scripts.all() {
                    script.load_async(&mut conn).await.map_err(|e| {
                        StoreError::caused_by(format!("redis at {target}: cannot load scripts"), e)
                    })?;
                }
                Ok(())
            })
            .await?;
        store.check_writable().await?;
        store.run(store.check_layout()).await?;
        Ok(store)
    }

    /// True when the store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.cluster
    }
}

/// Every operation runs under the store's deadline ([`RedisStore::run`]);
/// writes of several steps run to their end even when their caller stops
/// waiting ([`RedisStore::run_whole`]).
#[async_trait]
impl Store for RedisStore {
    async fn track(&self, events: Vec<Event>) -> Result<Vec<TrackOutcome>, StoreError> {
        self.run_whole(|store| async move { store.track_events(events).await })
            .await
    }

    async fn counters(&self, namespace: &str) -> Result<Vec<Counter>, StoreError> {
        self.run(self.read_counters(namespace)).await
    }

    async fn daily_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<DailyCounter>, StoreError> {
        self.run(self.read_daily_counters(namespace, experiment))
            .await
    }

    async fn experiments(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        self.run(self.live_experiments(namespace)).await
    }

    async fn delete_experiment(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<bool, StoreError> {
        let (namespace, experiment) = (namespace.to_owned(), experiment.to_owned());
        self.run_whole(|store| async move { store.delete(&namespace, &experiment).await })
            .await
    }

    async fn record(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Option<ExperimentRecord>, StoreError> {
        self.run(self.read_record(namespace, experiment)).await
    }

    async fn records(&self, namespace: &str) -> Result<Vec<ExperimentRecord>, StoreError> {
        self.run(self.read_records(namespace)).await
    }

    async fn put_record(
        &self,
        record: ExperimentRecord,
        precondition: Precondition,
    ) -> Result<PutOutcome, StoreError> {
        self.run_whole(|store| async move { store.write_record(&record, precondition).await })
            .await
    }

    async fn membership(
        &self,
        namespace: &str,
        experiment: &str,
        member: &str,
    ) -> Result<Option<String>, StoreError> {
        self.run(self.read_membership(namespace, experiment, member))
            .await
    }

    async fn count_join(&self, join: Join) -> Result<JoinAnswer, StoreError> {
        self.run_whole(|store| async move { store.join_event(join).await })
            .await
    }

    async fn member_count(&self, namespace: &str, experiment: &str) -> Result<u64, StoreError> {
        self.run(self.count_members(namespace, experiment)).await
    }

    async fn put_once(
        &self,
        namespace: &str,
        experiment: &str,
        key: &Kept,
        value: &str,
    ) -> Result<String, StoreError> {
        let (hash, field) = match key {
            Kept::Member(member) => (self.members_key(namespace, experiment), member.clone()),
            Kept::Weights(period) => (self.weights_key(namespace, experiment), period.to_string()),
        };
        self.run(self.set_once(&hash, &field, value)).await
    }

    async fn weight_history(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        self.run(self.read_weights(namespace, experiment)).await
    }

    /// Also refuses a Redis that may evict lamed's keys, so `/health`
    /// reports a policy changed while serving.
    async fn check_writable(&self) -> Result<(), StoreError> {
        self.run(async {
            self.check_eviction_policy().await?;
            self.write_heartbeat().await
        })
        .await
    }

    fn dedupe_entries(&self) -> Option<u64> {
        None
    }

    async fn import_counter(
        &self,
        namespace: &str,
        experiment: &str,
        event: &str,
        variant: &str,
        count: u64,
    ) -> Result<Option<u64>, StoreError> {
        let names = [namespace, experiment, event, variant].map(str::to_owned);
        self.run_whole(|store| async move {
            let [namespace, experiment, event, variant] = names;
            store
                .import(&namespace, &experiment, &event, &variant, count)
                .await
        })
        .await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.mark_closed();
        Ok(())
    }

    async fn experiment_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<Counter>, StoreError> {
        self.run(self.read_experiment_counters(namespace, experiment))
            .await
    }

    async fn segment_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<lamed_core::segments::SegmentCounter>, StoreError> {
        self.run(self.read_segment_counters(namespace, experiment))
            .await
    }

    async fn weights_of(
        &self,
        namespace: &str,
        experiment: &str,
        period: i64,
    ) -> Result<Option<String>, StoreError> {
        self.run(self.read_weights_of(namespace, experiment, period))
            .await
    }

    async fn namespaces(&self) -> Result<Vec<String>, StoreError> {
        self.run(self.read_namespaces()).await
    }

    async fn alert_state(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.run(self.read_alert_state(key)).await
    }

    async fn alert_states(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        self.run(self.read_alert_states(prefix)).await
    }

    async fn put_alert_state(
        &self,
        key: &str,
        value: Option<&str>,
        precondition: Precondition,
    ) -> Result<PutOutcome, StoreError> {
        self.run(self.write_alert_state(key, value, precondition))
            .await
    }
}
