//! Adaptive weights: top-two Thompson sampling on one goal's Beta
//! posteriors, turned into the integer weights AlephBet splits traffic by.

use rand::distr::Distribution;
use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use statrs::distribution::Beta;

use super::{validate_variants, StatsError, VariantCounts};

/// Settings of the adaptive allocation, fixed before the experiment starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BanditOptions {
    /// Smallest weight of any variant, in percent: a variant never starves,
    /// so its estimate keeps improving and an early lead that was luck can
    /// still be undone. At most `100 / variants`.
    pub floor: u32,
    /// Participants every variant needs before the weights leave equal
    /// shares: posteriors of a few dozen participants are mostly prior.
    pub burn_in: u64,
    /// Posterior draws per update. At 10⁴ a weight's Monte Carlo error is
    /// at most 0.5 percentage points (one standard deviation).
    pub draws: u32,
    /// Top-two sampling (see [`thompson_weights`]); `false` gives each
    /// variant its probability of being best.
    pub top_two: bool,
}

impl Default for BanditOptions {
    /// gbstats' defaults: a 1% floor, 100 participants per variant, 10⁴
    /// draws, top-two.
    fn default() -> Self {
        Self {
            floor: 1,
            burn_in: 100,
            draws: 10_000,
            top_two: true,
        }
    }
}

/// Weights for the next period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BanditWeights {
    /// Integer weights in percent, in variant order, summing to 100, each
    /// at least [`BanditOptions::floor`].
    pub weights: Vec<u32>,
    /// Share of the draws in which each variant had the highest rate (the
    /// Monte Carlo estimate of its chance to be best); `None` during the
    /// burn-in, when no draws are made.
    pub best_arm_probabilities: Option<Vec<f64>>,
    /// True while some variant has fewer than [`BanditOptions::burn_in`]
    /// participants: the weights are then equal.
    pub burn_in: bool,
}

/// The weights for the next period from one goal's counts.
///
/// Each variant's rate has the Beta(1 + successes, 1 + failures) posterior
/// of [`bayesian`](super::bayesian()). `draws` times, one rate is drawn
/// from every posterior; with `top_two`, a variant's share is how often it
/// came first or second, over twice the draws, as gbstats' bandits do
/// (plain Thompson sampling: how often it came first). Top-two keeps
/// exploring the runner-up, which identifies the best variant in fewer
/// participants than plain Thompson sampling, which spends almost all
/// traffic on the leader (Russo 2020, "Simple Bayesian algorithms for
/// best-arm identification", Operations Research 68(6)). Hence with two
/// variants top-two always answers 50/50: both are always in the top two.
///
/// The floor is added, not clipped (gbstats' choice): `share = floor +
/// (100 − k·floor) · share_thompson`, which keeps the variants' order and
/// spacing above the floor. Shares are rounded to integers summing to 100
/// by largest remainder (ties to the earlier variant), which never takes a
/// share below its integer part, so never below the floor.
///
/// Deterministic: the draws come from ChaCha8 seeded with `seed`, so the
/// same counts and seed give the same weights on every machine (derive
/// the seed from the experiment and the period to make each period's
/// update reproducible).
///
/// # Errors
///
/// [`StatsError::NoVariants`], [`StatsError::SuccessesExceedTrials`], or
/// [`StatsError::InvalidOption`] when `draws` is 0 or the floors of all
/// variants pass 100.
pub fn thompson_weights(
    variants: &[VariantCounts],
    options: &BanditOptions,
    seed: u64,
) -> Result<BanditWeights, StatsError> {
    validate_variants(variants, 0)?;
    let k = variants.len();
    if u64::from(options.floor) * k as u64 > 100 {
        return Err(StatsError::InvalidOption {
            name: "floor",
            value: f64::from(options.floor),
        });
    }
    if options.draws == 0 {
        return Err(StatsError::InvalidOption {
            name: "draws",
            value: 0.0,
        });
    }
    if variants.iter().any(|v| v.trials < options.burn_in) {
        return Ok(BanditWeights {
            weights: apportion(&vec![1.0; k]),
            best_arm_probabilities: None,
            burn_in: true,
        });
    }
    let (best, top_two) = draw_ranks(variants, options.draws, seed)?;
    let thompson = if options.top_two && k > 1 {
        &top_two
    } else {
        &best
    };
    let floor = f64::from(options.floor);
    let spare = 100.0 - floor * k as f64;
    let shares: Vec<f64> = thompson.iter().map(|p| floor + spare * p).collect();
    Ok(BanditWeights {
        weights: apportion(&shares),
        best_arm_probabilities: Some(best),
        burn_in: false,
    })
}

