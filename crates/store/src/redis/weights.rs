//! Adaptive weights on Redis: one hash ([`Key::Weights`]) per experiment (period →
//! weights as JSON), in the experiment's own hash slot, so `delete.lua`
//! removes it with the rest. A period's weights are set once, so every
//! instance answers the same weights for it.

use super::keys::Key;
use super::store::RedisStore;
use crate::StoreError;

impl RedisStore {
    /// [`Key::Weights`]: an experiment's weight history.
    pub(super) fn weights_key(&self, namespace: &str, experiment: &str) -> String {
        self.experiment_key(namespace, experiment, Key::Weights)
    }

    /// Every stored period's weights, sorted by period.
    pub(super) async fn read_weights(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let mut history: Vec<(i64, String)> = redis::cmd("HGETALL")
            .arg(self.weights_key(namespace, experiment))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        history.sort_unstable_by_key(|(period, _)| *period);
        Ok(history)
    }

    /// One period's weights, `None` when it has none.
    pub(super) async fn read_weights_of(
        &self,
        namespace: &str,
        experiment: &str,
        period: i64,
    ) -> Result<Option<String>, StoreError> {
        redis::cmd("HGET")
            .arg(self.weights_key(namespace, experiment))
            .arg(period)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))
    }
}
