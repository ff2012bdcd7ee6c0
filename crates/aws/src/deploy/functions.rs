//! The Lambda functions: created or updated in place, published as a new
//! version behind the alias `live`, older versions pruned, and the
//! permissions for API Gateway and the alert check's schedule to invoke
//! the alias.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, Environment, FunctionCode, LastUpdateStatus, Runtime, State,
};
use aws_sdk_lambda::Client;

use super::plan::{FunctionSpec, ALIAS, HANDLER, KEEP_VERSIONS, RUNTIME};
use super::{progress, Answer};
use crate::args::Arch;

/// What a deployed function is reached by.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The alias ARN (`...:function:lamed-track:live`).
    pub alias_arn: String,
    /// The version the alias points at now.
    pub version: String,
}

/// Everything a function is created or updated with.
pub struct FunctionInput<'a> {
    /// Name, memory, timeout.
    pub spec: &'a FunctionSpec,
    /// The execution role.
    pub role_arn: &'a str,
    /// The zip with `bootstrap`.
    pub zip: &'a [u8],
    /// The processor architecture.
    pub arch: Arch,
    /// The function environment (holds secrets: never printed).
    pub environment: &'a BTreeMap<String, String>,
}

fn architecture(arch: Arch) -> Architecture {
    match arch {
        Arch::X86_64 => Architecture::X8664,
        Arch::Arm64 => Architecture::Arm64,
    }
}

/// Creates or updates the function, publishes a version, points `live` at
/// it and prunes old versions.
///
/// # Errors
///
/// When Lambda refuses a step, naming the function and the step.
pub async fn ensure_function(
    client: &Client,
    input: FunctionInput<'_>,
) -> anyhow::Result<Deployed> {
    let name = input.spec.name.as_str();
    let environment = Environment::builder()
        .set_variables(Some(input.environment.clone().into_iter().collect()))
        .build();
    let exists = client
        .get_function()
        .function_name(name)
        .send()
        .await
        .found(|| format!("cannot read function {name}"))?
        .is_some();
    if exists {
        client
            .update_function_code()
            .function_name(name)
            .zip_file(Blob::new(input.zip))
            .architectures(architecture(input.arch))
            .send()
            .await
            .checked(|| format!("cannot update the code of function {name}"))?;
        wait_ready(client, name).await?;
        client
            .update_function_configuration()
            .function_name(name)
            .role(input.role_arn)
            .runtime(Runtime::from(RUNTIME))
            .handler(HANDLER)
            .description(&input.spec.description)
            .memory_size(input.spec.memory_mb)
            .timeout(input.spec.timeout_seconds)
            .environment(environment)
            .send()
            .await
            .checked(|| format!("cannot update the configuration of function {name}"))?;
        wait_ready(client, name).await?;
        progress(&format!("function {name}: code and configuration updated"));
    } else {
        create_function(client, &input, environment).await?;
        wait_ready(client, name).await?;
        progress(&format!(
            "function {name}: created ({RUNTIME}, {}, {} MB, {} s)",
            input.arch.lambda_name(),
            input.spec.memory_mb,
            input.spec.timeout_seconds
        ));
    }
    let version = client
        .publish_version()
        .function_name(name)
        .send()
        .await
        .checked(|| format!("cannot publish a version of function {name}"))?
        .version
        .with_context(|| format!("lambda returned no version for function {name}"))?;
    let alias_arn = ensure_alias(client, name, &version).await?;
    let deleted = prune_versions(client, name, &version).await?;
    progress(&format!(
        "function {name}: version {version} is {ALIAS}{}",
        if deleted > 0 {
            format!(", {deleted} old version(s) deleted")
        } else {
            String::new()
        }
    ));
    Ok(Deployed { alias_arn, version })
}

/// Creates the function; a role created seconds ago may not be assumable
/// by Lambda yet (IAM is eventually consistent), so that one error is
/// retried for up to a minute.
async fn create_function(
    client: &Client,
    input: &FunctionInput<'_>,
    environment: Environment,
) -> anyhow::Result<()> {
    let name = input.spec.name.as_str();
    let mut delay = Duration::from_secs(2);
    let mut waited = Duration::ZERO;
    loop {
        let result = client
            .create_function()
            .function_name(name)
            .runtime(Runtime::from(RUNTIME))
            .handler(HANDLER)
            .role(input.role_arn)
            .description(&input.spec.description)
            .memory_size(input.spec.memory_mb)
            .timeout(input.spec.timeout_seconds)
            .architectures(architecture(input.arch))
            .environment(environment.clone())
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(input.zip))
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => return Ok(()),
            Err(err)
                if waited < Duration::from_secs(60)
                    && err.as_service_error().is_some_and(|e| {
                        e.is_invalid_parameter_value_exception()
                            && e.to_string().contains("cannot be assumed")
                    }) =>
            {
                progress(&format!(
                    "function {name}: waiting for the new IAM role to be usable"
                ));
                tokio::time::sleep(delay).await;
                waited += delay;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(err) => return Err(err).checked(|| format!("cannot create function {name}")),
        }
    }
}

