//! The Redis and Redis Cluster store: events are counted by a Lua script,
//! one call per batch of one experiment's events (one round trip), on keys
//! that share a hash slot.
//!
//! One file per concept:
//!
//! | file | concept |
//! |---|---|
//! | `settings.rs` | where Redis is, as users write it (builds without the `redis` feature) |
//! | `options.rs` | how the store is set up: window, caps, key prefix, retention, clock |
//! | `store.rs` | [`RedisStore`] and its [`Store`](crate::Store) impl, which delegates to the modules below |
//! | `connection.rs` | opening (TLS, cluster detection), deadlines, errors |
//! | `keys.rs` | the key layout |
//! | `layout.rs` | one dedupe window and layout version per Redis and key prefix, refused at open on a difference |
//! | `upgrade.rs` | upgrading layout 1 at open: memberships hashed |
//! | `register.rs`, `register.lua`, `fence.lua` | namespace and experiment lists under their caps, holding only experiments that exist |
//! | `track.rs`, `track.lua`, `coalesce.rs` | counting events: registry status, dedupe, caps, counters |
//! | `registry.rs`, `put_record.lua` | experiments' registry records, written under a precondition |
//! | `members.rs` | memberships (Sixpack's clients), kept as long as their experiment |
//! | `weights.rs` | adaptive experiments' weight history, one entry per period |
//! | `reads.rs` | counters, daily counters, experiment lists |
//! | `admin.rs`, `delete.lua`, `import.lua` | delete, import, health, close |
//! | `eviction.rs` | refusing a Redis whose `maxmemory-policy` may evict lamed's keys |
//! | `alerts.rs`, `alerts.lua` | the alerts' state documents, written under a precondition |
//! | `testing.rs` | private `redis-server`s and clusters for tests |

pub mod settings;

#[cfg(feature = "redis")]
mod admin;
#[cfg(feature = "redis")]
mod alerts;
#[cfg(feature = "redis")]
mod coalesce;
#[cfg(feature = "redis")]
mod connection;
#[cfg(feature = "redis")]
mod eviction;
#[cfg(feature = "redis")]
mod keys;
#[cfg(feature = "redis")]
mod layout;
#[cfg(feature = "redis")]
mod members;
#[cfg(feature = "redis")]
mod options;
#[cfg(feature = "redis")]
mod reads;
#[cfg(feature = "redis")]
mod register;
#[cfg(feature = "redis")]
mod registry;
#[cfg(feature = "redis")]
mod store;
#[cfg(all(feature = "redis", test))]
mod tests;
#[cfg(feature = "redis")]
mod track;
#[cfg(feature = "redis")]
mod upgrade;
#[cfg(feature = "redis")]
mod weights;

/// `lamed preflight` applies the same rule as the store.
#[cfg(feature = "redis")]
pub use eviction::eviction_refusal;
#[cfg(feature = "redis")]
pub use options::{RedisOptions, DEFAULT_DAILY_RETENTION_DAYS, DEFAULT_KEY_PREFIX};
#[cfg(feature = "redis")]
pub use store::RedisStore;

#[cfg(all(feature = "redis", any(test, feature = "conformance")))]
pub mod testing;

pub use settings::{RedisNode, RedisSettings, RedisSettingsError};
