"""Tier 2: the real error rates of the check set, measured over fresh seeds.

The pairs are those of CI's Tier 1 (:mod:`studies.audit.suite`):

* false-positive rate: every (target, check) that must pass (favor-bench's registry rows, the
  correct planted adapters), over ``seeds`` fresh seeds. The count k of failures is compared with
  the check's family α: calibrated when k does not exceed the 99% quantile of Binomial(seeds, α)
  (α = 0 for deterministic checks: no failure allowed). The Clopper–Pearson 99% interval of k/seeds
  is reported with it.
* power: every planted defect on each check in its ``caught_by``, over ``power_seeds`` fresh seeds.
  The power the seeds establish is the one-sided 99% Clopper–Pearson lower bound of the rejection
  rate; it reaches the required 0.99 only with at least 459 seeds and no miss (0.01^{1/n} ≥ 0.99), so
  the summary states the bound and marks whether it clears 0.99, never more.

Outputs (``out``, default ``results/calibration``): ``calibration.csv`` (one row per pair),
``runs.csv`` (every run), ``calibration.png`` and ``meta.json``. Run with
``python scripts/calibrate.py``. This module runs the pairs and keeps the files; the verdicts on the
runs are those of :mod:`~studies.audit.calibration_summary`, the figure that of
:mod:`~studies.audit.calibration_plot`.

Provenance: every run carries ``code``, the fingerprint of the files that decide its verdict (the
``estimators`` package, the ``studies.audit`` package with its checks, adapters and planted
defects but without the modules that only run, report or calibrate (:data:`NOT_VERDICT`), and
``studies/core/stats.py``; :func:`audit_fingerprint`). A resumed calibration keeps only the
runs of the code on disk and recomputes the rest, so a summary never mixes verdicts of two versions
of a check; ``meta.json`` names the fingerprint, the commit and whether those files were dirty.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from studies.core.provenance import fingerprint_of, git_state_of

from . import suite
from .calibration_plot import plot
from .calibration_summary import summarize
from .checks import run_check
from .targets import load_target

FIRST_SEED = 1_000_000
SEEDS_PER_TASK = 10
SLOW_CHECKS = ("attention-delta",)
"""Checks of about 10 s per run (thousands of attention calls), which ``slow_seeds`` can cap."""
SUMMARY_FIELDS = [
    "check",
    "target",
    "kind",
    "seeds",
    "rejections",
    "errors",
    "rate",
    "ci_low",
    "ci_high",
    "family_alpha",
    "allowed_rejections",
    "established_power",
    "passes",
    "seconds_per_run",
]
RUN_FIELDS = ["check", "target", "seed", "status", "alpha", "seconds", "code"]


NOT_VERDICT = (
    "studies/audit/calibration.py",
    "studies/audit/calibration_plot.py",
    "studies/audit/calibration_summary.py",
    "studies/audit/cli.py",
    "studies/audit/report.py",
)
"""Modules of ``studies.audit`` that run checks, write reports or calibrate, but decide no verdict."""


def _verdict_files(root: Path | None = None) -> tuple[list[Path], Path]:
    """(the files that decide a check's verdict, sorted; the repository root, this checkout's by
    default)."""
    root = Path(__file__).resolve().parents[2] if root is None else Path(root)
    files = [
        path
        for package in ("estimators", "studies/audit")
        for path in (root / package).rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix != ".pyc"
        and path.relative_to(root).as_posix() not in NOT_VERDICT
    ]
    return [*sorted(files), root / "studies" / "core" / "stats.py"], root


@functools.cache
def audit_fingerprint() -> str:
    """SHA-256 over the paths and bytes of the files that decide a verdict (module docstring)."""
    return fingerprint_of(*_verdict_files())


def plan(
    seeds: int, power_seeds: int, slow_seeds: int | None = None
) -> list[tuple[str, str, tuple[int, ...]]]:
    """Tasks (target, check, seeds), chunk by chunk so an interrupted run covers every pair equally.

    Pairs of the checks in :data:`SLOW_CHECKS` (tens of seconds per run) get ``slow_seeds`` seeds
    when given, instead of ``seeds`` or ``power_seeds``.
    """

    def count(check, default):
        return default if slow_seeds is None or check not in SLOW_CHECKS else min(default, slow_seeds)

    pairs = [(pair, count(pair[1], seeds)) for pair in suite.null_pairs()]
    pairs += [(pair, count(pair[1], power_seeds)) for pair in suite.defect_pairs()]
    tasks = []
    for start in range(0, max(n for _, n in pairs), SEEDS_PER_TASK):
        for (target, check), n in pairs:
            chunk = tuple(range(FIRST_SEED + start, FIRST_SEED + min(start + SEEDS_PER_TASK, n)))
            if chunk:
                tasks.append((target, check, chunk))
    return tasks


def run_task(task) -> list[dict]:
    """Run one check on one target for a few seeds (top-level: picklable for a process pool)."""
    target, check, seeds = task
    adapter = load_target(target)
    records = []
    for seed in seeds:
        result = run_check(check, adapter, suite.settings(seed))
        records.append(
            {
                "check": check,
                "target": target,
                "seed": seed,
                "status": result.status,
                "alpha": result.alpha,
                "seconds": result.seconds,
                "code": audit_fingerprint(),
            }
        )
    return records


def calibrate(
    seeds: int = 200,
    out="results/calibration",
    workers: int = 2,
    *,
    power_seeds: int = 460,
    slow_seeds: int | None = None,
    resume=False,
    progress=print,
) -> list[dict]:
    """Run the Tier 2 calibration and write its CSVs, plot and metadata to ``out``; returns the summary.

    Every finished task is appended to ``runs.csv`` at once; ``resume=True`` keeps the runs already
    there that the code on disk computed (:func:`audit_fingerprint`), drops the others and runs
    only the missing ones.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "runs.csv"
    records, stale = _current_runs(runs_path) if resume else ([], 0)
    if stale:
        progress(f"dropping {stale} runs computed by other code (fingerprint differs)")
        runs_path.unlink()
        _append_runs(runs_path, records)
    done = {(r["target"], r["check"], r["seed"]) for r in records}
    tasks = [
        (target, check, missing)
        for target, check, chunk in plan(seeds, power_seeds, slow_seeds)
        if (missing := tuple(seed for seed in chunk if (target, check, seed) not in done))
    ]
    if not resume:
        runs_path.unlink(missing_ok=True)
    _write_text(out / "meta.json", json.dumps(_meta(seeds, power_seeds, slow_seeds, workers, 0.0), indent=2))
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for count, chunk in enumerate(pool.map(run_task, tasks), start=1):
            _append_runs(runs_path, chunk)
            records += chunk
            if progress and (count % 20 == 0 or count == len(tasks)):
                progress(f"{count}/{len(tasks)} tasks, {time.perf_counter() - start:.0f} s")
    summary = summarize(records)
    _write_csv(out / "calibration.csv", summary, SUMMARY_FIELDS)
    plot(summary, out / "calibration.png")
    meta = _meta(seeds, power_seeds, slow_seeds, workers, time.perf_counter() - start)
    meta.update(resumed=resume, sum_run_seconds=round(sum(float(r["seconds"]) for r in records), 1))
    _write_text(out / "meta.json", json.dumps(meta, indent=2))
    return summary


