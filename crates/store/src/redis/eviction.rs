//! The eviction policy: lamed counts exactly only while Redis keeps every
//! key lamed wrote. Under any `maxmemory-policy` other than `noeviction`, a
//! full Redis drops keys: under `volatile-*` the dedupe keys first (they
//! carry TTLs, the counters do not), so re-sent events are counted again;
//! under `allkeys-*` the counters themselves. Either way every request is
//! still answered 200. So the store refuses such a Redis at open and in the
//! health check; under `noeviction` a full Redis refuses writes instead,
//! which lamed answers 503 and clients retry.
//!
//! The policy is read from `INFO memory`, not `CONFIG GET`: managed Redis
//! services often disable `CONFIG`.

use std::collections::BTreeMap;

use super::store::RedisStore;
use crate::StoreError;

/// The one policy under which Redis never drops a key.
const NO_EVICTION: &str = "noeviction";

/// Why a Redis whose `INFO memory` answer is `info` must not be used, or
/// `None` when it keeps every key. A Redis that reports no
/// `maxmemory_policy` is accepted: Redis has reported it since 3.2 and has
/// defaulted to `noeviction` since 3.0, and a server without the field
/// cannot be judged. Shared by the store and `lamed preflight`, so the rule
/// is written once.
pub fn eviction_refusal(info: &str) -> Option<String> {
    let policy = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("maxmemory_policy:"))?
        .trim();
    (policy != NO_EVICTION).then(|| {
        format!(
            "maxmemory-policy is {policy}: when its memory is full Redis may evict lamed's keys \
             (deduplication memory or counters), and counts would no longer be exact; \
             fix: CONFIG SET maxmemory-policy {NO_EVICTION} (and CONFIG REWRITE), or on a \
             managed Redis set maxmemory-policy to {NO_EVICTION} in its parameter group"
        )
    })
}

impl RedisStore {
    /// Reads the policy of the standalone Redis or of every cluster master
    /// and refuses any that may evict (see [`eviction_refusal`]).
    pub(super) async fn check_eviction_policy(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let mut info = redis::cmd("INFO");
        info.arg("memory");
        // A cluster connection sends INFO to every master and answers a
        // map from each master's address to its answer.
        let answers: BTreeMap<Option<String>, String> = if self.inner.cluster {
            let by_node: BTreeMap<String, String> = info
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            by_node.into_iter().map(|(n, i)| (Some(n), i)).collect()
        } else {
            let answer: String = info
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            BTreeMap::from([(None, answer)])
        };
        for (node, info) in answers {
            if let Some(refusal) = eviction_refusal(&info) {
                let node = node.map(|n| format!(" (node {n})")).unwrap_or_default();
                return Err(StoreError::unavailable(format!(
                    "redis at {}{node}: {refusal}",
                    self.inner.target
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::eviction_refusal;
    use crate::redis::testing::{RedisCluster, RedisServer};
    use crate::redis::{RedisOptions, RedisSettings, RedisStore};
    use crate::{Store, StoreError};
    use lamed_core::model::Caps;

    /// Opens a store on `url` with its own key prefix.
    async fn try_open(url: &str) -> Result<RedisStore, StoreError> {
        let settings = RedisSettings::from_urls(url).unwrap();
        RedisStore::open(RedisOptions {
            key_prefix: "eviction".to_owned(),
            ..RedisOptions::new(settings, 86_400, Caps::default())
        })
        .await
    }

    /// The refusal names the node, the policy and both fixes.
    fn assert_refusal(err: &StoreError, node: &str, policy: &str) {
        let message = err.to_string();
        assert!(message.contains(node), "{message}");
        assert!(
            message.contains(&format!("maxmemory-policy is {policy}:")),
            "{message}"
        );
        assert!(
            message.contains("CONFIG SET maxmemory-policy noeviction"),
            "{message}"
        );
        assert!(message.contains("parameter group"), "{message}");
    }

    #[test]
    fn only_noeviction_or_no_policy_is_accepted() {
        let info =
            |policy: &str| format!("# Memory\r\nmaxmemory:0\r\nmaxmemory_policy:{policy}\r\n");
        assert_eq!(eviction_refusal(&info("noeviction")), None);
        assert_eq!(eviction_refusal("# Memory\r\nused_memory:1\r\n"), None);
        for policy in [
            "allkeys-lru",
            "allkeys-lfu",
            "volatile-lfu",
            "volatile-random",
        ] {
            let refusal = eviction_refusal(&info(policy)).expect(policy);
            assert!(refusal.contains(policy), "{refusal}");
        }
    }

    #[tokio::test]
    async fn noeviction_opens() {
        let server = RedisServer::start_with_policy("noeviction");
        let store = try_open(&server.url()).await.unwrap();
        store.check_writable().await.unwrap();
    }

    #[tokio::test]
    async fn evicting_policies_are_refused_at_open() {
        for policy in [
            "allkeys-lru",
            "volatile-lru",
            "allkeys-random",
            "volatile-ttl",
        ] {
            let server = RedisServer::start_with_policy(policy);
            let err = try_open(&server.url()).await.unwrap_err();
            assert_refusal(&err, &server.url(), policy);
        }
    }

    #[tokio::test]
    async fn a_policy_changed_while_serving_fails_the_health_check() {
        let server = RedisServer::start();
        let store = try_open(&server.url()).await.unwrap();
        store.check_writable().await.unwrap();
        assert!(server
            .cmd("CONFIG SET maxmemory-policy allkeys-lru")
            .starts_with("+OK"));
        let err = store.check_writable().await.unwrap_err();
        assert_refusal(&err, &server.url(), "allkeys-lru");
    }

    /// One master of three set to evict refuses the whole cluster, naming
    /// that master. A cluster of its own: the shared one must keep
    /// accepting other tests' opens meanwhile.
    #[tokio::test]
    async fn one_evicting_cluster_master_is_refused() {
        let cluster = RedisCluster::start();
        let node = &cluster.nodes[2];
        assert!(node
            .cmd("CONFIG SET maxmemory-policy allkeys-lru")
            .starts_with("+OK"));
        let err = try_open(&cluster.urls()).await.unwrap_err();
        assert_refusal(&err, &format!("127.0.0.1:{}", node.port), "allkeys-lru");
    }
}
