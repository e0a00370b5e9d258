"""Peers timed with the process as the unit: a median per fresh process, its page faults, the
CPU-speed targets decided over processes, and the effect of glibc's allocator thresholds.

asv's interval for a median (``scripts/peers_figure.py``) pools the samples of its two processes
as if they were independent, but a call's time moves more between processes than within one. Here
each of ``--processes`` rounds starts one fresh Python process per implementation (interleaved:
every implementation once per round; round ``i`` with ``PYTHONHASHSEED=i``, the same in every run). A
process builds the call as the asv benchmark does (:func:`favor_bench.peers.peer_call`, one
thread), runs it once, then times ``--calls`` calls with process CPU time and counts its minor page
faults (``getrusage``: first touches of freshly mapped memory; how many a repeated call takes can
depend on what the process freed before, as glibc's mmap threshold rises to the largest mapped block
freed so far, mallopt(3)).

Printed, per ``--malloc`` setting and implementation: each process's median and faults per call;
the median over processes with its 99% interval from order statistics
(``asv_runner.statistics.quantile_ci``; distribution-free, valid for independent processes;
unbounded below 8 processes); Spearman's rank correlation of faults against medians over the
processes, with its two-sided p-value (null hypothesis: no monotone association). Then each peer
over each favor-bench call: the ratio of the two medians with the interval
[peer_lo / ours_hi, peer_hi / ours_lo] (coverage >= 98% by Bonferroni), and where the
peer has a target for the mode (:data:`favor_bench.peer_verdicts.TARGETS`) its verdict by
:func:`favor_bench.peer_verdicts.side_of`: met, missed or undecided, within each setting.

``--malloc`` names one or both allocator settings: ``default`` (glibc as a user gets it) and
``hold`` (every process started with glibc's thresholds fixed where its dynamic rule ends,
``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=67108864``: blocks under 32 MiB come from
the heap, whose free top goes back to the system only beyond 64 MiB). With both, every round runs
every implementation under each setting (interleaved), and per implementation the time under
``default`` over the time under ``hold`` is printed with its interval from opposite ends (>= 98%)
and what it shows: "faster with the heap held" (wholly above 1), "slower with the heap held" (wholly
below 1) or "no change shown"; then the Mann-Whitney rank-sum p-value of the two settings' process
medians, and the median faults per call under each. Null hypotheses: the setting does not change the
median over processes (a change is named only when the interval excludes 1: at most 2% false per
implementation, 2% times the number of implementations per run); the two settings' process medians
come from one distribution (the rank-sum test: for a rate alpha over a family of k such tests, read
p < alpha / k).

With ``--out FILE``, one JSON line per run is appended to FILE: the arguments, every process's
record, the summaries and verdicts, the commit (and whether estimators/, favor_bench/ or this
script differ from it), the package versions, the platform and the date.

Run::

    python scripts/process_timings.py --mode bidirectional --length 1024 --processes 16
    python scripts/process_timings.py --malloc default hold --processes 12
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from asv_runner.statistics import quantile_ci
from scipy import stats

from favor_bench import peer_verdicts, peers
from studies.core.provenance import git_state_of, package_versions

ROOT = Path(__file__).resolve().parents[1]

MALLOC_SETTINGS = ("default", "hold")
HELD_HEAP = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}
"""glibc's thresholds as its dynamic rule leaves them after a 32 MiB block is freed (the most it reaches)."""
CONFIDENCE = 0.99


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--implementations",
        nargs="+",
        choices=peers.IMPLEMENTATIONS,
        default=["favor-bench", "performer-pytorch"],
    )
    parser.add_argument("--mode", choices=peers.MODES, default="bidirectional")
    parser.add_argument("--pass", dest="attention_pass", choices=peers.PASSES, default="forward")
    parser.add_argument("--length", type=positive_int, default=1024, help="sequence length L")
    parser.add_argument("--processes", type=positive_int, default=16, help="rounds of fresh processes (>= 3)")
    parser.add_argument("--calls", type=positive_int, default=12, help="timed calls per process")
    parser.add_argument(
        "--malloc",
        nargs="+",
        choices=MALLOC_SETTINGS,
        default=["default"],
        help="allocator settings, each timed in every round (default: default)",
    )
    parser.add_argument("--out", type=Path, help="a JSON-lines file to append this run's record to")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.processes < 3:
        parser.error(f"--processes must be at least 3 for a rank correlation, got {args.processes}")
    if len(set(args.implementations)) != len(args.implementations):
        parser.error(f"--implementations must not repeat a name, got {args.implementations}")
    if len(set(args.malloc)) != len(args.malloc):
        parser.error(f"--malloc must not repeat a setting, got {args.malloc}")
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
    """One process: the peers call of ``args.implementations[0]`` built, run once, then timed;
    prints a JSON line."""
    import torch

    from favor_bench import common

    torch.set_num_threads(1)
    implementation = args.implementations[0]
    run = peers.peer_call("torch:cpu", implementation, args.mode, args.attention_pass, args.length)
    faults, times = faults_and_times(lambda: common.sync(run()), args.calls)
    print(json.dumps({"faults_per_call": faults, "median_ms": 1e3 * statistics.median(times)}))


