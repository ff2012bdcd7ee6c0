#!/usr/bin/env python3
"""Generate tests/data/multitest_reference.json: p-value families adjusted by
statsmodels' multipletests (fdr_bh and holm), which crates/stats's
`multiple_testing_matches_statsmodels` compares Benjamini-Hochberg and Holm
with, to 1e-9.

How to run (from the repository root; scripts/aws-test-env.sh puts the
pinned statsmodels in target/venv):

    target/venv/bin/python scripts/multitest_reference.py > tests/data/multitest_reference.json
"""

import json
import random

import statsmodels
from statsmodels.stats.multitest import multipletests

rng = random.Random(26)
families = [
    [0.01, 0.04, 0.03, 0.5],
    [0.2],
    [1.0, 1.0, 0.9],
    [0.001, 0.001, 0.02, 0.02, 0.02, 0.5, 0.7],
    [0.0, 1e-12, 0.049, 0.051],
    # A segment report's family: 20 values x 3 variants x 5 goals.
    [rng.random() ** 3 for _ in range(300)],
    [rng.random() for _ in range(57)],
]
out = []
for p in families:
    out.append({
        "p": p,
        "fdr_bh": [float(x) for x in multipletests(p, method="fdr_bh")[1]],
        "holm": [float(x) for x in multipletests(p, method="holm")[1]],
    })
print(json.dumps({"statsmodels": statsmodels.__version__, "families": out}))
