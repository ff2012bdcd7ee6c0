//! The key layout: every key the store writes is named here.
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
//! | `P:{T}:n` | string | values: six 64-bit limbs per counter slot (BITFIELD `i64 #(slot*6+k)`, see `value.rs`) |
//! | `P:{T}:w` | hash | adaptive weights: period → JSON, set once per period (`weights.rs`) |
//! | `P:{T}:i` | hash | `event \x1f variant` → imported base (`lamed import`) |
//! | `P:{T}:d:<day>`, `P:{T}:days` | string, zset | daily counters (slots as in `:c`), kept `daily_retention_days` |
//! | `P:{T}:r` | hash | the registry: `status`, and `record` (JSON) or `created` (ms) for one tracking registered |
//! | `P:{T}:x` | hash | memberships: member → value (`members.rs`), no expiry |
//! | `P:{T}:m` | hash | per live dedupe bucket, insertions tried; the last day counted |
//! | `P:{T}:s:<bucket>:<shard>` | hash | dedupe memory: 8-byte digest → first-seen offset (ms) |
//! | `P:heartbeat` | string | the last health check's write |
//! | `P:layout` | string | layout version and dedupe window, written once, never expires (`layout.rs`) |
//!
//! The scripts derive the `P:{T}:...` keys from the base `P:{T}`; see
//! `track.lua` for the dedupe memory's buckets and shards.

use super::store::RedisStore;
use lamed_core::names::hash_parts;

/// Field separator inside hash fields: names cannot hold control
/// characters (see `model::check_field`), so `\x1f` never appears in them.
const SEPARATOR: char = '\x1f';

impl RedisStore {
    /// `P`: the prefix of every key.
    pub(super) fn prefix(&self) -> &str {
        &self.inner.options.key_prefix
    }

    /// `P:{T}`: the base of an experiment's keys.
    pub(super) fn experiment_base(&self, namespace: &str, experiment: &str) -> String {
        format!(
            "{}:{{{}}}",
            self.prefix(),
            tag(&[namespace.as_bytes(), experiment.as_bytes()])
        )
    }

    /// `P:{N}:exps`: a namespace's experiment names.
    pub(super) fn namespace_key(&self, namespace: &str) -> String {
        format!(
            "{}:{{{}}}:exps",
            self.prefix(),
            tag(&[namespace.as_bytes()])
        )
    }

    /// `P:namespaces`: every namespace.
    pub(super) fn namespaces_key(&self) -> String {
        format!("{}:namespaces", self.prefix())
    }

    /// `P:layout`: the key layout version and dedupe window of every
    /// instance on this Redis (see `layout.rs`).
    pub(super) fn layout_key(&self) -> String {
        format!("{}:layout", self.prefix())
    }

    /// `P:heartbeat`: written by the health check.
    pub(super) fn heartbeat_key(&self) -> String {
        format!("{}:heartbeat", self.prefix())
    }
}

/// 16 hex digits of the parts' identity hash: a hash tag that
/// no name can break (names may contain `{`, `}` and `:`).
fn tag(parts: &[&[u8]]) -> String {
    // Per event, so no `format!` per byte.
    let hash = u64::from_be_bytes(hash_parts(parts)[..8].try_into().expect("8 bytes"));
    format!("{hash:016x}")
}

/// Splits a counter field `event \x1f variant` (as the scripts write it).
pub(super) fn split_field(field: &str) -> Option<(String, String)> {
    field
        .split_once(SEPARATOR)
        .map(|(event, variant)| (event.to_owned(), variant.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tag is 16 hex digits, and the parts' boundaries matter: moving a
    /// byte from one name to the other gives another tag.
    #[test]
    fn tags_are_fixed_width_and_unambiguous() {
        let t = tag(&[b"ab", b"c"]);
        assert_eq!(t.len(), 16);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()), "{t}");
        assert_eq!(t, tag(&[b"ab", b"c"]));
        assert_ne!(t, tag(&[b"a", b"bc"]));
        assert_ne!(t, tag(&[b"abc"]));
    }

    /// A field splits at the first separator; without one it is no field.
    #[test]
    fn fields_split_at_the_separator() {
        assert_eq!(
            split_field("buy\x1fred"),
            Some(("buy".to_owned(), "red".to_owned()))
        );
        assert_eq!(split_field("buy"), None);
    }
}
