//! The storage boundary: one trait that every backend implements, the
//! backends (embedded SQLite; Redis and Redis Cluster with feature
//! `redis`), an in-memory reference store, the conformance suite every
//! backend runs, and the function that opens the one the options name.
//!
//! It may import `lamed-core` (events, records, the clock): never the
//! settings, the services, the HTTP layer or the binary. Callers hand it
//! [`StoreOptions`], not their configuration.
//!
//! # Layout
//!
//! - this file: the [`Store`] trait, [`StoreError`], [`open`];
//! - [`embedded`]: the SQLite store; [`redis`]: the Redis store;
//!   `dynamodb`: the DynamoDB store (feature `dynamodb`);
//! - `reference`: the in-memory store that states the contract simply;
//! - `conformance`: the behaviour suite; `property_tests`: random steps
//!   on every backend, compared with the reference;
//! - `faulty`: a wrapper store that fails, delays or times out calls, for
//!   tests of what callers do then.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use lamed_core::clock::Clock;
use std::path::PathBuf;

use lamed_core::model::Caps;
use lamed_core::model::{Counter, DailyCounter, Event, Ignored, TrackOutcome};
use lamed_core::registry::ExperimentRecord;
use lamed_core::segments::SegmentCounter;

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod embedded;
pub mod redis;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(any(test, feature = "conformance"))]
pub mod faulty;
#[cfg(test)]
mod property_tests;
#[cfg(any(test, feature = "conformance"))]
pub mod reference;

pub use embedded::{DataDirInUse, Durability, EmbeddedOptions, EmbeddedStore};

