//! The key layout: every key the store writes is named here, once. No
//! other Rust file and no Lua script spells a key or a suffix: the Rust
//! code builds keys with the functions below ([`Key::of`],
//! [`Family::prefix_of`], [`RedisStore::experiment_key`]...), and each
//! script gets the keys it touches as `KEYS[]` (the fixed keys of one
//! experiment, all in its hash slot, as Redis Cluster expects of scripts)
//! plus, for the keys whose names it makes up as it runs (days, dedupe
//! shards), a prefix in `ARGV` (see [`Family`]). The module calling a
//! script lists its keys in the order the script reads them.
//!
//! `P` is the key prefix (`lmd` unless configured). An experiment's keys all
//! carry the hash tag `{T}`, where `T` is 16 hex digits of a blake3 hash of
//! its namespace and name, so the tracking script touches one slot only
//! (names may contain `{` or `}`, which is why they are hashed, not used).
//! The suffixes are those of [`Key`] and [`Family`]:
//!
//! | key | Rust name | type | holds |
//! |---|---|---|---|
//! | `P:namespaces` | [`RedisStore::namespaces_key`] | set | namespaces (namespaces cap) |
//! | `{P:namespaces}:leaving` | [`RedisStore::namespaces_leaving_key`] | hash | namespaces being taken back (still listed) → the take-back's number; in the slot of `P:namespaces` |
//! | `{P:namespaces}:seq` | [`RedisStore::namespaces_sequence_key`] | string | the last number of a namespace's registration or take-back; never goes back |
//! | `P:{N}:exps` | [`RedisStore::namespace_key`] | set | experiment names of a namespace; `N` hashes the namespace (experiments cap) |
//! | `P:{N}:leaving` | [`RedisStore::leaving_key`] | hash | experiments of `P:{N}:exps` being taken back → the take-back's number (`register.rs`) |
//! | `P:{N}:seq` | [`RedisStore::sequence_key`] | string | the last number of a registration or take-back of one of the namespace's experiments; never goes back |
//! | `P:{N}:fence` | [`RedisStore::namespace_fence_key`] | string | the namespace's fence: the highest number of a take-back of the namespace that found its list empty; registrations of the namespace numbered up to it may not list an experiment in it |
//! | `P:{T}:v`, `P:{T}:g` | [`Key::Variants`], [`Key::Goals`] | set | variants, goals (their caps); `:v` exists iff the experiment does |
//! | `P:{T}:f` | [`Key::Slots`] | hash | `event \x1f variant` → counter slot; a field with a slot has been counted |
//! | `P:{T}:c` | [`Key::Totals`] | string | totals: a 64-bit counter per slot (BITFIELD `i64 #slot`) |
//! | `P:{T}:n` | [`Key::Values`] | string | values: six 64-bit limbs per counter slot (BITFIELD `i64 #(slot*6+k)`, see `value.rs`) |
//! | `P:{T}:w` | [`Key::Weights`] | hash | adaptive weights: period → JSON, set once per period (`weights.rs`) |
//! | `P:{T}:i` | [`Key::Imported`] | hash | `event \x1f variant` → imported base (`lamed import`) |
//! | `P:{T}:d:<day>` | [`Family::Day`] | string | daily counters (slots as in `:c`), kept `daily_retention_days` |
//! | `P:{T}:days` | [`Key::Days`] | zset | the days that have daily counters |
//! | `P:{T}:r` | [`Key::Registry`] | hash | the registry: `status`, `version`, and `record` (JSON) or `created` (ms) for one tracking registered |
//! | `P:{T}:x` | [`Key::Members`] | hash | memberships: member → value (`members.rs`), no expiry |
//! | `P:{T}:sg` | [`Key::Segments`] | hash | segment counters (`track.lua`): `c \x1f dimension \x1f value \x1f event \x1f variant` → count, `v<k> \x1f ...` → the value limb k, `h \x1f dimension \x1f value` → 1 for a value held, `n \x1f dimension` → named values held (their cap) |
//! | `P:{T}:m` | [`Key::Meta`] | hash | per live dedupe bucket, insertions tried; the last day counted |
//! | `P:{T}:t` | [`Key::Fence`] | string | the fence: the highest number of a take-back that found no experiment; registrations numbered up to it may not create it (`register.rs`); kept by a delete |
//! | `P:{T}:s:<bucket>:<shard>` | [`Family::DedupeShard`] | hash | dedupe memory: 8-byte digest → first-seen offset (ms) |
//! | `P:heartbeat` | [`RedisStore::heartbeat_key`] | string | the last health check's write |
//! | `P:layout` | [`RedisStore::layout_key`] | string | layout version and dedupe window, written once, never expires (`layout.rs`) |
//!
//! See `track.lua` for the dedupe memory's buckets and shards. Changing a
//! name here changes the layout: raise `LAYOUT_VERSION` (`layout.rs`).

