//! Talking to DynamoDB: the deadline every operation runs under, a
//! transaction with bounded retries of what may pass, reads, and how the
//! SDK's errors become [`StoreError`]s of the right kind.

use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};

use super::action::Action;
use super::keys::{self, Item};
use super::store::DynamoDbStore;
use crate::StoreError;

/// The default deadline of a store call (a request's own is usually
/// shorter).
pub(super) const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts of one transaction cancelled by a conflict or throttling.
const MAX_ATTEMPTS: u32 = 6;

/// The first pause between attempts, doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(25);

/// Items per `BatchWriteItem` (DynamoDB's limit).
const BATCH_WRITE: usize = 25;

/// What a transaction did.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Applied.
    Done,
    /// Cancelled by its conditions: per action, whether its condition failed.
    Cancelled(Vec<bool>),
}

/// Error codes that may pass: throttling, conflicts, DynamoDB's own faults.
fn transient_code(code: &str) -> bool {
    matches!(
        code,
        "TransactionConflict"
            | "TransactionConflictException"
            | "TransactionInProgressException"
            | "ThrottlingError"
            | "ThrottlingException"
            | "ProvisionedThroughputExceeded"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "LimitExceededException"
    )
}

impl DynamoDbStore {
    /// The error of an SDK call, of the kind its code says: a request
    /// DynamoDB refuses as invalid (validation, serialization, an item too
    /// large) fails the same way on every retry, so it is permanent; the
    /// rest (network, throttling, credentials, a missing table) may pass.
    pub(super) fn error<E>(&self, doing: &str, err: E) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let context = format!("dynamodb table {}: {doing}", self.table());
        match err.code() {
            Some("ValidationException" | "SerializationException") => {
                StoreError::corrupt_because(context, err)
            }
            _ => StoreError::caused_by(context, err),
        }
    }

    /// Runs one store operation under the overall deadline.
    pub(super) async fn run<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.check_open()?;
        let deadline = self.options().deadline;
        match tokio::time::timeout(deadline, operation).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::unavailable(format!(
                "dynamodb table {}: no answer within {} ms",
                self.table(),
                deadline.as_millis()
            ))),
        }
    }

    /// Runs `actions` as one transaction, idempotent under `token` (the
    /// same token on every retry, so a transaction DynamoDB applied before
    /// its answer was lost is not applied twice). Conflicts and throttling
    /// are retried a few times with backoff; cancelled conditions are the
    /// caller's to read.
    ///
    /// # Errors
    ///
    /// Transient when the retries run out; permanent for a request
    /// DynamoDB refuses.
    pub(super) async fn transact(
        &self,
        actions: Vec<Action>,
        token: &str,
    ) -> Result<Outcome, StoreError> {
        let table = self.table();
        let items = actions
            .into_iter()
            .map(|a| a.into_sdk(table))
            .collect::<Result<Vec<_>, _>>()?;
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=MAX_ATTEMPTS {
            let sent = self
                .client()
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(token)
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(Outcome::Done),
                Err(err) => err.into_service_error(),
            };
            let retry = match &err {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    let codes: Vec<Option<&str>> = cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().filter(|c| *c != "None"))
                        .collect();
                    if let Some(other) = codes
                        .iter()
                        .flatten()
                        .find(|c| **c != "ConditionalCheckFailed" && !transient_code(c))
                    {
                        return Err(StoreError::corrupt(format!(
                            "dynamodb table {table}: transaction refused: {other}"
                        )));
                    }
                    if codes.iter().flatten().any(|c| transient_code(c)) {
                        true
                    } else {
                        let failed = codes.iter().map(Option::is_some).collect::<Vec<_>>();
                        if items.len() != failed.len() {
                            return Err(StoreError::corrupt(format!(
                                "dynamodb table {table}: {} cancellation reasons for {} actions",
                                failed.len(),
                                items.len()
                            )));
                        }
                        return Ok(Outcome::Cancelled(failed));
                    }
                }
                other => other.code().is_none_or(transient_code),
            };
            if !retry || attempt == MAX_ATTEMPTS {
                return Err(self.error("transaction failed", err));
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        unreachable!("the last attempt returns")
    }

    /// The item at `key`, read consistently (what every instance wrote
    /// before is seen).
    pub(super) async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(self.table())
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("read failed", e.into_service_error()))?;
        Ok(out.item)
    }

    /// Every item of partition `pk` whose range key starts with `prefix`
    /// (all of them for ""), read consistently, page by page.
    pub(super) async fn query(&self, pk: String, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client()
                .query()
                .table_name(self.table())
                .consistent_read(true)
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":pk", keys::s(pk.clone()))
                .set_exclusive_start_key(start);
            query = if prefix.is_empty() {
                query.key_condition_expression("#pk = :pk")
            } else {
                query
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#sk", keys::SK)
                    .expression_attribute_values(":prefix", keys::s(prefix))
            };
            let out = query
                .send()
                .await
                .map_err(|e| self.error("query failed", e.into_service_error()))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// Deletes the items at `keys`, 25 per request, until none is left
    /// unprocessed.
    pub(super) async fn delete_all(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        for chunk in keys.chunks(BATCH_WRITE) {
            let mut requests = chunk
                .iter()
                .map(|key| {
                    DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| StoreError::corrupt_because("dynamodb: delete request", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut backoff = FIRST_BACKOFF;
            while !requests.is_empty() {
                let out = self
                    .client()
                    .batch_write_item()
                    .request_items(self.table(), requests)
                    .send()
                    .await
                    .map_err(|e| self.error("delete failed", e.into_service_error()))?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut left| left.remove(self.table()))
                    .unwrap_or_default();
                if !requests.is_empty() {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        Ok(())
    }
}

/// A number attribute of `item` as an integer; `None` when absent.
///
/// # Errors
///
/// [`StoreError::Corrupt`] when it is not an integer number.
pub(super) fn number(item: &Item, name: &str) -> Result<Option<i128>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_n()
            .ok()
            .and_then(|n| n.parse::<i128>().ok())
            .map(Some)
            .ok_or_else(|| {
                StoreError::corrupt(format!(
                    "dynamodb: attribute {name} is {value:?}, not an integer"
                ))
            }),
    }
}

/// A string attribute of `item`; `None` when absent.
///
/// # Errors
///
/// [`StoreError::Corrupt`] when it is not a string.
pub(super) fn string<'a>(item: &'a Item, name: &str) -> Result<Option<&'a str>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(value) => value.as_s().map(|s| Some(s.as_str())).map_err(|_| {
            StoreError::corrupt(format!(
                "dynamodb: attribute {name} is {value:?}, not a string"
            ))
        }),
    }
}

/// A string-set attribute of `item` (empty when absent).
///
/// # Errors
///
/// [`StoreError::Corrupt`] when it is not a string set.
pub(super) fn string_set(
    item: &Item,
    name: &str,
) -> Result<std::collections::BTreeSet<String>, StoreError> {
    match item.get(name) {
        None => Ok(Default::default()),
        Some(value) => value
            .as_ss()
            .map(|set| set.iter().cloned().collect())
            .map_err(|_| {
                StoreError::corrupt(format!(
                    "dynamodb: attribute {name} is {value:?}, not a string set"
                ))
            }),
    }
}
