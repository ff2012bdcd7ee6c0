//! Memberships on Redis: one hash ([`Key::Members`]) per experiment (member → value), in
//! the experiment's own hash slot, so `delete.lua` removes it with the rest.
//! No expiry: a Sixpack client keeps its alternative for as long as the
//! experiment lives.

use super::keys::Key;
use super::store::RedisStore;
use super::upgrade::CONVERTED;
use crate::StoreError;

impl RedisStore {
    /// [`Key::Members`]: an experiment's memberships.
    pub(super) fn members_key(&self, namespace: &str, experiment: &str) -> String {
        self.experiment_key(namespace, experiment, Key::Members)
    }

    /// The value `member` joined with, `None` when it never joined.
    pub(super) async fn read_membership(
        &self,
        namespace: &str,
        experiment: &str,
        member: &str,
    ) -> Result<Option<String>, StoreError> {
        redis::cmd("HGET")
            .arg(self.members_key(namespace, experiment))
            .arg(member)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))
    }

    /// How many members the experiment's hash holds (not counting the mark
    /// of a hash the layout upgrade rewrote).
    pub(super) async fn count_members(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<u64, StoreError> {
        let key = self.members_key(namespace, experiment);
        let (fields, marked): (u64, bool) = redis::pipe()
            .hlen(&key)
            .hexists(&key, CONVERTED)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        Ok(fields - u64::from(marked))
    }

    /// `HSETNX` then `HGET` in one transaction: sets a hash field unless it
    /// is set, and answers the value it holds afterwards (the first wins).
    pub(super) async fn set_once(
        &self,
        key: &str,
        field: &str,
        value: &str,
    ) -> Result<String, StoreError> {
        let (held,): (String,) = redis::pipe()
            .atomic()
            .hset_nx(key, field, value)
            .ignore()
            .hget(key, field)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        Ok(held)
    }
}