use redis::{Script, ScriptInvocation};

use super::store::RedisStore;
use lamed_core::names::hash_parts;

/// Field separator inside hash fields: names cannot hold control
/// characters (see `model::check_field`), so `\x1f` never appears in them.
const SEPARATOR: char = '\x1f';

/// An experiment's fixed keys: the base `P:{T}` and a suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    /// `:v`, set: the variants; exists iff the experiment does.
    Variants,
    /// `:g`, set: the goals.
    Goals,
    /// `:f`, hash: `event \x1f variant` → counter slot.
    Slots,
    /// `:c`, string: the total counters, one i64 per slot.
    Totals,
    /// `:n`, string: the values, six i64 limbs per slot.
    Values,
    /// `:w`, hash: the adaptive weights, period → JSON.
    Weights,
    /// `:i`, hash: `event \x1f variant` → imported base.
    Imported,
    /// `:days`, zset: the days with daily counters ([`Family::Day`]).
    Days,
    /// `:r`, hash: the registry record.
    Registry,
    /// `:x`, hash: the memberships.
    Members,
    /// `:m`, hash: the dedupe memory's bookkeeping and the last day counted.
    Meta,
    /// `:t`, string: the fence, the highest number of a take-back that
    /// found no experiment (`register.rs`).
    Fence,
    /// `:sg`, hash: the segment counters and the values they hold.
    Segments,
}

impl Key {
    /// Every fixed key of an experiment.
    #[cfg(test)]
    pub(super) const ALL: [Key; 13] = [
        Key::Variants,
        Key::Goals,
        Key::Slots,
        Key::Totals,
        Key::Values,
        Key::Weights,
        Key::Imported,
        Key::Days,
        Key::Registry,
        Key::Members,
        Key::Meta,
        Key::Fence,
        Key::Segments,
    ];

    /// What follows the base in the key's name.
    const fn suffix(self) -> &'static str {
        match self {
            Key::Variants => ":v",
            Key::Goals => ":g",
            Key::Slots => ":f",
            Key::Totals => ":c",
            Key::Values => ":n",
            Key::Weights => ":w",
            Key::Imported => ":i",
            Key::Days => ":days",
            Key::Registry => ":r",
            Key::Members => ":x",
            Key::Meta => ":m",
            Key::Fence => ":t",
            Key::Segments => ":sg",
        }
    }

    /// This key of the experiment whose base is `base` (`P:{T}`).
    pub(super) fn of(self, base: &str) -> String {
        format!("{base}{}", self.suffix())
    }
}

/// An experiment's keys whose names are made up as the store runs: the
/// base, a prefix suffix, then what the script appends. A script gets
/// [`prefix_of`](Self::prefix_of) as an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// `:d:<day>`, string: one day's counters (UTC day number since the
    /// epoch), listed in [`Key::Days`].
    Day,
    /// `:s:<bucket>:<shard>`, hash: a shard of a dedupe bucket;
    /// `track.lua` appends `<bucket>:<shard>`.
    DedupeShard,
}

