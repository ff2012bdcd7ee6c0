//! Estimates combined across the weight periods of an adaptive experiment,
//! stratified by period, and the sample-ratio check under changing
//! weights.
//!
//! # Why stratify, and how
//!
//! When the weights change, the variants' participants come from different
//! times in different proportions: a variant that gained traffic late has
//! most of its participants from late periods. If the base rate drifts
//! (weekdays, campaigns, novelty), pooling each variant's counts over the
//! whole experiment compares late visitors with early ones and is biased,
//! even to the point of reversing the sign (Simpson's paradox; the tests
//! build such a case). Within one period the weights are fixed, so the
//! variants are compared fairly there.
//!
//! The method is post-stratification by period: each variant's mean (its
//! rate, or its mean value per participant) is averaged over the periods,
//! weighted by each period's share of *all* participants, `N_t / N`, and
//! the difference is the same weighted average of the per-period
//! differences. Its variance is `Σ (N_t/N)² (s²_vt/n_vt + s²_ct/n_ct)`,
//! the periods being independent samples. This estimates the effect on
//! the experiment's population as it arrived, whatever the allocation, and
//! its weights depend on no outcome. Inverse-variance weighting of the
//! per-period differences was not taken: its weights follow the
//! allocation and the observed rates, so it estimates a
//! traffic-and-variance-weighted effect rather than the population's when
//! the effect changes over time, and the weights' dependence on the data
//! biases it at small counts. (GrowthBook's bandits weight by period the
//! same way.)
//!
//! Periods must be those of a participant's *entry*: a conversion counts
//! in the period in which its participant was assigned, whatever the
//! period of the conversion.
//!
//! Per period, `s²` is the unbiased sample variance; a period with a
//! single participant of a variant borrows that variant's variance pooled
//! over its other periods. A period in which a variant has no participants
//! is left out of that variant's estimate and of its comparison, the
//! remaining periods' weights rescaled.

use serde::{Deserialize, Serialize};

use super::hypothesis::{chi_square, SrmCheck, ZTest};
use super::intervals::Interval;
use super::means::{Sample, ValueSums};
use super::normal::{two_sided_normal_p, z_critical};
use super::{validate_variants, StatsError, VariantCounts};

/// One variant's estimate combined across periods.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StratifiedEstimate {
    /// Period-weighted mean: a conversion rate, or a mean value per
    /// participant in units.
    pub estimate: f64,
    /// `None` when no period has two participants of the variant.
    pub standard_error: Option<f64>,
    /// Normal interval `estimate ± z · standard_error`.
    pub interval: Option<Interval>,
}

/// A variant's combined difference from the control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StratifiedComparison {
    /// Period-weighted difference, variant minus control.
    pub difference: f64,
    /// `None` when either side lacks a variance (see the module doc).
    pub standard_error: Option<f64>,
    /// Normal interval `difference ± z · standard_error`.
    pub interval: Option<Interval>,
    /// `difference / standard_error` against the normal distribution;
    /// `None` without a positive standard error.
    pub z_test: Option<ZTest>,
    /// Periods in which both had participants: the ones combined.
    pub periods: usize,
}

/// Everything combined for one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StratifiedVariant {
    /// Variant name (from the first period).
    pub label: String,
    /// Participants over all periods.
    pub trials: u64,
    /// Conversions over all periods.
    pub successes: u64,
    /// `None` when the variant had no participants in any period.
    pub estimate: Option<StratifiedEstimate>,
    /// `None` for the control, and when no period had participants of
    /// both.
    pub comparison: Option<StratifiedComparison>,
}

/// Estimates of one goal combined across weight periods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StratifiedAnalysis {
    /// Index of the control.
    pub control: usize,
    /// Confidence level of the intervals.
    pub confidence: f64,
    /// Per-variant results, in variant order.
    pub variants: Vec<StratifiedVariant>,
}

/// Conversion rates combined across periods: `periods[t][i]` holds the
/// participants who entered in period `t` under variant `i` and their
/// conversions. See the [module documentation](self) for the method.
///
/// # Errors
///
/// [`StatsError::NoVariants`] without periods or variants,
/// [`StatsError::PeriodVariants`] when a period has a different number of
/// variants than the first, and the input errors of
/// [`analyze`](super::analyze) within any period.
pub fn stratified_rates(
    periods: &[Vec<VariantCounts>],
    control: usize,
    confidence: f64,
) -> Result<StratifiedAnalysis, StatsError> {
    check_shape(periods, control, |p| p.to_vec())?;
    let samples = periods
        .iter()
        .map(|p| p.iter().map(binary_sample).collect())
        .collect();
    Ok(combine(&periods[0], periods, samples, control, confidence))
}

