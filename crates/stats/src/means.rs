//! Mean-value (revenue) goals from exact sufficient statistics: per variant
//! the mean value per participant and per conversion with Student-t
//! intervals; against the control the Welch t-test of the difference, the
//! delta-method interval of the relative lift and the always-valid
//! sequential test.
//!
//! # Input: exact integers, converted once
//!
//! The stores keep, per variant and goal, the participants `n`, the
//! conversions `k`, the sum `S` of the conversions' values and the sum `Q`
//! of their squares, as integers in micro-units ([`MICROS_PER_UNIT`]), the
//! sums in i128 so that 10⁹ events add up without drift. [`ValueSums`]
//! takes exactly those integers, so the caller converts nothing. The one
//! subtraction that cancels, the centred sum of squares `n·Q − S²`, is made
//! in exact integer arithmetic (when it fits in i128, which it does unless
//! `n·Q` passes 1.7·10³⁸, e.g. 10⁹ values of 10⁴ units each); every figure
//! is converted to f64 after it, once. Non-converters count as value 0, so
//! `S` and `Q` serve both the mean per participant (over `n`) and the mean
//! per conversion (over `k`).
//!
//! Figures are in units (a mean of 12.5 is 12.5 currency units), not
//! micro-units. Undefined quantities are `None`, never NaN.

use serde::{Deserialize, Serialize};

use super::hypothesis::holm_adjust_defined;
use super::intervals::{Interval, Uplift};
use super::sequential::{mixture_test, SequentialTest};
use super::student_t::{t_critical, t_two_sided_p};
use super::{validate_variants, Options, StatsError, VariantCounts};

/// Micro-units per unit: values are exact integers of millionths, so
/// that sums add without rounding (the core's `value` module keeps them).
pub const MICROS_PER_UNIT: u64 = 1_000_000;

/// [`MICROS_PER_UNIT`] as a float, for the one conversion of each figure.
const MICROS: f64 = MICROS_PER_UNIT as f64;

/// Exact sufficient statistics of one variant's values for one goal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ValueSums {
    /// Variant name as people see it.
    pub label: String,
    /// Participants who were shown the variant.
    pub trials: u64,
    /// Participants who reached the goal (each with one value).
    pub successes: u64,
    /// Sum of the conversions' values, in micro-units.
    pub sum: i128,
    /// Sum of the squares of the conversions' values in micro-units, i.e.
    /// in 10⁻¹² square units.
    pub sum_of_squares: i128,
}

impl ValueSums {
    /// Builds the sums from a label and four numbers, for brevity in callers.
    pub fn new(
        label: impl Into<String>,
        trials: u64,
        successes: u64,
        sum: i128,
        sum_of_squares: i128,
    ) -> Self {
        Self {
            label: label.into(),
            trials,
            successes,
            sum,
            sum_of_squares,
        }
    }

    /// The participants and conversions alone, for the conversion-rate
    /// analysis of the same goal.
    pub fn counts(&self) -> VariantCounts {
        VariantCounts::new(self.label.clone(), self.trials, self.successes)
    }

    /// The values of every participant, non-converters as 0.
    pub(super) fn per_participant(&self) -> Option<Sample> {
        Sample::of(self.trials, self.sum, self.sum_of_squares)
    }

    /// The values of the converters alone.
    fn per_conversion(&self) -> Option<Sample> {
        Sample::of(self.successes, self.sum, self.sum_of_squares)
    }

    /// Whether some `successes` values have these sums: no conversions
    /// without participants, no sum without conversions, and
    /// `k·Q ≥ S²` (Cauchy–Schwarz).
    pub(super) fn is_consistent(&self) -> bool {
        if self.successes > self.trials || self.sum_of_squares < 0 {
            return false;
        }
        if self.successes == 0 {
            return self.sum == 0 && self.sum_of_squares == 0;
        }
        centred_times_n(self.successes, self.sum, self.sum_of_squares) >= 0.0
    }
}

/// `n·Q − S²` (which is `n` times the centred sum of squares), exact when
/// it fits in i128, else from floats, where it keeps about
/// `16 − log10(S²/(n·Q − S²))` digits.
fn centred_times_n(n: u64, sum: i128, sum_of_squares: i128) -> f64 {
    let exact = i128::from(n)
        .checked_mul(sum_of_squares)
        .zip(sum.checked_mul(sum))
        .and_then(|(nq, s2)| nq.checked_sub(s2));
    match exact {
        Some(d) => d as f64,
        None => {
            let (n, s, q) = (n as f64, sum as f64, sum_of_squares as f64);
            n * (q - s * (s / n))
        }
    }
}

