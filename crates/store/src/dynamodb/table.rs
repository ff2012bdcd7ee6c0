//! The table: created when missing (on demand, TTL on), refused when its
//! key schema is not lamed's, so that a mistyped `--dynamodb-table` naming
//! someone else's table fails at start instead of writing into it.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TableDescription, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};

use super::keys::{PK, SK, TTL};
use super::store::DynamoDbStore;
use crate::StoreError;

/// How long a new table may take to become active.
const ACTIVE_WITHIN: Duration = Duration::from_secs(60);

fn built<T>(result: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, StoreError> {
    result.map_err(|e| StoreError::corrupt_because("dynamodb: table definition", e))
}

/// lamed's key schema, for messages.
const SCHEMA: &str = "pk (string, hash key), sk (string, range key)";

impl DynamoDbStore {
    /// Creates the table unless it exists, waits until it is active, and
    /// checks its key schema.
    pub(super) async fn ensure_table(&self) -> Result<(), StoreError> {
        let table = self.table();
        let description = match self.describe().await? {
            Some(description) => description,
            None => {
                let created = self
                    .client()
                    .create_table()
                    .table_name(table)
                    .billing_mode(BillingMode::PayPerRequest)
                    .attribute_definitions(built(
                        AttributeDefinition::builder()
                            .attribute_name(PK)
                            .attribute_type(ScalarAttributeType::S)
                            .build(),
                    )?)
                    .attribute_definitions(built(
                        AttributeDefinition::builder()
                            .attribute_name(SK)
                            .attribute_type(ScalarAttributeType::S)
                            .build(),
                    )?)
                    .key_schema(built(
                        KeySchemaElement::builder()
                            .attribute_name(PK)
                            .key_type(KeyType::Hash)
                            .build(),
                    )?)
                    .key_schema(built(
                        KeySchemaElement::builder()
                            .attribute_name(SK)
                            .key_type(KeyType::Range)
                            .build(),
                    )?)
                    .send()
                    .await;
                match created {
                    Ok(_) => tracing::info!(table, "dynamodb table created (on demand)"),
                    // Another instance created it meanwhile.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_resource_in_use_exception()) => {}
                    Err(e) => {
                        return Err(self.error("cannot create the table", e.into_service_error()))
                    }
                }
                let description = self.wait_active().await?;
                self.enable_ttl().await?;
                description
            }
        };
        check_key_schema(self.table(), &description)
    }

    /// The table's description; `None` when there is no such table.
    async fn describe(&self) -> Result<Option<TableDescription>, StoreError> {
        match self
            .client()
            .describe_table()
            .table_name(self.table())
            .send()
            .await
        {
            Ok(out) => Ok(out.table),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.error("cannot describe the table", e.into_service_error())),
        }
    }

    async fn wait_active(&self) -> Result<TableDescription, StoreError> {
        let deadline = tokio::time::Instant::now() + ACTIVE_WITHIN;
        loop {
            if let Some(description) = self.describe().await? {
                if description.table_status == Some(TableStatus::Active) {
                    return Ok(description);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::unavailable(format!(
                    "dynamodb table {}: not active {} s after its creation",
                    self.table(),
                    ACTIVE_WITHIN.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Turns TTL on when it is off, as a table restored from a backup comes
    /// back; returns whether it was off. `lamed deploy` calls it, not
    /// [`open`](Self::open): the functions' role may neither read nor
    /// change TTL.
    ///
    /// # Errors
    ///
    /// When DynamoDB refuses either request.
    pub async fn ensure_ttl(&self) -> Result<bool, StoreError> {
        let out = self
            .client()
            .describe_time_to_live()
            .table_name(self.table())
            .send()
            .await
            .map_err(|e| self.error("cannot read TTL", e.into_service_error()))?;
        let status = out
            .time_to_live_description
            .and_then(|d| d.time_to_live_status);
        if matches!(
            status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) {
            return Ok(false);
        }
        self.enable_ttl().await?;
        Ok(true)
    }

    /// Turns TTL on for `ttl`, so that expired dedupe markers are removed
    /// some day (only to save space: the window is checked on `expires`).
    async fn enable_ttl(&self) -> Result<(), StoreError> {
        let spec = built(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL)
                .build(),
        )?;
        match self
            .client()
            .update_time_to_live()
            .table_name(self.table())
            .time_to_live_specification(spec)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Already on (another instance was first).
            Err(e)
                if e.as_service_error().is_some_and(|e| {
                    aws_sdk_dynamodb::error::ProvideErrorMetadata::code(e)
                        == Some("ValidationException")
                }) =>
            {
                Ok(())
            }
            Err(e) => Err(self.error("cannot enable TTL", e.into_service_error())),
        }
    }
}

/// Refuses a table whose key is not `pk` (S, hash) and `sk` (S, range):
/// what the store checks at open and `lamed preflight` before a deploy.
///
/// # Errors
///
/// [`StoreError::Unavailable`] naming the table's key schema and the fix.
pub fn check_key_schema(table: &str, description: &TableDescription) -> Result<(), StoreError> {
    let keys: Vec<(String, String)> = description
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name.clone(), k.key_type.as_str().to_owned()))
        .collect();
    let types = |name: &str| {
        description
            .attribute_definitions()
            .iter()
            .find(|d| d.attribute_name == name)
            .map(|d| d.attribute_type.as_str().to_owned())
    };
    let expected = vec![
        (PK.to_owned(), "HASH".to_owned()),
        (SK.to_owned(), "RANGE".to_owned()),
    ];
    if keys == expected && types(PK).as_deref() == Some("S") && types(SK).as_deref() == Some("S") {
        return Ok(());
    }
    let found: Vec<String> = keys
        .iter()
        .map(|(name, kind)| {
            let ty = types(name).unwrap_or_else(|| "?".into());
            format!("{name} ({ty}, {kind})")
        })
        .collect();
    Err(StoreError::unavailable(format!(
        "dynamodb table {table}: its key schema is {}, not lamed's {SCHEMA}; \
         it is not a lamed table; fix: name another table with --dynamodb-table \
         (lamed creates it)",
        found.join(", ")
    )))
}
