//! The always-valid sequential test, whose p-value and interval may be
//! looked at after every new participant.

use serde::{Deserialize, Serialize};

use super::intervals::Interval;
use super::VariantCounts;

/// Always-valid sequential test of a variant against the control.
///
/// A fixed-horizon z-test checked every day has a false-positive rate far
/// above alpha; this test's p-value and interval stay valid however often
/// they are looked at. See [`sequential_test`] for the method.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SequentialTest {
    /// Observed difference, variant minus control (of conversion rates, or
    /// of mean values for [`super::means`]).
    pub difference: f64,
    /// Natural log of the mixture likelihood ratio against "no difference".
    pub log_likelihood_ratio: f64,
    /// `min(1, 1 / likelihood ratio)` at this look. The always-valid p-value
    /// of the whole experiment is the running minimum over all looks; a
    /// caller that stores past values may take that minimum.
    pub p_value: f64,
    /// Confidence sequence for the difference at this look; the running
    /// intersection over looks is also valid.
    pub interval: Interval,
    /// True when `p_value <= alpha`, i.e. the interval excludes zero.
    pub significant: bool,
}

/// Always-valid sequential test: the normal-mixture mixture sequential
/// probability ratio test (mSPRT) for the difference of two proportions.
///
/// Method: Johari, Koomen, Pekelis & Walsh (2017), "Peeking at A/B tests:
/// why it matters, and what to do about it", KDD, and Johari, Pekelis &
/// Walsh (2022), "Always valid inference: continuous monitoring of A/B
/// tests", Operations Research 70(3). With `d = rate_v - rate_c`, its
/// plug-in variance `s² = p̃_v(1-p̃_v)/n_v + p̃_c(1-p̃_c)/n_c` and a normal
/// mixing distribution of variance `τ²` on the true difference, the
/// likelihood ratio against "no difference" is
///
/// ```text
/// Λ = (1 + r)^(-1/2) · exp(r · (d/s)² / (2 (1 + r))),   r = τ² / s²
/// ```
///
/// and `min(1, 1/Λ)` is an always-valid p-value: by Ville's inequality the
/// chance that it ever drops below alpha, at any number of looks, is at most
/// alpha (asymptotically, because `s²` is estimated). Inverting the test
/// gives the confidence sequence
///
/// ```text
/// d ± s · sqrt((1 + r)/r · (ln(1 + r) + 2 ln(1/alpha)))
/// ```
///
/// which is the normal-mixture boundary of Howard, Ramdas, McAuliffe &
/// Sekhon (2021), "Time-uniform, nonparametric, nonasymptotic confidence
/// sequences", Ann. Statist. 49(2), and the asymptotic confidence sequence
/// of Waudby-Smith et al. (2024), "Time-uniform central limit theory and
/// asymptotic confidence sequences", Ann. Statist. 52(6).
///
/// The variance uses `p̃ = (successes + 1) / (trials + 2)` rather than the
/// raw rate: with the raw rate a variant at 0 of 3 conversions would have
/// zero variance and look conclusively worse; asymptotically it changes
/// nothing.
///
/// Tuning: `τ²` is set proportional to the per-participant variance so that
/// `r = ρ² · n_v n_c / (n_v + n_c)`, which makes the test free of the rate's
/// scale. `ρ²` is chosen so that the interval is narrowest when both arms
/// have `tuning_n` participants: minimising the half-width over `r` gives
/// `r* = 2 ln(1/alpha) + ln(1 + r*)`, solved here by fixed-point iteration,
/// and `ρ² = r* / (tuning_n / 2)`.
///
/// # Returns
///
/// `None` when either side has no participants.
pub fn sequential_test(
    variant: &VariantCounts,
    control: &VariantCounts,
    alpha: f64,
    tuning_n: u64,
) -> Option<SequentialTest> {
    let (pv, pc) = (variant.rate()?, control.rate()?);
    let (nv, nc) = (variant.trials as f64, control.trials as f64);
    let smoothed = |c: &VariantCounts, n: f64| (c.successes as f64 + 1.0) / (n + 2.0);
    let (sv, sc) = (smoothed(variant, nv), smoothed(control, nc));
    let var = sv * (1.0 - sv) / nv + sc * (1.0 - sc) / nc;
    mixture_test(pv - pc, var, (nv, nc), alpha, tuning_n)
}