/// Shares of the draws in which each variant came first, and in which it
/// came first or second (over twice the draws).
fn draw_ranks(
    variants: &[VariantCounts],
    draws: u32,
    seed: u64,
) -> Result<(Vec<f64>, Vec<f64>), StatsError> {
    let posteriors = variants
        .iter()
        .map(|v| {
            let successes = v.successes as f64;
            Beta::new(1.0 + successes, 1.0 + (v.trials as f64 - successes))
        })
        .collect::<Result<Vec<Beta>, _>>()
        // Parameters of at least 1 are always valid; a failure would be a
        // count beyond f64, reported as the variant's own problem.
        .map_err(|_| StatsError::InvalidOption {
            name: "trials",
            value: f64::INFINITY,
        })?;
    let k = variants.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut first = vec![0_u64; k];
    let mut second = vec![0_u64; k];
    let mut sample = vec![0.0; k];
    for _ in 0..draws {
        for (s, p) in sample.iter_mut().zip(&posteriors) {
            *s = p.sample(&mut rng);
        }
        let (mut top, mut runner_up) = (0, None::<usize>);
        for i in 1..k {
            if sample[i] > sample[top] {
                runner_up = Some(top);
                top = i;
            } else if runner_up.is_none_or(|r| sample[i] > sample[r]) {
                runner_up = Some(i);
            }
        }
        first[top] += 1;
        if let Some(r) = runner_up {
            second[r] += 1;
        }
    }
    let n = f64::from(draws);
    let best = first.iter().map(|&c| c as f64 / n).collect();
    let top_two = first
        .iter()
        .zip(&second)
        .map(|(&a, &b)| (a + b) as f64 / (2.0 * n))
        .collect();
    Ok((best, top_two))
}

