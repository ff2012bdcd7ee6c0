#!/usr/bin/env python3
"""Generate the reference values that `src/stats.rs` is tested against.

How to run (from the repository root):

    python3 -m venv /tmp/stats-venv
    /tmp/stats-venv/bin/pip install scipy statsmodels numpy
    /tmp/stats-venv/bin/python scripts/stats_reference.py > tests/data/stats_reference.json

Generated with scipy 1.17.1, statsmodels 0.15.0, numpy 2.4.6. Every figure
comes from scipy/statsmodels except the sequential test (no library
implements it), which is an independent Python transcription of the formulas
in the Rust doc comments. The Bayesian figures use adaptive quadrature
(scipy.integrate.quad) over Boost's beta pdf/cdf, split at breakpoints that
follow each posterior's mass, and are cross-checked here against a second
formula and, for small counts, a seeded Monte Carlo run. Takes about 40 s.
"""

import json
import math
import sys

import numpy as np
import scipy
import statsmodels
from scipy import integrate, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
    samplesize_proportions_2indep_onetail,
)

DEFAULT_OPTIONS = {
    "confidence": 0.95,
    "mde": 0.05,
    "power": 0.8,
    "srm_alpha": 0.001,
    "sequential_tuning_n": 10000,
}

E8 = 100_000_000

# (name, [(label, trials, successes)], control index, weights or None,
#  option overrides)
CASES = [
    ("typical_two", [("red", 10000, 500), ("blue", 10000, 560)], 0, None, {}),
    (
        "three_variants",
        [("a", 5000, 250), ("b", 5100, 290), ("c", 4900, 240)],
        0,
        None,
        {},
    ),
    (
        "four_variants_weighted",
        [("a", 2000, 100), ("b", 8000, 480), ("c", 4000, 190), ("d", 6000, 330)],
        0,
        [1.0, 4.0, 2.0, 3.0],
        {},
    ),
    ("control_not_first", [("new", 3000, 330), ("old", 3100, 300)], 1, None, {}),
    (
        "other_options",
        [("a", 4000, 400), ("b", 4000, 452)],
        0,
        None,
        {"confidence": 0.9, "mde": 0.1, "power": 0.9, "sequential_tuning_n": 2000},
    ),
    ("zero_trials_variant", [("a", 1000, 50), ("b", 0, 0)], 0, None, {}),
    ("zero_trials_control", [("a", 0, 0), ("b", 1000, 50)], 0, None, {}),
    ("all_zero_trials", [("a", 0, 0), ("b", 0, 0), ("c", 0, 0)], 0, None, {}),
    ("zero_successes", [("a", 1000, 0), ("b", 1000, 0)], 0, None, {}),
    ("zero_successes_control", [("a", 1000, 0), ("b", 1000, 5)], 0, None, {}),
    ("zero_successes_variant", [("a", 1000, 5), ("b", 1000, 0)], 0, None, {}),
    ("all_successes", [("a", 200, 200), ("b", 200, 198)], 0, None, {}),
    ("both_all_successes", [("a", 50, 50), ("b", 70, 70)], 0, None, {}),
    ("single_variant", [("only", 500, 40)], 0, None, {}),
    ("small_counts", [("a", 10, 1), ("b", 12, 4)], 0, None, {}),
    ("one_trial_each", [("a", 1, 0), ("b", 1, 1)], 0, None, {}),
    ("very_significant", [("a", 200000, 10000), ("b", 200000, 12000)], 0, None, {}),
    ("srm_mismatch", [("a", 10000, 500), ("b", 10500, 530)], 0, None, {}),
    (
        "unequal_split_ok",
        [("a", 9000, 450), ("b", 1000, 58)],
        0,
        [9.0, 1.0],
        {},
    ),
    ("large_counts", [("a", E8, 10_000_000), ("b", E8, 10_010_000)], 0, None, {}),
    (
        "large_counts_identical",
        [("a", E8, 5_000_000), ("b", E8, 5_000_000)],
        0,
        None,
        {},
    ),
    (
        "large_counts_three",
        [("a", E8, 10_000_000), ("b", E8, 10_005_000), ("c", E8, 11_000_000)],
        0,
        None,
        {},
    ),
    ("large_zero_successes", [("a", E8, 0), ("b", E8, 3)], 0, None, {}),
    ("large_all_successes", [("a", E8, E8), ("b", E8, E8 - 2)], 0, None, {}),
    ("mixed_scale", [("a", E8, 10_000_000), ("b", 50, 6)], 0, None, {}),
]


def rate(s, n):
    return s / n if n > 0 else None


def finite_or_none(x):
    x = float(x)
    return x if math.isfinite(x) else None


def wilson(s, n, alpha):
    if n == 0:
        return None
    lo, hi = proportion_confint(s, n, alpha=alpha, method="wilson")
    return [float(lo), float(hi)]


