//! Conversion statistics for one goal of an experiment, as pure functions with no I/O.
//!
//! [`analyze`] takes the participants and conversions of every variant and
//! returns everything the dashboard and the API show: rates with Wilson
//! intervals, relative uplift, z-tests with a Holm correction, a chi-square
//! test across all variants, Bayesian chance-to-beat / chance-to-be-best /
//! expected loss, a sample-ratio-mismatch check, an always-valid sequential
//! test and the sample size still needed. [`verdict`] turns the result into
//! one plain sentence.
//!
//! Undefined quantities (a rate with no participants, a test with no
//! variation) are `None`, never NaN, so every result serialises to valid
//! JSON. The figures are checked against scipy/statsmodels by the tests at
//! the bottom, using `tests/data/stats_reference.json` made by
//! `scripts/stats_reference.py`.

use std::f64::consts::PI;
use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};
use statrs::function::erf::erfc;

/// Observed counts for one variant of one goal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantCounts {
    /// Variant name as people see it ("red", "blue").
    pub label: String,
    /// Participants who were shown the variant.
    pub trials: u64,
    /// Participants who reached the goal; never more than `trials`.
    pub successes: u64,
}

impl VariantCounts {
    /// Builds counts from a label and two numbers, for brevity in callers.
    pub fn new(label: impl Into<String>, trials: u64, successes: u64) -> Self {
        Self {
            label: label.into(),
            trials,
            successes,
        }
    }

    /// The observed conversion rate, `None` when nobody took part (or the
    /// counts are impossible), because 0/0 has no meaningful value.
    pub fn rate(&self) -> Option<f64> {
        (self.trials > 0 && self.successes <= self.trials)
            .then(|| self.successes as f64 / self.trials as f64)
    }
}

/// Settings that the experimenter fixes before looking at the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Confidence level of every interval; `1 - confidence` is the
    /// significance level alpha of every test.
    pub confidence: f64,
    /// Minimum detectable effect, relative to the control rate (0.05 means
    /// the planned test should detect a 5% relative uplift).
    pub mde: f64,
    /// Power wanted for detecting the minimum detectable effect.
    pub power: f64,
    /// The sample-ratio-mismatch check flags a p-value below this. It is far
    /// below alpha because the check runs on every look at every experiment
    /// and a false alarm discredits a sound experiment.
    pub srm_alpha: f64,
    /// Participants per variant at which the sequential confidence sequence
    /// is tightest. Choosing it changes only the power of the sequential
    /// test, never its validity, but it must not be tuned on the data.
    pub sequential_tuning_n: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            confidence: 0.95,
            mde: 0.05,
            power: 0.8,
            srm_alpha: 0.001,
            sequential_tuning_n: 10_000,
        }
    }
}

impl Options {
    /// Significance level of the tests.
    pub fn alpha(&self) -> f64 {
        1.0 - self.confidence
    }

    fn validate(&self) -> Result<(), StatsError> {
        let open_unit = |name: &'static str, value: f64| {
            if value > 0.0 && value < 1.0 {
                Ok(())
            } else {
                Err(StatsError::InvalidOption { name, value })
            }
        };
        open_unit("confidence", self.confidence)?;
        open_unit("power", self.power)?;
        open_unit("srm_alpha", self.srm_alpha)?;
        if !(self.mde.is_finite() && self.mde > 0.0) {
            return Err(StatsError::InvalidOption {
                name: "mde",
                value: self.mde,
            });
        }
        if self.sequential_tuning_n == 0 {
            return Err(StatsError::InvalidOption {
                name: "sequential_tuning_n",
                value: 0.0,
            });
        }
        Ok(())
    }
}

/// Why a goal could not be analysed: always a problem with the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StatsError {
    /// The goal has no variants at all.
    NoVariants,
    /// The control index does not point at a variant.
    ControlOutOfRange {
        /// The index given.
        control: usize,
        /// How many variants there are.
        variants: usize,
    },
    /// A variant has more conversions than participants.
    SuccessesExceedTrials {
        /// The variant's label.
        label: String,
        /// Its conversions.
        successes: u64,
        /// Its participants.
        trials: u64,
    },
    /// The expected split has a different number of weights than variants.
    WeightCount {
        /// Number of variants.
        expected: usize,
        /// Number of weights given.
        got: usize,
    },
    /// An expected-split weight is not a finite positive number.
    InvalidWeight {
        /// Position of the weight.
        index: usize,
        /// The weight given.
        value: f64,
    },
    /// An option is out of its range.
    InvalidOption {
        /// Name of the option.
        name: &'static str,
        /// The value given.
        value: f64,
    },
}

impl fmt::Display for StatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoVariants => write!(f, "goal has no variants"),
            Self::ControlOutOfRange { control, variants } => write!(
                f,
                "control index {control} is out of range for {variants} variants"
            ),
            Self::SuccessesExceedTrials {
                label,
                successes,
                trials,
            } => write!(
                f,
                "variant {label} has {successes} conversions but only {trials} participants"
            ),
            Self::WeightCount { expected, got } => {
                write!(f, "expected {expected} split weights, got {got}")
            }
            Self::InvalidWeight { index, value } => {
                write!(
                    f,
                    "split weight {index} must be positive and finite, got {value}"
                )
            }
            Self::InvalidOption { name, value } => {
                write!(f, "option {name} is out of range: {value}")
            }
        }
    }
}

impl std::error::Error for StatsError {}

/// A two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

/// Relative uplift of a variant over the control, `rate_v / rate_c - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Uplift {
    /// Point estimate (0.12 means 12% better than control).
    pub estimate: f64,
    /// Delta-method interval on the log ratio; `None` when the variant has
    /// no conversions, because the log of a zero rate has no variance.
    pub interval: Option<Interval>,
}

/// Pooled two-proportion z-test of a variant against the control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ZTest {
    /// `(rate_v - rate_c) / pooled standard error`.
    pub z: f64,
    /// Two-sided p-value, not corrected for multiple comparisons.
    pub p_value: f64,
}

/// A chi-square test statistic with its p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChiSquareTest {
    /// Pearson's statistic, without continuity correction.
    pub statistic: f64,
    /// Degrees of freedom.
    pub df: u64,
    /// Upper-tail p-value.
    pub p_value: f64,
}

/// Sample-ratio-mismatch check: did participants split as configured?
///
/// A mismatch means assignment or tracking is broken (a redirect that loses
/// some users, a bot hitting one variant), which biases every other figure,
/// so it is reported before any winner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SrmCheck {
    /// Chi-square goodness-of-fit of participants against the split.
    pub test: ChiSquareTest,
    /// Participants expected per variant under the configured split.
    pub expected: Vec<f64>,
    /// True when the p-value is below [`Options::srm_alpha`].
    pub mismatch: bool,
}

