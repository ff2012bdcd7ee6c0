#!/usr/bin/env python3
"""Reference figures for a revenue goal, computed from raw events with
scipy, for the end-to-end revenue test (e2e/tests/revenue.test.mjs).

Reads JSON on stdin: {"control": name, "variants": {name: {"values": [...],
"participants": n}}}, where "values" are the micro-unit values of the
variant's counted conversions (one per converting participant) and
"participants" counts every participant, converters or not. Non-converters
count as value 0 in the mean per participant, as in the report.

Writes JSON: per variant the participants, conversions, sum (units), the
mean per participant and per conversion with their 95% Student-t intervals
(scipy.stats.ttest_1samp(...).confidence_interval()), and, for every
variant but the control, Welch's test of the mean per participant against
the control (scipy.stats.ttest_ind(equal_var=False): statistic, degrees of
freedom, p-value, and the interval of the difference).

Run with the test venv's python (scripts/aws-test-env.sh installs scipy).
"""

import json
import sys

import numpy as np
from scipy import stats

MICROS = 1_000_000
CONFIDENCE = 0.95


def interval(sample):
    if len(sample) < 2:
        return None
    ci = stats.ttest_1samp(sample, 0.0).confidence_interval(CONFIDENCE)
    return [float(ci.low), float(ci.high)]


def main():
    data = json.load(sys.stdin)
    control = data["control"]
    per_participant = {}
    figures = {}
    for name, variant in data["variants"].items():
        values = np.array(variant["values"], dtype=np.float64) / MICROS
        n = variant["participants"]
        padded = np.concatenate([values, np.zeros(n - len(values))])
        per_participant[name] = padded
        figures[name] = {
            "participants": n,
            "conversions": len(values),
            "sum": sum(variant["values"]) / MICROS,
            "mean_per_participant": float(padded.mean()) if n else None,
            "per_participant_interval": interval(padded),
            "mean_per_conversion": float(values.mean()) if len(values) else None,
            "per_conversion_interval": interval(values),
        }
    welch = {}
    for name, sample in per_participant.items():
        if name == control:
            continue
        result = stats.ttest_ind(sample, per_participant[control], equal_var=False)
        ci = result.confidence_interval(CONFIDENCE)
        welch[name] = {
            "t": float(result.statistic),
            "df": float(result.df),
            "p_value": float(result.pvalue),
            "interval": [float(ci.low), float(ci.high)],
            "difference": float(sample.mean() - per_participant[control].mean()),
        }
    json.dump({"variants": figures, "welch": welch}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
