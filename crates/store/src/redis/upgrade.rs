//! Upgrading a Redis written in an older key layout (see `layout.rs`).
//!
//! Layout 1 kept each Sixpack membership under the client id itself
//! (`client`, or `client \x1f goal` for a conversion), and client ids are
//! often user ids or e-mail addresses. Layout 2 keeps a hash instead
//! (`lamed_core::sixpack::participant_member`). The upgrade rewrites every
//! membership hash ([`Key::Members`]) of the prefix, on every master of a
//! cluster, then stamps the new version.
//!
//! One instance upgrades at a time (a lock key with an expiry); the others
//! refuse to start until it is done (a supervisor starts them again). Each
//! hash is rewritten in one transaction that also writes [`CONVERTED`]
//! into it, so an upgrade cut short resumes without hashing a hash twice.

use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::Value;

use super::connection::Conn;
use super::keys::Key;
use super::store::RedisStore;
use crate::StoreError;
use lamed_core::sixpack::hashed_legacy_member;

/// The field a membership hash holds once its members are hashes. No
/// member is named so: members are 32 hex digits.
pub(super) const CONVERTED: &str = "\x1fhashed";

/// How long an upgrade may hold its lock before another instance may take
/// over (an instance that died mid-way).
const LOCK_MS: u64 = 10 * 60 * 1000;

/// Keys a `SCAN` call returns at most (a hint to Redis).
const SCAN_COUNT: u32 = 1000;

impl RedisStore {
    /// Rewrites every membership hash of layout 1 with hashed members.
    /// Answers how many hashes it rewrote.
    ///
    /// # Errors
    ///
    /// When another instance holds the upgrade lock, or Redis fails (the
    /// next start resumes).
    pub(super) async fn hash_legacy_members(&self) -> Result<usize, StoreError> {
        let lock = format!("{}:upgrade", self.layout_key());
        let token = format!("{}", std::process::id());
        let taken: Option<String> = redis::cmd("SET")
            .arg(&lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(LOCK_MS)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        if taken.is_none() {
            return Err(StoreError::unavailable(format!(
                "redis at {}: another lamed is upgrading the key layout (lock {lock}); \
                 start again once it is done",
                self.inner.target
            )));
        }
        let mut rewritten = 0;
        for key in self.membership_keys().await? {
            rewritten += usize::from(self.hash_members_of(&key).await?);
        }
        redis::cmd("DEL")
            .arg(&lock)
            .exec_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        Ok(rewritten)
    }

    /// Every membership hash under this prefix: `SCAN` on the standalone
    /// Redis, or on each master of a cluster.
    async fn membership_keys(&self) -> Result<Vec<String>, StoreError> {
        let pattern = Key::Members.of(&format!("{}:{{*}}", self.prefix()));
        let nodes: Vec<Option<(String, u16)>> = match self.conn() {
            Conn::Single(_) => vec![None],
            Conn::Cluster(_) => self
                .master_addresses()
                .await?
                .into_iter()
                .map(Some)
                .collect(),
        };
        let mut keys = Vec::new();
        for node in nodes {
            let mut cursor = 0u64;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT);
                let answer = match (&node, self.conn()) {
                    (Some((host, port)), Conn::Cluster(mut cluster)) => {
                        let at = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        });
                        cluster.route_command(scan, at).await
                    }
                    (_, mut conn) => scan.query_async::<Value>(&mut conn).await,
                }
                .map_err(|e| self.error(e))?;
                let (next, found): (u64, Vec<String>) =
                    redis::from_redis_value(answer).map_err(|e| self.error(e.into()))?;
                keys.extend(found);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// The masters of the cluster, as `INFO` names them (`host:port`).
    async fn master_addresses(&self) -> Result<Vec<(String, u16)>, StoreError> {
        let by_node: std::collections::BTreeMap<String, Value> = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        by_node
            .into_keys()
            .map(|node| {
                let (host, port) = node.rsplit_once(':').unwrap_or((&node, ""));
                let port = port.parse().map_err(|_| {
                    StoreError::corrupt(format!("unexpected cluster node address {node}"))
                })?;
                Ok((host.to_owned(), port))
            })
            .collect()
    }

    /// Rewrites one membership hash, unless it was; answers whether it
    /// rewrote it.
    async fn hash_members_of(&self, key: &str) -> Result<bool, StoreError> {
        let members: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        if members.iter().any(|(member, _)| member == CONVERTED) {
            return Ok(false);
        }
        let mut transaction = redis::pipe();
        transaction.atomic();
        for (member, value) in &members {
            transaction
                .hdel(key, member)
                .ignore()
                .hset(key, hashed_legacy_member(member), value)
                .ignore();
        }
        transaction.hset(key, CONVERTED, "2").ignore();
        transaction
            .exec_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        Ok(true)
    }
}