/// Always-valid sequential test of a variant against the control.
///
/// A fixed-horizon z-test checked every day has a false-positive rate far
/// above alpha; this test's p-value and interval stay valid however often
/// they are looked at. See [`sequential_test`] for the method.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequentialTest {
    /// Observed difference `rate_v - rate_c`.
    pub difference: f64,
    /// Natural log of the mixture likelihood ratio against "no difference".
    pub log_likelihood_ratio: f64,
    /// `min(1, 1 / likelihood ratio)` at this look. The always-valid p-value
    /// of the whole experiment is the running minimum over all looks; a
    /// caller that stores past values may take that minimum.
    pub p_value: f64,
    /// Confidence sequence for `rate_v - rate_c` at this look; the running
    /// intersection over looks is also valid.
    pub interval: Interval,
    /// True when `p_value <= alpha`, i.e. the interval excludes zero.
    pub significant: bool,
}

/// Sample size for the planned minimum detectable effect.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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

/// Comparison of one variant with the control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Relative uplift; `None` when either side has no participants or the
    /// control has no conversions.
    pub uplift: Option<Uplift>,
    /// `None` when either side has no participants or nobody (or everybody)
    /// converted on both sides, where the test statistic is 0/0.
    pub z_test: Option<ZTest>,
    /// Holm-adjusted p-value over all comparisons with a defined z-test.
    pub adjusted_p_value: Option<f64>,
    /// True when the adjusted p-value is at most alpha.
    pub significant: bool,
    /// Posterior probability that the variant's rate exceeds the control's.
    pub chance_to_beat_control: f64,
    /// `None` when either side has no participants.
    pub sequential: Option<SequentialTest>,
}

/// Everything computed for one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantStats {
    /// Variant name.
    pub label: String,
    /// Participants.
    pub trials: u64,
    /// Conversions.
    pub successes: u64,
    /// True for the variant others are compared with.
    pub is_control: bool,
    /// Conversion rate; `None` without participants.
    pub rate: Option<f64>,
    /// Wilson score interval of the rate; `None` without participants.
    pub interval: Option<Interval>,
    /// Comparison with the control; `None` for the control itself.
    pub comparison: Option<Comparison>,
    /// Posterior probability that this variant has the highest rate.
    pub chance_to_be_best: f64,
    /// Expected conversion rate given up by shipping this variant:
    /// `E[max_j p_j - p_this]` under the posteriors.
    pub expected_loss: f64,
    /// Participants this variant still needs for the planned effect;
    /// `None` when no plan can be made (see [`GoalAnalysis::sample_size`]).
    pub additional_needed: Option<u64>,
}

/// Full analysis of one goal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoalAnalysis {
    /// Index of the control in `variants`.
    pub control: usize,
    /// Confidence level used for intervals and tests.
    pub confidence: f64,
    /// Per-variant results, in input order.
    pub variants: Vec<VariantStats>,
    /// Chi-square test of independence across all variants; only with more
    /// than two variants, and `None` when fewer than two variants have
    /// participants or nobody (or everybody) converted.
    pub chi_square: Option<ChiSquareTest>,
    /// Sample-ratio-mismatch check; `None` with one variant or no
    /// participants.
    pub srm: Option<SrmCheck>,
    /// `None` when the control has no conversions (a relative effect on a
    /// zero rate is zero) or the planned effect would push the rate to 100%.
    pub sample_size: Option<SampleSizePlan>,
}

/// Bayesian figures for all variants of a goal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bayesian {
    /// Probability of beating the control; `None` at the control's index.
    pub chance_to_beat_control: Vec<Option<f64>>,
    /// Probability of having the highest rate; sums to one.
    pub chance_to_be_best: Vec<f64>,
    /// Expected rate given up by choosing each variant.
    pub expected_loss: Vec<f64>,
}

/// Analyses one goal: see the module documentation for what is computed.
///
/// `weights` is the configured traffic split for the sample-ratio check, in
/// variant order and in any unit (`[1.0, 1.0]` and `[50.0, 50.0]` agree);
/// `None` means an equal split.
///
/// # Errors
///
/// Returns [`StatsError`] for an empty list, a control index out of range,
/// more conversions than participants, bad weights or an option out of
/// range.
pub fn analyze(
    variants: &[VariantCounts],
    control: usize,
    weights: Option<&[f64]>,
    options: &Options,
) -> Result<GoalAnalysis, StatsError> {
    options.validate()?;
    validate_variants(variants, control)?;
    let alpha = options.alpha();
    let srm = sample_ratio_mismatch(variants, weights, options.srm_alpha)?;
    let bayes = bayesian(variants, control)?;
    let base = &variants[control];

    let z_tests: Vec<Option<ZTest>> = variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (i != control)
                .then(|| two_proportion_z_test(v, base))
                .flatten()
        })
        .collect();
    let tested: Vec<(usize, f64)> = z_tests
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.map(|t| (i, t.p_value)))
        .collect();
    let raw: Vec<f64> = tested.iter().map(|&(_, p)| p).collect();
    let mut adjusted = vec![None; variants.len()];
    for (&(i, _), p) in tested.iter().zip(holm_adjust(&raw)) {
        adjusted[i] = Some(p);
    }

    let sample_size = base.rate().and_then(|baseline| {
        let required = required_sample_size(baseline, options.mde, alpha, options.power)?;
        Some(SampleSizePlan {
            baseline_rate: baseline,
            target_rate: baseline * (1.0 + options.mde),
            required_per_variant: required,
            additional_total: variants.iter().fold(0u64, |total, v| {
                total.saturating_add(required.saturating_sub(v.trials))
            }),
        })
    });

    let stats = variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let comparison = (i != control).then(|| Comparison {
                uplift: relative_uplift(v, base, options.confidence),
                z_test: z_tests[i],
                adjusted_p_value: adjusted[i],
                significant: adjusted[i].is_some_and(|p| p <= alpha),
                chance_to_beat_control: bayes.chance_to_beat_control[i].unwrap_or(0.5),
                sequential: sequential_test(v, base, alpha, options.sequential_tuning_n),
            });
            VariantStats {
                label: v.label.clone(),
                trials: v.trials,
                successes: v.successes,
                is_control: i == control,
                rate: v.rate(),
                interval: wilson_interval(v, options.confidence),
                comparison,
                chance_to_be_best: bayes.chance_to_be_best[i],
                expected_loss: bayes.expected_loss[i],
                additional_needed: sample_size
                    .map(|plan| plan.required_per_variant.saturating_sub(v.trials)),
            }
        })
        .collect();

    Ok(GoalAnalysis {
        control,
        confidence: options.confidence,
        variants: stats,
        chi_square: if variants.len() > 2 {
            chi_square_independence(variants)
        } else {
            None
        },
        srm,
        sample_size,
    })
}