def summarize_runs(out="results/calibration") -> list[dict]:
    """Summary, CSV, plot and metadata from the runs already in ``out/runs.csv`` (a run stopped before
    its planned seeds: each pair is summarized over the seeds it has)."""
    out = Path(out)
    records, stale = _current_runs(out / "runs.csv")
    summary = summarize(records)
    _write_csv(out / "calibration.csv", summary, SUMMARY_FIELDS)
    plot(summary, out / "calibration.png")
    meta = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else {}
    done = {(r["target"], r["check"]) for r in records}
    planned = suite.null_pairs() + suite.defect_pairs()
    meta.update(
        pairs_without_runs=[f"{target} {check}" for target, check in planned if (target, check) not in done],
        summarized_from_runs=True,
        runs=len(records),
        runs_of_other_code_ignored=stale,
        sum_run_seconds=round(sum(float(r["seconds"]) for r in records), 1),
        git_commit_summary=git_state_of(*_verdict_files())["commit"],
    )
    _write_text(out / "meta.json", json.dumps(meta, indent=2))
    return summary


def _current_runs(path: Path) -> tuple[list[dict], int]:
    """(runs of ``path`` computed by the code on disk, how many others were left out)."""
    runs = _read_runs(path)
    current = [run for run in runs if run.get("code") == audit_fingerprint()]
    return current, len(runs) - len(current)


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
        row["seed"], row["alpha"], row["seconds"] = (
            int(row["seed"]),
            float(row["alpha"]),
            float(row["seconds"]),
        )
    return rows


def read_summary(path) -> list[dict]:
    """``calibration.csv`` back as summary rows (for re-plotting without rerunning)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for name in ("rate", "ci_low", "ci_high", "family_alpha", "seconds_per_run"):
            row[name] = float(row[name])
        for name in ("seeds", "rejections", "errors"):
            row[name] = int(row[name])
        row["allowed_rejections"] = int(row["allowed_rejections"]) if row["allowed_rejections"] else ""
        row["established_power"] = float(row["established_power"]) if row["established_power"] else ""
        row["passes"] = row["passes"] == "True"
    return rows


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


def _meta(seeds: int, power_seeds: int, slow_seeds, workers: int, seconds: float) -> dict:
    state = git_state_of(*_verdict_files())
    import scipy

    return {
        "command": f"python scripts/calibrate.py --seeds {seeds} --power-seeds {power_seeds} "
        + (f"--slow-seeds {slow_seeds} " if slow_seeds is not None else "")
        + f"--workers {workers}",
        "code": audit_fingerprint(),
        "git_commit": state["commit"],
        "dirty": state["dirty"],
        "seeds": seeds,
        "power_seeds": power_seeds,
        "slow_seeds": slow_seeds,
        "slow_checks": list(SLOW_CHECKS),
        "first_seed": FIRST_SEED,
        "quick": suite.QUICK,
        "workers": workers,
        "wall_seconds_this_invocation": round(seconds, 1),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
    }