/// Where events are counted.
///
/// # Contract
///
/// - `track` is atomic per event: an event is either counted once, found to
///   be a duplicate, or rejected by a cap; when it returns `Ok`, every
///   counted event is durable (it survives a crash of this process).
/// - Deduplication is exact: the same `(namespace, experiment, event,
///   variant, uuid)` is counted at most once within the dedupe window, even
///   when sent concurrently or re-sent after a crash.
/// - A clone of a store (or of its `Arc`) shares its state.
/// - Errors mean "nothing can be promised": the caller answers a transient
///   one 503 so the client retries, which is safe because counting is
///   idempotent, and a permanent one 500 (see [`StoreError`]).
/// - Values: a counted event's value adds to its counter's exact sum and
///   sum of squares, atomically with the count; a duplicate adds nothing.
/// - The registry: an experiment's record decides, atomically with each
///   count, whether it counts. Only a running experiment counts. In open
///   mode the first counted event of an unknown experiment writes its
///   record ([`ExperimentRecord::automatic`]); in required mode an event
///   counts only when its experiment has a record and its variant and goal
///   are known to the experiment (registered, or counted before).
/// - Record versions: every write of a record (by `put_record`, or by
///   tracking creating it) raises its version, and `put_record` checks
///   its [`Precondition`] and writes in one atomic step, so of concurrent
///   writes on the version they read, one wins and the others answer
///   [`PutOutcome::Conflict`] and change nothing.
#[async_trait]
pub trait Store: fmt::Debug + Send + Sync + 'static {
    /// Counts a batch of already validated events, returning one outcome per
    /// event in the same order.
    async fn track(&self, events: Vec<Event>) -> Result<Vec<TrackOutcome>, StoreError>;

    /// Every counter of a namespace (empty for an unknown namespace).
    async fn counters(&self, namespace: &str) -> Result<Vec<Counter>, StoreError>;

    /// One experiment's counts per UTC day on which it had events, sorted by
    /// day, event and variant. Days older than the retention are dropped.
    async fn daily_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<DailyCounter>, StoreError>;

    /// The experiment names of a namespace, sorted.
    async fn experiments(&self, namespace: &str) -> Result<Vec<String>, StoreError>;

    /// Removes an experiment's counters, its record and its memberships;
    /// `Ok(false)` when it had neither counters nor a record.
    async fn delete_experiment(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<bool, StoreError>;

    /// Sets the imported base of one counter: the count it had in the
    /// deployment it is migrated from (Lamed, Gimel). Reads show tracked
    /// plus imported. Setting rather than adding makes a repeated import
    /// change nothing. Caps do not apply: importing is an operator's act.
    ///
    /// Returns the previous base, `None` when the counter had none.
    async fn import_counter(
        &self,
        namespace: &str,
        experiment: &str,
        event: &str,
        variant: &str,
        count: u64,
    ) -> Result<Option<u64>, StoreError>;

    /// An experiment's registry record; `None` when it has none.
    async fn record(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Option<ExperimentRecord>, StoreError>;

    /// Every registry record of a namespace, sorted by experiment name.
    async fn records(&self, namespace: &str) -> Result<Vec<ExperimentRecord>, StoreError>;

    /// Writes an experiment's record (creating or replacing it) when
    /// `precondition` holds, in one atomic step with the check; the store
    /// raises the record's version (a new record gets
    /// [`FIRST_VERSION`](lamed_core::registry::FIRST_VERSION)), whatever
    /// `record.version` says. The experiment then exists, with its
    /// registered variants and goals known. Caps do not apply, as for
    /// imports: registering is an owner's act.
    ///
    /// Answers the new version, or [`PutOutcome::Conflict`] with the
    /// current version when the precondition failed: nothing changed then.
    async fn put_record(
        &self,
        record: ExperimentRecord,
        precondition: Precondition,
    ) -> Result<PutOutcome, StoreError>;

    /// What an experiment remembers of one member (a Sixpack client, or a
    /// client and a KPI): the value it joined with, `None` when it never
    /// joined. Memberships last as long as the experiment (unlike the
    /// dedupe window), so a client keeps its alternative and converts once.
    async fn membership(
        &self,
        namespace: &str,
        experiment: &str,
        member: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Keeps `value` under `key` unless the experiment keeps something
    /// there already; answers the value now held (the first one written
    /// wins), so that concurrent writers and every server sharing the
    /// store agree. Durable when it returns `Ok`; removed with the
    /// experiment. Creates no experiment and counts nothing: callers count
    /// through [`Store::track`]. ([`StoreExt`] names its two uses.)
    async fn put_once(
        &self,
        namespace: &str,
        experiment: &str,
        key: &Kept,
        value: &str,
    ) -> Result<String, StoreError>;

    /// A member joining an experiment, counted with its event in one
    /// atomic step (Sixpack's participation and conversion): either the
    /// event is counted and the member remembered, with the experiment's
    /// [`Join::definition`] when it has no owner's record yet, or nothing
    /// is written. A retry answers [`Joined::Held`] and counts nothing.
    /// A conversion ([`Join::participant`]) counts on the participant's
    /// variant, read in the same step.
    async fn count_join(&self, join: Join) -> Result<JoinAnswer, StoreError>;

    /// How many members an experiment remembers (see
    /// [`Store::membership`]): 0 for an unknown one.
    async fn member_count(&self, namespace: &str, experiment: &str) -> Result<u64, StoreError>;

    /// Every period's stored weights, sorted by period.
    async fn weight_history(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<(i64, String)>, StoreError>;

    /// Proves the store can take a write right now.
    async fn check_writable(&self) -> Result<(), StoreError>;

    /// How many uuids the dedupe memory holds now, for `/metrics`; `None`
    /// when the backend does not know it cheaply.
    fn dedupe_entries(&self) -> Option<u64>;

    /// Finishes pending writes and releases the store; later calls fail
    /// with [`StoreError::Closed`].
    async fn close(&self) -> Result<(), StoreError>;

    /// One experiment's counters: [`Store::counters`] of its namespace
    /// filtered to it (empty for an unknown experiment), sorted by event
    /// and variant, at the cost of reading that experiment only. A report, a Sixpack details page and
    /// a new period's weights need no more; reading the namespace made a
    /// dashboard of N experiments cost N².
    async fn experiment_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<Counter>, StoreError>;

    /// One experiment's segment counters (issue 26: see
    /// `lamed_core::segments`), sorted by dimension, value, event and
    /// variant; empty for an unknown experiment. A counted event adds to
    /// the counter of each of its [`Event::segment`] values in the same
    /// atomic step as its own counter, at most
    /// [`MAX_VALUES_PER_DIMENSION`](lamed_core::segments::MAX_VALUES_PER_DIMENSION)
    /// values per dimension and experiment (`other` included: a new value
    /// past them counts as `other`); removed with the experiment.
    async fn segment_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<SegmentCounter>, StoreError>;

    /// One period's stored weights ([`StoreExt::put_weights`]); `None` when
    /// that period has none. The weights endpoint reads the current period
    /// only, not the [`Store::weight_history`] (a row per period: 43,200
    /// after 30 days of minute periods).
    async fn weights_of(
        &self,
        namespace: &str,
        experiment: &str,
        period: i64,
    ) -> Result<Option<String>, StoreError>;

    /// Every namespace with an experiment record, sorted: where the
    /// alerts' check looks.
    async fn namespaces(&self) -> Result<Vec<String>, StoreError>;

    /// The alerts' state document under `key` (an open alert, a webhook
    /// delivery: see `lamed-service`'s `alerts`), with its version;
    /// `None` when there is none. These documents are few and small, and
    /// outlive the experiments they name (a deletion is an alert).
    async fn alert_state(&self, key: &str) -> Result<Option<Versioned>, StoreError>;

    /// Every alert-state document whose key starts with `prefix`, sorted by
    /// key. Keys come in families, the part before their first `/`
    /// (`watch/...`, `delivery/...`), and `prefix` holds that `/`, so a
    /// backend may keep each family apart (Redis does).
    async fn alert_states(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError>;

    /// Writes (`Some`) or removes (`None`) the document under `key` when
    /// `precondition` holds, in one atomic step with the check, as
    /// [`Store::put_record`] does: a write raises the version (a new
    /// document gets 1); [`Precondition::Absent`] is a set-once claim, of
    /// which exactly one of concurrent writers wins. Answers the new
    /// version (0 for a removal), or [`PutOutcome::Conflict`] with nothing
    /// changed. Durable when it returns `Ok`.
    async fn put_alert_state(
        &self,
        key: &str,
        value: Option<&str>,
        precondition: Precondition,
    ) -> Result<PutOutcome, StoreError>;
}

/// A document with the version its last write gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// Raised by every write; 1 for a new document.
    pub version: u64,
    /// The document.
    pub value: String,
}

/// When [`Store::put_record`] may write: object_store's `PutMode`, on a
/// record's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Always: creates or replaces the record.
    Any,
    /// Only when the experiment has no record: creates it.
    Absent,
    /// Only when the record is at this version: replaces what the caller
    /// read, unless another write came between.
    Version(u64),
}

impl Precondition {
    /// Whether a write may replace the record at `current` (`None`: no
    /// record).
    pub fn holds(self, current: Option<u64>) -> bool {
        match self {
            Precondition::Any => true,
            Precondition::Absent => current.is_none(),
            Precondition::Version(expected) => current == Some(expected),
        }
    }
}

/// What [`Store::put_record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum PutOutcome {
    /// The record was written; its new version.
    Written {
        /// The version the store gave it.
        version: u64,
    },
    /// The precondition failed and nothing changed.
    Conflict {
        /// The stored record's version; `None` when there is no record.
        current: Option<u64>,
    },
}

/// Daily counters are kept this many days (a bit over a year, for
/// year-over-year charts), then dropped: by every backend.
pub const DAILY_RETENTION_DAYS: u32 = 400;

/// What an experiment keeps once per key, beside its counters and record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kept {
    /// A member (a Sixpack client, or a client and a KPI): the value it
    /// joined with. Memberships last as long as the experiment (unlike
    /// the dedupe window), so a client keeps its alternative and converts
    /// once.
    Member(String),
    /// An adaptive experiment's weights for one period (JSON, as
    /// `lamed_service::adaptive` writes them).
    Weights(i64),
}