def spawn(args, implementation, malloc, index):
    """Run :func:`child` for ``implementation`` in a fresh process with ``PYTHONHASHSEED=index``,
    under allocator setting ``malloc``."""
    env = {key: value for key, value in os.environ.items() if key not in HELD_HEAP}
    env.update({"PYTHONHASHSEED": str(index), "OMP_NUM_THREADS": "1"})
    if malloc == "hold":
        env.update(HELD_HEAP)
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        *("--implementations", implementation, "--mode", args.mode, "--pass", args.attention_pass),
        *("--length", str(args.length), "--calls", str(args.calls)),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"{implementation} (malloc {malloc}), process {index} failed (exit {done.returncode}): "
            f"{done.stderr.strip()[-500:]}"
        )
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


def median_interval(records):
    """(median over processes, low, high): the median of the per-process medians and its
    ``CONFIDENCE`` interval from order statistics (±inf ends where too few processes bound it)."""
    median, (low, high) = quantile_ci([r["median_ms"] for r in records], 0.5, alpha_min=1 - CONFIDENCE)
    return median, low, high


def summarize(timings):
    """Per implementation of ``timings``: ``median_ms``, ``low_ms``, ``high_ms`` (:func:`median_interval`),
    ``spearman_rho`` and ``p`` (:func:`association`), computed once for the report and the record."""
    out = {}
    for name, records in timings.items():
        median, low, high = median_interval(records)
        rho, p = association(records)
        out[name] = {"median_ms": median, "low_ms": low, "high_ms": high, "spearman_rho": rho, "p": p}
    return out


def time_with_interval(summary):
    """(median, low, high) of one :func:`summarize` entry, as :func:`peer_verdicts.ratio_columns` takes it."""
    return summary["median_ms"], summary["low_ms"], summary["high_ms"]


def comparisons(args, summaries):
    """One line per (peer, favor-bench call) pair in ``summaries`` (:func:`summarize`): the ratio
    peer / ours over processes with its interval, and the verdict where the peer has a target in
    this mode."""
    lines = []
    for peer in (name for name in summaries if name in peer_verdicts.PEERS):
        for ours in (name for name in summaries if name in peer_verdicts.OURS):
            ratio = peer_verdicts.ratio_columns(
                "r", *(time_with_interval(summaries[n]) for n in (peer, ours))
            )
            line = f"{peer} / {ours}: {ratio['r']:.2f} (interval {ratio['r_low']:.2f}-{ratio['r_high']:.2f})"
            target = peer_verdicts.TARGETS.get((peer, args.mode))
            if target is not None and args.attention_pass == "forward":
                verdict = peer_verdicts.side_of(ratio["r_low"], ratio["r_high"], target, at_least=True)
                line += f"; target >= {target:g}: {verdict}"
            lines.append(line)
    return lines


def allocator_effects(timings, summaries):
    """Per implementation, when ``timings`` and ``summaries`` (keyed by setting, then
    implementation) hold both ``default`` and ``hold``: the default time over the held time with
    its interval, what it shows, the two-sided Mann-Whitney rank-sum p-value of the two settings'
    process medians (null hypothesis: one distribution; a test of the setting that needs no
    interval), and the median faults per call under each (an empty list with one setting)."""
    if set(MALLOC_SETTINGS) - set(summaries):
        return []
    lines = []
    for name in summaries["default"]:
        ratio = peer_verdicts.ratio_columns(
            "r", *(time_with_interval(summaries[s][name]) for s in MALLOC_SETTINGS)
        )
        low, high = ratio["r_low"], ratio["r_high"]
        shown = (
            "faster with the heap held"
            if low > 1
            else "slower with the heap held"
            if high < 1
            else "no change shown"
        )
        medians = [[r["median_ms"] for r in timings[s][name]] for s in MALLOC_SETTINGS]
        p = stats.mannwhitneyu(*medians).pvalue
        faults = (statistics.median(r["faults_per_call"] for r in timings[s][name]) for s in MALLOC_SETTINGS)
        lines.append(
            f"{name}, default / hold: {ratio['r']:.2f} (interval {low:.2f}-{high:.2f}): {shown}; "
            f"rank-sum p = {p:.2g}; " + "median faults per call {:.0f} / {:.0f}".format(*faults)
        )
    return lines