def uplift(sv, nv, sc, nc, alpha):
    """Relative uplift p_v/p_c - 1 and its log-ratio (delta method) interval."""
    if nv == 0 or nc == 0 or sc == 0:
        return None
    point = (sv / nv) / (sc / nc) - 1.0
    if sv == 0:
        return {"estimate": point, "interval": None}
    lo, hi = confint_proportions_2indep(
        sv, nv, sc, nc, method="log", compare="ratio", alpha=alpha
    )
    return {"estimate": point, "interval": [float(lo) - 1.0, float(hi) - 1.0]}


def ztest(sv, nv, sc, nc):
    if nv == 0 or nc == 0:
        return None
    pooled = (sv + sc) / (nv + nc)
    if pooled == 0.0 or pooled == 1.0:
        return None
    z, p = proportions_ztest([sv, sc], [nv, nc])
    return {"z": float(z), "p_value": float(p)}


def chi_square_independence(variants):
    rows = [[s, n - s] for _, n, s in variants if n > 0]
    if len(rows) < 2:
        return None
    try:
        chi2, p, dof, _ = stats.chi2_contingency(np.array(rows), correction=False)
    except ValueError:
        # A zero column total: scipy refuses, the Rust side returns None.
        return None
    return {"statistic": float(chi2), "df": int(dof), "p_value": float(p)}


def srm(variants, weights, alpha):
    n = np.array([v[1] for v in variants], dtype=float)
    if len(n) < 2 or n.sum() == 0:
        return None
    w = np.ones(len(n)) if weights is None else np.array(weights, dtype=float)
    expected = n.sum() * w / w.sum()
    chi2, p = stats.chisquare(n, expected)
    return {
        "statistic": float(chi2),
        "df": len(n) - 1,
        "p_value": float(p),
        "mismatch": bool(p < alpha),
    }


def sample_size(sc, nc, mde, alpha, power):
    """statsmodels' closed formula (pooled null sd, unpooled alternative sd)."""
    if nc == 0 or sc == 0:
        return None
    p2 = sc / nc
    p1 = p2 * (1.0 + mde)
    if p1 >= 1.0:
        return None
    n = samplesize_proportions_2indep_onetail(
        p1 - p2, p2, power, ratio=1, alpha=alpha, alternative="two-sided"
    )
    return {"exact": float(n), "per_variant": int(math.ceil(n - 1e-9))}


def sequential(sv, nv, sc, nc, alpha, tuning_n):
    """Normal-mixture mSPRT / asymptotic confidence sequence (see stats.rs)."""
    if nv == 0 or nc == 0:
        return None
    pv, pc = sv / nv, sc / nc
    # Variance from the smoothed rates (s + 1) / (n + 2), never zero.
    tv, tc = (sv + 1) / (nv + 2), (sc + 1) / (nc + 2)
    var = tv * (1 - tv) / nv + tc * (1 - tc) / nc
    return mixture(pv - pc, var, nv, nc, alpha, tuning_n)


def mixture(diff, var, nv, nc, alpha, tuning_n):
    """The normal-mixture test of a difference with plug-in variance var."""
    log_alpha = math.log(alpha)
    u = -2.0 * log_alpha
    for _ in range(100):
        u = -2.0 * log_alpha + math.log1p(u)
    rho2 = u / (tuning_n / 2.0)
    n_eff = nv * nc / (nv + nc)
    r = rho2 * n_eff
    z2 = diff * diff / var
    log_lr = -0.5 * math.log1p(r) + r * z2 / (2.0 * (1.0 + r))
    p = math.exp(-max(log_lr, 0.0))
    half = math.sqrt(var * (1.0 + r) / r * (math.log1p(r) - 2.0 * log_alpha))
    return {
        "log_likelihood_ratio": log_lr,
        "p_value": p,
        "interval": [diff - half, diff + half],
    }


def beta_params(n, s):
    return 1.0 + s, 1.0 + n - s


def breakpoints(posts):
    offsets = [-40, -30, -22, -16, -12, -9, -7, -5, -4, -3, -2, -1.5, -1, -0.5, 0]
    offsets = offsets + [-o for o in offsets[:-1]]
    pts = {0.0, 1.0}
    for a, b in posts:
        mean = a / (a + b)
        sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        for o in offsets:
            x = mean + o * sd
            if 0.0 < x < 1.0:
                pts.add(x)
    return sorted(pts)


def piecewise_quad(f, pts):
    total = 0.0
    for lo, hi in zip(pts[:-1], pts[1:]):
        val, _ = integrate.quad(f, lo, hi, epsabs=1e-17, epsrel=1e-12, limit=200)
        total += val
    return total