/// Mean values per participant combined across periods, from each
/// period's exact sums (see [`ValueSums`]); otherwise as
/// [`stratified_rates`].
///
/// # Errors
///
/// Those of [`stratified_rates`], and [`StatsError::InconsistentSums`].
pub fn stratified_means(
    periods: &[Vec<ValueSums>],
    control: usize,
    confidence: f64,
) -> Result<StratifiedAnalysis, StatsError> {
    check_shape(periods, control, |p| {
        p.iter().map(ValueSums::counts).collect()
    })?;
    if let Some(v) = periods.iter().flatten().find(|v| !v.is_consistent()) {
        return Err(StatsError::InconsistentSums {
            label: v.label.clone(),
        });
    }
    let counts: Vec<Vec<VariantCounts>> = periods
        .iter()
        .map(|p| p.iter().map(ValueSums::counts).collect())
        .collect();
    let samples = periods
        .iter()
        .map(|p| p.iter().map(ValueSums::per_participant).collect())
        .collect();
    Ok(combine(&counts[0], &counts, samples, control, confidence))
}

/// Every period has the first period's number of variants, and valid
/// counts.
fn check_shape<T>(
    periods: &[Vec<T>],
    control: usize,
    counts: impl Fn(&[T]) -> Vec<VariantCounts>,
) -> Result<(), StatsError> {
    let first = periods.first().ok_or(StatsError::NoVariants)?;
    for (period, p) in periods.iter().enumerate() {
        if p.len() != first.len() {
            return Err(StatsError::PeriodVariants {
                period,
                expected: first.len(),
                got: p.len(),
            });
        }
        validate_variants(&counts(p), control)?;
    }
    Ok(())
}

/// A period's conversions as a sample of 0/1 values.
fn binary_sample(c: &VariantCounts) -> Option<Sample> {
    let n = c.trials as f64;
    let s = c.successes as f64;
    (c.trials > 0).then(|| Sample {
        n,
        mean: s / n,
        centred: s * (n - s) / n,
    })
}

/// The period-weighted estimates and differences of validated periods.
fn combine(
    first: &[VariantCounts],
    periods: &[Vec<VariantCounts>],
    samples: Vec<Vec<Option<Sample>>>,
    control: usize,
    confidence: f64,
) -> StratifiedAnalysis {
    let z = z_critical(confidence);
    let sizes: Vec<f64> = periods
        .iter()
        .map(|p| p.iter().map(|v| v.trials as f64).sum())
        .collect();
    // Each variant's per-period variance of its mean, with the pooled
    // variance standing in for single-participant periods.
    let variances: Vec<Vec<Option<f64>>> = (0..first.len())
        .map(|i| {
            let (centred, dof) = samples
                .iter()
                .filter_map(|p| p[i].filter(|s| s.n >= 2.0))
                .fold((0.0, 0.0), |(c, d), s| (c + s.centred, d + s.n - 1.0));
            let pooled = (dof > 0.0).then(|| centred / dof);
            samples
                .iter()
                .map(|p| p[i].and_then(|s| Some(s.variance().or(pooled)? / s.n)))
                .collect()
        })
        .collect();
    let interval = |centre: f64, se: Option<f64>| {
        se.map(|se| Interval {
            lower: centre - z * se,
            upper: centre + z * se,
        })
    };
    let variants = first
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let estimate = weighted(&sizes, |t| samples[t][i].map(|s| (s.mean, variances[i][t])))
                .map(|(estimate, standard_error, _)| StratifiedEstimate {
                    estimate,
                    standard_error,
                    interval: interval(estimate, standard_error),
                });
            let comparison = (i != control)
                .then(|| {
                    weighted(&sizes, |t| {
                        let (sv, sc) = (samples[t][i]?, samples[t][control]?);
                        let var = variances[i][t]
                            .zip(variances[control][t])
                            .map(|(a, b)| a + b);
                        Some((sv.mean - sc.mean, var))
                    })
                })
                .flatten()
                .map(|(difference, standard_error, used)| StratifiedComparison {
                    difference,
                    standard_error,
                    interval: interval(difference, standard_error),
                    z_test: standard_error.filter(|se| *se > 0.0).map(|se| {
                        let z = difference / se;
                        ZTest {
                            z,
                            p_value: two_sided_normal_p(z),
                        }
                    }),
                    periods: used,
                });
            StratifiedVariant {
                label: v.label.clone(),
                trials: periods.iter().map(|p| p[i].trials).sum(),
                successes: periods.iter().map(|p| p[i].successes).sum(),
                estimate,
                comparison,
            }
        })
        .collect();
    StratifiedAnalysis {
        control,
        confidence,
        variants,
    }
}