/// Waits until the function takes the next change (AWS applies updates
/// asynchronously and refuses another one meanwhile).
async fn wait_ready(client: &Client, name: &str) -> anyhow::Result<()> {
    for _ in 0..120 {
        let config = client
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .checked(|| format!("cannot read the state of function {name}"))?;
        let pending = matches!(config.state, Some(State::Pending))
            || matches!(
                config.last_update_status,
                Some(LastUpdateStatus::InProgress)
            );
        if matches!(config.state, Some(State::Failed))
            || matches!(config.last_update_status, Some(LastUpdateStatus::Failed))
        {
            anyhow::bail!(
                "function {name} failed to update: {}",
                config
                    .last_update_status_reason
                    .or(config.state_reason)
                    .unwrap_or_default()
            );
        }
        if !pending {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("function {name} is still updating after a minute")
}

/// Points the alias at `version`, creating it when missing. Returns its ARN.
async fn ensure_alias(client: &Client, name: &str, version: &str) -> anyhow::Result<String> {
    let exists = client
        .get_alias()
        .function_name(name)
        .name(ALIAS)
        .send()
        .await
        .found(|| format!("cannot read alias {ALIAS} of function {name}"))?
        .is_some();
    let arn = if exists {
        client
            .update_alias()
            .function_name(name)
            .name(ALIAS)
            .function_version(version)
            .send()
            .await
            .checked(|| format!("cannot update alias {ALIAS} of function {name}"))?
            .alias_arn
    } else {
        client
            .create_alias()
            .function_name(name)
            .name(ALIAS)
            .function_version(version)
            .send()
            .await
            .checked(|| format!("cannot create alias {ALIAS} of function {name}"))?
            .alias_arn
    };
    arn.with_context(|| format!("lambda returned no ARN for alias {ALIAS} of function {name}"))
}

/// The published versions of a function, oldest first.
pub async fn versions(client: &Client, name: &str) -> anyhow::Result<Vec<u64>> {
    let mut versions = Vec::new();
    let mut marker = None;
    loop {
        let page = client
            .list_versions_by_function()
            .function_name(name)
            .set_marker(marker)
            .send()
            .await
            .checked(|| format!("cannot list the versions of function {name}"))?;
        versions.extend(
            page.versions()
                .iter()
                .filter_map(|v| v.version.as_deref()?.parse::<u64>().ok()),
        );
        marker = page.next_marker;
        if marker.is_none() {
            break;
        }
    }
    versions.sort_unstable();
    versions.dedup();
    Ok(versions)
}

/// Deletes all but the newest [`KEEP_VERSIONS`] versions (never the one
/// `live` points at). Returns how many it deleted.
async fn prune_versions(client: &Client, name: &str, live: &str) -> anyhow::Result<usize> {
    let versions = versions(client, name).await?;
    let excess = versions.len().saturating_sub(KEEP_VERSIONS);
    let mut deleted = 0;
    for version in versions.into_iter().take(excess) {
        if version.to_string() == live {
            continue;
        }
        client
            .delete_function()
            .function_name(name)
            .qualifier(version.to_string())
            .send()
            .await
            .checked(|| format!("cannot delete version {version} of function {name}"))?;
        deleted += 1;
    }
    Ok(deleted)
}

/// Who may invoke a function's alias.
#[derive(Debug, Clone, Copy)]
pub struct Invoker<'a> {
    /// The AWS service (`apigateway.amazonaws.com`, `events.amazonaws.com`).
    pub principal: &'a str,
    /// Only from this ARN (the API's execute-api ARN with a wildcard, the
    /// rule's ARN).
    pub source_arn: &'a str,
    /// The statement's id in the function's policy.
    pub statement_id: &'a str,
}

/// Lets `invoker` invoke the function's alias, once. Returns whether the
/// permission was added (false: it was there).
///
/// # Errors
///
/// When Lambda refuses.
pub async fn ensure_permission(
    client: &Client,
    name: &str,
    invoker: Invoker<'_>,
) -> anyhow::Result<bool> {
    let Invoker {
        principal,
        source_arn,
        statement_id,
    } = invoker;
    let policy = client
        .get_policy()
        .function_name(name)
        .qualifier(ALIAS)
        .send()
        .await
        .found(|| format!("cannot read the policy of function {name}:{ALIAS}"))?
        .and_then(|output| output.policy)
        .unwrap_or_default();
    let present = serde_json::from_str::<serde_json::Value>(&policy)
        .ok()
        .and_then(|p| p.get("Statement").cloned())
        .and_then(|s| s.as_array().cloned())
        .is_some_and(|statements| {
            statements
                .iter()
                .any(|s| s.get("Sid").and_then(|v| v.as_str()) == Some(statement_id))
        });
    if present {
        return Ok(false);
    }
    client
        .add_permission()
        .function_name(name)
        .qualifier(ALIAS)
        .statement_id(statement_id)
        .action("lambda:InvokeFunction")
        .principal(principal)
        .source_arn(source_arn)
        .send()
        .await
        .checked(|| format!("cannot let {principal} invoke function {name}:{ALIAS}"))?;
    Ok(true)
}

/// Deletes a function with all its versions and aliases. Returns whether
/// it existed.
///
/// # Errors
///
/// When Lambda refuses.
pub async fn delete_function(client: &Client, name: &str) -> anyhow::Result<bool> {
    Ok(client
        .delete_function()
        .function_name(name)
        .send()
        .await
        .found(|| format!("cannot delete function {name}"))?
        .is_some())
}