/// Integers summing to 100 in proportion to `shares` (positive, any unit),
/// by largest remainder; ties go to the earlier variant.
pub fn apportion(shares: &[f64]) -> Vec<u32> {
    let total: f64 = shares.iter().sum();
    let exact: Vec<f64> = shares.iter().map(|s| 100.0 * s / total).collect();
    let mut weights: Vec<u32> = exact.iter().map(|e| e.floor() as u32).collect();
    let given: u32 = weights.iter().sum();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    for &i in order
        .iter()
        .cycle()
        .take(100_u32.saturating_sub(given) as usize)
    {
        weights[i] += 1;
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bayesian;

    fn counts(rows: &[(u64, u64)]) -> Vec<VariantCounts> {
        rows.iter()
            .enumerate()
            .map(|(i, &(n, s))| VariantCounts::new(format!("v{i}"), n, s))
            .collect()
    }

    /// Weights always sum to 100 and respect the floor, for many shapes of
    /// counts, floors and seeds, including a hopeless variant.
    #[test]
    fn weights_sum_to_100_above_the_floor() {
        let shapes: [&[(u64, u64)]; 5] = [
            &[(1000, 100), (1000, 300)],
            &[(5000, 250), (5000, 400), (5000, 100)],
            &[(300, 3), (300, 290), (300, 150), (300, 150), (300, 0)],
            &[(1_000_000, 10_000), (1_000_000, 10_050), (200, 2)],
            &[(150, 20); 7],
        ];
        for rows in shapes {
            let variants = counts(rows);
            for floor in [0, 1, 5, 100 / rows.len() as u32] {
                for seed in 0..5 {
                    let options = BanditOptions {
                        floor,
                        draws: 2_000,
                        ..BanditOptions::default()
                    };
                    let w = thompson_weights(&variants, &options, seed).unwrap();
                    assert_eq!(w.weights.iter().sum::<u32>(), 100, "{rows:?} {w:?}");
                    assert!(w.weights.iter().all(|&x| x >= floor), "{rows:?} {w:?}");
                }
            }
        }
    }

    /// A clearly better variant gets the most traffic, the floor holds for
    /// the clearly worse ones; with plain Thompson sampling it gets nearly
    /// everything.
    #[test]
    fn weights_move_toward_the_better_variant() {
        let variants = counts(&[(2000, 200), (2000, 300), (2000, 180)]);
        let options = BanditOptions::default();
        let w = thompson_weights(&variants, &options, 7).unwrap();
        // Top-two: the leader is first in every draw (half the weight), the
        // other two share the second places.
        assert!((49..=51).contains(&w.weights[1]), "{w:?}");
        assert!(
            w.weights[0] > w.weights[2] && w.weights[2] > options.floor,
            "{w:?}"
        );
        let plain = BanditOptions {
            top_two: false,
            floor: 2,
            ..options
        };
        let w = thompson_weights(&variants, &plain, 7).unwrap();
        assert_eq!(w.weights, vec![2, 96, 2], "{w:?}");
    }

    /// Until every variant has `burn_in` participants the weights are equal.
    #[test]
    fn burn_in_gives_equal_weights() {
        let variants = counts(&[(5000, 100), (5000, 900), (99, 1)]);
        let w = thompson_weights(&variants, &BanditOptions::default(), 1).unwrap();
        assert!(w.burn_in && w.best_arm_probabilities.is_none());
        assert_eq!(w.weights, vec![34, 33, 33]);
        let variants = counts(&[(100, 1), (100, 90)]);
        let w = thompson_weights(&variants, &BanditOptions::default(), 1).unwrap();
        assert!(!w.burn_in);
    }

    /// The same counts and seed give the same weights; the best-arm shares
    /// agree with the quadrature of [`bayesian`] within Monte Carlo error.
    #[test]
    fn deterministic_and_consistent_with_quadrature() {
        let variants = counts(&[(800, 80), (800, 95), (800, 88), (800, 70)]);
        let options = BanditOptions {
            draws: 40_000,
            ..BanditOptions::default()
        };
        let a = thompson_weights(&variants, &options, 42).unwrap();
        assert_eq!(a, thompson_weights(&variants, &options, 42).unwrap());
        let exact = bayesian(&variants, 0).unwrap().chance_to_be_best;
        let mc = a.best_arm_probabilities.unwrap();
        for (m, e) in mc.iter().zip(&exact) {
            // Five standard errors of a share estimated from 40,000 draws.
            assert!(
                (m - e).abs() < 5.0 * (e * (1.0 - e) / 40_000.0).sqrt() + 1e-9,
                "{mc:?} {exact:?}"
            );
        }
    }

    /// Impossible settings and counts are errors, not panics.
    #[test]
    fn rejects_invalid_input() {
        let variants = counts(&[(100, 10), (100, 20), (100, 30)]);
        let too_high = BanditOptions {
            floor: 34,
            ..BanditOptions::default()
        };
        assert!(matches!(
            thompson_weights(&variants, &too_high, 0),
            Err(StatsError::InvalidOption { name: "floor", .. })
        ));
        let no_draws = BanditOptions {
            draws: 0,
            ..BanditOptions::default()
        };
        assert!(thompson_weights(&variants, &no_draws, 0).is_err());
        assert_eq!(
            thompson_weights(&[], &BanditOptions::default(), 0),
            Err(StatsError::NoVariants)
        );
        assert!(thompson_weights(&counts(&[(1, 2)]), &BanditOptions::default(), 0).is_err());
        let single = thompson_weights(&counts(&[(500, 5)]), &BanditOptions::default(), 0);
        assert_eq!(single.unwrap().weights, vec![100]);
    }

    /// Largest-remainder rounding: exact shares stay, remainders go to the
    /// largest fractions, ties to the earlier variant.
    #[test]
    fn apportion_rounds_by_largest_remainder() {
        assert_eq!(apportion(&[1.0, 1.0, 1.0]), vec![34, 33, 33]);
        assert_eq!(apportion(&[1.0, 3.0]), vec![25, 75]);
        assert_eq!(apportion(&[0.333, 0.333, 0.334]), vec![33, 33, 34]);
        assert_eq!(apportion(&[1.0; 7]).iter().sum::<u32>(), 100);
    }
}