/// Size, mean and centred sum of squares of one sample, in units.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    /// Number of values.
    pub(super) n: f64,
    /// Mean value.
    pub(super) mean: f64,
    /// `Σ (x − mean)²`, never negative.
    pub(super) centred: f64,
}

impl Sample {
    /// The sample of `n` values with these exact sums; `None` when empty.
    pub(super) fn of(n: u64, sum: i128, sum_of_squares: i128) -> Option<Self> {
        if n == 0 {
            return None;
        }
        let nf = n as f64;
        Some(Self {
            n: nf,
            mean: sum as f64 / nf / MICROS,
            centred: (centred_times_n(n, sum, sum_of_squares) / nf / (MICROS * MICROS)).max(0.0),
        })
    }

    /// Unbiased sample variance; `None` with fewer than two values.
    pub(super) fn variance(&self) -> Option<f64> {
        (self.n >= 2.0).then(|| self.centred / (self.n - 1.0))
    }

    /// Squared standard error of the mean.
    fn variance_of_mean(&self) -> Option<f64> {
        Some(self.variance()? / self.n)
    }
}

/// A mean with its Student-t interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MeanEstimate {
    /// The sample mean, in units.
    pub mean: f64,
    /// Sample standard deviation (divisor `n − 1`); `None` with one value.
    pub std_dev: Option<f64>,
    /// Student-t interval with `n − 1` degrees of freedom (scipy's
    /// `ttest_1samp(...).confidence_interval()`); `None` with one value.
    pub interval: Option<Interval>,
}

/// The mean value per participant (non-converters count as 0), with its
/// Student-t interval; `None` without participants or with inconsistent
/// sums.
pub fn mean_per_participant(sums: &ValueSums, confidence: f64) -> Option<MeanEstimate> {
    sums.is_consistent()
        .then(|| mean_estimate(sums.per_participant()?, confidence))
        .flatten()
}

/// The mean value per conversion (the average order value), with its
/// Student-t interval; `None` without conversions or with inconsistent
/// sums.
pub fn mean_per_conversion(sums: &ValueSums, confidence: f64) -> Option<MeanEstimate> {
    sums.is_consistent()
        .then(|| mean_estimate(sums.per_conversion()?, confidence))
        .flatten()
}

fn mean_estimate(sample: Sample, confidence: f64) -> Option<MeanEstimate> {
    let variance = sample.variance();
    let interval = match (
        sample.variance_of_mean(),
        t_critical(confidence, sample.n - 1.0),
    ) {
        (Some(v), Some(t)) => Some(centred_interval(sample.mean, t * v.sqrt())),
        _ => None,
    };
    Some(MeanEstimate {
        mean: sample.mean,
        std_dev: variance.map(f64::sqrt),
        interval,
    })
}

fn centred_interval(centre: f64, half: f64) -> Interval {
    Interval {
        lower: centre - half,
        upper: centre + half,
    }
}

/// Welch's unequal-variance t-test of the difference of two means.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WelchTest {
    /// Standard error of the difference, `sqrt(s²_v/n_v + s²_c/n_c)`.
    pub standard_error: f64,
    /// `difference / standard_error`.
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value, not corrected for multiple comparisons.
    pub p_value: f64,
    /// Interval of the difference: `difference ± t_{df} · standard_error`.
    pub interval: Interval,
}

/// Welch's t-test of `mean_v − mean_c` per participant, as scipy's
/// `ttest_ind(v, c, equal_var=False)` and gbstats' frequentist test of
/// mean metrics: Welch (1947), "The generalization of 'Student's' problem
/// when several different population variances are involved", Biometrika
/// 34; degrees of freedom by Satterthwaite (1946). Chosen over Student's
/// pooled test because the variants' variances differ whenever their
/// conversion rates do.
///
/// # Returns
///
/// `None` when either side has fewer than two participants or
/// inconsistent sums, or both have zero variance.
pub fn welch_t_test(
    variant: &ValueSums,
    control: &ValueSums,
    confidence: f64,
) -> Option<WelchTest> {
    let (v, c) = comparable(variant, control)?;
    welch(v, c, confidence)
}

