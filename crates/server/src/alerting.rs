//! The alerts' options from the settings: one reading of them for both
//! places that run the alert check, `lamed serve` (a task beside the
//! server) and the AWS Lambda entry (a scheduled invocation).

use anyhow::Context;

use lamed_config::config::Config;
use lamed_service::alerts::delivery::{Backoff, ATTEMPT_TIMEOUT};
use lamed_service::alerts::evaluate::Rules;
use lamed_service::alerts::format::Format;
use lamed_service::alerts::signing::Secret;
use lamed_service::alerts::{AlertOptions, Endpoint};

/// The alerts' options from the settings; `None` without any webhook.
///
/// # Errors
///
/// A malformed secret (`lamed serve` stops before the port is bound).
pub fn alert_options(config: &Config) -> anyhow::Result<Option<AlertOptions>> {
    if config.webhooks.is_empty() {
        return Ok(None);
    }
    let endpoints = config
        .webhooks
        .iter()
        .map(|webhook| {
            let secret = webhook
                .secret
                .as_deref()
                .map(Secret::parse)
                .transpose()
                .with_context(|| format!("webhook {}", webhook.url))?;
            let format = match webhook.format.as_str() {
                "slack" => Format::Slack,
                _ => Format::Standard,
            };
            Ok(Endpoint {
                url: webhook.url.clone(),
                secret,
                events: webhook.events.clone(),
                format,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Some(AlertOptions {
        endpoints,
        rules: Rules {
            stall_ms: i64::try_from(config.stall_hours.saturating_mul(3_600_000))
                .unwrap_or(i64::MAX),
        },
        backoff: Backoff {
            first_ms: i64::try_from(config.webhook_first_retry_ms).unwrap_or(i64::MAX),
            ..Backoff::default()
        },
        public_url: config.public_url.clone().unwrap_or_default(),
        timeout: ATTEMPT_TIMEOUT,
    }))
}
