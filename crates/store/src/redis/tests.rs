//! The conformance suite on a standalone Redis and on a Redis Cluster, and
//! the helpers the other modules' tests open stores with.

use super::options::{RedisOptions, DEFAULT_KEY_PREFIX};
use super::settings::RedisSettings;
use super::store::RedisStore;
use super::testing::RedisServer;
use crate::{conformance, StoreError};
use lamed_core::clock::Clock;
use lamed_core::model::Caps;

/// A store on `urls` with its own key prefix and clock.
pub(super) async fn open(
    urls: &str,
    prefix: &str,
    window: u64,
    caps: Caps,
    clock: Clock,
) -> RedisStore {
    try_open(urls, prefix, window, caps, clock)
        .await
        .expect("open redis store")
}

/// [`open`], returning the error.
pub(super) async fn try_open(
    urls: &str,
    prefix: &str,
    window: u64,
    caps: Caps,
    clock: Clock,
) -> Result<RedisStore, StoreError> {
    let settings = RedisSettings::from_urls(urls).expect("valid url");
    RedisStore::open(RedisOptions {
        key_prefix: prefix.to_owned(),
        clock,
        ..RedisOptions::new(settings, window, caps)
    })
    .await
}

/// A store on a private standalone server of its own.
pub(super) async fn fresh(window: u64, caps: Caps, clock: Clock) -> (RedisServer, RedisStore) {
    let server = RedisServer::start();
    let store = open(&server.url(), DEFAULT_KEY_PREFIX, window, caps, clock).await;
    assert!(!store.is_cluster(), "a standalone server is not a cluster");
    (server, store)
}

conformance::conformance_tests!(fresh);

/// The whole conformance suite again on a three-master Redis Cluster, so
/// every check (a new one too) must pass with no cross-slot error.
mod cluster {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::open;
    use crate::conformance;
    use crate::redis::testing::RedisCluster;
    use crate::redis::RedisStore;
    use lamed_core::clock::Clock;
    use lamed_core::model::Caps;

    /// A store on the shared cluster under a key prefix no other test of
    /// this process uses, so the checks run side by side on one cluster.
    /// The returned handle keeps the cluster up for the test (see
    /// [`RedisCluster::shared`]).
    async fn fresh(window: u64, caps: Caps, clock: Clock) -> (Arc<RedisCluster>, RedisStore) {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let cluster = RedisCluster::shared();
        let prefix = format!("c{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let store = open(&cluster.urls(), &prefix, window, caps, clock).await;
        assert!(store.is_cluster(), "three seeds make a cluster");
        (cluster, store)
    }

    conformance::conformance_tests!(fresh);

    /// A single seed node is detected as a cluster member.
    #[tokio::test]
    async fn a_single_seed_node_is_detected_as_cluster() {
        let cluster = RedisCluster::shared();
        let store = open(
            &cluster.nodes[1].url(),
            "single",
            86_400,
            Caps::default(),
            Clock::System,
        )
        .await;
        assert!(store.is_cluster());
    }
}
