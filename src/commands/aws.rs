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
    return crate::deploy::preflight::run(args).await;
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
    return crate::deploy::deploy(args).await;
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
    return crate::deploy::destroy(args).await;
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
