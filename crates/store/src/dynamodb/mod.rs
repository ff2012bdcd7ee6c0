//! The DynamoDB store: one on-demand table that nothing has to run for,
//! exact like the other backends, for `lamed deploy` with no Redis.
//!
//! # Design
//!
//! - **One table**, `PAY_PER_REQUEST`, key `pk` (string, hash) and `sk`
//!   (string, range), the TTL attribute `ttl`. The store creates it when
//!   missing and refuses a table with another key schema (`table.rs`).
//! - **An event is one `TransactWriteItems`**, all or nothing: the dedupe
//!   marker (a conditional put, `attribute_not_exists(pk) OR #expires <=
//!   :now`: DynamoDB's TTL deletes expired items only "within a few days",
//!   so the condition compares the expiry itself), the counter's `ADD`
//!   (count, the UTC day's count, the value's exact limbs) and a condition
//!   on the experiment's gate (running, variant and goal known). No read
//!   first: the transaction states what counting assumes, and only when
//!   DynamoDB cancels it does the store read why (`track.rs`). A
//!   transaction of 3 small items costs 6 write units; a marker-then-count
//!   design would cost 2 but could count without remembering (or the
//!   reverse) after a crash between the two writes.
//! - **Gates and counters are sharded** by a hash of the uuid
//!   ([`keys::SHARDS`] shards): every write unit an event spends lands on
//!   the partition keys of its shard, never on one item per experiment. A
//!   partition takes about 1,000 write units per second, a transactional
//!   write or check costs 2, and an event checks a gate and adds to a
//!   counter: the ceiling is about `SHARDS` × 500 events per second per
//!   experiment (counters and gates of one shard are distinct partition
//!   keys) — 2,000 with 4 shards. Reads sum the shards.
//! - **The registry**: an experiment's record (JSON, with its version) is
//!   one item; every write of it is conditional on the version read
//!   (`registry.rs`) and copies the status and the known names to every
//!   gate in the same transaction, so counting sees a pause at once.
//! - **Caps** are sets on two items (the namespaces of the table, the
//!   experiments of a namespace) and on the gates (variants, goals), each
//!   grown with `ADD` under a `size(..) < :max` condition in the
//!   transaction that counts the event creating the name: enforced
//!   atomically by every instance.
//! - **Segments** (issue 26) ride on the event's transaction. The cap (at
//!   most `MAX_VALUES_PER_DIMENSION` values per dimension and experiment,
//!   `other` included) is decided on the gates: each gate shard holds a
//!   string set per dimension of the named values counted (`sv_device`...),
//!   copied to every shard, grown like the variants: an `ADD` under
//!   `contains(..) OR size(..) < 19`, in the transaction counting the
//!   event that brings the value; a value counted as `other` because the
//!   set is full is counted under `size(..) >= 19 AND NOT contains(..)`.
//!   The gate is the item every event checks anyway, so a known value costs
//!   one more condition and no item; a value-set item per dimension would
//!   cost a write unit pair per event on one item per experiment (the hot
//!   item sharding avoids), and per-value marker items a condition check
//!   each. A new value (at most 19 per dimension and experiment) cancels
//!   the optimistic first attempt, which then reads the gate: one
//!   cancelled transaction and a read more. So does a value past the cap,
//!   once per instance: an instance remembers the sets it read full
//!   (`hints.rs`), which no longer change, and counts later values past
//!   the cap as `other` on the first attempt. The
//!   counters are one item per shard, dimension, value, event and variant
//!   (`ADD` of the count and the value's limbs), under a partition key per
//!   dimension and shard, so that each of an event's three segment
//!   counters loads its partition as much as the event's counter loads
//!   its own: the ceiling per experiment stays `SHARDS` × 500 events per
//!   second. An event with 3 segment values is a transaction of 6 items
//!   (12 write units) instead of 3 (6). Reads query the 3 × `SHARDS`
//!   partitions at once and sum them; a delete removes them with the
//!   counters.
//! - **Alert state** (issue 27): one item per document with its
//!   `version`, written in a one-item transaction conditional on the
//!   version read (`attribute_not_exists` for a claim), in a partition per
//!   family of keys that listings query (`alerts.rs`).
//! - **Memberships and weights** are items written with
//!   `attribute_not_exists(pk)`: the first value stays (`kept.rs`).
//! - **The layout item** holds the dedupe window: an instance with another
//!   window refuses the table at start, as on Redis (`layout.rs`).
//! - **Errors**: throttling and transaction conflicts are transient (the
//!   caller answers 503 with `Retry-After`); the store retries them itself
//!   a few times within its deadline, with a `ClientRequestToken` derived
//!   from the event, so a retried transaction DynamoDB already applied is
//!   not applied twice. A refused request (validation) is permanent.
//!
//! One file per concept:
//!
//! | file | concept |
//! |---|---|
//! | `options.rs` | table, window, caps, clock, the AWS SDK configuration |
//! | `keys.rs` | the item layout: keys, attribute names, shards |
//! | `action.rs` | one item action of a transaction, before the SDK's builders |
//! | `client.rs` | deadlines, transactions with bounded retries, errors by kind |
//! | `table.rs` | creating the table, refusing another key schema |
//! | `layout.rs` | one dedupe window per table, refused at open on a difference |
//! | `track.rs` | counting events and joins: registry, caps, dedupe, counters, segments |
//! | `hints.rs` | what the first attempt may assume from earlier reads: full segment sets |
//! | `registry.rs` | experiments' records, written under a precondition |
//! | `kept.rs` | memberships and weight periods, set once |
//! | `reads.rs` | counters, daily counters, segment counters, experiment lists |
//! | `admin.rs` | delete, import, health |
//! | `alerts.rs` | the alerts' state documents, namespaces |
//! | `store.rs` | [`DynamoDbStore`] and its [`Store`](crate::Store) impl |
//! | `sdk.rs` | the AWS SDK configuration (HTTPS on ring) of every AWS client |
//! | `testing.rs` | a private `moto_server` for tests |

mod action;
mod admin;
mod alerts;
mod client;
mod hints;
mod kept;
mod keys;
mod layout;
mod options;
mod reads;
mod registry;
pub mod sdk;
mod store;
mod table;
#[cfg(test)]
mod tests;
mod track;

#[cfg(any(test, feature = "conformance"))]
pub mod testing;

pub use options::DynamoDbOptions;
pub use store::DynamoDbStore;
pub use table::check_key_schema;

/// The IAM actions the store needs on an existing table, and no more:
/// `lamed deploy` grants exactly these on the table's ARN to its functions
/// (a transaction's items are authorised as their own actions: a
/// condition check as `ConditionCheckItem`, a put as `PutItem`...).
/// Creating the table and its TTL is deploy's, under the deployer's
/// credentials. A test records what the store sends and compares.
pub const IAM_ACTIONS: [&str; 8] = [
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
];
