"""Tier 2: the real error rates of the Tier 1 battery, measured over fresh seeds.

For every check of :mod:`tests.statistical.battery`:

* false-positive rate: the check on the shipped estimators over ``seeds`` fresh seeds; the count of
  rejections k is compared with its stated family α: the check is calibrated when k does not exceed
  the 99% quantile of Binomial(seeds, α) (the "binomial 99% upper bound" of a test whose real rate is
  α; for exact checks α = 0, so no rejection is allowed). The Clopper–Pearson 99% interval of k/seeds
  is reported with it.
* power: the check on every planted bug that names it in ``caught_by`` (:mod:`tests.statistical.mutants`)
  over the same seeds; required rate ≥ 0.99.

Outputs (``out``, default ``results/calibration``): ``calibration.csv`` (one row per check ×
implementation), ``runs.csv`` (every run), ``calibration.png`` and ``meta.json``. Run with
``python scripts/calibrate.py`` or ``pytest -m slow tests/statistical/test_calibration.py``.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np
from scipy import stats as sps

from studies import stats
from tests.statistical import battery, mutants

FIRST_SEED = 1_000_000
CONFIDENCE = 0.99
REQUIRED_POWER = 0.99
SEEDS_PER_TASK = 10
SUMMARY_FIELDS = [
    "check",
    "claims",
    "implementation",
    "kind",
    "seeds",
    "rejections",
    "rate",
    "ci_low",
    "ci_high",
    "family_alpha",
    "per_test_alpha",
    "critical",
    "allowed_rejections",
    "passes",
    "seconds_per_run",
]


@cache
def _checks() -> dict:
    return {check.name: check for check in battery.checks()}


def _implementations() -> dict:
    return {"reference": battery.Reference(), **{mutant.name: mutant for mutant in mutants.MUTANTS}}


def plan(seeds: int) -> list[tuple[str, str, tuple[int, ...]]]:
    """Tasks (check, implementation, seeds): the null for every check, each mutant on its checks.

    Ordered seed chunk by seed chunk, so an interrupted run has covered every pair equally.
    """
    pairs = [(name, "reference") for name in _checks()]
    pairs += [(name, mutant.name) for mutant in mutants.MUTANTS for name in mutant.caught_by]
    chunks = [
        tuple(range(FIRST_SEED + start, FIRST_SEED + min(start + SEEDS_PER_TASK, seeds)))
        for start in range(0, seeds, SEEDS_PER_TASK)
    ]
    return [(check, impl, chunk) for chunk in chunks for check, impl in pairs]


def run_task(task) -> list[dict]:
    """Run one check on one implementation for a few seeds (top-level: picklable for a process pool)."""
    check_name, impl_name, seeds = task
    check, impl = _checks()[check_name], _implementations()[impl_name]
    records = []
    for seed in seeds:
        start = time.perf_counter()
        outcome = check.run(impl, seed)
        records.append(
            {
                "check": check_name,
                "implementation": impl_name,
                "seed": seed,
                "max_z": outcome.max_z,
                "critical": outcome.critical,
                "reject": outcome.reject,
                "worst_cell": outcome.worst_cell,
                "seconds": time.perf_counter() - start,
            }
        )
    return records


def summarize(records: list[dict]) -> list[dict]:
    """One row per (check, implementation): rejection rate, 99% interval, verdict."""
    checks = _checks()
    groups: dict = {}
    for record in records:
        groups.setdefault((record["check"], record["implementation"]), []).append(record)
    rows = []
    for (check_name, impl_name), runs in groups.items():
        check = checks[check_name]
        seeds, rejections = len(runs), sum(bool(run["reject"]) for run in runs)
        rate, low, high = stats.binomial_ci(rejections, seeds, confidence=CONFIDENCE)
        is_null = impl_name == "reference"
        alpha = 0.0 if check.exact else check.family_alpha
        allowed = int(sps.binom.ppf(CONFIDENCE, seeds, alpha)) if is_null else None
        passes = rejections <= allowed if is_null else rate >= REQUIRED_POWER
        rows.append(
            {
                "check": check_name,
                "claims": check.claims,
                "implementation": impl_name,
                "kind": "null" if is_null else "mutant",
                "seeds": seeds,
                "rejections": rejections,
                "rate": float(rate),
                "ci_low": float(low),
                "ci_high": float(high),
                "family_alpha": alpha,
                "per_test_alpha": check.per_test_alpha,
                "critical": check.critical,
                "allowed_rejections": "" if allowed is None else allowed,
                "passes": bool(passes),
                "seconds_per_run": float(np.mean([run["seconds"] for run in runs])),
            }
        )
    order = list(checks)
    rows.sort(key=lambda row: (row["kind"] != "null", order.index(row["check"]), row["implementation"]))
    return rows


def calibrate(
    seeds: int = 200, out="results/calibration", workers: int = 2, *, resume=False, progress=print
) -> list[dict]:
    """Run the Tier 2 calibration and write its CSVs, plot and metadata to ``out``; returns the summary.

    Every finished task is appended to ``runs.csv`` at once; ``resume=True`` keeps the runs already
    there (same code assumed) and runs only the missing ones.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "runs.csv"
    records = _read_runs(runs_path) if resume else []
    done_keys = {(r["check"], r["implementation"], r["seed"]) for r in records}
    tasks = [
        (check, impl, missing)
        for check, impl, chunk in plan(seeds)
        if (missing := tuple(seed for seed in chunk if (check, impl, seed) not in done_keys))
    ]
    if not resume:
        runs_path.unlink(missing_ok=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for done, chunk in enumerate(pool.map(run_task, tasks), start=1):
            _append_runs(runs_path, chunk)
            records += chunk
            if progress and (done % 20 == 0 or done == len(tasks)):
                progress(f"{done}/{len(tasks)} tasks, {time.perf_counter() - start:.0f} s")
    summary = summarize(records)
    _write_csv(out / "calibration.csv", summary, SUMMARY_FIELDS)
    plot(summary, out / "calibration.png")
    meta = _meta(seeds, workers, time.perf_counter() - start)
    meta.update(resumed=resume, sum_run_seconds=round(sum(record["seconds"] for record in records), 1))
    _write_text(out / "meta.json", json.dumps(meta, indent=2))
    return summary


RUN_FIELDS = ["check", "implementation", "seed", "max_z", "critical", "reject", "worst_cell", "seconds"]


def _append_runs(path: Path, records: list[dict]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RUN_FIELDS)
        if new:
            writer.writeheader()
        writer.writerows(records)


def _read_runs(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["seed"] = int(row["seed"])
        row["max_z"], row["critical"] = float(row["max_z"]), float(row["critical"])
        row["reject"], row["seconds"] = row["reject"] == "True", float(row["seconds"])
    return rows


def read_summary(path) -> list[dict]:
    """``calibration.csv`` back as summary rows (for re-plotting without rerunning)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for field in (
            "rate",
            "ci_low",
            "ci_high",
            "family_alpha",
            "per_test_alpha",
            "critical",
            "seconds_per_run",
        ):
            row[field] = float(row[field])
        row["seeds"], row["rejections"] = int(row["seeds"]), int(row["rejections"])
        row["allowed_rejections"] = int(row["allowed_rejections"]) if row["allowed_rejections"] else ""
        row["passes"] = row["passes"] == "True"
    return rows


def failures(summary: list[dict]) -> list[str]:
    """Human-readable lines for every row that misses its criterion."""
    lines = []
    for row in summary:
        if row["passes"]:
            continue
        if row["kind"] == "null":
            lines.append(
                f"{row['check']}: {row['rejections']}/{row['seeds']} false positives "
                f"> {row['allowed_rejections']} allowed at α = {row['family_alpha']}"
            )
        else:
            lines.append(
                f"{row['check']} vs {row['implementation']}: power {row['rate']:.3f} < {REQUIRED_POWER}"
            )
    return lines


def plot(summary: list[dict], path) -> None:
    """Two panels: false-positive rate per check against α; power per (check, mutant) against 0.99."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    null = [row for row in summary if row["kind"] == "null"]
    power = sorted(
        (row for row in summary if row["kind"] == "mutant"), key=lambda r: (r["check"], r["implementation"])
    )
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(13, max(4.5, 0.28 * len(power) + 1.5)), gridspec_kw={"width_ratios": [1, 1.2]}
    )
    _interval_panel(left, null, [row["check"] for row in null])
    for i, row in enumerate(null):
        left.plot([row["family_alpha"]] * 2, [i - 0.35, i + 0.35], color="C3", lw=2)
        allowed = (row["allowed_rejections"] or 0) / row["seeds"]
        left.plot([allowed] * 2, [i - 0.35, i + 0.35], color="C3", lw=1, ls=":")
    left.set_xlabel("false-positive rate (99% Clopper–Pearson CI)")
    left.set_title(
        f"Null: shipped estimators, {null[0]['seeds']} seeds\n"
        "red: stated family α; dotted: allowed (99% binomial quantile)"
    )
    left.set_xlim(-0.005, max(0.06, max(row["ci_high"] for row in null) + 0.005))
    _interval_panel(right, power, [f"{row['check']} ← {row['implementation']}" for row in power])
    right.axvline(REQUIRED_POWER, color="C3", lw=1.5)
    right.set_xlabel("power: rejection rate (99% Clopper–Pearson CI)")
    right.set_title("Planted bugs: check ← mutant it must catch\nred: required power 0.99")
    right.set_xlim(0.9, 1.005)
    fig.tight_layout()
    buffer = Path(path).with_suffix(".tmp.png")
    fig.savefig(buffer, dpi=130)
    plt.close(fig)
    os.replace(buffer, path)


def _interval_panel(axis, rows, labels) -> None:
    y = np.arange(len(rows))
    rate = np.array([row["rate"] for row in rows])
    errors = np.array([[row["rate"] - row["ci_low"], row["ci_high"] - row["rate"]] for row in rows]).T
    colors = ["C0" if row["passes"] else "C3" for row in rows]
    axis.errorbar(rate, y, xerr=errors, fmt="none", ecolor="0.4", capsize=3)
    axis.scatter(rate, y, c=colors, zorder=3)
    axis.set_yticks(y, labels, fontsize=8)
    axis.invert_yaxis()
    axis.grid(axis="x", alpha=0.3)


def _write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text + "\n")
    os.replace(temporary, path)


def _meta(seeds: int, workers: int, seconds: float) -> dict:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    import scipy

    return {
        "command": f"python scripts/calibrate.py --seeds {seeds} --workers {workers}",
        "git_commit": commit.strip(),
        "seeds": seeds,
        "first_seed": FIRST_SEED,
        "workers": workers,
        "wall_seconds_this_invocation": round(seconds, 1),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
        "backend": "numpy",
        "dtype": "float64",
    }
