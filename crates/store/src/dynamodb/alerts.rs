//! The alerts' state: one item per document (`value`, `version`), in one
//! partition per family of keys (the part before the first `/`:
//! `watch`, `delivery`, `disabled`), so that a listing is a `Query` of its
//! family's partition, never a scan, and the delivery pass does not read
//! every experiment's watch. A write reads the version, checks the
//! precondition, then writes under a condition on that version (absent for
//! a claim), as a record is written: of concurrent writers, one wins and
//! the others read again and answer a conflict. These documents are few and
//! written a few times per check, so a partition per family is no hot spot.

use super::action::Action;
use super::client::{self, Outcome};
use super::keys;
use super::store::{token, DynamoDbStore};
use crate::{Precondition, PutOutcome, StoreError, Versioned};
use lamed_core::registry::FIRST_VERSION;

/// Attempts of a write whose read version moved meanwhile (each answered
/// by a fresh read, which then decides).
const MAX_ROUNDS: u32 = 12;

impl DynamoDbStore {
    /// Every namespace with experiments, sorted: the table's set of
    /// namespaces (tracking, registering and importing add to it, a delete
    /// of a namespace's last experiment removes it), as on Redis.
    pub(super) async fn read_namespaces(&self) -> Result<Vec<String>, StoreError> {
        match self.get(keys::namespaces()).await? {
            None => Ok(Vec::new()),
            // A BTreeSet: sorted.
            Some(item) => Ok(client::string_set(&item, keys::NAMES)?
                .into_iter()
                .collect()),
        }
    }

    /// One document, read consistently.
    pub(super) async fn read_alert_state(
        &self,
        key: &str,
    ) -> Result<Option<Versioned>, StoreError> {
        match self.get(keys::alert(key)).await? {
            None => Ok(None),
            Some(item) => versioned(key, &item).map(Some),
        }
    }

    /// The documents whose key starts with `prefix`, sorted by key: the
    /// range keys of `prefix`'s family that begin with it.
    pub(super) async fn read_alert_states(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, Versioned)>, StoreError> {
        let items = self.query(keys::alerts_pk(prefix), prefix).await?;
        let mut found = items
            .iter()
            .map(|item| {
                let key = client::string(item, keys::SK)?.unwrap_or_default();
                Ok((key.to_owned(), versioned(key, item)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // DynamoDB sorts range keys by their UTF-8 bytes, as `str` does:
        // sorted again only to depend on neither.
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    /// Writes (`Some`) or removes (`None`) one document when
    /// `precondition` holds of the version read, in a transaction
    /// conditional on that version, so a write between the read and this
    /// one cancels it (and the next round reads again). A transaction
    /// rather than a plain put: its token makes a retry of one DynamoDB
    /// applied before its answer was lost answer success, where a plain
    /// conditional put would answer a conflict over its own write (a lost
    /// claim that nobody then sends).
    pub(super) async fn write_alert_state(
        &self,
        key: &str,
        value: Option<&str>,
        precondition: Precondition,
    ) -> Result<PutOutcome, StoreError> {
        let seed = self.token_seed(&format!("alert\u{1f}{key}"));
        for round in 0..MAX_ROUNDS {
            let current = self.read_alert_state(key).await?.map(|doc| doc.version);
            if !precondition.holds(current) {
                return Ok(PutOutcome::Conflict { current });
            }
            let (action, version) = match (value, current) {
                // Nothing to remove, and the precondition held: done.
                (None, None) => return Ok(PutOutcome::Written { version: 0 }),
                (None, Some(_)) => (Action::delete(keys::alert(key)), 0),
                (Some(value), _) => {
                    let version = current.map_or(FIRST_VERSION, |v| v + 1);
                    let item = [
                        (keys::VALUE.to_owned(), keys::s(value)),
                        (keys::VERSION.to_owned(), keys::n(version)),
                    ]
                    .into();
                    (Action::put(keys::alert(key), item), version)
                }
            };
            let action = match current {
                None => action
                    .when("attribute_not_exists(#pk)")
                    .name("#pk", keys::PK),
                Some(read) => action
                    .when("#version = :read")
                    .name("#version", keys::VERSION)
                    .value(":read", keys::n(read)),
            };
            match self.transact(vec![action], &token(&seed, round)).await? {
                Outcome::Done => return Ok(PutOutcome::Written { version }),
                Outcome::Cancelled(_) => continue,
            }
        }
        Err(StoreError::unavailable(format!(
            "dynamodb table {}: alert state {key} changed under {MAX_ROUNDS} attempts to write it",
            self.table()
        )))
    }
}

/// A document item as a [`Versioned`].
fn versioned(key: &str, item: &keys::Item) -> Result<Versioned, StoreError> {
    let version = client::number(item, keys::VERSION)?
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| {
            StoreError::corrupt(format!("dynamodb: alert state {key} has no version"))
        })?;
    let value = client::string(item, keys::VALUE)?.unwrap_or_default();
    Ok(Versioned {
        version,
        value: value.to_owned(),
    })
}