/// `Σ w_t x_t` and `sqrt(Σ w_t² v_t)` over the periods where `value(t)`
/// has an `(x_t, v_t)`, with `w_t` the period's size over the sum of
/// those periods' sizes, and how many periods took part. The standard
/// error is `None` when some period lacks its variance.
fn weighted(
    sizes: &[f64],
    value: impl Fn(usize) -> Option<(f64, Option<f64>)>,
) -> Option<(f64, Option<f64>, usize)> {
    let used: Vec<(f64, f64, Option<f64>)> = (0..sizes.len())
        .filter_map(|t| value(t).map(|(x, v)| (sizes[t], x, v)))
        .collect();
    let total: f64 = used.iter().map(|(n, _, _)| n).sum();
    if used.is_empty() || total <= 0.0 {
        return None;
    }
    let estimate: f64 = used.iter().map(|(n, x, _)| n / total * x).sum();
    let variance = used
        .iter()
        .map(|(n, _, v)| v.map(|v| (n / total).powi(2) * v))
        .sum::<Option<f64>>();
    Some((estimate, variance.map(f64::sqrt), used.len()))
}

/// One period's split: the weights in force and the participants who
/// entered under them, in variant order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PeriodSplit {
    /// The period's weights, in any unit (the stored percents do).
    pub weights: Vec<f64>,
    /// Participants per variant who entered during the period.
    pub participants: Vec<u64>,
}

