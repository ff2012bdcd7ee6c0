//! Results broken down by segment (issue 26): one segment value's
//! comparisons with the control, and the multiple-testing correction of
//! the whole family of them (every value × variant × goal of a
//! dimension), since reading twenty values at once finds "winners" by
//! chance. Exploratory: the decision stays with the overall result.

use serde::{Deserialize, Serialize};

use super::hypothesis::{two_proportion_z_test, Correction};
use super::intervals::{relative_uplift, wilson_interval, Interval, Uplift};
use super::VariantCounts;

/// Fewest participants every variant of a value needs for its tests: with
/// fewer, the normal approximation is poor and the value is shown without
/// tests (GrowthBook's and many textbooks' rule of thumb).
pub const MIN_PARTICIPANTS_PER_VARIANT: u64 = 30;

/// One variant of one segment value, for one goal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SegmentVariant {
    /// The variant.
    pub label: String,
    /// Participants in this value.
    pub participants: u64,
    /// Conversions in this value.
    pub conversions: u64,
    /// Conversion rate; `None` without participants.
    pub rate: Option<f64>,
    /// Its Wilson interval.
    pub interval: Option<Interval>,
    /// Relative uplift against the control, with its interval; `None` for
    /// the control, or without a test.
    pub uplift: Option<Uplift>,
    /// The two-proportion z-test's p-value; `None` for the control, without
    /// a test, or when it is undefined (0/0).
    pub p_value: Option<f64>,
    /// The p-value corrected across the family ([`correct`]).
    pub adjusted_p_value: Option<f64>,
    /// The adjusted p-value is at most alpha.
    pub significant: bool,
}

/// Whether a value's variants have participants enough for tests.
pub fn testable(participants: &[u64]) -> bool {
    participants.len() >= 2
        && participants
            .iter()
            .all(|&n| n >= MIN_PARTICIPANTS_PER_VARIANT)
}

/// One value's variants for one goal: rates, intervals and, when
/// `tested`, uplifts and raw p-values against `control` (adjusted later by
/// [`correct`]).
pub fn compare(
    variants: &[VariantCounts],
    control: usize,
    tested: bool,
    confidence: f64,
) -> Vec<SegmentVariant> {
    let base = &variants[control.min(variants.len().saturating_sub(1))];
    variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let compared = tested && i != control && v.successes <= v.trials;
            SegmentVariant {
                label: v.label.clone(),
                participants: v.trials,
                conversions: v.successes,
                rate: v.rate(),
                interval: wilson_interval(v, confidence),
                uplift: compared
                    .then(|| relative_uplift(v, base, confidence))
                    .flatten(),
                p_value: compared
                    .then(|| two_proportion_z_test(v, base))
                    .flatten()
                    .map(|test| test.p_value),
                adjusted_p_value: None,
                significant: false,
            }
        })
        .collect()
}

/// Corrects every p-value of a family in place with `correction`, and
/// marks those whose adjusted p-value is at most `alpha`; `None`s take no
/// part (no test, or the control).
pub fn correct<'a>(
    family: impl IntoIterator<Item = &'a mut SegmentVariant>,
    correction: Correction,
    alpha: f64,
) {
    let mut tested: Vec<&mut SegmentVariant> =
        family.into_iter().filter(|v| v.p_value.is_some()).collect();
    let raw: Vec<f64> = tested.iter().filter_map(|v| v.p_value).collect();
    for (variant, adjusted) in tested.iter_mut().zip(correction.adjust(&raw)) {
        variant.adjusted_p_value = Some(adjusted);
        variant.significant = adjusted <= alpha;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value under 30 participants per variant has rates but no test;
    /// a tested family's adjusted p-values are Benjamini-Hochberg's (or
    /// Holm's) of the raw ones, the controls' staying `None`.
    #[test]
    fn segments_test_only_large_values_and_correct_the_family() {
        assert!(!testable(&[29, 500]));
        assert!(testable(&[30, 30]));
        let small = compare(
            &[
                VariantCounts::new("a", 29, 3),
                VariantCounts::new("b", 40, 9),
            ],
            0,
            testable(&[29, 40]),
            0.95,
        );
        assert!(small
            .iter()
            .all(|v| v.p_value.is_none() && v.uplift.is_none()));
        assert!(small[1].rate.is_some());

        let mut family: Vec<SegmentVariant> = [(100, 10, 100, 20), (200, 30, 180, 31)]
            .into_iter()
            .flat_map(|(n0, c0, n1, c1)| {
                compare(
                    &[
                        VariantCounts::new("a", n0, c0),
                        VariantCounts::new("b", n1, c1),
                    ],
                    0,
                    true,
                    0.95,
                )
            })
            .collect();
        let raw: Vec<f64> = family.iter().filter_map(|v| v.p_value).collect();
        assert_eq!(raw.len(), 2);
        for correction in [Correction::BenjaminiHochberg, Correction::Holm] {
            correct(family.iter_mut(), correction, 0.05);
            let adjusted: Vec<f64> = family.iter().filter_map(|v| v.adjusted_p_value).collect();
            assert_eq!(adjusted, correction.adjust(&raw));
            assert!(family[0].adjusted_p_value.is_none(), "the control");
        }
    }
}
