//! The 16-point Gauss–Legendre rule with its spectral integration matrix,
//! the building block of the Bayesian quadrature.

use std::f64::consts::PI;
use std::sync::OnceLock;

/// Points per panel of the Gauss–Legendre rule.
pub(super) const GL_POINTS: usize = 16;

/// Gauss–Legendre rule on [-1, 1] with its spectral integration matrix.
pub(super) struct GaussLegendre {
    /// Nodes in increasing order.
    pub(super) nodes: [f64; GL_POINTS],
    /// Weights, summing to 2.
    pub(super) weights: [f64; GL_POINTS],
    /// `partial[i][k] = ∫_{-1}^{t_i} L_k(t) dt` for the Lagrange basis
    /// polynomials `L_k` of the nodes: multiplying it by function values at
    /// the nodes integrates the interpolant up to each node.
    pub(super) partial: [[f64; GL_POINTS]; GL_POINTS],
}

/// The rule, computed on first use and shared: it depends on nothing but
/// the number of points.
pub(super) fn gauss_legendre_rule() -> &'static GaussLegendre {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
