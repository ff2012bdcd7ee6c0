//! How an experiment adapts: the `adaptive` part of its registry record
//! and its rules (periods, floor, burn-in, draws). Computing the weights is
//! a service's job (`lamed_service::adaptive`).

use serde::{Deserialize, Serialize};

use lamed_stats::BanditOptions;

/// Seconds per period unless the experiment says otherwise.
pub const DEFAULT_PERIOD_SECONDS: u64 = 3_600;

/// Shortest and longest period accepted, in seconds.
pub const PERIOD_SECONDS_RANGE: std::ops::RangeInclusive<u64> = 60..=30 * 86_400;

/// Posterior draws per update unless the experiment says otherwise: a
/// weight's Monte Carlo error is then at most half a percentage point.
pub const DEFAULT_DRAWS: u32 = 10_000;

/// Fewest and most draws accepted.
pub const DRAWS_RANGE: std::ops::RangeInclusive<u32> = 100..=100_000;

/// How an experiment adapts: part of its registry record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Adaptive {
    /// The goal whose conversion rate the weights follow.
    pub goal: String,
    /// Seconds between updates; weights change at most once per period.
    #[serde(default = "default_period_seconds")]
    pub period_seconds: u64,
    /// Smallest weight of any variant, in percent, so that no variant
    /// starves and an early lead that was luck can be undone.
    #[serde(default = "default_floor")]
    pub floor: u32,
    /// Participants every variant needs before the weights leave equal
    /// shares.
    #[serde(default = "default_burn_in")]
    pub burn_in: u64,
    /// Posterior draws per update: more give steadier weights for more
    /// CPU, once per period.
    #[serde(default = "default_draws")]
    pub draws: u32,
}

fn default_period_seconds() -> u64 {
    DEFAULT_PERIOD_SECONDS
}

fn default_floor() -> u32 {
    BanditOptions::default().floor
}

fn default_burn_in() -> u64 {
    BanditOptions::default().burn_in
}

fn default_draws() -> u32 {
    DEFAULT_DRAWS
}

impl Adaptive {
    /// Adaptive on `goal` with the default period, floor and burn-in.
    pub fn on(goal: impl Into<String>) -> Adaptive {
        Adaptive {
            goal: goal.into(),
            period_seconds: DEFAULT_PERIOD_SECONDS,
            floor: default_floor(),
            burn_in: default_burn_in(),
            draws: DEFAULT_DRAWS,
        }
    }

    /// Checks the settings against the experiment's variants and goals.
    ///
    /// # Errors
    ///
    /// The first rule broken, as a sentence.
    pub fn check(&self, variants: usize, goals: &[&str]) -> Result<(), String> {
        if !goals.contains(&self.goal.as_str()) {
            return Err(format!(
                "adaptive goal '{}' is not one of the experiment's goals",
                self.goal
            ));
        }
        if !PERIOD_SECONDS_RANGE.contains(&self.period_seconds) {
            return Err(format!(
                "adaptive period_seconds must be between {} and {}",
                PERIOD_SECONDS_RANGE.start(),
                PERIOD_SECONDS_RANGE.end()
            ));
        }
        if !DRAWS_RANGE.contains(&self.draws) {
            return Err(format!(
                "adaptive draws must be between {} and {}",
                DRAWS_RANGE.start(),
                DRAWS_RANGE.end()
            ));
        }
        if u64::from(self.floor) * variants as u64 > 100 {
            return Err(format!(
                "adaptive floor {}% for {variants} variants passes 100%",
                self.floor
            ));
        }
        Ok(())
    }

    /// The number of the period holding `now_ms`.
    pub fn period_of(&self, now_ms: i64) -> i64 {
        now_ms.div_euclid(self.period_millis())
    }

    /// When period `period` ends, in Unix milliseconds.
    pub fn period_end_ms(&self, period: i64) -> i64 {
        (period + 1) * self.period_millis()
    }

    fn period_millis(&self) -> i64 {
        i64::try_from(self.period_seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// The bandit's settings. Top-two sampling needs three variants: with
    /// two, both are always in the top two, so it would answer 50/50
    /// forever; two variants get plain Thompson sampling.
    pub fn bandit_options(&self, variants: usize) -> BanditOptions {
        BanditOptions {
            floor: self.floor,
            burn_in: self.burn_in,
            draws: self.draws,
            top_two: variants >= 3,
        }
    }
}