/// Sample-ratio check under changing weights: chi-square goodness of fit
/// of each variant's participants over all periods against `Σ_t N_t ·
/// w_it / Σ_j w_jt`, the count each period's own weights lead to expect.
/// Checking the totals against any single split (the first, the current,
/// an equal one) would flag every adaptive experiment. Flags at
/// `srm_alpha` as [`sample_ratio_mismatch`](super::sample_ratio_mismatch).
///
/// # Returns
///
/// `Ok(None)` with a single variant or no participants. A variant weighted
/// 0 in every period yet with participants has no chi-square term and
/// makes the p-value 0.
///
/// # Errors
///
/// [`StatsError::WeightCount`] when a period's weights or participants do
/// not match the first period's number of variants,
/// [`StatsError::InvalidWeight`] for a weight that is negative or not
/// finite, or a period with participants whose weights are all zero.
pub fn period_sample_ratio_mismatch(
    periods: &[PeriodSplit],
    srm_alpha: f64,
) -> Result<Option<SrmCheck>, StatsError> {
    let Some(k) = periods.first().map(|p| p.participants.len()) else {
        return Ok(None);
    };
    let mut observed = vec![0.0; k];
    let mut expected = vec![0.0; k];
    for p in periods {
        for got in [p.weights.len(), p.participants.len()] {
            if got != k {
                return Err(StatsError::WeightCount { expected: k, got });
            }
        }
        if let Some((index, &value)) = p
            .weights
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
        {
            return Err(StatsError::InvalidWeight { index, value });
        }
        let total: f64 = p.participants.iter().map(|&n| n as f64).sum();
        let weight_sum: f64 = p.weights.iter().sum();
        if total > 0.0 && weight_sum <= 0.0 {
            return Err(StatsError::InvalidWeight {
                index: 0,
                value: 0.0,
            });
        }
        for i in 0..k {
            observed[i] += p.participants[i] as f64;
            if total > 0.0 {
                expected[i] += total * p.weights[i] / weight_sum;
            }
        }
    }
    if k < 2 || observed.iter().sum::<f64>() == 0.0 {
        return Ok(None);
    }
    // A variant weighted 0 in every period expects nobody and has no
    // chi-square term; any participant of it is a mismatch beyond doubt.
    let impossible = observed
        .iter()
        .zip(&expected)
        .any(|(o, e)| *e == 0.0 && *o > 0.0);
    let terms = observed.iter().zip(&expected).filter(|(_, e)| **e > 0.0);
    let df = (terms.clone().count() as u64).saturating_sub(1).max(1);
    let statistic = terms.map(|(o, e)| (o - e).powi(2) / e).sum();
    Ok(chi_square(statistic, df).map(|mut test| {
        if impossible {
            test.p_value = 0.0;
        }
        SrmCheck {
            mismatch: test.p_value < srm_alpha,
            test,
            expected,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{sample_ratio_mismatch, two_proportion_z_test};
    use rand::rngs::ChaCha8Rng;
    use rand::{RngExt, SeedableRng};

    fn period(rows: &[(u64, u64)]) -> Vec<VariantCounts> {
        rows.iter()
            .enumerate()
            .map(|(i, &(n, s))| VariantCounts::new(["control", "variant"][i], n, s))
            .collect()
    }

    /// Naive pooling: every period's counts added up.
    fn pooled(periods: &[Vec<VariantCounts>]) -> Vec<VariantCounts> {
        let mut total = periods[0].clone();
        for p in &periods[1..] {
            for (t, v) in total.iter_mut().zip(p) {
                t.trials += v.trials;
                t.successes += v.successes;
            }
        }
        total
    }

    /// Simpson's paradox: the variant is 2 points better in both periods,
    /// but got 10% of the traffic while the base rate was 30% and 90% once
    /// it fell to 10%. Pooled, it looks 14 points worse, significantly;
    /// stratified, the difference is exactly the true 2 points.
    #[test]
    fn stratification_undoes_simpsons_paradox() {
        let periods = vec![
            period(&[(1800, 540), (200, 64)]),
            period(&[(200, 20), (1800, 216)]),
        ];
        let naive = pooled(&periods);
        let naive_diff = naive[1].rate().unwrap() - naive[0].rate().unwrap();
        assert!((naive_diff + 0.14).abs() < 1e-12, "{naive_diff}");
        assert!(two_proportion_z_test(&naive[1], &naive[0]).unwrap().p_value < 1e-20);

        let got = stratified_rates(&periods, 0, 0.95).unwrap();
        let c = got.variants[1].comparison.unwrap();
        assert!((c.difference - 0.02).abs() < 1e-12, "{c:?}");
        assert_eq!(c.periods, 2);
        let i = c.interval.unwrap();
        assert!(i.lower < 0.02 && 0.02 < i.upper && i.lower < 0.0, "{c:?}");
        // Each variant's rate is the population's: (30% + 10%) / 2 for the
        // control, 2 points more for the variant.
        let rate = |v: usize| got.variants[v].estimate.unwrap().estimate;
        assert!((rate(0) - 0.20).abs() < 1e-12 && (rate(1) - 0.22).abs() < 1e-12);
        assert_eq!(
            (got.variants[1].trials, got.variants[1].successes),
            (2000, 280)
        );
    }

    /// The same example with values (every converter spends 10 units): the
    /// stratified difference of means per participant is 10 × 2 points.
    #[test]
    fn stratified_means_undo_the_same_bias() {
        let sums = |n: u64, s: u64| {
            let (v, k) = (10_000_000_i128, i128::from(s));
            ValueSums::new("x", n, s, k * v, k * v * v)
        };
        let periods = vec![
            vec![sums(1800, 540), sums(200, 64)],
            vec![sums(200, 20), sums(1800, 216)],
        ];
        let got = stratified_means(&periods, 0, 0.95).unwrap();
        let c = got.variants[1].comparison.unwrap();
        assert!((c.difference - 0.2).abs() < 1e-12, "{c:?}");
        let rates = stratified_rates(
            &[
                period(&[(1800, 540), (200, 64)]),
                period(&[(200, 20), (1800, 216)]),
            ],
            0,
            0.95,
        )
        .unwrap();
        // Values of a constant 10 are 10 times the 0/1 conversions.
        let se = rates.variants[1]
            .comparison
            .unwrap()
            .standard_error
            .unwrap();
        assert!((c.standard_error.unwrap() - 10.0 * se).abs() < 1e-12);
    }

    /// 200 seeded adaptive experiments: base rate drifting from 5% to 15%,
    /// the better variant's share growing from 50% to 90%. The stratified
    /// 95% interval covers the true difference in at least 90% of runs; the
    /// naive pooled one, biased by the drift, almost never does.
    #[test]
    fn stratified_interval_covers_the_truth() {
        let base = [0.05, 0.07, 0.09, 0.11, 0.13, 0.15];
        let share = [0.5, 0.5, 0.7, 0.8, 0.9, 0.9];
        let (effect, per_period, runs) = (0.01, 2000, 200);
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let (mut covered, mut naive_covered) = (0, 0);
        for _ in 0..runs {
            let periods: Vec<Vec<VariantCounts>> = base
                .iter()
                .zip(share)
                .map(|(&p, a)| {
                    let mut rows = [(0, 0); 2];
                    for _ in 0..per_period {
                        let v = usize::from(rng.random::<f64>() < a);
                        let rate = p + effect * v as f64;
                        rows[v].0 += 1;
                        rows[v].1 += u64::from(rng.random::<f64>() < rate);
                    }
                    period(&rows)
                })
                .collect();
            let c = stratified_rates(&periods, 0, 0.95).unwrap().variants[1]
                .comparison
                .unwrap();
            let i = c.interval.unwrap();
            covered += usize::from(i.lower <= effect && effect <= i.upper);
            let naive = pooled(&periods);
            let (nc, nv) = (&naive[0], &naive[1]);
            let (pc, pv) = (nc.rate().unwrap(), nv.rate().unwrap());
            let se =
                (pc * (1.0 - pc) / nc.trials as f64 + pv * (1.0 - pv) / nv.trials as f64).sqrt();
            let d = pv - pc;
            naive_covered += usize::from((d - effect).abs() <= 1.96 * se);
        }
        assert!(covered >= 180, "stratified coverage {covered}/{runs}");
        assert!(naive_covered <= 20, "naive coverage {naive_covered}/{runs}");
    }

    /// Periods where a variant had nobody are left out of its estimate and
    /// comparison; a single-participant period borrows the pooled variance.
    #[test]
    fn empty_and_tiny_periods() {
        let periods = vec![
            period(&[(1000, 100), (0, 0)]),
            period(&[(500, 60), (500, 70)]),
            period(&[(300, 30), (1, 1)]),
        ];
        let got = stratified_rates(&periods, 0, 0.95).unwrap();
        let c = got.variants[1].comparison.unwrap();
        assert_eq!(c.periods, 2);
        // Period sizes count every variant: 1000 and 301.
        let want = (1000.0 * (0.14 - 0.12) + 301.0 * (1.0 - 0.1)) / 1301.0;
        assert!((c.difference - want).abs() < 1e-12, "{c:?}");
        assert!(c.standard_error.unwrap() > 0.0 && c.z_test.is_some());
        let none = stratified_rates(&[period(&[(10, 1), (0, 0)])], 0, 0.95).unwrap();
        assert!(none.variants[1].estimate.is_none() && none.variants[1].comparison.is_none());
        assert_eq!(
            stratified_rates(&[period(&[(1, 0), (1, 1)]), vec![]], 0, 0.95),
            Err(StatsError::PeriodVariants {
                period: 1,
                expected: 2,
                got: 0
            })
        );
        assert_eq!(stratified_rates(&[], 0, 0.95), Err(StatsError::NoVariants));
    }

    /// The sample-ratio check uses each period's weights: an adaptive split
    /// that followed its weights passes, although checking its totals
    /// against any one split fails; a period that did not follow its
    /// weights is flagged.
    #[test]
    fn sample_ratio_check_uses_each_periods_weights() {
        let split = |w: [f64; 2], n: [u64; 2]| PeriodSplit {
            weights: w.to_vec(),
            participants: n.to_vec(),
        };
        let honest = [
            split([50.0, 50.0], [1010, 990]),
            split([10.0, 90.0], [195, 1805]),
        ];
        let check = period_sample_ratio_mismatch(&honest, 0.001)
            .unwrap()
            .unwrap();
        assert!(!check.mismatch, "{check:?}");
        assert_eq!(check.expected, vec![1200.0, 2800.0]);
        let totals = [
            VariantCounts::new("a", 1205, 0),
            VariantCounts::new("b", 2795, 0),
        ];
        for weights in [[1.0, 1.0], [10.0, 90.0]] {
            let naive = sample_ratio_mismatch(&totals, Some(&weights), 0.001)
                .unwrap()
                .unwrap();
            assert!(naive.mismatch, "{naive:?}");
        }
        let broken = [
            split([50.0, 50.0], [1010, 990]),
            split([10.0, 90.0], [300, 1700]),
        ];
        assert!(
            period_sample_ratio_mismatch(&broken, 0.001)
                .unwrap()
                .unwrap()
                .mismatch
        );
        let never = [split([100.0, 0.0], [1000, 3])];
        let check = period_sample_ratio_mismatch(&never, 0.001)
            .unwrap()
            .unwrap();
        assert!(check.mismatch && check.test.p_value == 0.0, "{check:?}");
        assert_eq!(period_sample_ratio_mismatch(&[], 0.001), Ok(None));
        assert!(matches!(
            period_sample_ratio_mismatch(&[split([1.0, f64::NAN], [1, 1])], 0.001),
            Err(StatsError::InvalidWeight { index: 1, .. })
        ));
        assert!(matches!(
            period_sample_ratio_mismatch(
                &[
                    split([1.0, 1.0], [1, 1]),
                    PeriodSplit {
                        weights: vec![1.0],
                        participants: vec![1, 1]
                    }
                ],
                0.001
            ),
            Err(StatsError::WeightCount {
                expected: 2,
                got: 1
            })
        ));
    }
}
