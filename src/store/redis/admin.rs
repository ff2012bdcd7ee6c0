//! Administration: deleting an experiment, importing counters, the health
//! check's write, and closing.

use std::sync::atomic::Ordering;

use super::store::RedisStore;
use crate::store::StoreError;

impl RedisStore {
    /// Removes an experiment's counters (`delete.lua`) and unlists it;
    /// true when it existed.
    pub(super) async fn delete(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<bool, StoreError> {
        let base = self.experiment_base(namespace, experiment);
        self.set_known(&base, false);
        let mut conn = self.conn();
        let existed: i64 = self
            .inner
            .scripts
            .delete
            .key(&base)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        self.unlist(namespace, experiment).await?;
        Ok(existed == 1)
    }

    /// Sets one counter's imported base (`import.lua`), registering the
    /// experiment without caps; returns the previous base.
    pub(super) async fn import(
        &self,
        namespace: &str,
        experiment: &str,
        event: &str,
        variant: &str,
        count: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.register(namespace, experiment, None).await?;
        let base = self.experiment_base(namespace, experiment);
        let mut conn = self.conn();
        let is_goal = event != crate::model::PARTICIPATE;
        let (previous, _created): (i64, i64) = self
            .inner
            .scripts
            .import
            .key(&base)
            .arg(event)
            .arg(variant)
            .arg(u8::from(is_goal))
            .arg(count)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        // Listed again in case a concurrent delete unlisted it.
        self.relist(namespace, experiment).await?;
        self.set_known(&base, true);
        Ok(u64::try_from(previous).ok())
    }

    /// The health check: a write that expires, stamped with the store's
    /// clock.
    pub(super) async fn write_heartbeat(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        redis::cmd("SET")
            .arg(self.heartbeat_key())
            .arg(self.inner.options.clock.now_ms())
            .arg("PX")
            .arg(60_000)
            .exec_async(&mut conn)
            .await
            .map_err(|e| self.error(e))
    }

    /// Refuses every later operation. Every answer already waited for
    /// Redis: nothing to flush.
    pub(super) fn mark_closed(&self) {
        self.inner.closed.store(true, Ordering::Release);
    }
}
