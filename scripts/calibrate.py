"""Tier 2 calibration of the statistical tests: false-positive rates and power against planted bugs.

    python scripts/calibrate.py [--seeds 200] [--workers 2] [--out results/calibration] [--resume | --replot]

Runs every Tier 1 check of tests/statistical/battery.py over fresh seeds on the shipped estimators
and on each planted bug meant to fail it, then writes calibration.csv, runs.csv, calibration.png and
meta.json (see tests/statistical/calibration.py). Exits 1 if a check misses its stated α or power.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.statistical import calibration


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="fresh seeds per check and implementation")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--out", default="results/calibration", help="output folder")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in OUT/runs.csv")
    parser.add_argument("--replot", action="store_true", help="only redraw OUT/calibration.png from its CSV")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.workers < 1:
        parser.error("--seeds and --workers must be >= 1")
    if args.replot:
        summary = calibration.read_summary(Path(args.out) / "calibration.csv")
        calibration.plot(summary, Path(args.out) / "calibration.png")
    else:
        summary = calibration.calibrate(args.seeds, args.out, args.workers, resume=args.resume)
    problems = calibration.failures(summary)
    for row in summary:
        print(
            f"{row['check']:20s} {row['implementation']:20s} {row['rejections']:4d}/{row['seeds']} "
            f"rate {row['rate']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}] "
            f"{'ok' if row['passes'] else 'FAIL'}"
        )
    print("\n".join(problems) if problems else "every check within its α and with power >= 0.99")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