/// Both sides' per-participant samples, when their sums are consistent.
fn comparable(variant: &ValueSums, control: &ValueSums) -> Option<(Sample, Sample)> {
    if !(variant.is_consistent() && control.is_consistent()) {
        return None;
    }
    Some((variant.per_participant()?, control.per_participant()?))
}

fn welch(v: Sample, c: Sample, confidence: f64) -> Option<WelchTest> {
    let (wv, wc) = (v.variance_of_mean()?, c.variance_of_mean()?);
    let var = Some(wv + wc).filter(|var| *var > 0.0)?;
    let df = welch_df(v, c)?;
    let standard_error = var.sqrt();
    let difference = v.mean - c.mean;
    let t = difference / standard_error;
    Some(WelchTest {
        standard_error,
        t,
        df,
        p_value: t_two_sided_p(t, df)?,
        interval: centred_interval(difference, t_critical(confidence, df)? * standard_error),
    })
}

/// Welch–Satterthwaite degrees of freedom of `mean_v − mean_c`.
fn welch_df(v: Sample, c: Sample) -> Option<f64> {
    let (wv, wc) = (v.variance_of_mean()?, c.variance_of_mean()?);
    let df = (wv + wc).powi(2) / (wv * wv / (v.n - 1.0) + wc * wc / (c.n - 1.0));
    (df > 0.0).then_some(df)
}

/// Relative lift of the mean per participant, `(mean_v − mean_c) /
/// |mean_c|`, with the delta-method interval gbstats uses for mean metrics:
/// variance `s²_v / (n_v·m_c²) + s²_c·m_v² / (n_c·m_c⁴)` (the first-order
/// Taylor expansion of the ratio of two independent means), and
/// `estimate ± t_{df} · sqrt(variance)` with the Welch–Satterthwaite `df`
/// of the difference.
///
/// The interval is symmetric, unlike the log-ratio interval of
/// [`relative_uplift`](super::relative_uplift) for rates: a mean value may
/// be zero or negative (refunds), where the log has no meaning.
///
/// # Returns
///
/// `None` when either side has no participants or inconsistent sums, or
/// the control's mean is zero; an estimate without interval when either
/// side has fewer than two participants or both have zero variance.
pub fn mean_lift(variant: &ValueSums, control: &ValueSums, confidence: f64) -> Option<Uplift> {
    let (v, c) = comparable(variant, control)?;
    lift(v, c, confidence)
}

fn lift(v: Sample, c: Sample, confidence: f64) -> Option<Uplift> {
    if c.mean == 0.0 {
        return None;
    }
    let estimate = (v.mean - c.mean) / c.mean.abs();
    Some(Uplift {
        estimate,
        interval: lift_interval(v, c, estimate, confidence),
    })
}

/// The delta-method interval of [`mean_lift`] around `estimate`.
fn lift_interval(v: Sample, c: Sample, estimate: f64, confidence: f64) -> Option<Interval> {
    let (wv, wc) = (v.variance_of_mean()?, c.variance_of_mean()?);
    let m2 = c.mean * c.mean;
    let var = Some(wv / m2 + wc * v.mean * v.mean / (m2 * m2)).filter(|var| *var > 0.0)?;
    let t = t_critical(confidence, welch_df(v, c)?)?;
    Some(centred_interval(estimate, t * var.sqrt()))
}

/// The always-valid sequential test of `mean_v − mean_c` per participant:
/// the normal-mixture test of [`sequential_test`](super::sequential_test)
/// for rates, with the same mixture and tuning (`tuning_n`), on the
/// difference of means with plug-in variance `s̃²_v/n_v + s̃²_c/n_c`.
///
/// Each side's variance is smoothed as the rates' `(successes + 1) /
/// (trials + 2)` is: `s̃² = (Σ(x − m)² + 2·s²_all) / (n + 2)`, two
/// pseudo-participants spread like all participants of both sides
/// together. Without it a variant with three participants who all spent
/// nothing would have zero variance and look conclusively worse;
/// asymptotically it changes nothing.
///
/// # Returns
///
/// `None` when either side has no participants or inconsistent sums, or
/// every participant of both sides has the same value.
pub fn sequential_mean_test(
    variant: &ValueSums,
    control: &ValueSums,
    alpha: f64,
    tuning_n: u64,
) -> Option<SequentialTest> {
    let (v, c) = comparable(variant, control)?;
    let all = Sample::of(
        variant.trials.checked_add(control.trials)?,
        variant.sum.checked_add(control.sum)?,
        variant.sum_of_squares.checked_add(control.sum_of_squares)?,
    )?;
    let spread = all.variance()?;
    let smoothed = |s: Sample| (s.centred + 2.0 * spread) / (s.n + 2.0) / s.n;
    mixture_test(
        v.mean - c.mean,
        smoothed(v) + smoothed(c),
        (v.n, c.n),
        alpha,
        tuning_n,
    )
}

