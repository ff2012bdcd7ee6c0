#!/usr/bin/env python3
"""Generate the reference values that `src/stats/means.rs` is tested against.

How to run (from the repository root):

    python3 -m venv /tmp/means-venv
    /tmp/means-venv/bin/pip install scipy statsmodels numpy gbstats
    /tmp/means-venv/bin/python scripts/means_reference.py > tests/data/means_reference.json

Generated with scipy 1.17.1, statsmodels 0.15.0, numpy 1.26.4 and gbstats
0.8.0 (gbstats needs numpy < 2, hence the older numpy than
stats_reference.py's). Without gbstats installed the figures are the same,
only its cross-check is skipped. Takes about 10 s.

Every case draws raw per-participant values from a seeded numpy generator,
as integers in micro-units (the stores' unit), and writes both the exact
sufficient statistics the Rust code reads (participants, conversions, sum
and sum of squares, the sums as decimal strings because they pass 2^53) and
the figures computed from the raw arrays in units:

- means, standard deviations and Student-t intervals: numpy and
  scipy.stats.ttest_1samp(...).confidence_interval();
- the Welch test: scipy.stats.ttest_ind(equal_var=False), its statistic,
  degrees of freedom, p-value and confidence_interval(); Holm's correction
  by statsmodels' multipletests;
- the relative lift's delta-method interval: no scipy/statsmodels function
  computes it, so it is transcribed here from the formula in the Rust doc
  comment, on the raw arrays' moments, and cross-checked against gbstats'
  own frequentist test of mean metrics (TwoSidedTTest, relative);
- the sequential test (no library implements it): an independent Python
  transcription of the formulas in the Rust doc comments;
- a grid of Student-t tail probabilities and critical values, from 1 to
  10^9 degrees of freedom, from scipy.stats.t.
"""

import json
import math
import sys

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.multitest import multipletests

from stats_reference import DEFAULT_OPTIONS, mixture

try:
    import gbstats
    from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
    from gbstats.models.statistics import SampleMeanStatistic
except ImportError:  # the cross-check is skipped, the figures are the same
    gbstats = None


MICROS = 1_000_000


def lognormal(mean_units, sigma):
    """Positive values around mean_units, skewed as order values are."""

    def draw(rng, k):
        mu = math.log(mean_units) - sigma * sigma / 2.0
        return np.rint(rng.lognormal(mu, sigma, k) * MICROS).astype(np.int64)

    return draw


def constant(units):
    def draw(rng, k):
        return np.full(k, int(units * MICROS), dtype=np.int64)

    return draw


def with_refunds(mean_units, refund_share):
    """Purchases with some negative values (refunds larger than the order)."""

    def draw(rng, k):
        v = lognormal(mean_units, 0.8)(rng, k)
        refund = rng.random(k) < refund_share
        v[refund] = -v[refund] * 2
        return v

    return draw


# (name, seed, [(label, participants, conversion rate, value drawer)],
#  control index, option overrides)
CASES = [
    (
        "typical_two",
        1,
        [("red", 2000, 0.05, lognormal(40.0, 0.9)), ("blue", 2000, 0.065, lognormal(45.0, 0.9))],
        0,
        {},
    ),
    (
        "three_variants",
        2,
        [
            ("a", 5000, 0.04, lognormal(30.0, 1.0)),
            ("b", 5100, 0.045, lognormal(30.0, 1.0)),
            ("c", 4900, 0.04, lognormal(36.0, 1.2)),
        ],
        0,
        {},
    ),
    (
        "control_not_first_other_options",
        3,
        [
            ("new", 3000, 0.11, lognormal(20.0, 0.5)),
            ("old", 3100, 0.10, lognormal(19.0, 0.5)),
            ("newer", 2900, 0.12, lognormal(18.0, 0.7)),
            ("newest", 800, 0.2, lognormal(25.0, 0.3)),
        ],
        1,
        {"confidence": 0.9, "sequential_tuning_n": 2000},
    ),
    (
        "small_counts",
        4,
        [("a", 6, 0.5, lognormal(10.0, 0.5)), ("b", 5, 0.6, lognormal(12.0, 0.5))],
        0,
        {},
    ),
    (
        "zero_conversions_variant",
        5,
        [("a", 400, 0.1, lognormal(15.0, 0.6)), ("b", 400, 0.0, lognormal(15.0, 0.6))],
        0,
        {},
    ),
    (
        "zero_conversions_control",
        6,
        [("a", 400, 0.0, lognormal(15.0, 0.6)), ("b", 400, 0.1, lognormal(15.0, 0.6))],
        0,
        {},
    ),
    (
        "nobody_converts",
        7,
        [("a", 300, 0.0, constant(1.0)), ("b", 300, 0.0, constant(1.0))],
        0,
        {},
    ),
    (
        "single_participant",
        8,
        [("a", 500, 0.2, lognormal(9.0, 0.4)), ("b", 1, 1.0, lognormal(9.0, 0.4))],
        0,
        {},
    ),
    (
        "no_participants_variant",
        9,
        [("a", 500, 0.2, lognormal(9.0, 0.4)), ("b", 0, 0.0, constant(1.0))],
        0,
        {},
    ),
    (
        "constant_values",
        10,
        [("a", 1000, 0.1, constant(19.99)), ("b", 1000, 0.12, constant(19.99))],
        0,
        {},
    ),
    (
        "everyone_converts",
        11,
        [("a", 300, 1.0, lognormal(5.0, 0.2)), ("b", 300, 1.0, lognormal(5.1, 0.2))],
        0,
        {},
    ),
    (
        "refunds",
        12,
        [("a", 3000, 0.08, with_refunds(50.0, 0.1)), ("b", 3000, 0.08, with_refunds(50.0, 0.3))],
        0,
        {},
    ),
    (
        "large_values",
        13,
        [("a", 2000, 0.3, lognormal(2e6, 1.5)), ("b", 2000, 0.3, lognormal(2.2e6, 1.5))],
        0,
        {},
    ),
    (
        "very_significant",
        14,
        [("a", 100000, 0.05, lognormal(40.0, 0.8)), ("b", 100000, 0.07, lognormal(40.0, 0.8))],
        0,
        {},
    ),
    (
        "large_counts",
        15,
        [
            ("a", 2_000_000, 0.03, lognormal(60.0, 1.0)),
            ("b", 2_000_000, 0.0302, lognormal(60.0, 1.0)),
        ],
        0,
        {},
    ),
]


