//! The stored layout: one dedupe window and key-layout version per Redis
//! (per key prefix).
//!
//! The dedupe memory is cut into buckets one window long, numbered by
//! `now / window` (see `track.lua`): an instance with another window reads
//! other bucket numbers and compares with another cut-off, so two instances
//! with different `uuid_expiry_seconds` on one Redis would count re-sent
//! events again, and nothing would say so. Likewise an instance of another
//! key layout would misread the keys. So the first instance to open a Redis
//! records both under `P:layout` (`SET NX`, no expiry: the store refuses an
//! evicting Redis, so the key stays), and every later one compares its own
//! and refuses to start on a difference.
//!
//! A Redis used before this key existed gets the window of the first
//! instance that opens it.

use super::store::RedisStore;
use crate::StoreError;

/// The version of the key layout in `keys.rs`: raised whenever a key's
/// name or encoding changes, so an instance never reads keys it would
/// misunderstand. 2: memberships keep hashes, not client ids.
pub(super) const LAYOUT_VERSION: u32 = 2;

/// The oldest layout this lamed upgrades (`upgrade.rs`).
const UPGRADES_FROM: u32 = 1;

/// What `P:layout` holds: the layout version and the dedupe window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    version: u32,
    window_seconds: u64,
}

impl Stamp {
    /// As stored: `layout=<version> uuid_expiry_seconds=<window>`, readable
    /// by whoever looks at the key with `redis-cli GET`.
    fn encode(self) -> String {
        format!(
            "layout={} uuid_expiry_seconds={}",
            self.version, self.window_seconds
        )
    }

    /// The stored text back; `None` when it is not what [`encode`](Self::encode) writes.
    fn decode(text: &str) -> Option<Stamp> {
        let mut fields = text.split_whitespace();
        let version = fields.next()?.strip_prefix("layout=")?.parse().ok()?;
        let window_seconds = fields
            .next()?
            .strip_prefix("uuid_expiry_seconds=")?
            .parse()
            .ok()?;
        fields.next().is_none().then_some(Stamp {
            version,
            window_seconds,
        })
    }
}

/// A window as users write it, for messages: 0 keeps uuids forever.
fn describe(window_seconds: u64) -> String {
    if window_seconds == 0 {
        "0 (uuids kept forever)".to_owned()
    } else {
        window_seconds.to_string()
    }
}