/// Comparison of one variant's mean value per participant with the
/// control's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MeanComparison {
    /// `mean_v − mean_c` per participant, in units; `None` when either
    /// side has no participants.
    pub difference: Option<f64>,
    /// See [`welch_t_test`].
    pub welch: Option<WelchTest>,
    /// Holm-adjusted p-value over all comparisons with a defined test.
    pub adjusted_p_value: Option<f64>,
    /// True when the adjusted p-value is at most alpha.
    pub significant: bool,
    /// See [`mean_lift`].
    pub lift: Option<Uplift>,
    /// See [`sequential_mean_test`].
    pub sequential: Option<SequentialTest>,
}

/// Everything computed for one variant's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MeanVariantStats {
    /// Variant name.
    pub label: String,
    /// Participants.
    pub trials: u64,
    /// Conversions.
    pub successes: u64,
    /// Sum of the values, in units.
    pub sum: f64,
    /// True for the variant others are compared with.
    pub is_control: bool,
    /// See [`mean_per_participant`].
    pub per_participant: Option<MeanEstimate>,
    /// See [`mean_per_conversion`].
    pub per_conversion: Option<MeanEstimate>,
    /// Comparison with the control; `None` for the control itself.
    pub comparison: Option<MeanComparison>,
}

/// Full mean-value analysis of one goal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MeanAnalysis {
    /// Index of the control in `variants`.
    pub control: usize,
    /// Confidence level of every interval.
    pub confidence: f64,
    /// Per-variant results, in input order.
    pub variants: Vec<MeanVariantStats>,
}

