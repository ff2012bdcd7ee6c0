//! Statistics for one goal of an experiment, as pure functions with no
//! I/O. The bottom layer: it may import no other lamed crate (third-party
//! numerics only), so every figure can be checked alone against published
//! references. One concept per module:
//!
//! - [`intervals`]: Wilson intervals of rates, the relative uplift;
//! - [`hypothesis`]: the z-test against the control, the chi-square test
//!   across all variants, the Holm correction, the sample-ratio check;
//! - [`bayesian`](mod@bayesian): chance to beat the control or to be best,
//!   expected loss;
//! - [`sequential`]: the always-valid sequential test;
//! - [`power`]: the sample size for the planned effect;
//! - [`analysis`]: [`analyze`], which puts all of them together;
//! - [`means`]: mean-value (revenue) goals from exact sums: means per
//!   participant and per conversion, the Welch test, the relative lift,
//!   the sequential test ([`analyze_means`]);
//! - [`bandit`]: adaptive weights by top-two Thompson sampling
//!   ([`thompson_weights`]);
//! - [`segments`]: results by segment value: each value's comparisons,
//!   the correction (Benjamini-Hochberg or Holm) across all of them;
//! - [`strata`]: estimates combined across weight periods, and the
//!   sample-ratio check under changing weights.
//!
//! [`analyze`] takes the participants and conversions of every variant and
//! returns everything the dashboard and the API show: rates with Wilson
//! intervals, relative uplift, z-tests with a Holm correction, a chi-square
//! test across all variants, Bayesian chance-to-beat / chance-to-be-best /
//! expected loss, a sample-ratio-mismatch check, an always-valid sequential
//! test and the sample size still needed. Turning the figures into words is
//! the report's job (`lamed_service::report::verdict`).
//!
//! Undefined quantities (a rate with no participants, a test with no
//! variation) are `None`, never NaN, so every result serialises to valid
//! JSON. The figures are checked against scipy/statsmodels by the tests of
//! [`analysis`] and [`means`], using `tests/data/stats_reference.json` and
//! `tests/data/means_reference.json` made by `scripts/stats_reference.py`
//! and `scripts/means_reference.py`.

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod analysis;
pub mod bandit;
pub mod bayesian;
mod gauss_legendre;
pub mod hypothesis;
pub mod intervals;
pub mod means;
mod normal;
pub mod power;
pub mod segments;
pub mod sequential;
pub mod strata;
mod student_t;

pub use analysis::{analyze, analyze_with_srm, Comparison, GoalAnalysis, VariantStats};
pub use bandit::{apportion, thompson_weights, BanditOptions, BanditWeights};
pub use bayesian::{bayesian, Bayesian};
pub use hypothesis::{
    benjamini_hochberg_adjust, chi_square_independence, holm_adjust, sample_ratio_mismatch,
    two_proportion_z_test, ChiSquareTest, Correction, SrmCheck, ZTest,
};
pub use intervals::{relative_uplift, wilson_interval, wilson_interval_z, Interval, Uplift};
pub use means::{
    analyze_means, mean_lift, mean_per_conversion, mean_per_participant, sequential_mean_test,
    welch_t_test, MeanAnalysis, MeanComparison, MeanEstimate, MeanVariantStats, ValueSums,
    WelchTest,
};
pub use normal::z_critical;
pub use power::{required_sample_size, SampleSizePlan};
pub use sequential::{sequential_test, SequentialTest};
pub use strata::{
    period_sample_ratio_mismatch, stratified_means, stratified_rates, PeriodSplit,
    StratifiedAnalysis, StratifiedComparison, StratifiedEstimate, StratifiedVariant,
};

/// Observed counts for one variant of one goal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// A variant's sums of values are impossible for its conversions: a
    /// sum without conversions, a negative sum of squares, or a sum of
    /// squares smaller than the square of the sum allows.
    InconsistentSums {
        /// The variant's label.
        label: String,
    },
    /// A weight period has a different number of variants than the first.
    PeriodVariants {
        /// Position of the period.
        period: usize,
        /// Variants in the first period.
        expected: usize,
        /// Variants in this one.
        got: usize,
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
            Self::InconsistentSums { label } => write!(
                f,
                "variant {label} has sums of values that its conversions cannot have"
            ),
            Self::PeriodVariants {
                period,
                expected,
                got,
            } => write!(
                f,
                "weight period {period} has {got} variants, the first has {expected}"
            ),
            Self::InvalidOption { name, value } => {
                write!(f, "option {name} is out of range: {value}")
            }
        }
    }
}

impl std::error::Error for StatsError {}

/// The checks on the counts that every analysis needs: at least one
/// variant, a control among them, no more conversions than participants.
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
