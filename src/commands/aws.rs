//! `lamed preflight`, `deploy` and `destroy`: the AWS commands, present in
//! every build but working only with the `aws` feature (off by default).

use crate::cli::{AwsArgs, DeployArgs, DestroyArgs};

/// `lamed preflight`.
///
/// # Errors
///
/// When a check fails, or without the `aws` feature.
pub async fn preflight(args: AwsArgs) -> anyhow::Result<()> {
    #[cfg(feature = "aws")]
    return lamed_aws::deploy::preflight::run(args).await;
    #[cfg(not(feature = "aws"))]
    return without_aws(&args);
}

/// `lamed deploy`.
///
/// # Errors
///
/// When a check or a step fails, or without the `aws` feature.
pub async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    #[cfg(feature = "aws")]
    return print_deployed(&lamed_aws::deploy::deploy(args).await?);
    #[cfg(not(feature = "aws"))]
    return without_aws(&args);
}

/// `lamed destroy`.
///
/// # Errors
///
/// When a removal fails, or without the `aws` feature.
pub async fn destroy(args: DestroyArgs) -> anyhow::Result<()> {
    #[cfg(feature = "aws")]
    return lamed_aws::deploy::destroy(args).await;
    #[cfg(not(feature = "aws"))]
    return without_aws(&args);
}

/// What a build without the `aws` feature answers to the AWS commands. The
/// feature is off by default because the AWS SDK more than doubles the
/// build of `lamed serve`; the commands are one documented step away.
pub const WITHOUT_AWS: &str = "this lamed was built without the AWS SDK (the aws feature), which \
    `lamed serve` does not need. Build the AWS commands with \
    `cargo install --path . --features aws` and run `lamed deploy` again, or run them from the \
    source tree: `cargo run --release --features aws -- deploy`";

#[cfg(not(feature = "aws"))]
fn without_aws<T>(_args: &T) -> anyhow::Result<()> {
    anyhow::bail!(WITHOUT_AWS)
}

/// Prints where a deployment answers, its key and the AlephBet snippet.
#[cfg(feature = "aws")]
fn print_deployed(deployed: &lamed_aws::deploy::Deployed) -> anyhow::Result<()> {
    use std::io::Write;

    use anyhow::Context;

    use crate::model::DEFAULT_NAMESPACE;
    use crate::snippet;

    let lamed_aws::deploy::Deployed {
        region,
        api,
        base_url: base,
        extra_routes,
        api_key,
        table,
        alerts,
    } = deployed;
    let stage = lamed_aws::deploy::plan::STAGE;
    let mut out = format!(
        "lamed is deployed on AWS Lambda (region {region}, REST API {api}, stage {stage})\n\
         \x20 tracking URL:    {base}/track\n\
         \x20 experiments URL: {base}/experiments (header X-Api-Key)\n\
         \x20 dashboard URL:   {}\n",
        snippet::dashboard_url(base)
    );
    for (path, handler) in extra_routes {
        out.push_str(&format!(
            "  extra path:      {base}/{path} ({})\n",
            handler.lamed_name()
        ));
    }
    if let Some(table) = table {
        out.push_str(&format!(
            "  counts in:       DynamoDB table {table} (kept by lamed destroy)\n"
        ));
    }
    if let Some(alerts) = alerts {
        out.push_str(&format!(
            "  alert check:     {} on {} (EventBridge rule {})\n",
            alerts.expression,
            alerts.function,
            lamed_aws::deploy::plan::ALERTS_RULE
        ));
    }
    out.push_str(&format!(
        "  API key:         {api_key} (API Gateway key \"{}\")\n\n{}\n{}\n{}\n",
        lamed_aws::deploy::plan::API_KEY_NAME,
        snippet::SNIPPET_START,
        snippet::alephbet_snippet(&format!("{base}/track"), DEFAULT_NAMESPACE),
        snippet::SNIPPET_END
    ));
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
}
