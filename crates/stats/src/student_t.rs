//! Student's t distribution for the mean-value tests, accurate at any
//! degrees of freedom.
//!
//! statrs' `StudentsT` is accurate to ~1e-11 relative up to about 10⁴
//! degrees of freedom, but beyond it its incomplete beta loses digits (the
//! difference of two log-gamma values near 10⁷ at 10⁶ degrees of freedom:
//! 4e-9 relative at 10⁶, 2e-7 at 10⁷) and its quantile fails worse (6e-5
//! at 10⁶) or does not return. Welch's degrees of freedom are about the
//! number of participants, so revenue tests reach that range. There the
//! distribution is so close to the normal that the Cornish–Fisher
//! expansion of its quantile in powers of `1/df` (Abramowitz & Stegun
//! 26.7.5, four terms) is exact to better than 1e-9, and the tail
//! probability follows by inverting it. The tests hold both paths to
//! scipy within 1e-9 relative from 1 to 10⁹ degrees of freedom.

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::normal::{normal_quantile, two_sided_normal_p};

/// Degrees of freedom from which critical values come from the
/// expansion: statrs' quantile is already off by 1e-8 at 10⁴, while the
/// expansion's first omitted term (order `df⁻⁵`) is far below 1e-9 for
/// confidence levels up to 0.9999 from 10³ on.
const QUANTILE_EXPANSION_DF: f64 = 1e3;

/// Degrees of freedom from which tail probabilities come from the
/// expansion (statrs' are within 1e-10 below).
const TAIL_EXPANSION_DF: f64 = 1e4;

/// `|t|` up to which the expansion gives tail probabilities to 1e-10 at
/// [`TAIL_EXPANSION_DF`]; beyond it (p below 1e-23) statrs serves up to
/// [`STATRS_MAX_DF`].
const EXPANSION_MAX_T: f64 = 10.0;

/// Degrees of freedom up to which statrs' tail is within 1e-9 relative.
const STATRS_MAX_DF: f64 = 1e6;

/// Odd-power coefficients (of `x`, `x³`, `x⁵`, …) and divisor of the terms
/// `g_k(x) / df^k` of `t = x + Σ g_k(x) / df^k`, A&S 26.7.5.
const TERMS: [(&[f64], f64); 4] = [
    (&[1.0, 1.0], 4.0),
    (&[3.0, 16.0, 5.0], 96.0),
    (&[-15.0, 17.0, 19.0, 3.0], 384.0),
    (&[-945.0, -1920.0, 1482.0, 776.0, 79.0], 92160.0),
];

/// The t quantile for the normal quantile `z`, and its derivative in `z`.
fn expansion(z: f64, df: f64) -> (f64, f64) {
    let (mut t, mut slope, mut scale) = (z, 1.0, 1.0);
    for (coefficients, divisor) in TERMS {
        scale /= df;
        let (mut g, mut dg) = (0.0, 0.0);
        for (i, c) in coefficients.iter().enumerate() {
            let power = 2 * i as i32 + 1;
            g += c * z.powi(power);
            dg += c * f64::from(power) * z.powi(power - 1);
        }
        t += g / divisor * scale;
        slope += dg / divisor * scale;
    }
    (t, slope)
}

/// Two-sided `P(|T_df| ≥ |t|)`; `None` for degrees of freedom that are
/// not positive.
pub(super) fn t_two_sided_p(t: f64, df: f64) -> Option<f64> {
    let t = t.abs();
    if df >= TAIL_EXPANSION_DF && (t <= EXPANSION_MAX_T || df > STATRS_MAX_DF) {
        // Newton on the increasing map z -> t, from z = t; the expansion
        // differs from the identity by under 1e-3 here, so a few steps
        // reach double precision.
        let mut z = t;
        for _ in 0..50 {
            let (value, slope) = expansion(z, df);
            let step = (value - t) / slope;
            z -= step;
            if step.abs() <= 1e-16 * z.abs() {
                break;
            }
        }
        return Some(two_sided_normal_p(z));
    }
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    Some((2.0 * dist.sf(t)).min(1.0))
}

/// Two-sided critical value of Student's t with `df` degrees of freedom,
/// to 1e-9 relative for confidence levels up to 0.9999; `None` for degrees
/// of freedom that are not positive.
pub(super) fn t_critical(confidence: f64, df: f64) -> Option<f64> {
    let p = 1.0 - (1.0 - confidence) / 2.0;
    if df >= QUANTILE_EXPANSION_DF {
        return Some(expansion(normal_quantile(p), df).0);
    }
    Some(StudentsT::new(0.0, 1.0, df).ok()?.inverse_cdf(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// scipy's figures on a grid from 1 to 10⁹ degrees of freedom; see
    /// scripts/means_reference.py.
    fn grid(name: &str) -> Vec<(f64, f64, f64)> {
        let doc: Value =
            serde_json::from_str(include_str!("../../../tests/data/means_reference.json")).unwrap();
        doc["student_t"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                let x = |i: usize| row[i].as_f64().unwrap();
                (x(0), x(1), x(2))
            })
            .collect()
    }

    fn assert_close(what: &str, got: Option<f64>, want: f64) {
        let got = got.unwrap_or(f64::NAN);
        assert!(
            (got - want).abs() <= 1e-300 + 1e-9 * want.abs(),
            "{what}: got {got:e}, want {want:e}, relative {:e}",
            ((got - want) / want).abs()
        );
    }

    /// Tail probabilities and critical values agree with scipy to 1e-9
    /// relative at every scale of degrees of freedom.
    #[test]
    fn matches_scipy_at_any_degrees_of_freedom() {
        let tails = grid("two_sided_p");
        assert!(tails.len() > 100);
        for (df, t, want) in tails {
            assert_close(&format!("p(t={t}, df={df})"), t_two_sided_p(t, df), want);
            assert_close(&format!("p(t=-{t}, df={df})"), t_two_sided_p(-t, df), want);
        }
        for (df, confidence, want) in grid("critical") {
            assert_close(
                &format!("critical({confidence}, df={df})"),
                t_critical(confidence, df),
                want,
            );
        }
        assert_eq!(t_two_sided_p(1.0, 0.0), None);
        assert_eq!(t_critical(0.95, -1.0), None);
    }
}
