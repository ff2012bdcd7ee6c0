//! The registry on Redis: each experiment's record in its hash
//! ([`Key::Registry`]), in
//! the experiment's own hash slot, so `track.lua` reads the status in the
//! same atomic call that counts.
//!
//! The hash holds `status` (what the script reads) and either `record`
//! (the whole [`ExperimentRecord`] as JSON, written by `put_record.lua`)
//! or `created` (the millisecond tracking registered it, written by
//! `track.lua` in open mode; such a record is
//! [`ExperimentRecord::automatic`]); and `version`, the record's version,
//! which `put_record.lua` compares and raises ([`FIRST_VERSION`] when
//! missing).

use super::keys::{invocation, Key};
use super::register::Registration;
use super::store::RedisStore;
use crate::{Precondition, PutOutcome, StoreError};
use lamed_core::registry::{ExperimentRecord, Status, FIRST_VERSION};

/// The keys `put_record.lua` reads and writes, in its order.
const PUT_RECORD_KEYS: [Key; 3] = [Key::Registry, Key::Variants, Key::Goals];

impl RedisStore {
    /// Writes a record whole when `precondition` holds, with its variants
    /// and goals as known names, raising its version, in one script call
    /// (all in one slot); then lists the experiment and its namespace
    /// again, as a creation that ignores the fences must (see
    /// `register.rs`). No caps: an owner's act.
    pub(super) async fn write_record(
        &self,
        record: &ExperimentRecord,
        precondition: Precondition,
    ) -> Result<PutOutcome, StoreError> {
        let (namespace, name) = (&record.namespace, &record.name);
        let registration = self.register(namespace, name, None).await?;
        let base = self.experiment_base(namespace, name);
        let json = serde_json::to_string(record)
            .map_err(|err| StoreError::corrupt_because("cannot encode a record", err))?;
        let (mode, expected) = match precondition {
            Precondition::Any => ("any", 0),
            Precondition::Absent => ("absent", 0),
            Precondition::Version(version) => ("version", version),
        };
        let mut call = invocation(&self.inner.scripts.put_record, &base, &PUT_RECORD_KEYS);
        call.arg(mode)
            .arg(expected)
            .arg(FIRST_VERSION)
            .arg(record.status.as_str())
            .arg(json)
            .arg(record.variants.len());
        for variant in &record.variants {
            call.arg(&variant.name);
        }
        for goal in &record.goals {
            call.arg(&goal.name);
        }
        let (written, version): (u8, u64) = call
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        if written == 0 {
            // Listed by this call for a record it did not write: take the
            // listing back unless the experiment exists.
            if matches!(registration, Registration::Added(_)) {
                self.unregister(namespace, name).await?;
            }
            let current = (version > 0).then_some(version);
            return Ok(PutOutcome::Conflict { current });
        }
        self.relist(namespace, name).await?;
        self.set_known(&base, true);
        Ok(PutOutcome::Written { version })
    }

    /// One experiment's record, `None` when it has none.
    pub(super) async fn read_record(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Option<ExperimentRecord>, StoreError> {
        let key = self.experiment_key(namespace, experiment, Key::Registry);
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(key)
            .arg(&["status", "record", "created", "version"])
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        let [status, record, created, version] = <[Option<String>; 4]>::try_from(fields)
            .map_err(|_| StoreError::corrupt("unexpected answer reading a record"))?;
        let Some(status) = status else {
            return Ok(None);
        };
        let corrupt =
            |what: &str| StoreError::corrupt(format!("a stored record is corrupt: {what}"));
        let status = Status::parse(&status).ok_or_else(|| corrupt("unknown status"))?;
        let mut record = match (record, created) {
            (Some(json), _) => serde_json::from_str(&json)
                .map_err(|err| StoreError::corrupt_because("a stored record is corrupt", err))?,
            (None, Some(created)) => ExperimentRecord::automatic(
                namespace,
                experiment,
                created.parse().map_err(|_| corrupt("creation time"))?,
            ),
            (None, None) => return Err(corrupt("neither record nor creation time")),
        };
        record.status = status;
        // The hash's version, not the one in the JSON (written before the
        // script raised it).
        record.version = match version {
            Some(version) => version.parse().map_err(|_| corrupt("version"))?,
            None => FIRST_VERSION,
        };
        Ok(Some(record))
    }

    /// The records of a namespace's experiments, sorted by name.
    pub(super) async fn read_records(
        &self,
        namespace: &str,
    ) -> Result<Vec<ExperimentRecord>, StoreError> {
        let names = self.live_experiments(namespace).await?;
        let records = futures_util::future::try_join_all(
            names.iter().map(|name| self.read_record(namespace, name)),
        )
        .await?;
        Ok(records.into_iter().flatten().collect())
    }
}
