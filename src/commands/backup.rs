//! `lamed backup` and `lamed restore`: the embedded store copied out while
//! it serves, and put back while nothing serves it.

use anyhow::Context;

use crate::cli::{BackupArgs, RestoreArgs};
use crate::config::Config;
use crate::store::embedded::{self, StoreSummary};

/// Writes a consistent copy of the configured embedded store to the file,
/// and prints what it holds.
///
/// # Errors
///
/// When the configuration counts on Redis, there is no store, or the
/// copy cannot be written.
pub fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let config = embedded_config(&args.store, "back up")?;
    let summary = embedded::backup(&config.data_dir, &args.file).with_context(|| {
        format!(
            "cannot back up the store of {} to {}",
            config.data_dir.display(),
            args.file.display()
        )
    })?;
    println!(
        "backed up {} to {}: {}",
        config.data_dir.display(),
        args.file.display(),
        describe(&summary)
    );
    Ok(())
}

/// Replaces the configured embedded store with a backup, unless a server
/// uses its data directory.
///
/// # Errors
///
/// When a server uses the data directory, the file is no backup, the store
/// there counts events and `--force` was not given, or the copy fails.
pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let config = embedded_config(&args.store, "restore")?;
    let data_dir = &config.data_dir;
    let summary = embedded::restore(data_dir, &args.file, args.force).map_err(|err| {
        if embedded::is_in_use(&err) {
            anyhow::anyhow!(
                "a server is running on this data directory ({}): stop it, restore, then start it again",
                data_dir.display()
            )
        } else {
            anyhow::Error::new(err).context(format!(
                "cannot restore {} into {}",
                args.file.display(),
                data_dir.display()
            ))
        }
    })?;
    println!(
        "restored {} into {}: {}",
        args.file.display(),
        data_dir.display(),
        describe(&summary)
    );
    Ok(())
}

/// The configuration, when it names an embedded store.
fn embedded_config(store: &crate::cli::StoreArgs, what: &str) -> anyhow::Result<Config> {
    let config = Config::load(store.overrides())?;
    if let Some(redis) = &config.redis {
        anyhow::bail!(
            "the configuration counts on Redis ({}), not in a data directory: {what} Redis itself (README: \"Backup and restore\")",
            redis.redacted()
        );
    }
    if let Some(table) = &config.dynamodb_table {
        anyhow::bail!(
            "the configuration counts in DynamoDB table {table}, not in a data directory: {what} the table with DynamoDB's own backups (point-in-time recovery)"
        );
    }
    Ok(config)
}

/// One line: what a store holds.
fn describe(summary: &StoreSummary) -> String {
    format!(
        "{} events counted in {} experiments, {} events in the dedupe memory, {} bytes",
        summary.events, summary.experiments, summary.remembered, summary.bytes
    )
}