/// The two uses of [`Store::put_once`], by name. Implemented for every
/// store; never implement it yourself.
#[async_trait]
pub trait StoreExt: Store {
    /// Remembers `member` with `value` unless it is already remembered;
    /// answers the value now held.
    async fn join(
        &self,
        namespace: &str,
        experiment: &str,
        member: &str,
        value: &str,
    ) -> Result<String, StoreError> {
        let member = Kept::Member(member.to_owned());
        self.put_once(namespace, experiment, &member, value).await
    }

    /// Stores a period's weights unless that period has some; answers the
    /// weights now held.
    async fn put_weights(
        &self,
        namespace: &str,
        experiment: &str,
        period: i64,
        weights: &str,
    ) -> Result<String, StoreError> {
        let period = Kept::Weights(period);
        self.put_once(namespace, experiment, &period, weights).await
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// A member joining an experiment with the event that counts it (see
/// [`Store::count_join`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    /// Counted when the member joins; the member joins with its variant.
    pub event: Event,
    /// Who joins: a hash (see `lamed_core::sixpack::participant_member`).
    pub member: String,
    /// A conversion's participation: the event counts on the variant this
    /// member holds (whatever `event.variant` says), and nothing is
    /// written while it holds none (or an empty value: a client Sixpack
    /// left out). One step, so a delete or a restart
    /// between a read and the write cannot convert on a stale variant.
    pub participant: Option<String>,
    /// Written with the first count when the experiment has no record or
    /// only tracking's automatic one; never over an owner's record, so a
    /// status set meanwhile stays.
    pub definition: Option<ExperimentRecord>,
}

/// What [`Store::count_join`] did, and on which variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinAnswer {
    /// What was done.
    pub joined: Joined,
    /// The variant the event is on: the join's own, or the participant's
    /// for a conversion (empty when the participant holds none).
    pub variant: String,
}

