//! [`DynamoDbStore`]: the [`Store`] on one DynamoDB table. This file holds
//! its state and the trait impl; each operation lives in the module of its
//! concept (see the table in `mod.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use super::hints::FullSegments;
use super::options::DynamoDbOptions;
use crate::{Join, JoinAnswer, Kept, Precondition, PutOutcome, Store, StoreError, Versioned};
use lamed_core::model::{Counter, DailyCounter, Event, TrackOutcome};
use lamed_core::registry::ExperimentRecord;

/// [`Store`] on DynamoDB; cheap to clone, clones share the client.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    inner: Arc<Inner>,
}

/// What the clones of one store share.
#[derive(Debug)]
struct Inner {
    client: Client,
    options: DynamoDbOptions,
    closed: AtomicBool,
    /// Random per instance, so that transaction tokens of two instances
    /// (or two calls for the same event) never collide: a token names one
    /// transaction and its retries, nothing else.
    instance: [u8; 16],
    /// Numbers this instance's calls, for the same reason.
    calls: AtomicU64,
    /// The segment sets read full (`track.rs`).
    full_segments: FullSegments,
}

impl DynamoDbStore {
    /// Connects with the SDK's configuration, creates the table when
    /// missing (refusing one of another key schema), then compares the
    /// dedupe window with the one the table was first used with
    /// (`layout.rs`) and proves a write: a wrong region, missing
    /// credentials or another window is reported at start.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] naming the table and the cause, or the
    /// stored and configured windows and the fix.
    pub async fn open(options: DynamoDbOptions) -> Result<Self, StoreError> {
        let sdk = match &options.sdk {
            Some(sdk) => sdk.clone(),
            None => super::sdk::defaults().load().await,
        };
        let mut instance = [0u8; 16];
        getrandom::fill(&mut instance).map_err(|e| {
            StoreError::unavailable(format!("no randomness for the instance id: {e}"))
        })?;
        let store = DynamoDbStore {
            inner: Arc::new(Inner {
                client: {
                    let mut config = aws_sdk_dynamodb::config::Builder::from(&sdk);
                    for interceptor in &options.interceptors {
                        config = config.interceptor(interceptor.clone());
                    }
                    Client::from_conf(config.build())
                },
                options,
                closed: AtomicBool::new(false),
                instance,
                calls: AtomicU64::new(0),
                full_segments: FullSegments::default(),
            }),
        };
        store.run(store.ensure_table()).await?;
        store.run(store.check_layout()).await?;
        store.check_writable().await?;
        Ok(store)
    }

    pub(super) fn client(&self) -> &Client {
        &self.inner.client
    }

    pub(super) fn table(&self) -> &str {
        &self.inner.options.table
    }

    pub(super) fn options(&self) -> &DynamoDbOptions {
        &self.inner.options
    }

    pub(super) fn full_segments(&self) -> &FullSegments {
        &self.inner.full_segments
    }

    pub(super) fn now_ms(&self) -> i64 {
        self.inner.options.clock.now_ms()
    }

    pub(super) fn check_open(&self) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    /// A `ClientRequestToken` base for one call about `identity`: the
    /// caller adds the attempt's plan number.
    pub(super) fn token_seed(&self, identity: &str) -> blake3::Hasher {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.inner.instance);
        let call = self.inner.calls.fetch_add(1, Ordering::Relaxed);
        hasher.update(&call.to_le_bytes());
        hasher.update(identity.as_bytes());
        hasher
    }
}

/// The token of plan `round` of a call seeded with `seed` (32 hex
/// characters: DynamoDB takes at most 36).
pub(super) fn token(seed: &blake3::Hasher, round: u32) -> String {
    let mut hasher = seed.clone();
    hasher.update(&round.to_le_bytes());
    hasher.finalize().to_hex()[..32].to_owned()
}

/// Every operation runs under the store's deadline.
#[async_trait]
impl Store for DynamoDbStore {
    async fn track(&self, events: Vec<Event>) -> Result<Vec<TrackOutcome>, StoreError> {
        self.run(self.track_events(events)).await
    }

    async fn counters(&self, namespace: &str) -> Result<Vec<Counter>, StoreError> {
        self.run(self.read_counters(namespace)).await
    }

    async fn daily_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<DailyCounter>, StoreError> {
        self.run(self.read_daily(namespace, experiment)).await
    }

    async fn experiments(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        self.run(self.read_experiments(namespace)).await
    }

    async fn delete_experiment(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<bool, StoreError> {
        self.run(self.delete(namespace, experiment)).await
    }

    async fn import_counter(
        &self,
        namespace: &str,
        experiment: &str,
        event: &str,
        variant: &str,
        count: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.run(self.import(namespace, experiment, event, variant, count))
            .await
    }

    async fn record(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Option<ExperimentRecord>, StoreError> {
        self.run(async {
            Ok(self
                .read_record(namespace, experiment)
                .await?
                .map(|(record, _)| record))
        })
        .await
    }

    async fn records(&self, namespace: &str) -> Result<Vec<ExperimentRecord>, StoreError> {
        self.run(self.read_records(namespace)).await
    }

    async fn put_record(
        &self,
        record: ExperimentRecord,
        precondition: Precondition,
    ) -> Result<PutOutcome, StoreError> {
        self.run(self.write_record(record, precondition)).await
    }

    async fn membership(
        &self,
        namespace: &str,
        experiment: &str,
        member: &str,
    ) -> Result<Option<String>, StoreError> {
        self.run(self.read_member(namespace, experiment, member))
            .await
    }

    async fn put_once(
        &self,
        namespace: &str,
        experiment: &str,
        key: &Kept,
        value: &str,
    ) -> Result<String, StoreError> {
        self.run(self.keep(namespace, experiment, key, value)).await
    }

    async fn count_join(&self, join: Join) -> Result<JoinAnswer, StoreError> {
        self.run(self.join_event(join)).await
    }

    async fn member_count(&self, namespace: &str, experiment: &str) -> Result<u64, StoreError> {
        self.run(self.count_members(namespace, experiment)).await
    }

    async fn weight_history(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        self.run(self.read_weights(namespace, experiment)).await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.run(self.write_heartbeat()).await
    }

    fn dedupe_entries(&self) -> Option<u64> {
        None
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.inner.closed.store(true, Ordering::Release);
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
