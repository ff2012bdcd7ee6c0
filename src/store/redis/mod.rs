//! The Redis and Redis Cluster store: every event is counted by one Lua
//! script run in one round trip, on keys that share a hash slot.
//!
//! # Key layout
//!
//! `P` is the key prefix (`lmd` unless configured). An experiment's keys all
//! carry the hash tag `{T}`, where `T` is 16 hex digits of a blake3 hash of
//! its namespace and name, so the tracking script touches one slot only
//! (names may contain `{` or `}`, which is why they are hashed, not used):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:namespaces` | set | namespaces (namespaces cap) |
//! | `P:{N}:exps` | set | experiment names of a namespace; `N` hashes the namespace (experiments cap) |
//! | `P:{T}:v`, `P:{T}:g` | set | variants, goals (their caps); `:v` exists iff the experiment does |
//! | `P:{T}:c` | hash | `event \x1f variant` → count |
//! | `P:{T}:i` | hash | `event \x1f variant` → imported base (`lamed import`) |
//! | `P:{T}:d:<day>`, `P:{T}:days` | hash, zset | daily counters, kept `daily_retention_days` |
//! | `P:{T}:s:<bucket>:<level>:<shard>` | hash | dedupe memory: 8-byte digest → first-seen offset (ms) |
//!
//! See `track.lua` for the dedupe memory's buckets, levels and shards.

pub mod settings;

#[cfg(feature = "redis")]
mod backend;
#[cfg(feature = "redis")]
mod coalesce;
#[cfg(feature = "redis")]
pub use backend::{RedisOptions, RedisStore, DEFAULT_DAILY_RETENTION_DAYS, DEFAULT_KEY_PREFIX};

#[cfg(all(feature = "redis", any(test, feature = "conformance")))]
pub mod testing;

pub use settings::{RedisNode, RedisSettings, RedisSettingsError};
