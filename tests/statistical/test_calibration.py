"""Tier 2 meta-test (slow, not in the default run): the check set's real error rates over fresh seeds.

    .venv/bin/python -m pytest -m slow tests/statistical/test_calibration.py

runs every Tier 1 pair over fresh seeds (200 for the pairs that must pass, 460 for each planted
defect), rewrites ``results/calibration/`` (CSV + plot) and asserts that every check's
false-positive count is within the 99% binomial bound of its stated α and that the power each
defect's seeds establish is ≥ 0.99. Same as ``python scripts/calibrate.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from studies.audit import calibration, calibration_summary, suite

OUT = Path(__file__).resolve().parents[2] / "results" / "calibration"


@pytest.mark.slow
def test_error_rates_match_their_statements():
    summary = calibration.calibrate(200, OUT, workers=min(2, os.cpu_count() or 1), power_seeds=460)
    problems = calibration_summary.failures(summary)
    assert not problems, "\n".join(problems)


def test_plan_covers_every_pair():
    """The calibration runs every Tier 1 pair, each over its own number of seeds."""
    tasks = calibration.plan(25, 40)
    seeds: dict = {}
    for target, check, chunk in tasks:
        assert len(chunk) <= calibration.SEEDS_PER_TASK
        seeds.setdefault((target, check), set()).update(chunk)
    assert set(seeds) == set(suite.null_pairs()) | set(suite.defect_pairs())
    assert all(len(seeds[pair]) == 25 for pair in suite.null_pairs())
    assert all(len(seeds[pair]) == 40 for pair in suite.defect_pairs())


def test_summary_verdicts():
    """A null pair passes up to the binomial 99% bound of α; a defect needs an established power ≥ 0.99,
    which 200 seeds cannot give (0.977 with no miss) and 460 seeds can."""
    null_pair, defect_pair = suite.null_pairs()[0], suite.defect_pairs()[0]

    def runs(pair, count, failing):
        return [
            {
                "target": pair[0],
                "check": pair[1],
                "seed": i,
                "status": "fail" if i < failing else "pass",
                "alpha": 0.01,
                "seconds": 0.0,
            }
            for i in range(count)
        ]

    def rows(records):
        return {(row["target"], row["check"]): row for row in calibration_summary.summarize(records)}

    summary = rows(
        runs(null_pair, 200, 6)
        + [
            {**run, "status": "pass" if run["status"] == "fail" else "fail"}
            for run in runs(defect_pair, 200, 0)
        ]
    )
    assert summary[null_pair]["allowed_rejections"] == 6 and summary[null_pair]["passes"]
    assert summary[defect_pair]["rate"] == 1.0 and not summary[defect_pair]["passes"]
    assert summary[defect_pair]["established_power"] == pytest.approx(0.01 ** (1 / 200))
    many = rows([{**run, "status": "fail"} for run in runs(defect_pair, 460, 0)])
    assert many[defect_pair]["passes"]


def test_stopped_run_is_summarized_from_its_runs(tmp_path):
    """``--from-runs``: the CSV, figure and metadata come from the runs a stopped calibration left."""
    null_pair, defect_pair = suite.null_pairs()[0], suite.defect_pairs()[0]
    records = [
        {
            "target": target,
            "check": check,
            "seed": seed,
            "status": status,
            "alpha": 0.01,
            "seconds": 0.1,
            "code": calibration.audit_fingerprint(),
        }
        for (target, check), status in ((null_pair, "pass"), (defect_pair, "fail"))
        for seed in range(12)
    ]
    calibration._append_runs(tmp_path / "runs.csv", records)
    summary = calibration.summarize_runs(tmp_path)
    assert {row["seeds"] for row in summary} == {12}
    assert (tmp_path / "calibration.png").exists() and (tmp_path / "calibration.csv").exists()
    assert calibration.read_summary(tmp_path / "calibration.csv")[0]["seeds"] == 12


def test_runs_of_other_code_are_never_summarized(tmp_path):
    """A run computed by another version of the checks (another fingerprint) is left out of the
    summary and counted in ``meta.json``, so one summary never mixes two versions of a check."""
    null_pair, defect_pair = suite.null_pairs()[0], suite.defect_pairs()[0]

    def runs(pair, seeds, status, code):
        return [
            {"target": pair[0], "check": pair[1], "seed": seed, "status": status, "alpha": 0.01}
            | {"seconds": 0.1, "code": code}
            for seed in seeds
        ]

    current = calibration.audit_fingerprint()
    records = runs(null_pair, range(5), "pass", current) + runs(defect_pair, range(5), "fail", current)
    stale = runs(null_pair, range(5, 9), "fail", "0" * 64)
    calibration._append_runs(tmp_path / "runs.csv", records + stale)
    summary = {(row["target"], row["check"]): row for row in calibration.summarize_runs(tmp_path)}
    assert (summary[null_pair]["seeds"], summary[null_pair]["rejections"]) == (5, 0)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["runs_of_other_code_ignored"] == 4


def test_fingerprint_covers_every_file_that_decides_a_verdict():
    """Checks, planted defects, adapters, estimators and the statistics are fingerprinted; the
    modules that only run checks, write reports or calibrate are not (editing them reuses runs)."""
    files, root = calibration._verdict_files()
    names = {path.relative_to(root).as_posix() for path in files}
    for needed in (
        "studies/audit/checks/kernels.py",
        "studies/audit/planted.py",
        "studies/audit/adapters/favor_bench.py",
        "studies/audit/suite.py",
        "estimators/features.py",
        "studies/core/stats.py",
    ):
        assert needed in names
    assert not names & set(calibration.NOT_VERDICT)
