//! Power analysis: how many participants the planned minimum detectable
//! effect needs.

use serde::{Deserialize, Serialize};

use super::normal::normal_quantile;
use super::{Options, VariantCounts};

/// Sample size for the planned minimum detectable effect.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SampleSizePlan {
    /// Control conversion rate the plan assumes (the observed one).
    pub baseline_rate: f64,
    /// Rate the planned effect would give: `baseline * (1 + mde)`.
    pub target_rate: f64,
    /// Participants each variant needs.
    pub required_per_variant: u64,
    /// Participants still missing, summed over all variants.
    pub additional_total: u64,
}

/// The plan for one goal: the participants each variant needs to detect
/// [`Options::mde`] at the observed control rate, and how many are still
/// missing.
///
/// # Returns
///
/// `None` when the control has no participants or
/// [`required_sample_size`] has no answer for its rate.
pub(super) fn sample_size_plan(
    variants: &[VariantCounts],
    control: &VariantCounts,
    options: &Options,
) -> Option<SampleSizePlan> {
    let baseline = control.rate()?;
    let required = required_sample_size(baseline, options.mde, options.alpha(), options.power)?;
    Some(SampleSizePlan {
        baseline_rate: baseline,
        target_rate: baseline * (1.0 + options.mde),
        required_per_variant: required,
        additional_total: variants.iter().fold(0u64, |total, v| {
            total.saturating_add(required.saturating_sub(v.trials))
        }),
    })
}

/// Participants needed per variant for a two-sided pooled two-proportion
/// z-test to detect a relative change `relative_mde` of `baseline_rate`.
///
/// Closed formula of Fleiss, Levin & Paik (2003), "Statistical methods for
/// rates and proportions", §4.2 without continuity correction, identical to
/// statsmodels' `samplesize_proportions_2indep_onetail` with `ratio=1`:
///
/// ```text
/// n = ((z_{1-alpha/2} · sqrt(2 p̄ (1 - p̄)) + z_power · sqrt(p1(1-p1) + p2(1-p2))) / (p1 - p2))²
/// ```
///
/// with `p2 = baseline`, `p1 = baseline · (1 + mde)` and `p̄` their mean:
/// the null-hypothesis term uses the pooled rate, matching
/// [`two_proportion_z_test`](super::two_proportion_z_test). Alpha is not
/// divided by the number of comparisons.
///
/// # Returns
///
/// `None` unless `0 < baseline < 1`, `0 < p1 < 1`, `mde != 0` and alpha and
/// power are in (0, 1).
pub fn required_sample_size(
    baseline_rate: f64,
    relative_mde: f64,
    alpha: f64,
    power: f64,
) -> Option<u64> {
    let n = sample_size_exact(baseline_rate, relative_mde, alpha, power)?;
    // `as` saturates, so an absurd plan becomes u64::MAX rather than wrapping.
    Some(n.ceil() as u64)
}

/// [`required_sample_size`] before rounding up, for checking against the
/// reference figures.
pub(super) fn sample_size_exact(
    baseline: f64,
    relative_mde: f64,
    alpha: f64,
    power: f64,
) -> Option<f64> {
    let p2 = baseline;
    let p1 = baseline * (1.0 + relative_mde);
    let in_unit = |x: f64| x > 0.0 && x < 1.0;
    if !(in_unit(p1) && in_unit(p2) && in_unit(alpha) && in_unit(power)) || p1 == p2 {
        return None;
    }
    let mean = (p1 + p2) / 2.0;
    let std_null = (2.0 * mean * (1.0 - mean)).sqrt();
    let std_alt = (p1 * (1.0 - p1) + p2 * (1.0 - p2)).sqrt();
    let z_alpha = normal_quantile(1.0 - alpha / 2.0);
    let z_power = normal_quantile(power);
    let n = ((z_alpha * std_null + z_power * std_alt).max(0.0) / (p1 - p2)).powi(2);
    n.is_finite().then_some(n)
}
