//! The alert check's schedule: the EventBridge rule `lamed-alerts`, which
//! invokes one function's alias with a scheduled event every
//! `alert_check_seconds` (in whole minutes), and the permission for
//! EventBridge to invoke it. Made only while webhooks are configured;
//! removed by a deploy without them and by `lamed destroy`.

use anyhow::Context;
use aws_sdk_eventbridge::types::{RuleState, Target};
use aws_sdk_eventbridge::Client;

use super::functions::{self, Invoker};
use super::plan::{Schedule, ALERTS_RULE};
use super::{progress, Answer};

/// The id of the rule's one target.
const TARGET_ID: &str = "lamed-alert-check";

/// The statement of the function's policy that lets the rule invoke it.
const STATEMENT_ID: &str = "lamed-alerts-schedule";

/// Creates or updates the rule with `schedule`, points its one target at
/// `alias_arn` (any other target is removed) and lets the rule invoke
/// that alias. Idempotent: put_rule and put_targets replace what is there.
///
/// # Errors
///
/// When EventBridge or Lambda refuses, naming the rule.
pub async fn ensure(
    events: &Client,
    lambda: &aws_sdk_lambda::Client,
    schedule: &Schedule,
    alias_arn: &str,
) -> anyhow::Result<()> {
    let rule_arn = events
        .put_rule()
        .name(ALERTS_RULE)
        .schedule_expression(&schedule.expression)
        .state(RuleState::Enabled)
        .description("lamed: the alert check of every experiment, and webhook deliveries")
        .send()
        .await
        .checked(|| format!("cannot create EventBridge rule {ALERTS_RULE}"))?
        .rule_arn
        .with_context(|| format!("EventBridge returned no ARN for rule {ALERTS_RULE}"))?;
    let stale: Vec<String> = targets(events)
        .await?
        .into_iter()
        .filter(|id| id != TARGET_ID)
        .collect();
    if !stale.is_empty() {
        remove_targets(events, stale).await?;
    }
    let target = Target::builder()
        .id(TARGET_ID)
        .arn(alias_arn)
        .build()
        .context("an EventBridge target needs an id and an ARN")?;
    let put = events
        .put_targets()
        .rule(ALERTS_RULE)
        .targets(target)
        .send()
        .await
        .checked(|| format!("cannot set the target of EventBridge rule {ALERTS_RULE}"))?;
    if let Some(failed) = put.failed_entries().first() {
        anyhow::bail!(
            "cannot set the target of EventBridge rule {ALERTS_RULE}: {}",
            failed.error_message().unwrap_or("refused")
        );
    }
    functions::ensure_permission(
        lambda,
        &schedule.function,
        Invoker {
            principal: "events.amazonaws.com",
            source_arn: &rule_arn,
            statement_id: STATEMENT_ID,
        },
    )
    .await?;
    progress(&format!(
        "EventBridge rule {ALERTS_RULE}: {} invokes {} (the alert check)",
        schedule.expression, schedule.function
    ));
    Ok(())
}

/// The ids of the rule's targets; none when the rule is not there.
async fn targets(events: &Client) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut next = None;
    loop {
        let Some(page) = events
            .list_targets_by_rule()
            .rule(ALERTS_RULE)
            .set_next_token(next)
            .send()
            .await
            .found(|| format!("cannot list the targets of EventBridge rule {ALERTS_RULE}"))?
        else {
            return Ok(ids);
        };
        ids.extend(page.targets().iter().map(|t| t.id().to_owned()));
        next = page.next_token;
        if next.is_none() {
            return Ok(ids);
        }
    }
}

async fn remove_targets(events: &Client, ids: Vec<String>) -> anyhow::Result<()> {
    events
        .remove_targets()
        .rule(ALERTS_RULE)
        .set_ids(Some(ids))
        .send()
        .await
        .found(|| format!("cannot remove the targets of EventBridge rule {ALERTS_RULE}"))?;
    Ok(())
}

/// Removes the rule and its targets (a rule with targets cannot be
/// deleted). Returns whether it was there.
///
/// # Errors
///
/// When EventBridge refuses.
pub async fn remove(events: &Client) -> anyhow::Result<bool> {
    let there = events
        .describe_rule()
        .name(ALERTS_RULE)
        .send()
        .await
        .found(|| format!("cannot read EventBridge rule {ALERTS_RULE}"))?
        .is_some();
    if !there {
        return Ok(false);
    }
    let ids = targets(events).await?;
    if !ids.is_empty() {
        remove_targets(events, ids).await?;
    }
    events
        .delete_rule()
        .name(ALERTS_RULE)
        .send()
        .await
        .found(|| format!("cannot delete EventBridge rule {ALERTS_RULE}"))?;
    Ok(true)
}
