//! How a DynamoDB store is set up.

use std::time::Duration;

use lamed_core::clock::Clock;
use lamed_core::model::Caps;

/// What [`DynamoDbStore::open`](super::DynamoDbStore::open) needs.
#[derive(Debug, Clone)]
pub struct DynamoDbOptions {
    /// The table (created when missing).
    pub table: String,
    /// The dedupe window in seconds, 0 = forever.
    pub uuid_expiry_seconds: u64,
    /// Caps on what tracking may create.
    pub caps: Caps,
    /// The clock deciding windows and days (a manual one in tests).
    pub clock: Clock,
    /// The longest a store call may take before it answers "unavailable"
    /// (the server's request timeout is usually shorter).
    pub deadline: Duration,
    /// Interceptors added to the DynamoDB client: tests observe what the
    /// store sends (the units-per-event test); empty otherwise.
    pub interceptors: Vec<aws_sdk_dynamodb::config::SharedInterceptor>,
    /// The AWS SDK configuration; `None` loads the SDK's usual one
    /// (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`...).
    pub sdk: Option<aws_config::SdkConfig>,
}

impl DynamoDbOptions {
    /// The options of `table` with the SDK's usual configuration.
    pub fn new(table: impl Into<String>, uuid_expiry_seconds: u64, caps: Caps) -> Self {
        DynamoDbOptions {
            table: table.into(),
            uuid_expiry_seconds,
            caps,
            clock: Clock::System,
            deadline: super::client::OPERATION_TIMEOUT,
            interceptors: Vec::new(),
            sdk: None,
        }
    }

    /// The window in milliseconds (0 = forever).
    pub(super) fn window_ms(&self) -> i64 {
        i64::try_from(self.uuid_expiry_seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}
