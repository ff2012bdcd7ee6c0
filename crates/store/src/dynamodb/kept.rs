//! What an experiment keeps once per key: memberships (Sixpack's clients)
//! and adaptive weight periods. Each is an item put with
//! `attribute_not_exists(pk)`, so the first value written stays and every
//! instance answers it; a membership also adds one to a member tally
//! shard in the same transaction, so counting members is a few reads, not
//! a scan of a million memberships.

use super::action::Action;
use super::client::{self, Outcome};
use super::keys;
use super::store::{token, DynamoDbStore};
use crate::{Kept, StoreError};

impl DynamoDbStore {
    /// The value a member joined with.
    pub(super) async fn read_member(
        &self,
        namespace: &str,
        experiment: &str,
        member: &str,
    ) -> Result<Option<String>, StoreError> {
        self.read_value(keys::member(namespace, experiment, member))
            .await
    }

    async fn read_value(&self, key: keys::Item) -> Result<Option<String>, StoreError> {
        match self.get(key).await? {
            None => Ok(None),
            Some(item) => Ok(client::string(&item, keys::VALUE)?.map(str::to_owned)),
        }
    }

    /// `put_once`: writes `value` unless the key holds one; answers what
    /// it holds.
    pub(super) async fn keep(
        &self,
        namespace: &str,
        experiment: &str,
        key: &Kept,
        value: &str,
    ) -> Result<String, StoreError> {
        let (item_key, tally) = match key {
            Kept::Member(member) => (
                keys::member(namespace, experiment, member),
                Some(keys::tally(namespace, experiment, keys::shard_of(member))),
            ),
            Kept::Weights(period) => (keys::weights(namespace, experiment, *period), None),
        };
        let mut actions = vec![Action::put(
            item_key.clone(),
            [(keys::VALUE.to_owned(), keys::s(value))].into(),
        )
        .when("attribute_not_exists(#pk)")
        .name("#pk", keys::PK)];
        if let Some(tally) = tally {
            actions.push(
                Action::update(tally, "ADD #n :one")
                    .name("#n", keys::COUNT)
                    .value(":one", keys::n(1)),
            );
        }
        let seed = self.token_seed(&format!(
            "keep\u{1f}{namespace}\u{1f}{experiment}\u{1f}{key:?}"
        ));
        match self.transact(actions, &token(&seed, 0)).await? {
            Outcome::Done => Ok(value.to_owned()),
            // Only the put has a condition: the key holds a value.
            Outcome::Cancelled(_) => self.read_value(item_key).await?.ok_or_else(|| {
                StoreError::unavailable(format!(
                    "dynamodb table {}: a kept value of {namespace}/{experiment} vanished \
                     (deleted meanwhile)",
                    self.table()
                ))
            }),
        }
    }

    /// Members remembered: the sum of the tally shards.
    pub(super) async fn count_members(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<u64, StoreError> {
        let tallies = self
            .query(
                keys::experiment_pk(namespace, experiment),
                keys::TALLY_PREFIX,
            )
            .await?;
        let mut total: i128 = 0;
        for item in &tallies {
            total += client::number(item, keys::COUNT)?.unwrap_or(0);
        }
        u64::try_from(total).map_err(|_| StoreError::corrupt("dynamodb: a negative member tally"))
    }

    /// Every period's weights, sorted by period.
    pub(super) async fn read_weights(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let items = self
            .query(
                keys::experiment_pk(namespace, experiment),
                keys::WEIGHTS_PREFIX,
            )
            .await?;
        let mut history = Vec::with_capacity(items.len());
        for item in &items {
            let sk = client::string(item, keys::SK)?.unwrap_or_default();
            let period = sk
                .strip_prefix(keys::WEIGHTS_PREFIX)
                .and_then(|p| p.parse::<i64>().ok())
                .ok_or_else(|| StoreError::corrupt(format!("dynamodb: weights key {sk:?}")))?;
            let weights = client::string(item, keys::VALUE)?.unwrap_or_default();
            history.push((period, weights.to_owned()));
        }
        // Range keys sort as text ("w␟-2" < "w␟10" < "w␟5"): by number here.
        history.sort_by_key(|(period, _)| *period);
        Ok(history)
    }

    /// One period's weights.
    pub(super) async fn read_weights_of(
        &self,
        namespace: &str,
        experiment: &str,
        period: i64,
    ) -> Result<Option<String>, StoreError> {
        self.read_value(keys::weights(namespace, experiment, period))
            .await
    }
}
