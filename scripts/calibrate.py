"""Tier 2 calibration of the check set: false-positive rates and power against planted defects.

    python scripts/calibrate.py [--seeds 200] [--power-seeds 460] [--slow-seeds N] [--workers 2]
                                [--out results/calibration] [--resume | --replot | --from-runs]

Runs every (target, check) pair of CI's Tier 1 (studies/audit/suite.py) over fresh seeds: the pairs
that must pass over --seeds seeds, each planted defect on its checks over --power-seeds seeds (459
misses-free seeds are the fewest whose one-sided 99% Clopper–Pearson bound clears power 0.99), then
writes calibration.csv, runs.csv, calibration.png and meta.json (see studies/audit/calibration.py).
Exits 1 if a check exceeds its stated α or a defect's established power stays below 0.99.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studies.audit import calibration, calibration_plot, calibration_summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="fresh seeds per pair that must pass")
    parser.add_argument(
        "--power-seeds", type=int, default=460, help="fresh seeds per planted defect and check"
    )
    parser.add_argument(
        "--slow-seeds",
        type=int,
        default=None,
        help="fewer seeds for the slow checks (calibration.SLOW_CHECKS)",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--out", default="results/calibration", help="output folder")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in OUT/runs.csv")
    parser.add_argument("--replot", action="store_true", help="only redraw OUT/calibration.png from its CSV")
    parser.add_argument(
        "--from-runs",
        action="store_true",
        help="summarize the runs in OUT/runs.csv (a stopped run) without running",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.power_seeds < 1 or args.workers < 1:
        parser.error("--seeds, --power-seeds and --workers must be >= 1")
    if args.from_runs:
        summary = calibration.summarize_runs(args.out)
    elif args.replot:
        summary = calibration.read_summary(Path(args.out) / "calibration.csv")
        calibration_plot.plot(summary, Path(args.out) / "calibration.png")
    else:
        summary = calibration.calibrate(
            args.seeds,
            args.out,
            args.workers,
            power_seeds=args.power_seeds,
            slow_seeds=args.slow_seeds,
            resume=args.resume,
        )
    problems = calibration_summary.failures(summary)
    for row in summary:
        power = "" if row["kind"] == "null" else f" power ≥ {row['established_power']:.3f}"
        print(
            f"{row['check']:24s} {row['target']:34s} {row['rejections']:4d}/{row['seeds']} "
            f"rate {row['rate']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]{power} "
            f"{'ok' if row['passes'] else 'FAIL'}"
        )
    print(
        "\n".join(problems)
        if problems
        else "every check within its α; every defect's power established ≥ 0.99"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
