//! Intervals around a conversion rate and around the relative uplift of a
//! variant over the control.

use serde::{Deserialize, Serialize};

use super::normal::z_critical;
use super::VariantCounts;

/// A two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Interval {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

/// Relative uplift of a variant over the control, `rate_v / rate_c - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Uplift {
    /// Point estimate (0.12 means 12% better than control).
    pub estimate: f64,
    /// Delta-method interval on the log ratio; `None` when the variant has
    /// no conversions, because the log of a zero rate has no variance.
    pub interval: Option<Interval>,
}

/// Wilson score interval for a conversion rate.
///
/// Unlike the textbook Wald interval it stays inside [0, 1] and keeps close
/// to its nominal coverage at small counts and at rates near 0 or 1, which
/// are common for conversions (Wilson 1927; Brown, Cai & DasGupta 2001,
/// "Interval estimation for a binomial proportion", Statist. Sci.).
///
/// # Returns
///
/// `None` without participants or with impossible counts.
pub fn wilson_interval(counts: &VariantCounts, confidence: f64) -> Option<Interval> {
    wilson_interval_z(counts, z_critical(confidence))
}

/// [`wilson_interval`] for a critical value `z` computed once by the
/// caller: the normal quantile costs more than the interval itself, which
/// matters for daily series of many variants.
pub fn wilson_interval_z(counts: &VariantCounts, z: f64) -> Option<Interval> {
    let p = counts.rate()?;
    let n = counts.trials as f64;
    let z2n = z * z / n;
    let centre = (p + z2n / 2.0) / (1.0 + z2n);
    let half = z / (1.0 + z2n) * (p * (1.0 - p) / n + z2n / (4.0 * n)).sqrt();
    Some(Interval {
        lower: (centre - half).max(0.0),
        upper: (centre + half).min(1.0),
    })
}

/// Relative uplift `rate_v / rate_c - 1` with a delta-method interval.
///
/// The interval is computed for `ln(rate_v / rate_c)`, whose sampling
/// distribution is much closer to normal than the ratio's, with variance
/// `(1 - p_v) / s_v + (1 - p_c) / s_c` (Katz et al. 1978, Biometrics), then
/// mapped back: it is asymmetric around the estimate, as a ratio's should
/// be. It is statsmodels' `confint_proportions_2indep(compare="ratio",
/// method="log")` minus one.
///
/// # Returns
///
/// `None` when either side has no participants or the control has no
/// conversions; an estimate of -1 without interval when the variant has no
/// conversions.
pub fn relative_uplift(
    variant: &VariantCounts,
    control: &VariantCounts,
    confidence: f64,
) -> Option<Uplift> {
    let (pv, pc) = (variant.rate()?, control.rate()?);
    if control.successes == 0 {
        return None;
    }
    let estimate = pv / pc - 1.0;
    if variant.successes == 0 {
        return Some(Uplift {
            estimate,
            interval: None,
        });
    }
    let var = (1.0 - pv) / variant.successes as f64 + (1.0 - pc) / control.successes as f64;
    let half = z_critical(confidence) * var.sqrt();
    let log_ratio = (pv / pc).ln();
    Some(Uplift {
        estimate,
        interval: Some(Interval {
            lower: (log_ratio - half).exp_m1(),
            upper: (log_ratio + half).exp_m1(),
        }),
    })
}