impl Family {
    /// Every family of dynamic keys.
    #[cfg(test)]
    pub(super) const ALL: [Family; 2] = [Family::Day, Family::DedupeShard];

    /// What follows the base and precedes the dynamic part.
    const fn suffix(self) -> &'static str {
        match self {
            Family::Day => ":d:",
            Family::DedupeShard => ":s:",
        }
    }

    /// The prefix of the family's keys of the experiment whose base is
    /// `base`.
    pub(super) fn prefix_of(self, base: &str) -> String {
        format!("{base}{}", self.suffix())
    }

    /// A glob matching the family's keys of every experiment under the
    /// key prefix `prefix` (for tests that look at the keys).
    #[cfg(test)]
    pub(super) fn pattern(self, prefix: &str) -> String {
        format!("{prefix}:*{}*", self.suffix())
    }
}

/// Starts a call of `script` on the experiment whose base is `base`, with
/// its keys `keys` as `KEYS[]`, in this order (the order the script reads
/// them in).
pub(super) fn invocation<'a>(script: &'a Script, base: &str, keys: &[Key]) -> ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(key.of(base));
    }
    invocation
}

/// `P:{T}:d:<day>`: one day's counters of the experiment whose base is
/// `base`.
pub(super) fn day_key(base: &str, day: i64) -> String {
    format!("{}{day}", Family::Day.prefix_of(base))
}

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

    /// `P:{T}` and the suffix of `key`: one of an experiment's keys.
    pub(super) fn experiment_key(&self, namespace: &str, experiment: &str, key: Key) -> String {
        key.of(&self.experiment_base(namespace, experiment))
    }

    /// `P:{N}:exps`: a namespace's experiment names.
    pub(super) fn namespace_key(&self, namespace: &str) -> String {
        format!(
            "{}:{{{}}}:exps",
            self.prefix(),
            tag(&[namespace.as_bytes()])
        )
    }

    /// `P:{N}:leaving`: the marks of a namespace's experiments being taken
    /// back (in the slot of [`namespace_key`](Self::namespace_key)).
    pub(super) fn leaving_key(&self, namespace: &str) -> String {
        format!(
            "{}:{{{}}}:leaving",
            self.prefix(),
            tag(&[namespace.as_bytes()])
        )
    }

    /// `P:{N}:seq`: a namespace's numbers of registrations and take-backs
    /// (in the slot of [`namespace_key`](Self::namespace_key)).
    pub(super) fn sequence_key(&self, namespace: &str) -> String {
        format!("{}:{{{}}}:seq", self.prefix(), tag(&[namespace.as_bytes()]))
    }

    /// `P:{N}:fence`: the highest number of a take-back of the namespace
    /// that found its list of experiments empty (`register.rs`).
    pub(super) fn namespace_fence_key(&self, namespace: &str) -> String {
        format!(
            "{}:{{{}}}:fence",
            self.prefix(),
            tag(&[namespace.as_bytes()])
        )
    }

    /// `{P:namespaces}:leaving`: the marks of the namespaces being taken
    /// back, in the slot of [`namespaces_key`](Self::namespaces_key) (its
    /// whole name is the hash tag; `P` holds no braces).
    pub(super) fn namespaces_leaving_key(&self) -> String {
        format!("{{{}}}:leaving", self.namespaces_key())
    }

    /// `{P:namespaces}:seq`: the numbers of the namespaces' registrations
    /// and take-backs, in the slot of
    /// [`namespaces_key`](Self::namespaces_key).
    pub(super) fn namespaces_sequence_key(&self) -> String {
        format!("{{{}}}:seq", self.namespaces_key())
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

/// A segment counter's field of [`Key::Segments`] read back: `Some((k,
/// dimension, value, event, variant))` for a count (`c`, `k` = `None`) or
/// value limb `k` (`v<k>`); `None` for the fields of the cap.
pub(super) type SegmentField<'a> = (Option<usize>, &'a str, &'a str, &'a str, &'a str);

/// Splits a field of [`Key::Segments`] (see the table above).
pub(super) fn split_segment_field(field: &str) -> Option<SegmentField<'_>> {
    let mut parts = field.split(SEPARATOR);
    let kind = parts.next()?;
    let limb = match kind {
        "c" => None,
        _ => Some(kind.strip_prefix('v')?.parse().ok()?),
    };
    let (dimension, value, event, variant) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    parts
        .next()
        .is_none()
        .then_some((limb, dimension, value, event, variant))
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

    /// The names are the layout's (version `LAYOUT_VERSION`), byte for
    /// byte: data written before reads the same. (`:sg`, the segment
    /// counters, was added without a new version: no existing key
    /// changed, and a store without it reads as having no segments.)
    #[test]
    fn the_layout_is_unchanged() {
        let base = "lmd:{0123456789abcdef}";
        let names: Vec<String> = Key::ALL.iter().map(|key| key.of(base)).collect();
        let suffixes: Vec<&str> = names.iter().map(|n| &n[base.len()..]).collect();
        assert_eq!(
            suffixes,
            [":v", ":g", ":f", ":c", ":n", ":w", ":i", ":days", ":r", ":x", ":m", ":t", ":sg"]
        );
        assert_eq!(day_key(base, 20_000), format!("{base}:d:20000"));
        assert_eq!(Family::DedupeShard.prefix_of(base), format!("{base}:s:"));
        assert_eq!(
            Family::DedupeShard.pattern("lmd"),
            "lmd:*:s:*",
            "matches P:{{T}}:s:<bucket>:<shard>"
        );
        assert_eq!(tag(&[b"shop", b"checkout"]), TAG_OF_SHOP_CHECKOUT);
    }

    /// `tag` of namespace `shop` and experiment `checkout`, as the keys of
    /// data written before hold it.
    const TAG_OF_SHOP_CHECKOUT: &str = "984460ca3221a92d";

    /// No two keys of an experiment share a name, and no fixed key falls
    /// in a family of dynamic keys.
    #[test]
    fn names_are_distinct() {
        let suffixes: Vec<&str> = Key::ALL.iter().map(|key| key.suffix()).collect();
        let unique: std::collections::HashSet<&str> = suffixes.iter().copied().collect();
        assert_eq!(unique.len(), suffixes.len(), "{suffixes:?}");
        for family in Family::ALL {
            for suffix in &suffixes {
                assert!(
                    !suffix.starts_with(family.suffix()),
                    "{suffix} is a {family:?}"
                );
            }
        }
    }

    /// The scripts take every key name from here: none spells a suffix.
    #[test]
    fn no_script_spells_a_key() {
        let scripts = [
            ("track.lua", include_str!("track.lua")),
            ("delete.lua", include_str!("delete.lua")),
            ("import.lua", include_str!("import.lua")),
            ("register.lua", include_str!("register.lua")),
            ("put_record.lua", include_str!("put_record.lua")),
            ("fence.lua", include_str!("fence.lua")),
            ("alerts.lua", include_str!("alerts.lua")),
        ];
        let suffixes = Key::ALL
            .iter()
            .map(|key| key.suffix())
            .chain(Family::ALL.iter().map(|family| family.suffix()))
            .chain([
                ":exps",
                ":leaving",
                ":seq",
                ":fence",
                ":namespaces",
                ":layout",
                ":heartbeat",
                ":alerts",
            ]);
        for suffix in suffixes {
            for (name, code) in scripts {
                for quote in ['\'', '"'] {
                    assert!(
                        !code.contains(&format!("{quote}{suffix}")),
                        "{name} spells the key suffix {suffix}"
                    );
                }
            }
        }
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