impl RedisStore {
    /// Records this instance's window and layout version under `P:layout`
    /// unless another instance did first, then refuses a difference.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] naming both values and the fix, or the
    /// Redis error.
    pub(super) async fn check_layout(&self) -> Result<(), StoreError> {
        let mine = Stamp {
            version: LAYOUT_VERSION,
            window_seconds: self.inner.options.uuid_expiry_seconds,
        };
        let key = self.layout_key();
        // One key, so one node on a cluster; SET NX never overwrites, and
        // the GET after it reads what won.
        let (_, stored): (Option<String>, String) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(mine.encode())
            .arg("NX")
            .cmd("GET")
            .arg(&key)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        let at = format!("redis at {}, key {key}", self.inner.target);
        let Some(theirs) = Stamp::decode(&stored) else {
            return Err(StoreError::unavailable(format!(
                "{at}: holds {stored:?}, not a lamed layout stamp; \
                 fix: use another Redis or database (db) for lamed"
            )));
        };
        if theirs.version == UPGRADES_FROM && theirs.window_seconds == mine.window_seconds {
            let rewritten = self.hash_legacy_members().await?;
            redis::cmd("SET")
                .arg(&key)
                .arg(mine.encode())
                .exec_async(&mut self.conn())
                .await
                .map_err(|e| self.error(e))?;
            tracing::info!(
                rewritten,
                from = theirs.version,
                to = mine.version,
                "redis key layout upgraded: memberships hashed"
            );
            return Ok(());
        }
        if theirs.version != mine.version {
            return Err(StoreError::unavailable(format!(
                "{at}: the keys are in layout version {}, this lamed writes version {}; \
                 fix: run one lamed version on this Redis, or use another Redis or database (db)",
                theirs.version, mine.version
            )));
        }
        if theirs.window_seconds != mine.window_seconds {
            return Err(StoreError::unavailable(format!(
                "{at}: the instances on this Redis deduplicate with uuid_expiry_seconds = {}, \
                 this one is configured with {}; instances sharing a Redis must use one window, \
                 or they miscount each other's duplicates; fix: set uuid_expiry_seconds = {} \
                 here (or change it everywhere and delete {key}), or use another Redis or \
                 database (db)",
                describe(theirs.window_seconds),
                describe(mine.window_seconds),
                theirs.window_seconds,
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Stamp;
    use crate::redis::testing::RedisServer;
    use crate::redis::tests::{open, try_open};
    use lamed_core::clock::Clock;
    use lamed_core::model::Caps;

    /// What is written reads back; anything else is no stamp.
    #[test]
    fn stamps_round_trip() {
        let stamp = Stamp {
            version: 3,
            window_seconds: 60,
        };
        assert_eq!(Stamp::decode(&stamp.encode()), Some(stamp));
        for text in ["", "layout=1", "layout=x uuid_expiry_seconds=1", "1 60"] {
            assert_eq!(Stamp::decode(text), None, "{text}");
        }
    }

    /// A second store with another window on the same Redis and prefix is
    /// refused, naming both windows and the fix; the same window, or
    /// another prefix, opens. The stamp never expires.
    #[tokio::test]
    async fn one_window_per_redis_and_prefix() {
        let server = RedisServer::start();
        let url = server.url();
        let first = open(&url, "w", 60, Caps::default(), Clock::System).await;
        let err = try_open(&url, "w", 120, Caps::default(), Clock::System)
            .await
            .unwrap_err()
            .to_string();
        for needle in ["uuid_expiry_seconds = 60,", "configured with 120;", "fix:"] {
            assert!(err.contains(needle), "{needle}: {err}");
        }
        open(&url, "w", 60, Caps::default(), Clock::System).await;
        open(&url, "other", 120, Caps::default(), Clock::System).await;
        let ttl: i64 = redis::cmd("TTL")
            .arg(first.layout_key())
            .query_async(&mut first.conn())
            .await
            .unwrap();
        assert_eq!(ttl, -1, "no expiry");
    }

    /// A Redis of layout 1 is upgraded at open: its memberships are kept
    /// under their hash, with their values, and the stamp says layout 2;
    /// opening again changes nothing. On a standalone Redis and a cluster.
    #[tokio::test]
    async fn layout_1_memberships_are_hashed() {
        let server = RedisServer::start();
        upgrade_hashes_memberships(&server.url(), "u").await;
        let cluster = crate::redis::testing::RedisCluster::shared();
        upgrade_hashes_memberships(&cluster.urls(), "layout-upgrade").await;
    }

    async fn upgrade_hashes_memberships(url: &str, prefix: &str) {
        use crate::Store;
        use lamed_core::sixpack::{conversion_member, participant_member};
        let store = open(url, prefix, 60, Caps::default(), Clock::System).await;
        let members = store.members_key("sixpack", "e");
        let legacy = [
            ("alice@example.com", "red"),
            ("alice@example.com\x1fbuy", "red"),
        ];
        redis::cmd("HSET")
            .arg(&members)
            .arg(&legacy[..])
            .exec_async(&mut store.conn())
            .await
            .unwrap();
        redis::cmd("SET")
            .arg(store.layout_key())
            .arg("layout=1 uuid_expiry_seconds=60")
            .exec_async(&mut store.conn())
            .await
            .unwrap();
        for _ in 0..2 {
            let store = open(url, prefix, 60, Caps::default(), Clock::System).await;
            let held = |member: String| {
                let store = store.clone();
                async move { store.membership("sixpack", "e", &member).await.unwrap() }
            };
            let alice = participant_member("alice@example.com");
            assert_eq!(held(alice).await.as_deref(), Some("red"));
            let bought = conversion_member("alice@example.com", "buy");
            assert_eq!(held(bought).await.as_deref(), Some("red"));
            assert_eq!(held("alice@example.com".into()).await, None);
            let stamp: String = redis::cmd("GET")
                .arg(store.layout_key())
                .query_async(&mut store.conn())
                .await
                .unwrap();
            assert!(stamp.contains("layout=2"), "{stamp}");
            let fields: Vec<String> = redis::cmd("HKEYS")
                .arg(&members)
                .query_async(&mut store.conn())
                .await
                .unwrap();
            assert_eq!(fields.len(), 3, "two members and the mark: {fields:?}");
            assert!(fields.iter().all(|f| !f.contains("alice")), "{fields:?}");
        }
    }

    /// Another layout version, or a foreign value, is refused too.
    #[tokio::test]
    async fn another_layout_is_refused() {
        let server = RedisServer::start();
        let url = server.url();
        let store = open(&url, "v", 60, Caps::default(), Clock::System).await;
        for (stored, needle) in [
            ("layout=99 uuid_expiry_seconds=60", "layout version 99"),
            ("hello", "not a lamed layout stamp"),
        ] {
            redis::cmd("SET")
                .arg(store.layout_key())
                .arg(stored)
                .exec_async(&mut store.conn())
                .await
                .unwrap();
            let err = try_open(&url, "v", 60, Caps::default(), Clock::System)
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }
}
