//! The standard normal distribution, which the frequentist intervals, tests
//! and sample sizes all rest on.

use statrs::distribution::{ContinuousCDF, Normal};
use statrs::function::erf::erfc;

/// Standard normal quantile, from statrs (Boost's inverse error function).
pub(super) fn normal_quantile(p: f64) -> f64 {
    Normal::standard().inverse_cdf(p)
}

/// Two-sided critical value `z` with `P(|Z| > z) = 1 - confidence`.
pub fn z_critical(confidence: f64) -> f64 {
    normal_quantile(1.0 - (1.0 - confidence) / 2.0)
}

/// `P(|Z| >= |z|)` via erfc, which keeps full relative precision far in the
/// tail where `1 - cdf` would round to zero.
pub(super) fn two_sided_normal_p(z: f64) -> f64 {
    erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0)
}
