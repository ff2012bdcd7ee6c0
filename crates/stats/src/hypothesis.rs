//! Frequentist hypothesis tests: a variant against the control (pooled
//! z-test), all variants at once (chi-square independence), the Holm
//! correction for testing several variants, and the sample-ratio-mismatch
//! check of the traffic split.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::normal::two_sided_normal_p;
use super::{StatsError, VariantCounts};

/// Pooled two-proportion z-test of a variant against the control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ZTest {
    /// `(rate_v - rate_c) / pooled standard error`.
    pub z: f64,
    /// Two-sided p-value, not corrected for multiple comparisons.
    pub p_value: f64,
}

/// A chi-square test statistic with its p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SrmCheck {
    /// Chi-square goodness-of-fit of participants against the split.
    pub test: ChiSquareTest,
    /// Participants expected per variant under the configured split.
    pub expected: Vec<f64>,
    /// True when the p-value is below [`Options::srm_alpha`](super::Options::srm_alpha).
    pub mismatch: bool,
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

/// The upper-tail chi-square test of `statistic` with `df` degrees of
/// freedom; `None` when `df` is 0.
pub(super) fn chi_square(statistic: f64, df: u64) -> Option<ChiSquareTest> {
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

/// Benjamini-Hochberg's step-up adjustment of p-values (Benjamini and
/// Hochberg 1995, "Controlling the false discovery rate", JRSS B): the
/// p-value of rank k of m becomes the least, over ranks j >= k, of
/// m·p(j)/j, at most 1. Controls the false discovery rate rather than
/// Holm's family-wise rate: the default for segments, where many values ×
/// variants × goals are read at once (GrowthBook's choice). Returns
/// adjusted p-values in input order, like statsmodels'
/// `multipletests(method="fdr_bh")`.
pub fn benjamini_hochberg_adjust(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 1.0_f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(m as f64 / (rank + 1) as f64 * p_values[i]);
        adjusted[i] = running.min(1.0);
    }
    adjusted
}

/// A multiple-testing correction: how a family of p-values is adjusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Correction {
    /// [`benjamini_hochberg_adjust`]: the false discovery rate.
    #[default]
    BenjaminiHochberg,
    /// [`holm_adjust`]: the family-wise error rate.
    Holm,
}

impl Correction {
    /// The adjusted p-values, in input order.
    pub fn adjust(self, p_values: &[f64]) -> Vec<f64> {
        match self {
            Correction::BenjaminiHochberg => benjamini_hochberg_adjust(p_values),
            Correction::Holm => holm_adjust(p_values),
        }
    }
}

/// [`holm_adjust`] over the defined p-values of a list of comparisons,
/// in place: `None` (no test, e.g. the control) stays `None` and takes no
/// part in the correction.
pub(super) fn holm_adjust_defined(p_values: &[Option<f64>]) -> Vec<Option<f64>> {
    let tested: Vec<(usize, f64)> = p_values
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.map(|p| (i, p)))
        .collect();
    let raw: Vec<f64> = tested.iter().map(|&(_, p)| p).collect();
    let mut adjusted = vec![None; p_values.len()];
    for (&(i, _), p) in tested.iter().zip(holm_adjust(&raw)) {
        adjusted[i] = Some(p);
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Benjamini-Hochberg and Holm equal statsmodels' `multipletests`
    /// (`fdr_bh`, `holm`) to 1e-9 on the families of
    /// `tests/data/multitest_reference.json` (made by
    /// `scripts/multitest_reference.py`): ties, p-values of 1, one
    /// p-value, and families as large as a segment report's.
    #[test]
    fn multiple_testing_matches_statsmodels() {
        #[derive(serde::Deserialize)]
        struct Family {
            p: Vec<f64>,
            fdr_bh: Vec<f64>,
            holm: Vec<f64>,
        }
        #[derive(serde::Deserialize)]
        struct Reference {
            families: Vec<Family>,
        }
        let Reference { families } =
            serde_json::from_str(include_str!("../../../tests/data/multitest_reference.json"))
                .expect("reference parses");
        assert!(families.len() >= 5);
        for family in &families {
            for (correction, expected) in [
                (Correction::BenjaminiHochberg, &family.fdr_bh),
                (Correction::Holm, &family.holm),
            ] {
                let adjusted = correction.adjust(&family.p);
                assert_eq!(adjusted.len(), expected.len());
                for (got, want) in adjusted.iter().zip(expected.iter()) {
                    assert!(
                        (got - want).abs() <= 1e-9,
                        "{correction:?} {got} vs {want} for {:?}",
                        family.p
                    );
                }
            }
        }
    }
}
