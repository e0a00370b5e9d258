"""``python -m studies.audit --target NAME`` (also ``python -m studies audit …``): run the check set.

Exit status 0 when the audit ran (whatever it found); with ``--strict``, 1 if any check failed or
raised an error; 2 when the target cannot be loaded (one line on stderr). Each check prints one
progress line (status, severity, seconds, statistic) as it finishes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .checks import CHECKS, Settings, draws, run_check
from .report import target_directory, write_report
from .targets import load_target, target_names


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m studies.audit",
        description="Run favor-bench's check set against a FAVOR implementation.",
    )
    parser.add_argument(
        "--target",
        required=True,
        help=f"{', '.join(target_names())}, favor-bench:<registry row>, planted:<name>, or module:object",
    )
    parser.add_argument(
        "--check", action="append", choices=list(CHECKS), help="run only this check (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="power 0.9 instead of 0.99 (CI)")
    parser.add_argument("--seed", type=int, default=0, help="root seed of every draw (default 0)")
    parser.add_argument(
        "--out", type=Path, default=None, help="report folder (default results/audit/<target>)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 if any check fails or errors"
    )
    return parser.parse_args(argv)


def run_audit(adapter, *, checks=None, settings: Settings | None = None, progress=None):
    """Run ``checks`` (default: all) on an :class:`Adapter` or a target name; returns
    (adapter, results, wall seconds)."""
    adapter = load_target(adapter) if isinstance(adapter, str) else adapter
    settings = settings or Settings()
    draws.clear()
    start = time.perf_counter()
    results = []
    for name in checks or list(CHECKS):
        results.append(run_check(name, adapter, settings))
        if progress is not None:
            progress(results[-1])
    draws.clear()
    return adapter, results, time.perf_counter() - start


def progress_line(result) -> str:
    """One line per finished check: status, severity, seconds, statistic or reason."""
    summary = result.statistic or result.reason or result.effect
    status = f"{result.status.upper():5s} {result.severity:10s} {result.name:24s}"
    return f"{status} {result.seconds:6.1f} s  {summary}"


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = Settings(quick=args.quick, seed=args.seed)
    try:
        adapter = load_target(args.target)
    except (ValueError, TypeError, ImportError, AttributeError) as error:
        print(f"python -m studies.audit: {error}", file=sys.stderr)
        return 2
    adapter, results, wall = run_audit(
        adapter, checks=args.check, settings=settings, progress=lambda r: print(progress_line(r), flush=True)
    )
    out = args.out or Path("results") / "audit" / target_directory(args.target)
    report = write_report(adapter, args.target, results, settings, out, wall, out_given=args.out is not None)
    failed = sum(r.status in ("fail", "error") for r in results)
    print(f"{sum(r.status == 'pass' for r in results)} of {len(results)} checks passed; report: {report}")
    return 1 if args.strict and failed else 0