fn validate_variants(variants: &[VariantCounts], control: usize) -> Result<(), StatsError> {
    if variants.is_empty() {
        return Err(StatsError::NoVariants);
    }
    if control >= variants.len() {
        return Err(StatsError::ControlOutOfRange {
            control,
            variants: variants.len(),
        });
    }
    if let Some(v) = variants.iter().find(|v| v.successes > v.trials) {
        return Err(StatsError::SuccessesExceedTrials {
            label: v.label.clone(),
            successes: v.successes,
            trials: v.trials,
        });
    }
    Ok(())
}

/// Standard normal quantile, from statrs (Boost's inverse error function).
fn normal_quantile(p: f64) -> f64 {
    Normal::standard().inverse_cdf(p)
}

/// Two-sided critical value `z` with `P(|Z| > z) = 1 - confidence`.
pub fn z_critical(confidence: f64) -> f64 {
    normal_quantile(1.0 - (1.0 - confidence) / 2.0)
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

/// Two-sided pooled two-proportion z-test, as statsmodels'
/// `proportions_ztest`: the standard error uses the pooled rate because
/// that is its value under the null hypothesis being tested.
///
/// # Returns
///
/// `None` when either side has no participants, or when nobody (or
/// everybody) converted in both, where the standard error is zero.
pub fn two_proportion_z_test(variant: &VariantCounts, control: &VariantCounts) -> Option<ZTest> {
    let (pv, pc) = (variant.rate()?, control.rate()?);
    let (nv, nc) = (variant.trials as f64, control.trials as f64);
    let pooled = (variant.successes as f64 + control.successes as f64) / (nv + nc);
    let se = (pooled * (1.0 - pooled) * (1.0 / nv + 1.0 / nc)).sqrt();
    if se <= 0.0 {
        return None;
    }
    let z = (pv - pc) / se;
    Some(ZTest {
        z,
        p_value: two_sided_normal_p(z),
    })
}

/// `P(|Z| >= |z|)` via erfc, which keeps full relative precision far in the
/// tail where `1 - cdf` would round to zero.
fn two_sided_normal_p(z: f64) -> f64 {
    erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0)
}

/// Pearson chi-square test of independence on the variants-by-outcome
/// table, without continuity correction (scipy's `chi2_contingency(...,
/// correction=False)`). It answers "do the variants differ at all?" in one
/// test, with no multiple-comparison penalty.
///
/// Variants without participants are left out: they carry no information
/// and their expected counts would be zero.
///
/// # Returns
///
/// `None` when fewer than two variants have participants, or nobody (or
/// everybody) converted, where expected counts are zero.
pub fn chi_square_independence(variants: &[VariantCounts]) -> Option<ChiSquareTest> {
    let rows: Vec<&VariantCounts> = variants
        .iter()
        .filter(|v| v.trials > 0 && v.successes <= v.trials)
        .collect();
    if rows.len() < 2 {
        return None;
    }
    let total: f64 = rows.iter().map(|v| v.trials as f64).sum();
    let successes: f64 = rows.iter().map(|v| v.successes as f64).sum();
    let failures = total - successes;
    if successes == 0.0 || failures == 0.0 {
        return None;
    }
    let statistic = rows
        .iter()
        .map(|v| {
            let n = v.trials as f64;
            let s = v.successes as f64;
            let es = n * successes / total;
            let ef = n * failures / total;
            (s - es).powi(2) / es + ((n - s) - ef).powi(2) / ef
        })
        .sum();
    chi_square(statistic, rows.len() as u64 - 1)
}

fn chi_square(statistic: f64, df: u64) -> Option<ChiSquareTest> {
    let p_value = ChiSquared::new(df as f64).ok()?.sf(statistic);
    Some(ChiSquareTest {
        statistic,
        df,
        p_value,
    })
}

