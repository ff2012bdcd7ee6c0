//! Delete, import and the health check.

use aws_sdk_dynamodb::types::ReturnValue;
use futures_util::future::try_join_all;

use super::action::Action;
use super::client;
use super::keys::{self, SHARDS};
use super::registry::add_name;
use super::store::{token, DynamoDbStore};
use crate::StoreError;
use lamed_core::model::PARTICIPATE;
use lamed_core::segments::Dimension;

impl DynamoDbStore {
    /// Removes an experiment's gates (with their segment values), counters,
    /// segment counters, record, memberships and
    /// weights, then its name from its namespace (and the namespace once
    /// it holds no experiment), making room under the caps. The dedupe
    /// markers stay, so a re-sent event stays a duplicate.
    ///
    /// Not one transaction (an experiment has any number of items): the
    /// gates go first, so an event counted meanwhile starts a new
    /// experiment rather than adding to one half deleted.
    pub(super) async fn delete(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<bool, StoreError> {
        let counters = try_join_all(
            (0..SHARDS).map(|k| self.query(keys::counters_pk(namespace, experiment, k), "")),
        )
        .await?;
        let segments = try_join_all(Dimension::ALL.into_iter().flat_map(|dimension| {
            (0..SHARDS).map(move |k| {
                self.query(keys::segments_pk(namespace, experiment, dimension, k), "")
            })
        }))
        .await?;
        let kept = self
            .query(keys::experiment_pk(namespace, experiment), "")
            .await?;
        let has_record = kept
            .iter()
            .any(|item| client::string(item, keys::SK).ok().flatten() == Some("record"));
        let had = has_record || counters.iter().any(|shard| !shard.is_empty());
        let only_key = |item: &keys::Item| {
            item.iter()
                .filter(|(name, _)| *name == keys::PK || *name == keys::SK)
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect::<keys::Item>()
        };
        let gates = (0..SHARDS)
            .map(|k| keys::gate(namespace, experiment, k))
            .collect();
        self.delete_all(gates).await?;
        let rest = counters
            .iter()
            .chain(&segments)
            .flatten()
            .chain(kept.iter())
            .map(only_key)
            .collect();
        self.delete_all(rest).await?;
        self.forget_name(namespace, experiment).await?;
        Ok(had)
    }

    /// Takes `experiment` out of its namespace's set, and the namespace out
    /// of the table's when that empties it (checked in the same
    /// transaction, so a namespace an experiment joined meanwhile stays).
    async fn forget_name(&self, namespace: &str, experiment: &str) -> Result<(), StoreError> {
        let out = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(keys::experiments(namespace)))
            .update_expression("DELETE #names :gone")
            .expression_attribute_names("#names", keys::NAMES)
            .expression_attribute_values(":gone", keys::ss([experiment]))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| self.error("delete failed", e.into_service_error()))?;
        let empty = out
            .attributes
            .as_ref()
            .is_none_or(|item| !item.contains_key(keys::NAMES));
        if empty {
            let actions = vec![
                Action::check(keys::experiments(namespace), "attribute_not_exists(#names)")
                    .name("#names", keys::NAMES),
                Action::update(keys::namespaces(), "DELETE #names :gone")
                    .name("#names", keys::NAMES)
                    .value(":gone", keys::ss([namespace])),
            ];
            let seed = self.token_seed(&format!("forget\u{1f}{namespace}"));
            // Cancelled: an experiment joined the namespace meanwhile.
            self.transact(actions, &token(&seed, 0)).await?;
        }
        Ok(())
    }

    /// Sets a counter's imported base, making its names known (without
    /// caps: importing is an operator's act); answers the previous base.
    pub(super) async fn import(
        &self,
        namespace: &str,
        experiment: &str,
        event: &str,
        variant: &str,
        count: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut actions = Vec::new();
        for k in 0..SHARDS {
            let mut action = Action::update(keys::gate(namespace, experiment, k), "")
                .name("#vs", keys::VARIANTS)
                .value(":vs", keys::ss([variant]));
            let mut expression = "ADD #vs :vs".to_owned();
            if event != PARTICIPATE {
                expression.push_str(", #gs :gs");
                action = action
                    .name("#gs", keys::GOALS)
                    .value(":gs", keys::ss([event]));
            }
            actions.push(action.with_expression(expression));
        }
        actions.push(add_name(keys::namespaces(), namespace));
        actions.push(add_name(keys::experiments(namespace), experiment));
        let seed = self.token_seed(&format!("import\u{1f}{namespace}\u{1f}{experiment}"));
        if let client::Outcome::Cancelled(_) = self.transact(actions, &token(&seed, 0)).await? {
            return Err(StoreError::corrupt(
                "dynamodb: an unconditional import was cancelled",
            ));
        }
        let out = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(keys::imported(namespace, experiment, event, variant)))
            .update_expression("SET #base = :count")
            .expression_attribute_names("#base", keys::BASE)
            .expression_attribute_values(":count", keys::n(count))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| self.error("import failed", e.into_service_error()))?;
        match out.attributes {
            None => Ok(None),
            Some(old) => Ok(client::number(&old, keys::BASE)?.and_then(|b| u64::try_from(b).ok())),
        }
    }

    /// Proves a write: the health item's time.
    pub(super) async fn write_heartbeat(&self) -> Result<(), StoreError> {
        self.client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(keys::health()))
            .update_expression("SET #at = :now")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":now", keys::n(self.now_ms()))
            .send()
            .await
            .map_err(|e| self.error("health write failed", e.into_service_error()))?;
        Ok(())
    }
}
