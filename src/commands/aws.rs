//! `lamed preflight`, `deploy` and `destroy`: the AWS commands, present in
//! every build but working only with the `aws` feature.

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

#[cfg(not(feature = "aws"))]
fn without_aws<T>(_args: &T) -> anyhow::Result<()> {
    anyhow::bail!("this lamed was built without the aws feature; rebuild with --features aws")
}
