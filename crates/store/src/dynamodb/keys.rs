//! The item layout: every key and attribute name the store writes, and
//! the shard of an event.
//!
//! Keys are strings joined with the unit separator (U+001F), which no
//! validated name, uuid or member holds (control characters are refused).
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `L` | `layout` | the dedupe window and layout version |
//! | `L` | `health` | the last health check's write |
//! | `N` | `-` | `names`: the namespaces (a string set, capped) |
//! | `n␟ns` | `-` | `names`: the namespace's experiments (capped) |
//! | `e␟ns␟exp` | `record` | the record (JSON), `version`, `auto` |
//! | `e␟ns␟exp` | `m␟member` | a membership's `value` |
//! | `e␟ns␟exp` | `k␟shard` | `n`: members counted in that shard |
//! | `e␟ns␟exp` | `w␟period` | a period's weights (`value`) |
//! | `g␟ns␟exp␟shard` | `gate` | `st` (status), `vs` / `gs` (known variants, goals), `sv_<dimension>` (segment values held) |
//! | `c␟ns␟exp␟shard` | `t␟event␟variant` | `n`, `d<day>`, `v0`..`v5` (value limbs) |
//! | `c␟ns␟exp␟0` | `i␟event␟variant` | `base`: an imported count |
//! | `s␟ns␟exp␟dimension␟shard` | `value␟event␟variant` | a segment counter: `n`, `v0`..`v5` |
//! | `u␟ns␟exp␟event␟variant␟uuid` | `-` | dedupe marker: `expires` (ms), `ttl` (s) |
//! | `a␟family` | the key | an alert-state document: `value`, `version` |

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use lamed_core::segments::{Dimension, MAX_VALUES_PER_DIMENSION};

/// An item or a key, as the SDK takes it.
pub(super) type Item = HashMap<String, AttributeValue>;

/// The hash key's name.
pub(super) const PK: &str = "pk";
/// The range key's name.
pub(super) const SK: &str = "sk";
/// The TTL attribute (seconds): DynamoDB deletes dedupe markers some time
/// after it, only to reclaim space; the window is decided by `expires`.
pub(super) const TTL: &str = "ttl";

/// Gates and counters per experiment: the write ceiling of an experiment
/// grows with it (see the module documentation), reads cost one query per
/// shard. Changing it changes the layout ([`super::layout`]).
pub(super) const SHARDS: u32 = 4;

/// Attribute: an experiment's status on its gates.
pub(super) const STATUS: &str = "st";
/// Attribute: known variants (string set) on gates.
pub(super) const VARIANTS: &str = "vs";
/// Attribute: known goals (string set) on gates.
pub(super) const GOALS: &str = "gs";
/// Prefix of the gates' attributes holding the named segment values an
/// experiment counted, one string set per dimension (`sv_device`...).
pub(super) const SEGMENT_VALUES_PREFIX: &str = "sv_";
/// Named values a gate's segment set holds at most: the cap's places
/// less the one `other` keeps.
pub(super) const NAMED_PLACES: usize = MAX_VALUES_PER_DIMENSION - 1;
/// Attribute: a string set of names (namespaces, experiments).
pub(super) const NAMES: &str = "names";
/// Attribute: a count.
pub(super) const COUNT: &str = "n";
/// Attribute: an imported base.
pub(super) const BASE: &str = "base";
/// Attribute: a record's JSON.
pub(super) const RECORD: &str = "record";
/// Attribute: a record's version.
pub(super) const VERSION: &str = "version";
/// Attribute: whether a record is tracking's automatic one.
pub(super) const AUTO: &str = "auto";
/// Attribute: a kept value (membership, weights).
pub(super) const VALUE: &str = "value";
/// Attribute: when a dedupe marker's window ends (Unix ms).
pub(super) const EXPIRES: &str = "expires";
/// Prefix of the attributes counting one UTC day (`d<day number>`).
pub(super) const DAY_PREFIX: char = 'd';
/// Prefix of the value limbs' attributes (`v0`..`v5`).
pub(super) const LIMB_PREFIX: char = 'v';

const SEP: char = '\u{1f}';

fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk)),
        (SK.to_owned(), AttributeValue::S(sk.into())),
    ])
}

/// The layout item.
pub(super) fn layout() -> Item {
    key("L".into(), "layout")
}

/// The item the health check writes.
pub(super) fn health() -> Item {
    key("L".into(), "health")
}

/// The set of namespaces.
pub(super) fn namespaces() -> Item {
    key("N".into(), "-")
}

/// The set of a namespace's experiments.
pub(super) fn experiments(namespace: &str) -> Item {
    key(format!("n{SEP}{namespace}"), "-")
}

/// The partition of an experiment's record, memberships and weights.
pub(super) fn experiment_pk(namespace: &str, experiment: &str) -> String {
    format!("e{SEP}{namespace}{SEP}{experiment}")
}

/// An experiment's record.
pub(super) fn record(namespace: &str, experiment: &str) -> Item {
    key(experiment_pk(namespace, experiment), "record")
}