impl JoinAnswer {
    /// `joined`, on `variant`.
    pub fn new(joined: Joined, variant: impl Into<String>) -> Self {
        JoinAnswer {
            joined,
            variant: variant.into(),
        }
    }
}

/// What [`Store::count_join`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// The event was counted and the member now holds its variant.
    Counted,
    /// The dedupe memory holds the event already (an experiment deleted
    /// and started again within the window): nothing written.
    Duplicate,
    /// The member had joined, with this value: nothing written.
    Held(String),
    /// The participant holds no variant: nothing written.
    NotParticipating,
    /// Tracking does not count the event: nothing written.
    Ignored(Ignored),
}

/// A shared handle on some store.
pub type DynStore = Arc<dyn Store>;

/// A store failure's underlying cause, shared so that one failed commit can
/// answer every request it carried.
pub type StoreCause = Arc<dyn std::error::Error + Send + Sync>;

/// Why a store could not do what was asked.
///
/// Failures come in two kinds, told apart where they arise (each backend
/// knows its own errors), because a client must treat them differently:
/// a transient one ([`StoreError::Unavailable`], [`StoreError::Closed`])
/// may pass, so the caller answers 503 and the client retries; a
/// permanent one ([`StoreError::Corrupt`]) fails the same way on every
/// retry, so the caller answers 500 and an operator must look.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot serve now (unreachable, busy, timed out, disk or
    /// memory full, queue full, connection lost). The cause is kept as the
    /// error's source, so logs show the whole chain.
    #[error("store unavailable: {context}")]
    Unavailable {
        /// What the store was doing.
        context: String,
        /// The backend's own error, when there is one.
        #[source]
        source: Option<StoreCause>,
    },
    /// What the store holds or answered is not what lamed wrote or expects
    /// (a record that does not parse, an unexpected script answer, a
    /// broken invariant): damaged data or a bug, which no retry fixes.
    #[error("store corrupt or inconsistent: {context}")]
    Corrupt {
        /// What the store was doing.
        context: String,
        /// The backend's or the parser's own error, when there is one.
        #[source]
        source: Option<StoreCause>,
    },
    /// The store was closed (the server is shutting down).
    #[error("store is closed")]
    Closed,
}

