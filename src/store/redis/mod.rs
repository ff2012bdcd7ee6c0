//! The Redis and Redis Cluster store: events are counted by a Lua script,
//! one call per batch of one experiment's events (one round trip), on keys
//! that share a hash slot.
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
//! | `P:{T}:f` | hash | `event \x1f variant` → counter slot; a field with a slot has been counted |
//! | `P:{T}:c` | string | totals: a 64-bit counter per slot (BITFIELD `i64 #slot`) |
//! | `P:{T}:i` | hash | `event \x1f variant` → imported base (`lamed import`) |
//! | `P:{T}:d:<day>`, `P:{T}:days` | string, zset | daily counters (slots as in `:c`), kept `daily_retention_days` |
//! | `P:{T}:m` | hash | per live dedupe bucket, insertions tried; the last day counted |
//! | `P:{T}:s:<bucket>:<shard>` | hash | dedupe memory: 8-byte digest → first-seen offset (ms) |
//!
//! See `track.lua` for the dedupe memory's buckets and shards, and
//! `coalesce.rs` for how concurrent events of one experiment share a
//! script call.

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