/// Range-key prefix of memberships.
pub(super) const MEMBER_PREFIX: &str = "m\u{1f}";
/// Range-key prefix of member tallies.
pub(super) const TALLY_PREFIX: &str = "k\u{1f}";
/// Range-key prefix of weight periods.
pub(super) const WEIGHTS_PREFIX: &str = "w\u{1f}";
/// Range-key prefix of tracked counters.
pub(super) const TRACKED_PREFIX: &str = "t\u{1f}";
/// Range-key prefix of imported bases.
pub(super) const IMPORTED_PREFIX: &str = "i\u{1f}";

/// One member's membership.
pub(super) fn member(namespace: &str, experiment: &str, member: &str) -> Item {
    key(
        experiment_pk(namespace, experiment),
        format!("{MEMBER_PREFIX}{member}"),
    )
}

/// The member tally of one shard.
pub(super) fn tally(namespace: &str, experiment: &str, shard: u32) -> Item {
    key(
        experiment_pk(namespace, experiment),
        format!("{TALLY_PREFIX}{shard}"),
    )
}

/// One period's weights.
pub(super) fn weights(namespace: &str, experiment: &str, period: i64) -> Item {
    key(
        experiment_pk(namespace, experiment),
        format!("{WEIGHTS_PREFIX}{period}"),
    )
}

/// One shard of an experiment's gate.
pub(super) fn gate(namespace: &str, experiment: &str, shard: u32) -> Item {
    key(
        format!("g{SEP}{namespace}{SEP}{experiment}{SEP}{shard}"),
        "gate",
    )
}

/// The partition of one shard of an experiment's counters.
pub(super) fn counters_pk(namespace: &str, experiment: &str, shard: u32) -> String {
    format!("c{SEP}{namespace}{SEP}{experiment}{SEP}{shard}")
}

/// One shard of a tracked counter.
pub(super) fn counter(
    namespace: &str,
    experiment: &str,
    shard: u32,
    event: &str,
    variant: &str,
) -> Item {
    key(
        counters_pk(namespace, experiment, shard),
        format!("{TRACKED_PREFIX}{event}{SEP}{variant}"),
    )
}

/// A counter's imported base (in shard 0).
pub(super) fn imported(namespace: &str, experiment: &str, event: &str, variant: &str) -> Item {
    key(
        counters_pk(namespace, experiment, 0),
        format!("{IMPORTED_PREFIX}{event}{SEP}{variant}"),
    )
}

/// The gate attribute holding `dimension`'s named values.
pub(super) fn segment_values(dimension: Dimension) -> String {
    format!("{SEGMENT_VALUES_PREFIX}{dimension}")
}

/// The partition of one shard of one dimension's segment counters: a
/// partition per dimension, so that each takes an event's write units at
/// the pace its counter's partition does (see the module documentation).
pub(super) fn segments_pk(
    namespace: &str,
    experiment: &str,
    dimension: Dimension,
    shard: u32,
) -> String {
    format!("s{SEP}{namespace}{SEP}{experiment}{SEP}{dimension}{SEP}{shard}")
}

/// One shard of a segment counter.
pub(super) fn segment_counter(
    namespace: &str,
    experiment: &str,
    dimension: Dimension,
    shard: u32,
    (value, event, variant): (&str, &str, &str),
) -> Item {
    key(
        segments_pk(namespace, experiment, dimension, shard),
        format!("{value}{SEP}{event}{SEP}{variant}"),
    )
}

/// `(value, event, variant)` of a segment counter's range key.
pub(super) fn split_segment(sk: &str) -> Option<(String, String, String)> {
    let (value, rest) = sk.split_once(SEP)?;
    let (event, variant) = rest.split_once(SEP)?;
    Some((value.to_owned(), event.to_owned(), variant.to_owned()))
}

/// The partition of one family of alert-state documents: the part of a
/// key before its first `/` (the whole key when it has none), as on
/// Redis, so that a listing reads its family's partition only.
pub(super) fn alerts_pk(key: &str) -> String {
    let family = key.split_once('/').map_or(key, |(family, _)| family);
    format!("a{SEP}{family}")
}

/// One alert-state document.
pub(super) fn alert(key: &str) -> Item {
    self::key(alerts_pk(key), key)
}

/// `(event, variant)` of a counter's range key without its prefix.
pub(super) fn split_counter(rest: &str) -> Option<(String, String)> {
    let (event, variant) = rest.split_once(SEP)?;
    Some((event.to_owned(), variant.to_owned()))
}

/// An event's dedupe marker: its whole identity, compared exactly.
pub(super) fn seen(
    namespace: &str,
    experiment: &str,
    event: &str,
    variant: &str,
    uuid: &str,
) -> Item {
    key(
        format!("u{SEP}{namespace}{SEP}{experiment}{SEP}{event}{SEP}{variant}{SEP}{uuid}"),
        "-",
    )
}

/// The shard of a uuid or member: spreads one experiment's writes.
pub(super) fn shard_of(text: &str) -> u32 {
    let hash = blake3::hash(text.as_bytes());
    let bytes = hash.as_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) % SHARDS
}

/// A string attribute.
pub(super) fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

/// A number attribute.
pub(super) fn n(number: impl ToString) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

/// A string-set attribute (never empty: DynamoDB refuses empty sets).
pub(super) fn ss<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> AttributeValue {
    AttributeValue::Ss(names.into_iter().map(Into::into).collect())
}