/// The normal-mixture test and confidence sequence of [`sequential_test`]
/// for any difference of two means: `difference` observed, `var` its
/// plug-in variance, `(nv, nc)` the two sample sizes. Conversion rates
/// ([`sequential_test`]) and mean values ([`super::means`]) both go
/// through here, so the two share one mixture and one tuning.
///
/// # Returns
///
/// `None` when the variance is not positive or `alpha`, `tuning_n` or the
/// sample sizes are out of range.
pub(super) fn mixture_test(
    difference: f64,
    var: f64,
    (nv, nc): (f64, f64),
    alpha: f64,
    tuning_n: u64,
) -> Option<SequentialTest> {
    if !(var > 0.0 && nv > 0.0 && nc > 0.0 && alpha > 0.0 && alpha < 1.0 && tuning_n > 0) {
        return None;
    }
    let log_inv_alpha = -alpha.ln();
    // The map u -> 2 ln(1/alpha) + ln(1 + u) is a contraction for u > 0, so
    // this converges; 100 steps are far more than double precision needs.
    let mut r_opt = 2.0 * log_inv_alpha;
    for _ in 0..100 {
        r_opt = 2.0 * log_inv_alpha + r_opt.ln_1p();
    }
    let rho2 = r_opt / (tuning_n as f64 / 2.0);
    let r = rho2 * nv * nc / (nv + nc);
    let z2 = difference * difference / var;
    let log_likelihood_ratio = -0.5 * r.ln_1p() + r * z2 / (2.0 * (1.0 + r));
    let p_value = (-log_likelihood_ratio.max(0.0)).exp();
    let half = (var * (1.0 + r) / r * (r.ln_1p() + 2.0 * log_inv_alpha)).sqrt();
    Some(SequentialTest {
        difference,
        log_likelihood_ratio,
        p_value,
        interval: Interval {
            lower: difference - half,
            upper: difference + half,
        },
        significant: p_value <= alpha,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::two_proportion_z_test;

    /// Tiny deterministic generator so the simulation needs no dependency.
    struct SplitMix(u64);

    impl SplitMix {
        fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// A/A experiments peeked at 50 times: the naive z-test declares a
    /// winner far more often than alpha, the sequential test does not.
    #[test]
    fn sequential_test_survives_peeking() {
        let mut rng = SplitMix(7);
        let (experiments, looks, per_look, rate) = (300, 50, 100, 0.1);
        let (mut naive, mut sequential) = (0, 0);
        for _ in 0..experiments {
            let mut a = VariantCounts::new("a", 0, 0);
            let mut b = VariantCounts::new("b", 0, 0);
            let (mut naive_hit, mut seq_hit) = (false, false);
            for _ in 0..looks {
                for _ in 0..per_look {
                    a.trials += 1;
                    a.successes += u64::from(rng.uniform() < rate);
                    b.trials += 1;
                    b.successes += u64::from(rng.uniform() < rate);
                }
                naive_hit |= two_proportion_z_test(&b, &a).is_some_and(|t| t.p_value <= 0.05);
                seq_hit |= sequential_test(&b, &a, 0.05, 2_500).is_some_and(|t| t.significant);
            }
            naive += usize::from(naive_hit);
            sequential += usize::from(seq_hit);
        }
        let (naive, sequential) = (
            naive as f64 / experiments as f64,
            sequential as f64 / experiments as f64,
        );
        assert!(naive > 0.15, "naive peeking false positives: {naive}");
        assert!(
            sequential <= 0.05,
            "sequential false positives: {sequential}"
        );
    }

    /// The sequential test does detect a real effect.
    #[test]
    fn sequential_test_detects_effect() {
        let control = VariantCounts::new("a", 20_000, 2_000);
        let variant = VariantCounts::new("b", 20_000, 2_300);
        let t = sequential_test(&variant, &control, 0.05, 10_000).unwrap();
        assert!(t.significant && t.interval.lower > 0.0, "{t:?}");
    }
}
