"""Page faults against time over fresh processes: how much of a peers timing is the allocator's state.

Each of ``--processes`` fresh Python processes builds one call of the peers benchmark
(:func:`favor_bench.peers.peer_call`: the asv configuration, one thread), runs it once, then times
``--calls`` calls with process CPU time and counts the minor page faults over them (``getrusage``).
A minor fault is the first touch of a page the allocator has just mapped; how many a repeated call
takes depends on what the process freed before (glibc's mmap threshold rises to the largest mapped
block freed so far, mallopt(3)). Process ``i`` runs with ``PYTHONHASHSEED=i``, so a run repeats
process by process.

Printed: per process the median time and the faults per call; then Spearman's rank correlation of
the two over the processes and its two-sided p-value (null hypothesis: no monotone association;
rejected at the 1% level when p < 0.01). ``--malloc hold`` starts every process with glibc's
thresholds fixed where its dynamic rule ends (``MALLOC_MMAP_THRESHOLD_=33554432
MALLOC_TRIM_THRESHOLD_=67108864``), to compare the two states in one run.

Run::

    python scripts/page_faults.py --implementation favor-bench --mode bidirectional --length 1024
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from scipy import stats

HELD_HEAP = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}
"""glibc's thresholds as its dynamic rule leaves them after a 32 MiB block is freed (the most it reaches)."""


def parse_args(argv=None):
    from favor_bench import peers

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--implementation", choices=peers.IMPLEMENTATIONS, default="favor-bench")
    parser.add_argument("--mode", choices=peers.MODES, default="bidirectional")
    parser.add_argument("--pass", dest="attention_pass", choices=peers.PASSES, default="forward")
    parser.add_argument("--length", type=positive_int, default=1024, help="sequence length L")
    parser.add_argument("--processes", type=positive_int, default=8, help="fresh processes (>= 3)")
    parser.add_argument("--calls", type=positive_int, default=12, help="timed calls per process")
    parser.add_argument("--malloc", choices=("default", "hold"), default="default")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.processes < 3:
        parser.error(f"--processes must be at least 3 for a rank correlation, got {args.processes}")
    return args


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def minor_faults():
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def faults_and_times(call, calls):
    """(minor faults per call, process-time seconds of each call) over ``calls`` calls of ``call``."""
    times = []
    before = minor_faults()
    for _ in range(calls):
        start = time.process_time()
        call()
        times.append(time.process_time() - start)
    return (minor_faults() - before) / calls, times


def child(args):
    """One process: the peers call built, run once, then timed; prints a JSON line."""
    import torch

    from favor_bench import common, peers

    torch.set_num_threads(1)
    run = peers.peer_call("torch:cpu", args.implementation, args.mode, args.attention_pass, args.length)
    faults, times = faults_and_times(lambda: common.sync(run()), args.calls)
    print(json.dumps({"faults_per_call": faults, "median_ms": 1e3 * statistics.median(times)}))


def spawn(args, index):
    """Run :func:`child` in a fresh process with ``PYTHONHASHSEED=index``; its JSON record."""
    env = {**os.environ, "PYTHONHASHSEED": str(index), "OMP_NUM_THREADS": "1"}
    if args.malloc == "hold":
        env.update(HELD_HEAP)
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        *("--implementation", args.implementation, "--mode", args.mode, "--pass", args.attention_pass),
        *("--length", str(args.length), "--calls", str(args.calls)),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"process {index} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def association(records):
    """Spearman's rho of faults per call against median time over ``records``, and its p-value
    (NaN when either column is constant: no ranks to associate)."""
    faults = [r["faults_per_call"] for r in records]
    medians = [r["median_ms"] for r in records]
    if len(set(faults)) < 2 or len(set(medians)) < 2:
        return float("nan"), float("nan")
    result = stats.spearmanr(faults, medians)
    return float(result.statistic), float(result.pvalue)


def report(args, records):
    """The printed table and the correlation line."""
    lines = [
        f"{args.implementation} {args.mode} {args.attention_pass}, L = {args.length}, "
        f"{args.calls} calls per process, malloc {args.malloc}",
        f"{'process':>7}  {'median ms':>9}  {'faults/call':>11}",
    ]
    lines += [f"{i:>7}  {r['median_ms']:>9.2f}  {r['faults_per_call']:>11.1f}" for i, r in enumerate(records)]
    rho, p = association(records)
    medians = [r["median_ms"] for r in records]
    lines.append(
        f"medians {min(medians):.2f}-{max(medians):.2f} ms; Spearman rho(faults, median) = {rho:.2f}, "
        f"p = {p:.3g} over {len(records)} processes"
    )
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    records = [spawn(args, index) for index in range(args.processes)]
    print(report(args, records))


if __name__ == "__main__":
    main()