def draw_values(rng, n, rate, drawer):
    """Per-participant values in micro-units: 0 for non-converters."""
    converted = rng.random(n) < rate
    values = np.zeros(n, dtype=np.int64)
    values[converted] = drawer(rng, int(converted.sum()))
    return values, converted


def exact_sums(values):
    """n, and S and Q as exact Python integers (no int64 overflow)."""
    s = sum(int(v) for v in values)
    q = sum(int(v) * int(v) for v in values)
    return s, q


def finite(x):
    x = float(x)
    assert math.isfinite(x), x
    return x


def mean_estimate(x, confidence):
    """Mean, sample sd and Student-t interval of x (in units)."""
    if len(x) == 0:
        return None
    out = {"mean": finite(np.mean(x)), "std_dev": None, "interval": None}
    if len(x) >= 2:
        out["std_dev"] = finite(np.std(x, ddof=1))
        if np.all(x == x[0]):
            # Without spread scipy answers NaN (and numpy's float moments
            # a rounding error): the exact figures are a zero deviation and
            # the point itself as the interval.
            out["mean"] = float(x[0])
            out["std_dev"] = 0.0
            out["interval"] = [out["mean"], out["mean"]]
        else:
            ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
            out["interval"] = [finite(ci.low), finite(ci.high)]
    return out


def welch(xv, xc, confidence):
    if len(xv) < 2 or len(xc) < 2:
        return None
    se2 = np.var(xv, ddof=1) / len(xv) + np.var(xc, ddof=1) / len(xc)
    if se2 == 0.0:
        return None
    res = stats.ttest_ind(xv, xc, equal_var=False)
    ci = res.confidence_interval(confidence)
    return {
        "standard_error": finite(math.sqrt(se2)),
        "t": finite(res.statistic),
        "df": finite(res.df),
        "p_value": finite(res.pvalue),
        "interval": [finite(ci.low), finite(ci.high)],
    }


def lift(xv, xc, confidence):
    """Delta-method relative lift, transcribed (see the module docstring)."""
    if len(xv) == 0 or len(xc) == 0:
        return None
    mv, mc = float(np.mean(xv)), float(np.mean(xc))
    if mc == 0.0:
        return None
    estimate = (mv - mc) / abs(mc)
    out = {"estimate": estimate, "interval": None}
    if len(xv) < 2 or len(xc) < 2:
        return out
    wv = np.var(xv, ddof=1) / len(xv)
    wc = np.var(xc, ddof=1) / len(xc)
    if wv + wc == 0.0:
        return out
    var = wv / mc**2 + wc * mv**2 / mc**4
    if var == 0.0:
        # A variant without values and without spread: the delta method
        # has no interval to give (the Rust side answers None).
        return out
    df = (wv + wc) ** 2 / (wv**2 / (len(xv) - 1) + wc**2 / (len(xc) - 1))
    half = stats.t.ppf(1.0 - (1.0 - confidence) / 2.0, df) * math.sqrt(var)
    out["interval"] = [finite(estimate - half), finite(estimate + half)]
    if gbstats is not None and mc > 0:
        a = SampleMeanStatistic(n=len(xc), sum=float(np.sum(xc)), sum_squares=float(np.sum(xc * xc)))
        b = SampleMeanStatistic(n=len(xv), sum=float(np.sum(xv)), sum_squares=float(np.sum(xv * xv)))
        config = FrequentistConfig(alpha=1.0 - confidence, difference_type="relative")
        gb = TwoSidedTTest(a, b, config).compute_result()
        # gbstats refuses a side without variance; its figures are then zeros.
        checked = gb.error_message is None
        assert not checked or abs(gb.expected - estimate) <= 1e-9 * abs(estimate) + 1e-12, (gb.expected, estimate)
        for mine, theirs in zip(out["interval"], gb.ci):
            assert not checked or abs(mine - theirs) <= 1e-7 * abs(mine) + 1e-10, (out["interval"], gb.ci)
    return out