/// Analyses the values of one goal: per variant the means per participant
/// and per conversion, and against the control the comparisons of the
/// mean per participant, Holm-corrected as for rates.
///
/// Only the mean per participant is compared: it is what the assignment
/// randomised. The mean per conversion is conditioned on converting, which
/// the variant itself changes, so a difference there is no causal effect
/// (a variant that converts more hesitant buyers lowers it while earning
/// more).
///
/// # Errors
///
/// [`StatsError`] for an empty list, a control index out of range, more
/// conversions than participants, sums no values can have
/// ([`StatsError::InconsistentSums`]) or an option out of range.
pub fn analyze_means(
    variants: &[ValueSums],
    control: usize,
    options: &Options,
) -> Result<MeanAnalysis, StatsError> {
    options.validate()?;
    let counts: Vec<VariantCounts> = variants.iter().map(ValueSums::counts).collect();
    validate_variants(&counts, control)?;
    if let Some(v) = variants.iter().find(|v| !v.is_consistent()) {
        return Err(StatsError::InconsistentSums {
            label: v.label.clone(),
        });
    }
    let (confidence, alpha) = (options.confidence, options.alpha());
    let base = &variants[control];
    let welch: Vec<Option<WelchTest>> = variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (i != control)
                .then(|| welch_t_test(v, base, confidence))
                .flatten()
        })
        .collect();
    let p_values: Vec<Option<f64>> = welch.iter().map(|t| t.map(|t| t.p_value)).collect();
    let adjusted = holm_adjust_defined(&p_values);
    let stats = variants
        .iter()
        .enumerate()
        .map(|(i, v)| MeanVariantStats {
            label: v.label.clone(),
            trials: v.trials,
            successes: v.successes,
            sum: v.sum as f64 / MICROS,
            is_control: i == control,
            per_participant: mean_per_participant(v, confidence),
            per_conversion: mean_per_conversion(v, confidence),
            comparison: (i != control).then(|| MeanComparison {
                difference: comparable(v, base).map(|(v, c)| v.mean - c.mean),
                welch: welch[i],
                adjusted_p_value: adjusted[i],
                significant: adjusted[i].is_some_and(|p| p <= alpha),
                lift: mean_lift(v, base, confidence),
                sequential: sequential_mean_test(v, base, alpha, options.sequential_tuning_n),
            }),
        })
        .collect();
    Ok(MeanAnalysis {
        control,
        confidence,
        variants: stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Reference figures from scipy/statsmodels on the raw values; see
    /// scripts/means_reference.py.
    const REFERENCE: &str = include_str!("../../../tests/data/means_reference.json");

    /// Every figure must agree to 1e-9 relative (plus a tiny absolute
    /// slack for figures that are zero up to rounding).
    const TOL: (f64, f64) = (1e-12, 1e-9);

    fn close(what: &str, got: f64, want: f64) {
        let (abs, rel) = TOL;
        assert!(
            got.is_finite() && (got - want).abs() <= abs + rel * want.abs(),
            "{what}: got {got:e}, want {want:e}, relative diff {:e}",
            ((got - want) / want).abs()
        );
    }

    fn num(v: &Value) -> f64 {
        v.as_f64().expect("reference number")
    }

    fn close_option(what: &str, got: Option<f64>, want: &Value) {
        match (got, want) {
            (None, Value::Null) => {}
            (Some(g), Value::Number(_)) => close(what, g, num(want)),
            other => panic!("{what}: {other:?}"),
        }
    }

    fn close_interval(what: &str, got: Option<Interval>, want: &Value) {
        match (got, want) {
            (None, Value::Null) => {}
            (Some(i), Value::Array(pair)) => {
                close(&format!("{what} lower"), i.lower, num(&pair[0]));
                close(&format!("{what} upper"), i.upper, num(&pair[1]));
            }
            other => panic!("{what}: {other:?}"),
        }
    }

    fn close_estimate(what: &str, got: Option<MeanEstimate>, want: &Value) {
        match (got, want) {
            (None, Value::Null) => {}
            (Some(e), Value::Object(_)) => {
                close(&format!("{what} mean"), e.mean, num(&want["mean"]));
                close_option(&format!("{what} sd"), e.std_dev, &want["std_dev"]);
                close_interval(&format!("{what} interval"), e.interval, &want["interval"]);
            }
            other => panic!("{what}: {other:?}"),
        }
    }

    fn reference_cases() -> Vec<Value> {
        let doc: Value = serde_json::from_str(REFERENCE).expect("reference json");
        doc["cases"].as_array().expect("cases").clone()
    }

    fn case_input(case: &Value) -> (Vec<ValueSums>, usize, Options) {
        let big = |v: &Value| -> i128 { v.as_str().expect("decimal string").parse().unwrap() };
        let variants = case["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                ValueSums::new(
                    v["label"].as_str().unwrap(),
                    v["trials"].as_u64().unwrap(),
                    v["successes"].as_u64().unwrap(),
                    big(&v["sum"]),
                    big(&v["sum_of_squares"]),
                )
            })
            .collect();
        let options: Options = serde_json::from_value(case["options"].clone()).unwrap();
        (
            variants,
            case["control"].as_u64().unwrap() as usize,
            options,
        )
    }

    /// Every figure of every reference case matches scipy/statsmodels
    /// computed from the raw values.
    #[test]
    fn matches_reference() {
        for case in reference_cases() {
            let name = case["name"].as_str().unwrap();
            let (variants, control, options) = case_input(&case);
            let got = analyze_means(&variants, control, &options).expect("valid case");
            let wants = case["variants"].as_array().unwrap();
            assert_eq!(got.variants.len(), wants.len());
            for (v, want) in got.variants.iter().zip(wants) {
                let at = |q: &str| format!("{name}/{}: {q}", v.label);
                close(&at("sum"), v.sum, num(&want["sum_units"]));
                close_estimate(
                    &at("per participant"),
                    v.per_participant,
                    &want["per_participant"],
                );
                close_estimate(
                    &at("per conversion"),
                    v.per_conversion,
                    &want["per_conversion"],
                );
                let Some(c) = v.comparison else {
                    assert!(
                        v.is_control && want.get("comparison").is_none(),
                        "{}",
                        at("control")
                    );
                    continue;
                };
                let w = &want["comparison"];
                close_option(&at("difference"), c.difference, &w["difference"]);
                match (c.welch, &w["welch"]) {
                    (None, Value::Null) => assert!(c.adjusted_p_value.is_none()),
                    (Some(t), ww @ Value::Object(_)) => {
                        close(&at("se"), t.standard_error, num(&ww["standard_error"]));
                        close(&at("t"), t.t, num(&ww["t"]));
                        close(&at("df"), t.df, num(&ww["df"]));
                        close(&at("p"), t.p_value, num(&ww["p_value"]));
                        close(
                            &at("holm p"),
                            c.adjusted_p_value.unwrap(),
                            num(&ww["holm_p_value"]),
                        );
                        close_interval(&at("welch interval"), Some(t.interval), &ww["interval"]);
                    }
                    other => panic!("{}: {other:?}", at("welch")),
                }
                match (c.lift, &w["lift"]) {
                    (None, Value::Null) => {}
                    (Some(l), lw @ Value::Object(_)) => {
                        close(&at("lift"), l.estimate, num(&lw["estimate"]));
                        close_interval(&at("lift interval"), l.interval, &lw["interval"]);
                    }
                    other => panic!("{}: {other:?}", at("lift")),
                }
                match (c.sequential, &w["sequential"]) {
                    (None, Value::Null) => {}
                    (Some(s), sw @ Value::Object(_)) => {
                        close(
                            &at("seq log LR"),
                            s.log_likelihood_ratio,
                            num(&sw["log_likelihood_ratio"]),
                        );
                        close(&at("seq p"), s.p_value, num(&sw["p_value"]));
                        close_interval(
                            &at("confidence sequence"),
                            Some(s.interval),
                            &sw["interval"],
                        );
                    }
                    other => panic!("{}: {other:?}", at("sequential")),
                }
            }
        }
    }

    /// The reference file covers the edge cases the module promises to
    /// handle, and every output serialises without NaN.
    #[test]
    fn reference_covers_edge_cases_and_stays_finite() {
        let cases = reference_cases();
        for needed in [
            "zero_conversions_control",
            "nobody_converts",
            "single_participant",
            "no_participants_variant",
            "constant_values",
            "refunds",
            "large_counts",
        ] {
            assert!(
                cases.iter().any(|c| c["name"] == needed),
                "missing {needed}"
            );
        }
        for case in &cases {
            let (variants, control, options) = case_input(case);
            let got = analyze_means(&variants, control, &options).unwrap();
            let text = format!("{got:?}");
            assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
            serde_json::to_string(&got).expect("serialises");
        }
    }

    /// Sums no set of values can have are refused, not analysed.
    #[test]
    fn rejects_inconsistent_sums() {
        let ok = ValueSums::new("a", 10, 2, 3_000_000, 5_000_000_000_000);
        let options = Options::default();
        for bad in [
            ValueSums::new("b", 10, 0, 1, 1),
            ValueSums::new("b", 10, 2, 0, -1),
            // Two values summing to 4 units have squares summing to at least 8.
            ValueSums::new("b", 10, 2, 4_000_000, 7_999_999_999_999),
        ] {
            assert_eq!(
                analyze_means(&[ok.clone(), bad], 0, &options),
                Err(StatsError::InconsistentSums { label: "b".into() })
            );
        }
        let edge = ValueSums::new("b", 10, 2, 4_000_000, 8_000_000_000_000);
        assert!(analyze_means(&[ok.clone(), edge], 0, &options).is_ok());
        assert!(matches!(
            analyze_means(&[ok, ValueSums::new("b", 1, 2, 0, 0)], 0, &options),
            Err(StatsError::SuccessesExceedTrials { .. })
        ));
    }

    /// Sums near the i128 limit (10⁹ values of 10⁶ units: n·Q overflows
    /// i128) still give finite figures equal to the exact moments.
    #[test]
    fn huge_sums_stay_finite_and_exact() {
        let n: u64 = 1_000_000_000;
        // Half of the participants spent 10⁶ units, half 2·10⁶.
        let (a, b) = (1_000_000_000_000_i128, 2_000_000_000_000_i128);
        let half = i128::from(n / 2);
        let sums = ValueSums::new("a", n, n, half * (a + b), half * (a * a + b * b));
        let e = mean_per_participant(&sums, 0.95).unwrap();
        close("mean", e.mean, 1.5e6);
        let sd = 0.5e6 * (n as f64 / (n as f64 - 1.0)).sqrt();
        close("sd", e.std_dev.unwrap(), sd);
    }
}
