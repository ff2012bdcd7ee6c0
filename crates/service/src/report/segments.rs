//! A report's breakdown by one segment dimension (issue 26): per value,
//! each variant's participants, conversions, rates and (for valued goals)
//! means; the uplift against the control with p-values corrected across
//! the dimension's values × variants × goals; the sample-ratio check per
//! value. Exploratory: decide on the overall result. Pure: it works on
//! counters already read from a store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use lamed_core::model::PARTICIPATE;
use lamed_core::segments::{Dimension, SegmentCounter};
use lamed_core::value::ValueTotals;
use lamed_stats::segments::{compare, correct, testable, SegmentVariant};
use lamed_stats::{
    mean_per_participant, sample_ratio_mismatch, Correction, MeanEstimate, Options, SrmCheck,
    ValueSums, VariantCounts,
};

/// What every breakdown says of itself.
pub const EXPLORATORY: &str = "exploratory: decide on the overall result";

/// A correction by the name the API and `lamed report` take.
///
/// # Errors
///
/// A name that is none of `bh` (`benjamini-hochberg`) and `holm`.
pub fn parse_correction(name: &str) -> Result<Correction, String> {
    match name.trim().to_ascii_lowercase().as_str() {
        "bh" | "benjamini-hochberg" | "fdr_bh" => Ok(Correction::BenjaminiHochberg),
        "holm" => Ok(Correction::Holm),
        other => Err(format!(
            "unknown correction '{other}': expected benjamini-hochberg (bh) or holm"
        )),
    }
}

/// The name of a correction in reports.
pub fn correction_name(correction: Correction) -> &'static str {
    match correction {
        Correction::BenjaminiHochberg => "benjamini-hochberg",
        Correction::Holm => "holm",
    }
}

/// One dimension's breakdown.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SegmentBreakdown {
    /// The dimension.
    pub dimension: String,
    /// [`EXPLORATORY`].
    pub note: String,
    /// How the p-values were corrected (`benjamini-hochberg` or `holm`).
    pub correction: String,
    /// How many tests the correction covered.
    pub tests: usize,
    /// One entry per value, by name (`other` last).
    pub values: Vec<SegmentValue>,
}

/// One value of the dimension.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SegmentValue {
    /// The value (`other`: past the cap, or unrecognised).
    pub value: String,
    /// Participants per variant, in the report's variant order.
    pub participants: Vec<u64>,
    /// The sample-ratio check of this value's participants.
    pub srm: Option<SrmCheck>,
    /// Whether every variant has participants enough for tests (at least
    /// `MIN_PARTICIPANTS_PER_VARIANT`).
    pub tested: bool,
    /// One entry per goal.
    pub goals: Vec<SegmentGoal>,
}

/// One goal in one value.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SegmentGoal {
    /// The goal.
    pub goal: String,
    /// Each variant, in the report's variant order.
    pub variants: Vec<SegmentVariant>,
    /// For a valued goal: each variant's mean value per participant
    /// (a participant without a conversion counts 0), in units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub means: Option<Vec<Option<MeanEstimate>>>,
}