def report(args, timings, summaries, compared):
    """The printed tables, per setting one per implementation with its summary, then the
    ``compared`` lines (comparisons within a setting, then the allocator effects)."""
    lines = [
        f"{args.mode} {args.attention_pass}, L = {args.length}, {args.processes} processes per "
        f"implementation and setting, {args.calls} calls each"
    ]
    for malloc, by_name in timings.items():
        for name, records in by_name.items():
            lines += [f"{name}, malloc {malloc}", f"{'process':>7}  {'median ms':>9}  {'faults/call':>11}"]
            lines += [
                f"{i:>7}  {r['median_ms']:>9.2f}  {r['faults_per_call']:>11.1f}"
                for i, r in enumerate(records)
            ]
            summary = summaries[malloc][name]
            lines.append(
                f"  median over processes {summary['median_ms']:.2f} ms "
                f"(99% interval {summary['low_ms']:.2f}-{summary['high_ms']:.2f}); "
                f"Spearman rho(faults, median) = {summary['spearman_rho']:.2f}, p = {summary['p']:.3g}"
            )
    return "\n".join(lines + compared)


def code_state():
    """``{"commit", "dirty"}`` of estimators/, favor_bench/ and this script, read when a run starts
    (as the studies read theirs), so a commit made while it measures is not named as its author."""
    sources = [Path(__file__).resolve(), *sorted((ROOT / "estimators").rglob("*.py"))]
    sources += sorted((ROOT / "favor_bench").glob("*.py"))
    return git_state_of(sources, ROOT)


def run_record(args, timings, summaries, compared, code):
    """The JSON record of one run (``--out``): what ran, where, on which code (``code``, from
    :func:`code_state`), and what it gave: processes and summaries keyed by allocator setting, then
    implementation; the printed comparison and allocator lines. An interval end that no order
    statistic bounds, and a correlation of a constant column, are null."""
    settings = {key: value for key, value in vars(args).items() if key not in ("child", "out")}
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **code,
        "packages": package_versions("torch:cpu"),
        "platform": platform.platform(),
        "settings": settings,
        "processes": timings,
        "summaries": {
            malloc: {
                name: {key: value if math.isfinite(value) else None for key, value in summary.items()}
                for name, summary in by_name.items()
            }
            for malloc, by_name in summaries.items()
        },
        "comparisons": compared,
    }


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    code = code_state()
    timings = {malloc: {name: [] for name in args.implementations} for malloc in args.malloc}
    try:
        for index in range(args.processes):
            for name in args.implementations:
                for malloc in args.malloc:
                    timings[malloc][name].append(spawn(args, name, malloc, index))
    except KeyboardInterrupt:
        rounds = min(len(records) for by_name in timings.values() for records in by_name.values())
        raise SystemExit(
            f"interrupted after {rounds} of {args.processes} rounds; nothing was written: rerun the command"
        ) from None
    summaries = {malloc: summarize(by_name) for malloc, by_name in timings.items()}
    compared = [
        f"malloc {malloc}: {line}" for malloc in args.malloc for line in comparisons(args, summaries[malloc])
    ]
    compared += allocator_effects(timings, summaries)
    print(report(args, timings, summaries, compared))
    if args.out is not None:
        append_record(args.out, run_record(args, timings, summaries, compared, code))


def append_record(path, record):
    """Append ``record`` as one JSON line to ``path`` (its folder made if needed); one line saying
    what to do when it cannot be written (the printed report is complete by then)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as file:
            file.write(json.dumps(record, allow_nan=False) + "\n")
    except OSError as error:
        raise SystemExit(
            f"cannot append to {path} ({error.strerror or error}); the report above is complete: "
            "rerun with --out set to a writable file"
        ) from None


if __name__ == "__main__":
    main()
