//! The DynamoDB table of a deployment with no Redis: created by the
//! store's own code (on demand, TTL on, lamed's key schema, the dedupe
//! window recorded), with TTL and point-in-time recovery turned on when off
//! (a restored table comes back without them); checked by preflight; kept
//! by `lamed destroy` unless `--delete-data`.

use std::time::Duration;

use anyhow::Context;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    PointInTimeRecoverySpecification, PointInTimeRecoveryStatus, TableDescription,
};
use aws_sdk_dynamodb::Client;

use super::{progress, sdk_error, Answer};
use lamed_config::config::Config;
use lamed_store::dynamodb::{check_key_schema, DynamoDbOptions, DynamoDbStore};
use lamed_store::Store;

/// How long point-in-time recovery may stay unavailable after the table's
/// creation (AWS answers `ContinuousBackupsUnavailableException` while it
/// prepares the table's backups).
const RECOVERY_WITHIN: Duration = Duration::from_secs(120);

/// The table's description; `None` when there is no such table.
///
/// # Errors
///
/// When DynamoDB cannot be asked (credentials, permissions, network).
pub async fn describe(client: &Client, table: &str) -> anyhow::Result<Option<TableDescription>> {
    Ok(client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .found(|| format!("cannot describe dynamodb table {table}"))?
        .and_then(|out| out.table))
}

/// Creates the table unless it exists, checks it as `lamed serve` would
/// (key schema, dedupe window, a write), and turns point-in-time recovery
/// on. Returns the table's ARN, for the functions' policy.
///
/// # Errors
///
/// When the store refuses the table (another key schema, another dedupe
/// window) or DynamoDB refuses a step, naming the table.
pub async fn ensure_table(sdk: &SdkConfig, config: &Config, table: &str) -> anyhow::Result<String> {
    let client = Client::new(sdk);
    let existed = describe(&client, table).await?.is_some();
    // The store creates the table itself, so that deploy and `lamed serve
    // --dynamodb-table` make the same one, and refuses a foreign table or
    // another window now rather than at the functions' first event.
    let store = DynamoDbStore::open(DynamoDbOptions {
        sdk: Some(sdk.clone()),
        ..config.store_options().dynamodb(table)
    })
    .await
    .with_context(|| format!("cannot prepare dynamodb table {table}"))?;
    progress(&if existed {
        format!("DynamoDB table {table}: exists (lamed's key schema and dedupe window)")
    } else {
        format!("DynamoDB table {table}: created (on demand, TTL on)")
    });
    // A table restored from a backup comes back without TTL.
    if store
        .ensure_ttl()
        .await
        .with_context(|| format!("cannot turn on TTL of dynamodb table {table}"))?
    {
        progress(&format!("DynamoDB table {table}: TTL turned on"));
    }
    store
        .close()
        .await
        .with_context(|| format!("cannot close dynamodb table {table}"))?;
    ensure_recovery(&client, table).await?;
    describe(&client, table)
        .await?
        .and_then(|description| description.table_arn)
        .with_context(|| format!("dynamodb returned no ARN for table {table}"))
}

/// Whether point-in-time recovery is on for `table`.
///
/// # Errors
///
/// When DynamoDB refuses the question.
pub async fn recovery_on(client: &Client, table: &str) -> anyhow::Result<bool> {
    let out = client
        .describe_continuous_backups()
        .table_name(table)
        .send()
        .await
        .checked(|| format!("cannot read the backups of dynamodb table {table}"))?;
    Ok(out
        .continuous_backups_description
        .and_then(|backups| backups.point_in_time_recovery_description)
        .and_then(|recovery| recovery.point_in_time_recovery_status)
        == Some(PointInTimeRecoveryStatus::Enabled))
}

/// Turns point-in-time recovery on unless it is: any second of the last
/// 35 days can be restored into a new table (README: "Backups").
async fn ensure_recovery(client: &Client, table: &str) -> anyhow::Result<()> {
    if recovery_on(client, table).await? {
        progress(&format!(
            "DynamoDB table {table}: point-in-time recovery already on"
        ));
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + RECOVERY_WITHIN;
    loop {
        let sent = client
            .update_continuous_backups()
            .table_name(table)
            .point_in_time_recovery_specification(
                PointInTimeRecoverySpecification::builder()
                    .point_in_time_recovery_enabled(true)
                    .build()
                    .context("point-in-time recovery specification")?,
            )
            .send()
            .await;
        match sent {
            Ok(_) => break,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_continuous_backups_unavailable_exception())
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(err) => {
                return Err(sdk_error(err)).with_context(|| {
                    format!("cannot turn on point-in-time recovery of dynamodb table {table}")
                })
            }
        }
    }
    progress(&format!(
        "DynamoDB table {table}: point-in-time recovery turned on"
    ));
    Ok(())
}

/// What preflight says of the table: it exists with lamed's key schema, or
/// deploy will create it.
///
/// # Errors
///
/// When DynamoDB cannot be asked, or the table is not a lamed table.
pub async fn check(sdk: &SdkConfig, table: &str) -> Result<String, String> {
    let client = Client::new(sdk);
    let fix = format!(
        "\n  fix: the credentials need dynamodb:DescribeTable, CreateTable, UpdateTimeToLive, \
         DescribeContinuousBackups and UpdateContinuousBackups on table {table}"
    );
    match describe(&client, table).await {
        Ok(None) => Ok(format!(
            "table {table} is not there yet: deploy creates it \
             (on demand, TTL on, point-in-time recovery on)"
        )),
        Ok(Some(description)) => {
            check_key_schema(table, &description).map_err(|err| err.to_string())?;
            let recovery = match recovery_on(&client, table).await {
                Ok(true) => "point-in-time recovery on",
                Ok(false) => "point-in-time recovery off: deploy turns it on",
                Err(err) => return Err(format!("{err:#}{fix}")),
            };
            Ok(format!(
                "table {table} exists, lamed's key schema; {recovery}"
            ))
        }
        Err(err) => Err(format!("{err:#}{fix}")),
    }
}

/// Deletes the table and every count in it. Returns whether it existed.
///
/// # Errors
///
/// When DynamoDB refuses.
pub async fn delete_table(client: &Client, table: &str) -> anyhow::Result<bool> {
    Ok(client
        .delete_table()
        .table_name(table)
        .send()
        .await
        .found(|| format!("cannot delete dynamodb table {table}"))?
        .is_some())
}
