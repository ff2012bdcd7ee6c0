//! Experiments' registry records: one item each (JSON and version),
//! written under a precondition on the version read, with the status and
//! the names copied to every gate shard in the same transaction, so that
//! counting honours a pause from any instance at once.

use std::collections::BTreeSet;

use futures_util::future::try_join_all;

use super::action::Action;
use super::client::{self, Outcome};
use super::keys::{self, SHARDS};
use super::store::{token, DynamoDbStore};
use super::track::record_put;
use crate::{Precondition, PutOutcome, StoreError};
use lamed_core::registry::{ExperimentRecord, FIRST_VERSION};

/// Attempts of a write whose read version moved meanwhile (each answered
/// by a fresh read, which then decides).
const MAX_ROUNDS: u32 = 12;

impl DynamoDbStore {
    /// An experiment's record and its stored version.
    pub(super) async fn read_record(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Option<(ExperimentRecord, u64)>, StoreError> {
        let Some(item) = self.get(keys::record(namespace, experiment)).await? else {
            return Ok(None);
        };
        let json = client::string(&item, keys::RECORD)?.unwrap_or_default();
        let mut record: ExperimentRecord = serde_json::from_str(json).map_err(|e| {
            StoreError::corrupt_because(
                format!("dynamodb: record of {namespace}/{experiment} does not parse"),
                e,
            )
        })?;
        let version = client::number(&item, keys::VERSION)?
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| StoreError::corrupt("dynamodb: a record without a version"))?;
        record.version = version;
        Ok(Some((record, version)))
    }

    /// Every record of a namespace, sorted by name.
    pub(super) async fn read_records(
        &self,
        namespace: &str,
    ) -> Result<Vec<ExperimentRecord>, StoreError> {
        let names = self.read_experiments(namespace).await?;
        let records =
            try_join_all(names.iter().map(|name| self.read_record(namespace, name))).await?;
        Ok(records.into_iter().flatten().map(|(r, _)| r).collect())
    }

    /// `put_record`: reads the version, checks the precondition, writes
    /// conditionally on that version; a write cancelled because another
    /// came between reads again.
    pub(super) async fn write_record(
        &self,
        mut record: ExperimentRecord,
        precondition: Precondition,
    ) -> Result<PutOutcome, StoreError> {
        let (ns, exp) = (record.namespace.clone(), record.name.clone());
        let seed = self.token_seed(&format!("record\u{1f}{ns}\u{1f}{exp}"));
        for round in 0..MAX_ROUNDS {
            let current = self.read_record(&ns, &exp).await?.map(|(_, v)| v);
            if !precondition.holds(current) {
                return Ok(PutOutcome::Conflict { current });
            }
            let version = current.map_or(FIRST_VERSION, |v| v + 1);
            record.version = version;
            let mut actions = vec![record_put(&record, current)];
            let variants: BTreeSet<String> =
                record.variants.iter().map(|v| v.name.clone()).collect();
            let goals: BTreeSet<String> = record.goals.iter().map(|g| g.name.clone()).collect();
            for k in 0..SHARDS {
                actions.push(gate_set(
                    keys::gate(&ns, &exp, k),
                    &record,
                    &variants,
                    &goals,
                ));
            }
            // Registering creates the experiment, without caps.
            actions.push(add_name(keys::namespaces(), &ns));
            actions.push(add_name(keys::experiments(&ns), &exp));
            match self.transact(actions, &token(&seed, round)).await? {
                Outcome::Done => return Ok(PutOutcome::Written { version }),
                Outcome::Cancelled(_) => continue,
            }
        }
        Err(StoreError::unavailable(format!(
            "dynamodb table {}: record {ns}/{exp} changed under {MAX_ROUNDS} attempts to write it",
            self.table()
        )))
    }
}

/// Sets a gate shard's status and adds the record's names.
fn gate_set(
    key: keys::Item,
    record: &ExperimentRecord,
    variants: &BTreeSet<String>,
    goals: &BTreeSet<String>,
) -> Action {
    let mut expression = "SET #st = :st".to_owned();
    let mut action = Action::update(key, "")
        .name("#st", keys::STATUS)
        .value(":st", keys::s(record.status.as_str()));
    let mut adds = Vec::new();
    if !variants.is_empty() {
        adds.push("#vs :vs");
        action = action
            .name("#vs", keys::VARIANTS)
            .value(":vs", keys::ss(variants.iter().cloned()));
    }
    if !goals.is_empty() {
        adds.push("#gs :gs");
        action = action
            .name("#gs", keys::GOALS)
            .value(":gs", keys::ss(goals.iter().cloned()));
    }
    if !adds.is_empty() {
        expression.push_str(&format!(" ADD {}", adds.join(", ")));
    }
    action.with_expression(expression)
}

/// Adds `name` to the set at `key`, whatever its size.
pub(super) fn add_name(key: keys::Item, name: &str) -> Action {
    Action::update(key, "ADD #names :add")
        .name("#names", keys::NAMES)
        .value(":add", keys::ss([name]))
}
