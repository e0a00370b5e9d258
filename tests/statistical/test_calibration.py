"""Tier 2 meta-test (slow, not in the default run): the battery's real error rates over fresh seeds.

    .venv/bin/python -m pytest -m slow tests/statistical/test_calibration.py

runs every Tier 1 check over 200 fresh seeds on the shipped estimators and on each planted bug meant
to fail it, rewrites ``results/calibration/`` (CSV + plot) and asserts that every check's
false-positive count is within the 99% binomial bound of its stated α and that its power against
each of its mutants is ≥ 0.99. Same as ``python scripts/calibrate.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.statistical import calibration

SEEDS = 200
OUT = Path(__file__).resolve().parents[2] / "results" / "calibration"


@pytest.mark.slow
def test_battery_error_rates_match_their_statements():
    summary = calibration.calibrate(SEEDS, OUT, workers=min(2, os.cpu_count() or 1))
    assert {row["check"] for row in summary} == set(calibration._checks())
    problems = calibration.failures(summary)
    assert not problems, "\n".join(problems)


def test_plan_covers_every_check_and_mutant():
    """The calibration runs every check on the shipped code and every mutant on each of its checks."""
    tasks = calibration.plan(25)
    pairs = {(check, impl) for check, impl, _ in tasks}
    seeds = {impl: set() for _, impl, _ in tasks}
    for _, impl, chunk in tasks:
        seeds[impl].update(chunk)
    assert all(len(chunk) <= calibration.SEEDS_PER_TASK for _, _, chunk in tasks)
    assert {check for check, impl in pairs if impl == "reference"} == set(calibration._checks())
    assert all(len(s) == 25 for s in seeds.values())


def test_summary_verdicts():
    """A null run passes up to the binomial 99% bound of α; a mutant needs power ≥ 0.99."""
    records = [
        {"check": "unbiased", "implementation": "reference", "seed": i, "reject": i < 6, "seconds": 0.0}
        for i in range(200)
    ] + [
        {"check": "unbiased", "implementation": "scale-3pct", "seed": i, "reject": i > 2, "seconds": 0.0}
        for i in range(200)
    ]
    summary = {row["implementation"]: row for row in calibration.summarize(records)}
    assert summary["reference"]["allowed_rejections"] == 6 and summary["reference"]["passes"]
    assert summary["scale-3pct"]["rate"] == pytest.approx(197 / 200) and not summary["scale-3pct"]["passes"]
