"""Registers, spills and shared memory of every fused-kernel launch, compiled for GPU architectures on CPU.

Needs no GPU: the launches a CUDA call would make are recorded from the host code and compiled by
Triton for each ``sm_<arch>`` (see :mod:`estimators.triton_favor.resources`). Prints one line per
distinct launch and exits with status 1 when a launch needs more shared memory than its
architecture allows (it would fail there with "out of resource: shared memory").

    python scripts/kernel_resources.py --arch 90 --head-dims 64,128 --dtypes float16
    python scripts/kernel_resources.py --arch 90 --head-dims 64 --dtypes float16 --config chunk=64
"""

from __future__ import annotations

import argparse
import os
import sys

DTYPES = ("float16", "bfloat16", "float32")
HEADER = "arch      d dtype     mode    kernel                 warps stages regs stack  shared   limit"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="80,86,90", help="compute capabilities, e.g. 80,86,90")
    parser.add_argument("--head-dims", default="16,32,64,128")
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--features", type=int, default=256, help="projections m")
    parser.add_argument("--feature", default="positive", choices=("positive", "hyperbolic"))
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a CONFIG launch parameter",
    )
    return parser.parse_args(argv)


def format_row(row, d, dtype, causal):
    from estimators.triton_favor.resources import SHARED_MEMORY_LIMIT

    mode = "causal" if causal else "bidir"
    shared, limit = row.shared_bytes / 1024, SHARED_MEMORY_LIMIT[row.arch] / 1024
    verdict = "" if row.fits else "  DOES NOT FIT"
    return (
        f"sm_{row.arch:<3d} {d:4d} {dtype:9s} {mode:7s} {row.name:22s} {row.num_warps:5d} "
        f"{row.num_stages:6d} {row.registers:4d} {row.stack_bytes:5d} {shared:6.1f}K {limit:6.1f}K{verdict}"
    )


def main(argv=None):
    args = parse_args(argv)
    os.environ.pop("TRITON_INTERPRET", None)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton's default for a launch, stated
    import torch

    from estimators.triton_favor import plan
    from estimators.triton_favor.resources import kernel_resources

    for override in args.config:
        key, value = override.split("=")
        if key not in plan.CONFIG:
            raise SystemExit(f"--config: {key!r} is not a launch parameter; CONFIG has {sorted(plan.CONFIG)}")
        plan.CONFIG[key] = int(value)

    print(HEADER)
    failures = 0
    for arch in (int(x) for x in args.arch.split(",")):
        for d in (int(x) for x in args.head_dims.split(",")):
            for dtype in args.dtypes.split(","):
                for causal in (False, True):
                    for row in kernel_resources(
                        d, args.features, args.feature, getattr(torch, dtype), causal, arch
                    ):
                        failures += not row.fits
                        print(format_row(row, d, dtype, causal), flush=True)
    print(f"{failures} launch(es) need more shared memory than their architecture allows")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