/// The breakdown of `counters` (one experiment's) by `dimension`, over the
/// report's variants (`labels`, the control at `control`) and goals, with
/// the overall expected split `weights` for the sample-ratio checks.
pub fn breakdown(
    dimension: Dimension,
    counters: &[SegmentCounter],
    labels: &[&str],
    control: usize,
    goals: &[&str],
    weights: Option<&[f64]>,
    correction: Correction,
) -> SegmentBreakdown {
    let options = Options::default();
    type Cell = (u64, Option<ValueTotals>);
    let mut cells: BTreeMap<&str, BTreeMap<(&str, &str), Cell>> = BTreeMap::new();
    for counter in counters.iter().filter(|c| c.dimension == dimension) {
        cells.entry(&counter.value).or_default().insert(
            (&counter.event, &counter.variant),
            (counter.count, counter.values),
        );
    }
    let mut order: Vec<&str> = cells.keys().copied().collect();
    order.sort_by_key(|value| (*value == lamed_core::segments::OTHER, *value));
    let mut values: Vec<SegmentValue> = order
        .into_iter()
        .map(|value| {
            let cell = &cells[value];
            let count = |event: &str, label: &str| cell.get(&(event, label)).map_or(0, |c| c.0);
            let participants: Vec<u64> = labels.iter().map(|l| count(PARTICIPATE, l)).collect();
            let tested = testable(&participants);
            let srm = sample_ratio_mismatch(
                &labels
                    .iter()
                    .zip(&participants)
                    .map(|(l, n)| VariantCounts::new(*l, *n, 0))
                    .collect::<Vec<_>>(),
                weights,
                options.srm_alpha,
            )
            .ok()
            .flatten();
            let goals = goals
                .iter()
                .map(|goal| {
                    let counts: Vec<VariantCounts> = labels
                        .iter()
                        .zip(&participants)
                        .map(|(l, n)| VariantCounts::new(*l, *n, count(goal, l)))
                        .collect();
                    let valued = labels
                        .iter()
                        .any(|l| cell.get(&(goal, l)).is_some_and(|c| c.1.is_some()));
                    let means = valued.then(|| {
                        counts
                            .iter()
                            .map(|c| {
                                let totals = cell
                                    .get(&(goal, c.label.as_str()))
                                    .and_then(|c| c.1)
                                    .unwrap_or_default();
                                mean_per_participant(
                                    &ValueSums::new(
                                        c.label.clone(),
                                        c.trials,
                                        c.successes,
                                        totals.sum,
                                        totals.sum_of_squares,
                                    ),
                                    options.confidence,
                                )
                            })
                            .collect()
                    });
                    SegmentGoal {
                        goal: (*goal).to_owned(),
                        variants: compare(&counts, control, tested, options.confidence),
                        means,
                    }
                })
                .collect();
            SegmentValue {
                value: value.to_owned(),
                participants,
                srm,
                tested,
                goals,
            }
        })
        .collect();
    let family = values
        .iter_mut()
        .flat_map(|value| value.goals.iter_mut())
        .flat_map(|goal| goal.variants.iter_mut());
    correct(family, correction, options.alpha());
    let tests = values
        .iter()
        .flat_map(|value| &value.goals)
        .flat_map(|goal| &goal.variants)
        .filter(|variant| variant.adjusted_p_value.is_some())
        .count();
    SegmentBreakdown {
        dimension: dimension.as_str().to_owned(),
        note: EXPLORATORY.to_owned(),
        correction: correction_name(correction).to_owned(),
        tests,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(value: &str, event: &str, variant: &str, count: u64) -> SegmentCounter {
        SegmentCounter {
            dimension: Dimension::Device,
            value: value.to_owned(),
            event: event.to_owned(),
            variant: variant.to_owned(),
            count,
            values: None,
        }
    }

    /// Per value: the exact counts, a test only where every variant has 30
    /// participants, and p-values corrected across values × goals
    /// (the small value takes no part); `other` is listed last.
    #[test]
    fn breakdown_counts_tests_and_corrects() {
        let counters = vec![
            counter("desktop", PARTICIPATE, "a", 400),
            counter("desktop", PARTICIPATE, "b", 410),
            counter("desktop", "buy", "a", 40),
            counter("desktop", "buy", "b", 70),
            counter("mobile", PARTICIPATE, "a", 300),
            counter("mobile", PARTICIPATE, "b", 290),
            counter("mobile", "buy", "a", 45),
            counter("mobile", "buy", "b", 30),
            counter("other", PARTICIPATE, "a", 10),
            counter("other", PARTICIPATE, "b", 12),
            counter("other", "buy", "b", 5),
            counter("tablet", PARTICIPATE, "a", 20),
        ];
        let report = breakdown(
            Dimension::Device,
            &counters,
            &["a", "b"],
            0,
            &["buy"],
            None,
            Correction::BenjaminiHochberg,
        );
        let names: Vec<&str> = report.values.iter().map(|v| v.value.as_str()).collect();
        assert_eq!(names, ["desktop", "mobile", "tablet", "other"]);
        assert_eq!(report.values[0].participants, [400, 410]);
        assert_eq!(report.values[3].goals[0].variants[1].conversions, 5);
        assert_eq!(report.tests, 2);
        assert!(
            !report.values[2].tested && report.values[2].goals[0].variants[1].p_value.is_none()
        );
        let raw: Vec<f64> = report.values[..2]
            .iter()
            .map(|v| v.goals[0].variants[1].p_value.expect("tested"))
            .collect();
        let adjusted: Vec<f64> = report.values[..2]
            .iter()
            .map(|v| v.goals[0].variants[1].adjusted_p_value.expect("tested"))
            .collect();
        assert_eq!(adjusted, Correction::BenjaminiHochberg.adjust(&raw));
        assert_eq!(report.note, EXPLORATORY);
        assert!(parse_correction("HOLM").is_ok());
        assert!(parse_correction("bonferroni")
            .expect_err("refused")
            .contains("'bonferroni'"));
    }
}