/// Holm's step-down adjustment of p-values (Holm 1979, "A simple
/// sequentially rejective multiple test procedure", Scand. J. Statist.).
///
/// Chosen over Bonferroni because it controls the same family-wise error
/// rate and is never less powerful. Returns adjusted p-values in input
/// order, like statsmodels' `multipletests(method="holm")`.
pub fn holm_adjust(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0_f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p_values[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Sample-ratio-mismatch check: chi-square goodness of fit of participants
/// against the configured split (scipy's `chisquare`). Flags at
/// `srm_alpha`, conventionally 0.001 (Fabijan et al. 2019, "Diagnosing
/// sample ratio mismatch in online controlled experiments", KDD).
///
/// # Returns
///
/// `Ok(None)` with a single variant or no participants.
///
/// # Errors
///
/// [`StatsError::WeightCount`] or [`StatsError::InvalidWeight`] for a bad
/// split.
pub fn sample_ratio_mismatch(
    variants: &[VariantCounts],
    weights: Option<&[f64]>,
    srm_alpha: f64,
) -> Result<Option<SrmCheck>, StatsError> {
    let k = variants.len();
    let equal = vec![1.0; k];
    let weights = weights.unwrap_or(&equal);
    if weights.len() != k {
        return Err(StatsError::WeightCount {
            expected: k,
            got: weights.len(),
        });
    }
    if let Some((index, &value)) = weights
        .iter()
        .enumerate()
        .find(|(_, w)| !(w.is_finite() && **w > 0.0))
    {
        return Err(StatsError::InvalidWeight { index, value });
    }
    let total: f64 = variants.iter().map(|v| v.trials as f64).sum();
    if k < 2 || total == 0.0 {
        return Ok(None);
    }
    let weight_sum: f64 = weights.iter().sum();
    let expected: Vec<f64> = weights.iter().map(|w| total * w / weight_sum).collect();
    let statistic = variants
        .iter()
        .zip(&expected)
        .map(|(v, e)| (v.trials as f64 - e).powi(2) / e)
        .sum();
    Ok(chi_square(statistic, k as u64 - 1).map(|test| SrmCheck {
        mismatch: test.p_value < srm_alpha,
        test,
        expected,
    }))
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
    if !(var > 0.0 && alpha > 0.0 && alpha < 1.0 && tuning_n > 0) {
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
    let difference = pv - pc;
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
/// [`two_proportion_z_test`]. Alpha is not divided by the number of
/// comparisons.
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

fn sample_size_exact(baseline: f64, relative_mde: f64, alpha: f64, power: f64) -> Option<f64> {
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

/// Bayesian comparison with independent Beta(1, 1) (uniform) priors, so each
/// rate's posterior is Beta(1 + successes, 1 + failures).
///
/// With `f_j`, `F_j` the posterior densities and distribution functions:
///
/// * chance to beat control: `∫ f_v F_c dx`;
/// * chance to be best: `∫ f_v Π_{j≠v} F_j dx`;
/// * expected loss: `E[max_j p_j - p_v] = ∫ F_v (1 - Π_{j≠v} F_j) dx`
///   (from `E[(M - X)⁺] = ∫ F_X (1 - F_M)` for independent `X`, `M`), whose
///   integrand is non-negative, so there is no cancellation between two
///   nearly equal expectations.
///
/// The integrals are deterministic: a composite 16-point Gauss–Legendre
/// rule on [0, 1], cut at every posterior's mean ± 0.5 … 40 standard
/// deviations so that the panels follow the posterior mass however narrow
/// (about 3·10^-5 wide at 10^8 participants), with the distribution
/// functions integrated on the same nodes. Error bound: the mass left
/// outside the fine panels is below 1e-17; on every reference case, counts
/// of 10^8 included, the figures agree with scipy's adaptive quadrature to
/// within 1e-13, and the tests enforce 1e-12 absolute for probabilities and
/// 1e-10 relative for expected loss.
///
/// # Errors
///
/// The same input errors as [`analyze`].
pub fn bayesian(variants: &[VariantCounts], control: usize) -> Result<Bayesian, StatsError> {
    validate_variants(variants, control)?;
    let k = variants.len();
    if k == 1 {
        return Ok(Bayesian {
            chance_to_beat_control: vec![None],
            chance_to_be_best: vec![1.0],
            expected_loss: vec![0.0],
        });
    }
    let posteriors: Vec<Posterior> = variants.iter().map(Posterior::of).collect();
    let grid = posterior_grid(&posteriors);

    // ln F_j at every node, from whichever of cdf and sf keeps precision.
    let log_cdf: Vec<Vec<f64>> = grid
        .cdf
        .iter()
        .zip(&grid.sf)
        .map(|(cdf, sf)| {
            cdf.iter()
                .zip(sf)
                .map(|(&c, &s)| if c > 0.5 { (-s).ln_1p() } else { c.ln() })
                .collect()
        })
        .collect();
    // Sum over all variants once per node; "all but v" subtracts v's term,
    // which is exact enough (the sums are at most a few hundred) and turns
    // O(k²) work per node into O(k). A -inf term (CDF of 0) is summed out
    // directly instead.
    let nodes_total: Vec<f64> = (0..grid.weights.len())
        .map(|i| (0..k).map(|j| log_cdf[j][i]).sum())
        .collect();
    let others = |v: usize, i: usize| -> f64 {
        let own = log_cdf[v][i];
        if own.is_finite() {
            nodes_total[i] - own
        } else {
            (0..k).filter(|&j| j != v).map(|j| log_cdf[j][i]).sum()
        }
    };
    let nodes = grid.weights.len();
    let mut beat = vec![None; k];
    let mut best = vec![0.0; k];
    let mut loss = vec![0.0; k];
    for v in 0..k {
        let mut b = 0.0;
        let mut l = 0.0;
        let mut c = 0.0;
        for i in 0..nodes {
            let w = grid.weights[i];
            let log_h = others(v, i);
            b += w * grid.density[v][i] * log_h.exp();
            l += w * grid.cdf[v][i] * -log_h.exp_m1();
            c += w * grid.density[v][i] * grid.cdf[control][i];
        }
        best[v] = b.clamp(0.0, 1.0);
        loss[v] = l.max(0.0);
        if v != control {
            beat[v] = Some(c.clamp(0.0, 1.0));
        }
    }
    Ok(Bayesian {
        chance_to_beat_control: beat,
        chance_to_be_best: best,
        expected_loss: loss,
    })
}

/// Beta(a, b) posterior of a conversion rate.
#[derive(Debug, Clone, Copy)]
struct Posterior {
    a: f64,
    b: f64,
}

impl Posterior {
    fn of(counts: &VariantCounts) -> Self {
        let successes = counts.successes.min(counts.trials);
        Self {
            a: 1.0 + successes as f64,
            b: 1.0 + (counts.trials - successes) as f64,
        }
    }

    fn mean(self) -> f64 {
        self.a / (self.a + self.b)
    }

    fn sd(self) -> f64 {
        let s = self.a + self.b;
        (self.a * self.b / (s * s * (s + 1.0))).sqrt()
    }

    /// `ln` of the density at `x` divided by its value at the mode, given
    /// `x` and `y = 1 - x` each to full relative precision.
    ///
    /// Measuring from the mode avoids the normalising constant `B(a, b)`,
    /// whose logarithm is a difference of `ln Γ` values near 2·10^9 at 10^8
    /// participants and would lose seven digits to cancellation; the density
    /// is normalised numerically instead. The distance to the mode is taken
    /// from whichever of `x`, `y` is below 1/2: next to 1, `x` itself is only
    /// known to 1e-16 absolute, which a posterior 10^-8 wide cannot afford.
    fn log_kernel(self, x: f64, y: f64) -> f64 {
        let (am1, bm1) = (self.a - 1.0, self.b - 1.0);
        let (mode, comode) = if am1 + bm1 > 0.0 {
            (am1 / (am1 + bm1), bm1 / (am1 + bm1))
        } else {
            (0.5, 0.5)
        };
        let d = if x > 0.5 { comode - y } else { x - mode };
        // A zero exponent contributes nothing, even where the log is -inf
        // (at mode 0 or 1), so it is skipped rather than multiplied.
        let left = if am1 > 0.0 {
            am1 * (d / mode).ln_1p()
        } else {
            0.0
        };
        let right = if bm1 > 0.0 {
            bm1 * (-d / comode).ln_1p()
        } else {
            0.0
        };
        left + right
    }
}

/// Points per panel of the Gauss–Legendre rule.
const GL_POINTS: usize = 16;

/// Panel breakpoints around each posterior, in posterior standard
/// deviations from its mean: one sd apart across the bulk, wider in the
/// tails where the mass is negligible.
const BREAKPOINT_SDS: [f64; 33] = [
    -40.0, -32.0, -25.0, -19.0, -15.0, -12.0, -10.0, -8.0, -7.0, -6.0, -5.0, -4.0, -3.0, -2.0,
    -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 19.0, 25.0,
    32.0, 40.0,
];

/// Quadrature nodes on [0, 1] with each posterior's normalised density,
/// distribution function and survival function at every node.
struct PosteriorGrid {
    /// Quadrature weight of each node (panel half-width times GL weight).
    weights: Vec<f64>,
    /// `density[j][i]`: posterior density of variant `j` at node `i`.
    density: Vec<Vec<f64>>,
    /// `cdf[j][i] = P(p_j <= x_i)`.
    cdf: Vec<Vec<f64>>,
    /// `sf[j][i] = P(p_j > x_i)`, accumulated from the right so that small
    /// upper tails keep their relative precision.
    sf: Vec<Vec<f64>>,
}

/// Builds the composite Gauss–Legendre grid for the Bayesian integrals.
///
/// [0, 1] is cut at every posterior's mean ± {0.5, 1, 2, …, 8, 10, …, 40}
/// standard deviations (see [`BREAKPOINT_SDS`]), so every panel is at most
/// one standard deviation wide in the bulk of every posterior it overlaps,
/// however narrow: at 10^8 participants a posterior is ~3·10^-5 wide and a
/// uniform grid on [0, 1] would miss it entirely. Each panel gets a 16-point
/// Gauss–Legendre rule (exact for polynomials of degree 31).
///
/// Distribution functions come from the same nodes: integrating the
/// degree-15 interpolant of the density from the panel's start to each node
/// (a spectral integration matrix), plus the sum of the panels before it.
/// statrs' incomplete beta cannot be used instead: its continued fraction
/// stops after 140 terms, far too few for parameters near 10^8.
///
/// Error: the mass beyond 40 sd from the mean is below 1e-17 for any Beta
/// with both parameters at least 1 (the worst case, Beta(1, b), has an
/// exponential tail: e^-41). On one-sd panels of a smooth unimodal density
/// the 16-point interpolation and quadrature errors are around 1e-15
/// relative; the reference tests bound the end-to-end error below 1e-12.
fn posterior_grid(posteriors: &[Posterior]) -> PosteriorGrid {
    let rule = gauss_legendre_rule();
    let mut cuts = vec![0.0, 1.0];
    for p in posteriors {
        let (mean, sd) = (p.mean(), p.sd());
        cuts.extend(
            BREAKPOINT_SDS
                .iter()
                .map(|o| mean + o * sd)
                .filter(|x| *x > 0.0 && *x < 1.0),
        );
    }
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    // With many similar posteriors their breakpoints interleave into
    // panels far narrower than any posterior needs; merge panels narrower
    // than half the narrowest standard deviation (each stays under about
    // 1.5 sd, where 16 points are still exact to ~1e-15 for these smooth
    // densities). This bounds the work to about 35 panels per sd-range of
    // the narrowest posterior instead of 33 per variant.
    let min_gap = posteriors
        .iter()
        .map(|p| p.sd())
        .fold(f64::INFINITY, f64::min)
        / 2.0;
    let mut merged = Vec::with_capacity(cuts.len());
    for &cut in &cuts {
        let keep = match merged.last() {
            None => true,
            Some(&last) => cut == 1.0 || cut - last >= min_gap,
        };
        if keep {
            merged.push(cut);
        }
    }
    // The last interior cut must not sit closer to 1 than the gap either.
    if merged.len() > 2 && 1.0 - merged[merged.len() - 2] < min_gap {
        merged.remove(merged.len() - 2);
    }
    let cuts = merged;

    let panels = cuts.len() - 1;
    // Each node is kept as (x, 1 - x), both to full relative precision:
    // above 1/2 the node is placed from the panel's upper end in 1 - x.
    let mut nodes = Vec::with_capacity(panels * GL_POINTS);
    let mut weights = Vec::with_capacity(panels * GL_POINTS);
    let mut half_widths = Vec::with_capacity(panels);
    for pair in cuts.windows(2) {
        let (lo, hi) = (pair[0], pair[1]);
        let half = (hi - lo) / 2.0;
        half_widths.push(half);
        for (t, w) in rule.nodes.iter().zip(&rule.weights) {
            let node = if lo >= 0.5 {
                let y = (1.0 - hi) + half * (1.0 - t);
                (1.0 - y, y)
            } else {
                let x = lo + half * (1.0 + t);
                (x, 1.0 - x)
            };
            nodes.push(node);
            weights.push(half * w);
        }
    }

    let mut density = Vec::with_capacity(posteriors.len());
    let mut cdf = Vec::with_capacity(posteriors.len());
    let mut sf = Vec::with_capacity(posteriors.len());
    for p in posteriors {
        let kernel: Vec<f64> = nodes
            .iter()
            .map(|&(x, y)| p.log_kernel(x, y).exp())
            .collect();
        // Mass of each panel, and mass from each panel's start to each node.
        let mut panel_mass = vec![0.0; panels];
        let mut left_mass = vec![0.0; nodes.len()];
        for q in 0..panels {
            let values = &kernel[q * GL_POINTS..(q + 1) * GL_POINTS];
            panel_mass[q] = half_widths[q]
                * values
                    .iter()
                    .zip(&rule.weights)
                    .map(|(g, w)| g * w)
                    .sum::<f64>();
            for (i, row) in rule.partial.iter().enumerate() {
                left_mass[q * GL_POINTS + i] =
                    half_widths[q] * row.iter().zip(values).map(|(s, g)| s * g).sum::<f64>();
            }
        }
        let total: f64 = panel_mass.iter().sum();
        let mut before = vec![0.0; panels];
        let mut after = vec![0.0; panels];
        for q in 1..panels {
            before[q] = before[q - 1] + panel_mass[q - 1];
        }
        for q in (0..panels - 1).rev() {
            after[q] = after[q + 1] + panel_mass[q + 1];
        }
        let mut c = Vec::with_capacity(nodes.len());
        let mut s = Vec::with_capacity(nodes.len());
        for (i, left) in left_mass.iter().enumerate() {
            let q = i / GL_POINTS;
            let right = (panel_mass[q] - left).max(0.0);
            c.push(((before[q] + left) / total).clamp(0.0, 1.0));
            s.push(((after[q] + right) / total).clamp(0.0, 1.0));
        }
        density.push(kernel.iter().map(|g| g / total).collect());
        cdf.push(c);
        sf.push(s);
    }
    PosteriorGrid {
        weights,
        density,
        cdf,
        sf,
    }
}

/// Gauss–Legendre rule on [-1, 1] with its spectral integration matrix.
struct GaussLegendre {
    /// Nodes in increasing order.
    nodes: [f64; GL_POINTS],
    /// Weights, summing to 2.
    weights: [f64; GL_POINTS],
    /// `partial[i][k] = ∫_{-1}^{t_i} L_k(t) dt` for the Lagrange basis
    /// polynomials `L_k` of the nodes: multiplying it by function values at
    /// the nodes integrates the interpolant up to each node.
    partial: [[f64; GL_POINTS]; GL_POINTS],
}

fn gauss_legendre_rule() -> &'static GaussLegendre {
    static RULE: OnceLock<GaussLegendre> = OnceLock::new();
    RULE.get_or_init(|| {
        let n = GL_POINTS;
        let mut nodes = [0.0; GL_POINTS];
        let mut weights = [0.0; GL_POINTS];
        for i in 0..n {
            // Newton's method from the classic Chebyshev-like first guess,
            // which converges to the i-th root from the right.
            let mut x = (PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
            for _ in 0..100 {
                let (p, dp) = legendre(n, x);
                let step = p / dp;
                x -= step;
                if step.abs() < 1e-16 {
                    break;
                }
            }
            let (_, dp) = legendre(n, x);
            nodes[n - 1 - i] = x;
            weights[n - 1 - i] = 2.0 / ((1.0 - x * x) * dp * dp);
        }
        let lagrange = |k: usize, t: f64| -> f64 {
            (0..n)
                .filter(|&m| m != k)
                .map(|m| (t - nodes[m]) / (nodes[k] - nodes[m]))
                .product()
        };
        let mut partial = [[0.0; GL_POINTS]; GL_POINTS];
        for (i, row) in partial.iter_mut().enumerate() {
            // L_k has degree n - 1, so the n-point rule on [-1, t_i] is exact.
            let half = (nodes[i] + 1.0) / 2.0;
            for (k, cell) in row.iter_mut().enumerate() {
                *cell = half
                    * (0..n)
                        .map(|q| weights[q] * lagrange(k, -1.0 + half * (nodes[q] + 1.0)))
                        .sum::<f64>();
            }
        }
        GaussLegendre {
            nodes,
            weights,
            partial,
        }
    })
}

/// Legendre polynomial `P_n(x)` and its derivative, by the three-term
/// recurrence.
fn legendre(n: usize, x: f64) -> (f64, f64) {
    let (mut p0, mut p1) = (1.0, x);
    for k in 2..=n {
        let k = k as f64;
        let p2 = ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k;
        p0 = p1;
        p1 = p2;
    }
    let dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
    (p1, dp)
}

/// One plain-language sentence summarising a goal, for people who do not
/// read p-values, e.g. "blue beats red on checkout: 97% chance, not yet
/// significant; about 3,100 more participants needed".
///
/// A sample-ratio mismatch is reported first and instead of a winner,
/// because it invalidates the comparison.
pub fn verdict(goal: &str, analysis: &GoalAnalysis) -> String {
    let Some(control) = analysis.variants.get(analysis.control) else {
        return format!("{goal}: no variants");
    };
    if let Some(srm) = analysis.srm.as_ref().filter(|s| s.mismatch) {
        return format!(
            "{goal}: participants do not match the configured split (p = {}); \
             check assignment and tracking before reading results",
            format_p(srm.test.p_value)
        );
    }
    let leader = analysis
        .variants
        .iter()
        .filter_map(|v| v.comparison.map(|c| (v, c)))
        .max_by(|a, b| {
            a.1.chance_to_beat_control
                .total_cmp(&b.1.chance_to_beat_control)
        });
    let Some((leader, comparison)) = leader else {
        return format!(
            "{goal}: only {} is running, nothing to compare",
            control.label
        );
    };
    if control.trials == 0 || leader.trials == 0 {
        return format!("{goal}: waiting for participants in every variant");
    }
    let chance = comparison.chance_to_beat_control;
    let mut text = if chance >= 0.5 {
        format!(
            "{} beats {} on {goal}: {} chance",
            leader.label,
            control.label,
            format_percent(chance)
        )
    } else {
        format!(
            "{} leads on {goal}: {} has a {} chance to beat it",
            control.label,
            leader.label,
            format_percent(chance)
        )
    };
    // "Significant" without qualification only when the always-valid
    // sequential test agrees, since people look at the results every day.
    let always_valid = comparison.sequential.is_some_and(|s| s.significant);
    match comparison.adjusted_p_value {
        Some(p) if comparison.significant && always_valid => {
            text.push_str(&format!(", significant (p = {})", format_p(p)));
        }
        Some(p) if comparison.significant => text.push_str(&format!(
            ", significant for a fixed sample (p = {}) but not yet under repeated checking",
            format_p(p)
        )),
        Some(_) => text.push_str(", not yet significant"),
        None => text.push_str(", no test possible yet"),
    }
    if let Some(plan) = analysis.sample_size.filter(|_| !always_valid) {
        if plan.additional_total > 0 {
            text.push_str(&format!(
                "; about {} more participants needed",
                format_count(round_significant(plan.additional_total))
            ));
        }
    }
    text
}

/// A probability as a whole percentage that never claims certainty.
fn format_percent(p: f64) -> String {
    let pct = (p * 100.0).round();
    if p > 0.99 && pct >= 100.0 {
        ">99%".to_owned()
    } else if p < 0.01 && pct <= 0.0 {
        "<1%".to_owned()
    } else {
        format!("{pct:.0}%")
    }
}

fn format_p(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".to_owned()
    } else {
        format!("{p:.3}")
    }
}

/// Rounds to two significant figures: the plan is an estimate.
fn round_significant(n: u64) -> u64 {
    let mut scale = 1;
    while n / scale >= 100 {
        scale *= 10;
    }
    (n + scale / 2) / scale * scale
}

/// Formats with comma thousands separators ("3,100").
fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Reference figures from scipy/statsmodels; see scripts/stats_reference.py.
    const REFERENCE: &str = include_str!("../tests/data/stats_reference.json");

    /// Tolerances per quantity, as (absolute, relative): a figure passes when
    /// `|got - want| <= abs + rel * |want|`.
    mod tol {
        /// Exact division on both sides.
        pub const RATE: (f64, f64) = (1e-15, 0.0);
        /// Closed formula; only the normal quantile differs in its last digits.
        pub const WILSON: (f64, f64) = (1e-12, 1e-12);
        pub const UPLIFT: (f64, f64) = (1e-12, 1e-10);
        pub const Z: (f64, f64) = (1e-12, 1e-10);
        /// statrs' erfc against scipy's `norm.sf`: they differ by ~5e-11
        /// relative, also far into the tail (p = 1e-44 is in the cases).
        pub const P_VALUE: (f64, f64) = (1e-300, 1e-9);
        /// statrs' Cephes-style incomplete gamma against scipy's.
        pub const CHI2_P: (f64, f64) = (1e-300, 1e-8);
        pub const CHI2_STAT: (f64, f64) = (1e-12, 1e-10);
        /// Quadrature against quadrature: scipy's adaptive `quad` on Boost's
        /// beta functions versus the composite Gauss–Legendre grid here.
        pub const CHANCE: (f64, f64) = (1e-12, 0.0);
        pub const LOSS: (f64, f64) = (1e-16, 1e-10);
        /// Same formula, different code: only rounding differs.
        pub const SEQUENTIAL: (f64, f64) = (1e-12, 1e-9);
        pub const SAMPLE_SIZE: (f64, f64) = (0.0, 1e-10);
    }

    fn close(what: &str, got: f64, want: f64, (abs, rel): (f64, f64)) {
        assert!(
            got.is_finite() && (got - want).abs() <= abs + rel * want.abs(),
            "{what}: got {got:e}, want {want:e}, diff {:e}",
            (got - want).abs()
        );
    }

    fn num(v: &Value) -> f64 {
        v.as_f64().expect("reference number")
    }

    fn close_interval(what: &str, got: Option<Interval>, want: &Value, tol: (f64, f64)) {
        match (got, want) {
            (None, Value::Null) => {}
            (Some(i), Value::Array(pair)) => {
                close(&format!("{what} lower"), i.lower, num(&pair[0]), tol);
                close(&format!("{what} upper"), i.upper, num(&pair[1]), tol);
            }
            (got, want) => panic!("{what}: got {got:?}, want {want}"),
        }
    }

    fn close_chi2(what: &str, got: Option<ChiSquareTest>, want: &Value) {
        match (got, want) {
            (None, Value::Null) => {}
            (Some(t), Value::Object(_)) => {
                close(
                    &format!("{what} statistic"),
                    t.statistic,
                    num(&want["statistic"]),
                    tol::CHI2_STAT,
                );
                assert_eq!(t.df, want["df"].as_u64().unwrap(), "{what} df");
                close(
                    &format!("{what} p"),
                    t.p_value,
                    num(&want["p_value"]),
                    tol::CHI2_P,
                );
            }
            (got, want) => panic!("{what}: got {got:?}, want {want}"),
        }
    }

    fn reference_cases() -> Vec<Value> {
        let doc: Value = serde_json::from_str(REFERENCE).expect("reference json");
        doc["cases"].as_array().expect("cases").clone()
    }

    fn case_input(case: &Value) -> (Vec<VariantCounts>, usize, Option<Vec<f64>>, Options) {
        let variants = case["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                VariantCounts::new(
                    v["label"].as_str().unwrap(),
                    v["trials"].as_u64().unwrap(),
                    v["successes"].as_u64().unwrap(),
                )
            })
            .collect();
        let weights = case["weights"]
            .as_array()
            .map(|w| w.iter().map(num).collect());
        let options: Options = serde_json::from_value(case["options"].clone()).unwrap();
        let control = case["control"].as_u64().unwrap() as usize;
        (variants, control, weights, options)
    }

    fn analyze_case(case: &Value) -> GoalAnalysis {
        let (variants, control, weights, options) = case_input(case);
        analyze(&variants, control, weights.as_deref(), &options).expect("valid case")
    }

    /// Every figure of every reference case matches scipy/statsmodels.
    #[test]
    fn matches_reference() {
        for case in reference_cases() {
            let name = case["name"].as_str().unwrap();
            let got = analyze_case(&case);
            for (i, (v, want)) in got
                .variants
                .iter()
                .zip(case["variants"].as_array().unwrap())
                .enumerate()
            {
                let at = |q: &str| format!("{name}/{}: {q}", v.label);
                match (v.rate, want["rate"].as_f64()) {
                    (Some(g), Some(w)) => close(&at("rate"), g, w, tol::RATE),
                    (None, None) => {}
                    other => panic!("{}: {other:?}", at("rate")),
                }
                close_interval(&at("wilson"), v.interval, &want["wilson"], tol::WILSON);
                close(
                    &at("chance to be best"),
                    v.chance_to_be_best,
                    num(&want["chance_to_be_best"]),
                    tol::CHANCE,
                );
                close(
                    &at("expected loss"),
                    v.expected_loss,
                    num(&want["expected_loss"]),
                    tol::LOSS,
                );
                let Some(c) = v.comparison else {
                    assert_eq!(i, got.control, "{}", at("comparison"));
                    assert!(want["chance_to_beat_control"].is_null());
                    continue;
                };
                close(
                    &at("chance to beat control"),
                    c.chance_to_beat_control,
                    num(&want["chance_to_beat_control"]),
                    tol::CHANCE,
                );
                match (c.uplift, &want["uplift"]) {
                    (None, Value::Null) => {}
                    (Some(u), w @ Value::Object(_)) => {
                        close(&at("uplift"), u.estimate, num(&w["estimate"]), tol::UPLIFT);
                        close_interval(
                            &at("uplift interval"),
                            u.interval,
                            &w["interval"],
                            tol::UPLIFT,
                        );
                    }
                    other => panic!("{}: {other:?}", at("uplift")),
                }
                match (c.z_test, &want["z_test"]) {
                    (None, Value::Null) => assert!(c.adjusted_p_value.is_none()),
                    (Some(t), w @ Value::Object(_)) => {
                        close(&at("z"), t.z, num(&w["z"]), tol::Z);
                        close(&at("p"), t.p_value, num(&w["p_value"]), tol::P_VALUE);
                        close(
                            &at("holm p"),
                            c.adjusted_p_value.unwrap(),
                            num(&w["holm_p_value"]),
                            tol::P_VALUE,
                        );
                    }
                    other => panic!("{}: {other:?}", at("z test")),
                }
                match (c.sequential, &want["sequential"]) {
                    (None, Value::Null) => {}
                    (Some(s), w @ Value::Object(_)) => {
                        close(
                            &at("sequential log LR"),
                            s.log_likelihood_ratio,
                            num(&w["log_likelihood_ratio"]),
                            tol::SEQUENTIAL,
                        );
                        close(
                            &at("sequential p"),
                            s.p_value,
                            num(&w["p_value"]),
                            tol::SEQUENTIAL,
                        );
                        close_interval(
                            &at("confidence sequence"),
                            Some(s.interval),
                            &w["interval"],
                            tol::SEQUENTIAL,
                        );
                    }
                    other => panic!("{}: {other:?}", at("sequential")),
                }
            }
            close_chi2(
                &format!("{name}: chi-square"),
                got.chi_square,
                &case["chi_square"],
            );
            match (&got.srm, &case["srm"]) {
                (None, Value::Null) => {}
                (Some(s), w @ Value::Object(_)) => {
                    close_chi2(&format!("{name}: srm"), Some(s.test), w);
                    assert_eq!(
                        s.mismatch,
                        w["mismatch"].as_bool().unwrap(),
                        "{name}: srm flag"
                    );
                }
                other => panic!("{name}: srm {other:?}"),
            }
            match (got.sample_size, &case["sample_size"]) {
                (None, Value::Null) => {}
                (Some(plan), w @ Value::Object(_)) => {
                    let exact = num(&w["exact"]);
                    let options: Options = serde_json::from_value(case["options"].clone()).unwrap();
                    let mine = sample_size_exact(
                        plan.baseline_rate,
                        options.mde,
                        options.alpha(),
                        options.power,
                    )
                    .unwrap();
                    close(
                        &format!("{name}: sample size"),
                        mine,
                        exact,
                        tol::SAMPLE_SIZE,
                    );
                    assert_eq!(
                        plan.required_per_variant,
                        w["per_variant"].as_u64().unwrap(),
                        "{name}: sample size per variant"
                    );
                }
                other => panic!("{name}: sample size {other:?}"),
            }
        }
    }

    /// No reference case produces NaN or infinity anywhere in the output.
    #[test]
    fn outputs_are_finite() {
        for case in reference_cases() {
            let got = format!("{:?}", analyze_case(&case));
            assert!(!got.contains("NaN") && !got.contains("inf"), "{got}");
            serde_json::to_string(&analyze_case(&case)).expect("serialises");
        }
    }

    /// The reference file covers the edge cases the module promises to handle.
    #[test]
    fn reference_covers_edge_cases() {
        let names: Vec<String> = reference_cases()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        for needed in [
            "zero_trials_variant",
            "zero_successes",
            "all_successes",
            "single_variant",
            "four_variants_weighted",
            "large_counts",
        ] {
            assert!(names.iter().any(|n| n == needed), "missing {needed}");
        }
    }

    /// Probabilities of being best sum to one and beating is complementary,
    /// including for posteriors 10^8 participants narrow.
    #[test]
    fn bayesian_is_coherent() {
        let e8 = 100_000_000;
        let variants = [
            VariantCounts::new("a", e8, 10_000_000),
            VariantCounts::new("b", e8, 10_003_000),
            VariantCounts::new("c", 20, 3),
        ];
        let forward = bayesian(&variants, 0).unwrap();
        let backward = bayesian(&variants, 1).unwrap();
        let sum: f64 = forward.chance_to_be_best.iter().sum();
        assert!((sum - 1.0).abs() < 1e-12, "{sum}");
        let ab = forward.chance_to_beat_control[1].unwrap();
        let ba = backward.chance_to_beat_control[0].unwrap();
        assert!((ab + ba - 1.0).abs() < 1e-12, "{ab} + {ba}");
    }

    /// Counts far beyond any real experiment neither panic nor give NaN.
    #[test]
    fn extreme_counts_stay_finite() {
        let variants = [
            VariantCounts::new("a", u64::MAX, u64::MAX / 3),
            VariantCounts::new("b", u64::MAX / 2, u64::MAX / 6),
            VariantCounts::new("c", 3, 0),
        ];
        let analysis = analyze(&variants, 0, None, &Options::default()).unwrap();
        let text = format!("{analysis:?}");
        assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
        let tiny = analysis.variants[2].comparison.unwrap().sequential.unwrap();
        assert!(
            !tiny.significant,
            "3 participants cannot be conclusive: {tiny:?}"
        );
    }

    /// Bad input is an error, not a panic.
    #[test]
    fn rejects_invalid_input() {
        let ok = vec![
            VariantCounts::new("a", 10, 1),
            VariantCounts::new("b", 10, 2),
        ];
        let options = Options::default();
        assert_eq!(analyze(&[], 0, None, &options), Err(StatsError::NoVariants));
        assert!(matches!(
            analyze(&ok, 2, None, &options),
            Err(StatsError::ControlOutOfRange { .. })
        ));
        let bad = vec![
            VariantCounts::new("a", 10, 11),
            VariantCounts::new("b", 10, 2),
        ];
        assert!(matches!(
            analyze(&bad, 0, None, &options),
            Err(StatsError::SuccessesExceedTrials { .. })
        ));
        assert!(matches!(
            analyze(&ok, 0, Some(&[1.0]), &options),
            Err(StatsError::WeightCount { .. })
        ));
        assert!(matches!(
            analyze(&ok, 0, Some(&[1.0, f64::NAN]), &options),
            Err(StatsError::InvalidWeight { index: 1, .. })
        ));
        let silly = Options {
            confidence: 1.0,
            ..Options::default()
        };
        assert!(matches!(
            analyze(&ok, 0, None, &silly),
            Err(StatsError::InvalidOption {
                name: "confidence",
                ..
            })
        ));
    }

    /// Holm matches a hand-worked example (and statsmodels).
    #[test]
    fn holm_by_hand() {
        let adjusted = holm_adjust(&[0.01, 0.04, 0.03, 0.5]);
        let want = [0.04, 0.09, 0.09, 0.5];
        for (g, w) in adjusted.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{adjusted:?}");
        }
        assert!(holm_adjust(&[]).is_empty());
    }

    /// The 16-point rule integrates x^30 exactly and its integration matrix
    /// integrates x^15 exactly up to every node.
    #[test]
    fn gauss_legendre_rule_is_exact() {
        let rule = gauss_legendre_rule();
        let sum: f64 = rule.weights.iter().sum();
        assert!((sum - 2.0).abs() < 1e-14);
        let quad: f64 = rule
            .nodes
            .iter()
            .zip(&rule.weights)
            .map(|(x, w)| w * x.powi(30))
            .sum();
        assert!((quad - 2.0 / 31.0).abs() < 1e-14, "{quad}");
        for (i, row) in rule.partial.iter().enumerate() {
            let got: f64 = row
                .iter()
                .zip(&rule.nodes)
                .map(|(s, x)| s * x.powi(15))
                .sum();
            let want = (rule.nodes[i].powi(16) - 1.0) / 16.0;
            assert!((got - want).abs() < 1e-13, "{i}: {got} vs {want}");
        }
    }

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

    /// The verdict reads as the brief's example.
    #[test]
    fn verdict_reads_plainly() {
        let variants = [
            VariantCounts::new("red", 10_000, 500),
            VariantCounts::new("blue", 10_000, 560),
        ];
        let analysis = analyze(&variants, 0, None, &Options::default()).unwrap();
        let text = verdict("checkout", &analysis);
        assert!(
            text.starts_with("blue beats red on checkout: 97% chance, not yet significant; about "),
            "{text}"
        );
        assert!(text.ends_with(" more participants needed"), "{text}");

        let one = analyze(&variants[..1], 0, None, &Options::default()).unwrap();
        assert_eq!(
            verdict("checkout", &one),
            "checkout: only red is running, nothing to compare"
        );

        let skewed = [
            VariantCounts::new("red", 10_000, 500),
            VariantCounts::new("blue", 10_600, 560),
        ];
        let analysis = analyze(&skewed, 0, None, &Options::default()).unwrap();
        assert!(verdict("checkout", &analysis).contains("do not match the configured split"));
    }

    /// Counts are rounded to two significant figures with separators.
    #[test]
    fn counts_format_for_people() {
        assert_eq!(format_count(round_significant(3_137)), "3,100");
        assert_eq!(format_count(round_significant(87)), "87");
        assert_eq!(format_count(round_significant(123_456)), "120,000");
        assert_eq!(format_count(round_significant(995)), "1,000");
        assert_eq!(format_percent(0.9996), ">99%");
        assert_eq!(format_percent(0.0001), "<1%");
        assert_eq!(format_percent(0.97083), "97%");
    }
}
