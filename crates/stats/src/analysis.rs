//! [`analyze`]: every figure for one goal, put together from the other
//! modules, in the shape the API, the dashboard and `lamed report` read.

use serde::{Deserialize, Serialize};

use super::bayesian::bayesian;
use super::hypothesis::{
    chi_square_independence, holm_adjust_defined, sample_ratio_mismatch, two_proportion_z_test,
    ChiSquareTest, SrmCheck, ZTest,
};
use super::intervals::{relative_uplift, wilson_interval, Interval, Uplift};
use super::power::{sample_size_plan, SampleSizePlan};
use super::sequential::{sequential_test, SequentialTest};
use super::{validate_variants, Options, StatsError, VariantCounts};

/// Comparison of one variant with the control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// Analyses one goal: see the [module documentation](super) for what is
/// computed.
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
    validate_input(variants, control, options)?;
    let srm = sample_ratio_mismatch(variants, weights, options.srm_alpha)?;
    figures(variants, control, srm, options)
}

/// [`analyze`] with the sample-ratio check made by the caller.
///
/// The check depends only on the participants and the split, not on the
/// goal, so a report of several goals makes it once with
/// [`sample_ratio_mismatch`] and hands the result to every goal. `srm` must
/// come from the participants in `variants`; it is returned unchanged in
/// [`GoalAnalysis::srm`].
///
/// # Errors
///
/// The input errors of [`analyze`]; [`StatsError::WeightCount`] when `srm`
/// was made for a different number of variants.
pub fn analyze_with_srm(
    variants: &[VariantCounts],
    control: usize,
    srm: Option<SrmCheck>,
    options: &Options,
) -> Result<GoalAnalysis, StatsError> {
    validate_input(variants, control, options)?;
    if let Some(check) = srm.as_ref().filter(|s| s.expected.len() != variants.len()) {
        return Err(StatsError::WeightCount {
            expected: variants.len(),
            got: check.expected.len(),
        });
    }
    figures(variants, control, srm, options)
}

/// Checks the options, then the counts: the first problem found is the one
/// reported.
fn validate_input(
    variants: &[VariantCounts],
    control: usize,
    options: &Options,
) -> Result<(), StatsError> {
    options.validate()?;
    validate_variants(variants, control)
}

/// Every figure of [`GoalAnalysis`] for validated input.
fn figures(
    variants: &[VariantCounts],
    control: usize,
    srm: Option<SrmCheck>,
    options: &Options,
) -> Result<GoalAnalysis, StatsError> {
    let alpha = options.alpha();
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
    let p_values: Vec<Option<f64>> = z_tests.iter().map(|t| t.map(|t| t.p_value)).collect();
    let adjusted = holm_adjust_defined(&p_values);

    let sample_size = sample_size_plan(variants, base, options);

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::sample_size_exact;
    use serde_json::Value;

    /// Reference figures from scipy/statsmodels; see scripts/stats_reference.py.
    const REFERENCE: &str = include_str!("../../../tests/data/stats_reference.json");

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

    /// A sample-ratio check made once by the caller gives exactly the
    /// analysis that computes it itself; one made for other variants is
    /// refused.
    #[test]
    fn precomputed_srm_gives_the_same_analysis() {
        for case in reference_cases() {
            let (variants, control, weights, options) = case_input(&case);
            let srm =
                sample_ratio_mismatch(&variants, weights.as_deref(), options.srm_alpha).unwrap();
            assert_eq!(
                analyze_with_srm(&variants, control, srm, &options),
                analyze(&variants, control, weights.as_deref(), &options),
                "{}",
                case["name"]
            );
        }
        let two = [
            VariantCounts::new("a", 900, 90),
            VariantCounts::new("b", 1100, 100),
        ];
        let srm = sample_ratio_mismatch(&two, None, 0.001).unwrap();
        assert!(srm.is_some());
        let three = [
            two[0].clone(),
            two[1].clone(),
            VariantCounts::new("c", 5, 1),
        ];
        assert_eq!(
            analyze_with_srm(&three, 0, srm, &Options::default()),
            Err(StatsError::WeightCount {
                expected: 3,
                got: 2
            })
        );
    }
}
