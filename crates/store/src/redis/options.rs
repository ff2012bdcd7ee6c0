//! [`RedisOptions`]: how the Redis store is set up, beyond where Redis is.

use super::settings::RedisSettings;
use lamed_core::clock::Clock;
use lamed_core::model::Caps;

/// The key prefix unless configured: short, because it is in every key.
pub const DEFAULT_KEY_PREFIX: &str = "lmd";

/// Daily counters are kept this many days unless configured otherwise.
pub const DEFAULT_DAILY_RETENTION_DAYS: u32 = crate::DAILY_RETENTION_DAYS;

/// How the Redis store is set up.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Where Redis is.
    pub settings: RedisSettings,
    /// Dedupe window in seconds; 0 keeps every uuid forever.
    pub uuid_expiry_seconds: u64,
    /// Caps on what the public endpoint may create.
    pub caps: Caps,
    /// Prefix of every key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Days of daily counters kept.
    pub daily_retention_days: u32,
    /// Where "now" comes from: [`Clock::System`] reads Redis's `TIME`, a
    /// manual clock (tests) is sent with each call.
    pub clock: Clock,
}

impl RedisOptions {
    /// Options with the default prefix and retention.
    pub fn new(settings: RedisSettings, uuid_expiry_seconds: u64, caps: Caps) -> Self {
        RedisOptions {
            settings,
            uuid_expiry_seconds,
            caps,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            daily_retention_days: DEFAULT_DAILY_RETENTION_DAYS,
            clock: Clock::System,
        }
    }
}