impl StoreError {
    /// The error with its whole chain of causes on one line, for logs
    /// ("store unavailable: sqlite failed: database is locked").
    pub fn chain(&self) -> String {
        format!("{:#}", anyhow::Error::new(self.clone()))
    }

    /// True when a retry may succeed: the caller answers 503 with
    /// `Retry-After`; false for [`StoreError::Corrupt`] (500).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unavailable { .. } | StoreError::Closed => true,
            StoreError::Corrupt { .. } => false,
        }
    }

    /// A transient failure with no underlying error (a refused
    /// configuration, a deadline passed).
    pub fn unavailable(context: impl Into<String>) -> Self {
        StoreError::Unavailable {
            context: context.into(),
            source: None,
        }
    }

    /// A transient failure caused by a backend error, which stays
    /// reachable as the source.
    pub fn caused_by(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Unavailable {
            context: context.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// A permanent failure with no underlying error (an unexpected answer,
    /// a broken invariant).
    pub fn corrupt(context: impl Into<String>) -> Self {
        StoreError::Corrupt {
            context: context.into(),
            source: None,
        }
    }

    /// A permanent failure caused by another error (stored JSON that does
    /// not parse, a database file that is not one), kept as the source.
    pub fn corrupt_because(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Corrupt {
            context: context.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// A SQLite error, of the kind its code says: a busy or locked
    /// database, a full disk, an I/O error or a file that cannot be opened
    /// may pass; a damaged file, a schema or type mismatch or a misused
    /// API will not.
    pub fn sqlite(context: impl Into<String>, err: rusqlite::Error) -> Self {
        if sqlite_is_transient(&err) {
            StoreError::caused_by(context, err)
        } else {
            StoreError::corrupt_because(context, err)
        }
    }
}

/// See [`StoreError::sqlite`]. Anything not known to pass is permanent:
/// a value that does not convert or a statement SQLite refuses is a bug or
/// damaged data, and answering it 503 would make clients retry it forever.
fn sqlite_is_transient(err: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    match err {
        rusqlite::Error::SqliteFailure(failure, _) => matches!(
            failure.code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::OutOfMemory
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied
                | ErrorCode::OperationInterrupted
                | ErrorCode::OperationAborted
                | ErrorCode::SchemaChanged
                | ErrorCode::NoLargeFileSupport
        ),
        // A data directory that is not there (yet) is the operator's to fix.
        rusqlite::Error::InvalidPath(_) => true,
        _ => false,
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::sqlite("sqlite failed", err)
    }
}

/// Which store to open, and how: the part of the configuration the store
/// reads.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Redis when set (config file, `--redis` or `LAMED_REDIS_URL`).
    pub redis: Option<redis::RedisSettings>,
    /// The DynamoDB table when set (`--dynamodb-table`); never with Redis.
    pub dynamodb_table: Option<String>,
    /// The embedded store's directory, when no Redis or DynamoDB is set.
    pub data_dir: PathBuf,
    /// The dedupe window in seconds, 0 = forever.
    pub uuid_expiry_seconds: u64,
    /// What a power cut may cost the embedded store.
    pub fsync: Durability,
    /// Caps on what tracking may create.
    pub caps: Caps,
}

/// Opens the store the options ask for: DynamoDB when `dynamodb_table` is
/// set, Redis when `redis` is, else the embedded store in the data
/// directory.
///
/// # Errors
///
/// When the store cannot be opened; for Redis, when it cannot be reached,
/// refuses the login, or this build has no Redis support.
pub async fn open(config: &StoreOptions) -> Result<DynStore, StoreError> {
    if let Some(table) = &config.dynamodb_table {
        if config.redis.is_some() {
            return Err(StoreError::unavailable(
                "both redis and dynamodb_table are set: choose one store",
            ));
        }
        return open_dynamodb(config, table).await;
    }
    match &config.redis {
        #[cfg(feature = "redis")]
        Some(settings) => {
            let options =
                redis::RedisOptions::new(settings.clone(), config.uuid_expiry_seconds, config.caps);
            Ok(Arc::new(redis::RedisStore::open(options).await?))
        }
        #[cfg(not(feature = "redis"))]
        Some(_) => Err(StoreError::unavailable(
            "redis is configured but this lamed was built without the redis feature",
        )),
        None => Ok(Arc::new(EmbeddedStore::open(EmbeddedOptions {
            data_dir: config.data_dir.clone(),
            uuid_expiry_seconds: config.uuid_expiry_seconds,
            fsync: config.fsync,
            caps: config.caps,
            clock: Clock::System,
        })?)),
    }
}

/// The DynamoDB store on `table`, with the SDK's usual configuration.
#[cfg(feature = "dynamodb")]
async fn open_dynamodb(config: &StoreOptions, table: &str) -> Result<DynStore, StoreError> {
    let options = config.dynamodb(table);
    Ok(Arc::new(dynamodb::DynamoDbStore::open(options).await?))
}

#[cfg(feature = "dynamodb")]
impl StoreOptions {
    /// The options of a DynamoDB store on `table` (the configured one, or
    /// the one `lamed deploy` chose), with the SDK's usual configuration.
    pub fn dynamodb(&self, table: &str) -> dynamodb::DynamoDbOptions {
        dynamodb::DynamoDbOptions::new(table, self.uuid_expiry_seconds, self.caps)
    }
}

#[cfg(not(feature = "dynamodb"))]
async fn open_dynamodb(_: &StoreOptions, table: &str) -> Result<DynStore, StoreError> {
    Err(StoreError::unavailable(format!(
        "dynamodb table {table} is configured but this lamed was built without the dynamodb feature"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn sqlite_failure(code: std::os::raw::c_int) -> StoreError {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None).into()
    }

    /// SQLite errors that may pass (busy, locked, full, I/O) are
    /// transient; a damaged file, a schema or type mismatch are not.
    #[test]
    fn sqlite_errors_are_classified_by_code() {
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_FULL,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_CANTOPEN,
            ffi::SQLITE_NOMEM,
        ] {
            assert!(sqlite_failure(code).is_transient(), "code {code}");
        }
        for code in [
            ffi::SQLITE_CORRUPT,
            ffi::SQLITE_NOTADB,
            ffi::SQLITE_ERROR,
            ffi::SQLITE_MISMATCH,
            ffi::SQLITE_CONSTRAINT,
        ] {
            let err = sqlite_failure(code);
            assert!(matches!(err, StoreError::Corrupt { .. }), "code {code}");
        }
        let conversion =
            rusqlite::Error::InvalidColumnType(0, "count".into(), rusqlite::types::Type::Text);
        assert!(!StoreError::from(conversion).is_transient());
    }

    /// A real `SQLITE_BUSY` (another connection holds the write lock) is
    /// transient, with SQLite's error kept in the chain.
    #[test]
    fn a_busy_database_is_transient() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("busy.db");
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder
            .execute_batch("CREATE TABLE t (x); BEGIN IMMEDIATE")
            .unwrap();
        let writer = rusqlite::Connection::open(&path).unwrap();
        writer.busy_timeout(std::time::Duration::ZERO).unwrap();
        let err = StoreError::from(writer.execute("INSERT INTO t VALUES (1)", []).unwrap_err());
        assert!(err.is_transient(), "{err:?}");
        assert!(
            err.chain().contains("database is locked"),
            "{}",
            err.chain()
        );
    }
}
