//! `lamed webhooks test`: a signed test event to every configured
//! endpoint, each answer printed.

use anyhow::Context;

use crate::alerts::delivery::Outcome;
use crate::cli::WebhooksAction;
use crate::clock::Clock;
use crate::config::Config;

/// Runs one `lamed webhooks` action.
///
/// # Errors
///
/// A configuration error, no endpoint configured, or an endpoint that did
/// not answer 2xx.
pub async fn run(action: WebhooksAction) -> anyhow::Result<()> {
    let WebhooksAction::Test(args) = action;
    let config = Config::load(args.overrides.clone())?;
    let options = crate::server::alerting::alert_options(&config)?
        .context("no webhook configured: set --webhook-url and --webhook-secret, or \"webhooks\" in config.json")?;
    let mut failed = 0;
    for (url, outcome) in crate::alerts::send_test(&options, Clock::System.now_ms()).await {
        match outcome {
            Outcome::Answer { status, .. } if (200..300).contains(&status) => {
                println!("{url}: {status}");
            }
            Outcome::Answer { status, .. } => {
                println!("{url}: {status}");
                failed += 1;
            }
            Outcome::NoAnswer(why) => {
                println!("{url}: no answer: {why}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} webhook endpoint(s) did not accept the test event");
    }
    Ok(())
}
