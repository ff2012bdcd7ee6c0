//! The alerts' state on Redis: one hash per family of keys (the part
//! before the first `/`: `P:alerts:watch`, `P:alerts:delivery`...) of
//! key → `<version>:<document>`, written by `alerts.lua` under a
//! precondition, so that of several instances one wins each claim. A
//! listing reads the hash of its prefix's family only (the delivery pass
//! reads the deliveries every second, not every experiment's watch); a
//! prefix without `/` reads the family it names a part of, so it must name
//! the whole family (`watch/...`), as lamed's listings do.

use super::store::RedisStore;
use crate::{Precondition, PutOutcome, StoreError, Versioned};

impl RedisStore {
    /// `P:alerts:<family>`: the alert-state documents whose key starts
    /// with `<family>/` (or, for a key without `/`, equals it).
    pub(super) fn alerts_key(&self, key: &str) -> String {
        let family = key.split_once('/').map_or(key, |(family, _)| family);
        format!("{}:alerts:{family}", self.prefix())
    }

    /// Every namespace with experiments.
    pub(super) async fn read_namespaces(&self) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.namespaces_key())
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        names.sort_unstable();
        Ok(names)
    }

    /// One document.
    pub(super) async fn read_alert_state(
        &self,
        key: &str,
    ) -> Result<Option<Versioned>, StoreError> {
        let held: Option<String> = redis::cmd("HGET")
            .arg(self.alerts_key(key))
            .arg(key)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        held.map(|h| split(key, &h)).transpose()
    }

    /// The documents whose key starts with `prefix`, sorted by key.
    pub(super) async fn read_alert_states(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, Versioned)>, StoreError> {
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.alerts_key(prefix))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        let mut found = all
            .into_iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, held)| Ok((key.clone(), split(&key, &held)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    /// Writes or removes one document under `precondition` (`alerts.lua`).
    pub(super) async fn write_alert_state(
        &self,
        key: &str,
        value: Option<&str>,
        precondition: Precondition,
    ) -> Result<PutOutcome, StoreError> {
        let (mode, expected) = match precondition {
            Precondition::Any => ("any", 0),
            Precondition::Absent => ("absent", 0),
            Precondition::Version(v) => ("version", v),
        };
        let (written, version): (i64, i64) = self
            .inner
            .scripts
            .alerts
            .key(self.alerts_key(key))
            .arg(key)
            .arg(mode)
            .arg(expected)
            .arg(if value.is_some() { "1" } else { "0" })
            .arg(value.unwrap_or(""))
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        Ok(if written == 1 {
            PutOutcome::Written {
                version: version as u64,
            }
        } else {
            PutOutcome::Conflict {
                current: u64::try_from(version).ok(),
            }
        })
    }
}

/// `<version>:<document>` apart.
fn split(key: &str, held: &str) -> Result<Versioned, StoreError> {
    held.split_once(':')
        .and_then(|(version, value)| {
            Some(Versioned {
                version: version.parse().ok()?,
                value: value.to_owned(),
            })
        })
        .ok_or_else(|| StoreError::corrupt(format!("alert state {key} on redis has no version")))
}
