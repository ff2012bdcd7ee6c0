//! The AWS SDK configuration every AWS client of lamed starts from (this
//! store, `lamed deploy`, the tests): the SDK's standard chain with an
//! HTTPS client on rustls with *ring*, the provider lamed's own TLS uses.
//! The SDK's default client would build AWS-LC, a C library, for nothing.

use aws_config::{BehaviorVersion, ConfigLoader};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Builder;

/// The HTTPS (and plain HTTP, for emulators) client of every AWS call.
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The standard chain (environment, profile, SSO, instance role...) for
/// the latest behaviour version, on [`https_client`].
pub fn defaults() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(https_client())
}