def sequential(xv, xc, alpha, tuning_n):
    """Normal-mixture mSPRT on the difference of means (see means.rs)."""
    nv, nc = len(xv), len(xc)
    if nv == 0 or nc == 0:
        return None
    spread = float(np.var(np.concatenate([xv, xc]), ddof=1))
    centred = lambda x: float(np.sum((x - np.mean(x)) ** 2))
    var = (centred(xv) + 2 * spread) / (nv + 2) / nv + (centred(xc) + 2 * spread) / (nc + 2) / nc
    if var <= 0.0:
        return None
    return mixture(float(np.mean(xv) - np.mean(xc)), var, nv, nc, alpha, tuning_n)


def case(name, seed, variants, control, overrides):
    opts = dict(DEFAULT_OPTIONS, **overrides)
    confidence = opts["confidence"]
    alpha = 1.0 - confidence
    rng = np.random.default_rng(seed)
    raw = []
    for label, n, rate, drawer in variants:
        micros, converted = draw_values(rng, n, rate, drawer)
        raw.append((label, micros, converted))
    units = [(m / MICROS, m[c] / MICROS) for _, m, c in raw]
    xc = units[control][0]
    out = []
    tested = []
    for i, (label, micros, converted) in enumerate(raw):
        s, q = exact_sums(micros)
        x, conv = units[i]
        entry = {
            "label": label,
            "trials": len(micros),
            "successes": int(converted.sum()),
            "sum": str(s),
            "sum_of_squares": str(q),
            "sum_units": finite(np.sum(x)),
            "per_participant": mean_estimate(x, confidence),
            "per_conversion": mean_estimate(conv, confidence),
        }
        if i != control:
            w = welch(x, xc, confidence)
            entry["comparison"] = {
                "difference": finite(np.mean(x) - np.mean(xc)) if len(x) and len(xc) else None,
                "welch": w,
                "lift": lift(x, xc, confidence),
                "sequential": sequential(x, xc, alpha, opts["sequential_tuning_n"]),
            }
            if w is not None:
                tested.append((i, w["p_value"]))
        out.append(entry)
    if tested:
        _, adjusted, _, _ = multipletests([p for _, p in tested], method="holm")
        for (i, _), adj in zip(tested, adjusted):
            out[i]["comparison"]["welch"]["holm_p_value"] = float(adj)
    return {"name": name, "control": control, "options": opts, "variants": out}


# Student's t at every scale of degrees of freedom Welch's test reaches.
T_GRID_DF = [1.0, 2.5, 7.3, 30.0, 123.4, 999.0, 9999.0, 1e4, 1.5e4, 1e5, 3e5, 1e6, 4e6, 1e7, 1e9]
T_GRID_T = [0.0, 0.3, 1.7, 2.5, 5.0, 9.0, 10.0, 12.0, 20.0]
T_GRID_CONFIDENCE = [0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9999]


def student_t_grid():
    """Two-sided tail probabilities and critical values from scipy (Boost)."""
    return {
        "two_sided_p": [
            [df, t, float(min(1.0, 2.0 * stats.t.sf(t, df)))] for df in T_GRID_DF for t in T_GRID_T
        ],
        "critical": [
            [df, c, float(stats.t.ppf(1.0 - (1.0 - c) / 2.0, df))]
            for df in T_GRID_DF
            for c in T_GRID_CONFIDENCE
        ],
    }


def main():
    doc = {
        "generator": "scripts/means_reference.py",
        "versions": {
            "scipy": scipy.__version__,
            "statsmodels": statsmodels.__version__,
            "numpy": np.__version__,
            "gbstats": getattr(gbstats, "__version__", None) if gbstats else None,
        },
        "cases": [case(*c) for c in CASES],
        "student_t": student_t_grid(),
    }
    json.dump(doc, sys.stdout, indent=1, allow_nan=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