def bayes(variants, control):
    posts = [beta_params(n, s) for _, n, s in variants]
    k = len(posts)
    # Near 1 a double resolves x only to 1e-16 absolute, too coarse for a
    # posterior 1e-8 wide, so when the mass sits above 1/2 everything is
    # integrated in u = 1 - x instead, where p_j is Beta(b, a).
    flip = sum(a / (a + b) for a, b in posts) / k > 0.5
    if flip:
        pts = breakpoints([(b, a) for a, b in posts])
        pdf = [lambda u, a=a, b=b: stats.beta.pdf(u, b, a) for a, b in posts]
        cdf = [lambda u, a=a, b=b: stats.beta.sf(u, b, a) for a, b in posts]
        sf = [lambda u, a=a, b=b: stats.beta.cdf(u, b, a) for a, b in posts]
        xof = lambda u: 1.0 - u
    else:
        pts = breakpoints(posts)
        pdf = [lambda x, a=a, b=b: stats.beta.pdf(x, a, b) for a, b in posts]
        cdf = [lambda x, a=a, b=b: stats.beta.cdf(x, a, b) for a, b in posts]
        sf = [lambda x, a=a, b=b: stats.beta.sf(x, a, b) for a, b in posts]
        xof = lambda x: x

    def log_cdf(j, u):
        c = cdf[j](u)
        if c > 0.5:
            return math.log1p(-sf[j](u))
        return math.log(c) if c > 0 else -math.inf

    def others_max_cdf(v, x):
        return math.fsum(log_cdf(j, x) for j in range(k) if j != v)

    beat = []
    best = []
    loss = []
    for v in range(k):
        if v == control:
            beat.append(None)
        else:
            beat.append(
                piecewise_quad(lambda x: pdf[v](x) * cdf[control](x), pts)
            )
        if k == 1:
            best.append(1.0)
            loss.append(0.0)
            continue
        best.append(
            piecewise_quad(lambda x: pdf[v](x) * math.exp(others_max_cdf(v, x)), pts)
        )
        loss.append(
            piecewise_quad(
                lambda x: cdf[v](x) * -math.expm1(others_max_cdf(v, x)), pts
            )
        )
    # Cross-check the loss with E[max] - E[p_v], a different formula.
    if k > 1:
        e_max = math.fsum(
            piecewise_quad(
                lambda x, j=j: xof(x) * pdf[j](x) * math.exp(others_max_cdf(j, x)), pts
            )
            for j in range(k)
        )
        for v, (a, b) in enumerate(posts):
            alt = e_max - a / (a + b)
            assert abs(alt - loss[v]) < 1e-9, (alt, loss[v])
        assert abs(math.fsum(best) - 1.0) < 1e-9, best
    # Seeded Monte Carlo sanity check where it is cheap and informative.
    if max(n for _, n, _ in variants) <= 100_000 and k > 1:
        rng = np.random.default_rng(20240601)
        draws = np.array([rng.beta(a, b, 2_000_000) for a, b in posts])
        winners = draws.argmax(axis=0)
        for v in range(k):
            mc_best = float(np.mean(winners == v))
            assert abs(mc_best - best[v]) < 5e-3, (mc_best, best[v])
            mc_loss = float(np.mean(draws.max(axis=0) - draws[v]))
            assert abs(mc_loss - loss[v]) < 5e-4, (mc_loss, loss[v])
    return beat, best, loss


def case(name, variants, control, weights, overrides):
    opts = dict(DEFAULT_OPTIONS, **overrides)
    alpha = 1.0 - opts["confidence"]
    _, nc, sc = variants[control]
    out_variants = []
    raw_p = []
    for i, (label, n, s) in enumerate(variants):
        entry = {
            "label": label,
            "trials": n,
            "successes": s,
            "rate": rate(s, n),
            "wilson": wilson(s, n, alpha),
        }
        if i != control:
            zt = ztest(s, n, sc, nc)
            entry["uplift"] = uplift(s, n, sc, nc, alpha)
            entry["z_test"] = zt
            entry["sequential"] = sequential(
                s, n, sc, nc, alpha, opts["sequential_tuning_n"]
            )
            if zt is not None:
                raw_p.append((i, zt["p_value"]))
        out_variants.append(entry)
    if raw_p:
        _, adjusted, _, _ = multipletests([p for _, p in raw_p], method="holm")
        for (i, _), adj in zip(raw_p, adjusted):
            out_variants[i]["z_test"]["holm_p_value"] = float(adj)
    beat, best, loss = bayes(variants, control)
    for i, entry in enumerate(out_variants):
        entry["chance_to_beat_control"] = beat[i]
        entry["chance_to_be_best"] = best[i]
        entry["expected_loss"] = loss[i]
    return {
        "name": name,
        "control": control,
        "weights": weights,
        "options": opts,
        "variants": out_variants,
        "chi_square": chi_square_independence(variants) if len(variants) > 2 else None,
        "srm": srm(variants, weights, opts["srm_alpha"]),
        "sample_size": sample_size(sc, nc, opts["mde"], alpha, opts["power"]),
    }


def main():
    doc = {
        "generator": "scripts/stats_reference.py",
        "versions": {
            "scipy": scipy.__version__,
            "statsmodels": statsmodels.__version__,
            "numpy": np.__version__,
        },
        "cases": [case(*c) for c in CASES],
    }
    json.dump(doc, sys.stdout, indent=1, allow_nan=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
