//! The registry on Redis: each experiment's record in its hash
//! ([`Key::Registry`]), in
//! the experiment's own hash slot, so `track.lua` reads the status in the
//! same atomic call that counts.
//!
//! The hash holds `status` (what the script reads) and either `record`
//! (the whole [`ExperimentRecord`] as JSON, written here) or `created` (the
//! millisecond tracking registered it, written by `track.lua` in open
//! mode; such a record is [`ExperimentRecord::automatic`]).

use super::keys::Key;
use super::store::RedisStore;
use crate::StoreError;
use lamed_core::registry::{ExperimentRecord, Status};

impl RedisStore {
    /// Writes a record whole, with its variants and goals as known names,
    /// in one transaction (all in one slot); then lists the experiment as
    /// every creator does (see `register.rs`). No caps: an owner's act.
    pub(super) async fn write_record(&self, record: &ExperimentRecord) -> Result<(), StoreError> {
        let (namespace, name) = (&record.namespace, &record.name);
        self.register(namespace, name, None).await?;
        let base = self.experiment_base(namespace, name);
        let json = serde_json::to_string(record)
            .map_err(|err| StoreError::corrupt_because("cannot encode a record", err))?;
        let mut transaction = redis::pipe();
        transaction.atomic().hset_multiple(
            Key::Registry.of(&base),
            &[
                ("status", record.status.as_str()),
                ("record", json.as_str()),
            ],
        );
        let variants: Vec<&str> = record.variants.iter().map(|v| v.name.as_str()).collect();
        let goals: Vec<&str> = record.goals.iter().map(|g| g.name.as_str()).collect();
        if !variants.is_empty() {
            transaction.sadd(Key::Variants.of(&base), variants);
        }
        if !goals.is_empty() {
            transaction.sadd(Key::Goals.of(&base), goals);
        }
        transaction
            .exec_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        self.relist(namespace, name).await?;
        self.set_known(&base, true);
        Ok(())
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
            .arg(&["status", "record", "created"])
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        let [status, record, created] = <[Option<String>; 3]>::try_from(fields)
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
