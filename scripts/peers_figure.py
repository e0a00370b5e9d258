"""favor-bench against performer-pytorch and SDPA on one machine, from one asv run.

Reads ``peers.PeerAttentionTime.time_attention`` and ``peers.MachineFloor`` from the newest asv
results file that holds them and writes to ``results/peers/``. favor-bench has two rows, ``OURS``:
the default call (``favor-bench``) and ``impl="compiled"`` (``favor-bench-compiled``); every ratio
and claim is given for each.

* ``peers.csv``: per (backend, mode, pass, L) each implementation's median time, the ratios
  time(peer) / time(ours) (above 1: ours is faster), and for the forward pass the floor time and
  each time / floor;
* ``claims.csv``: the CPU-speed targets for each of ours, each measured: met, not met, undecided
  (the run's interval holds the target), or not attainable where the peer itself runs within the
  target of the floor, with the numbers and intervals that decide it;
* ``peers.png`` / ``.svg``: one row of panels per implementation of ours: the ratios against L per
  mode, and its and performer-pytorch's distance to the floor (a peer within a target of the floor
  cannot be beaten by that target);
* ``meta.json``: the results file, its commit, machine, environment and date
  (the committed figure's asv results file is kept beside it, ``asv_results.json``).

The floor of a FAVOR forward with B·H heads: 8·B·H·L·m·d flops at the measured sgemm rate plus
2·B·H·L·m exponentials at the measured exp rate (``favor_bench/peers.py``).

Verdicts: :mod:`favor_bench.peer_verdicts` (asv's 99% intervals decide each target).

Run (single thread, CPU time)::

    FAVOR_BENCH_TIMER=process OMP_NUM_THREADS=1 asv run -E existing:$(which python) \\
        -b "peers\\.(PeerAttentionTime|MachineFloor)" --set-commit-hash $(git rev-parse HEAD)
    python scripts/peers_figure.py
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from pathlib import Path

from favor_bench import peers
from favor_bench.asv_results import benchmark_rows, newest_results_file
from favor_bench.peer_verdicts import (
    FLOOR_TARGET,
    OURS,
    PEERS,
    TARGETS,
    claims,
    ratio_columns,
)

TIME_KEY = "peers.PeerAttentionTime.time_attention"
SGEMM_KEY = "peers.MachineFloor.track_sgemm_gflops"
EXP_KEY = "peers.MachineFloor.track_exp_rate"
NAMES = ("backend", "implementation", "mode", "pass", "L")
PEER_STYLE = {"performer-pytorch": "tab:green", "sdpa": "tab:red"}
PASS_STYLE = {"forward": "-", "forward+backward": "--"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results-dir", type=Path, default=Path(".asv/results"), help="asv results folder")
    parser.add_argument("--machine", default=None, help="asv machine name (default: newest with results)")
    parser.add_argument(
        "--results-file", type=Path, default=None, help="one asv results file (default: the newest one)"
    )
    parser.add_argument("--backend", default="torch:cpu", help="backend parameter to report")
    parser.add_argument("--out", type=Path, default=Path("results/peers"), help="output folder")
    return parser.parse_args(argv)


def floor_seconds(length: int, sgemm_gflops: float, exp_rate: float) -> float:
    """The FAVOR forward floor: 8·B·H·L·m·d flops and 2·B·H·L·m exponentials at the measured rates."""
    heads = peers.BATCH * peers.HEADS
    flops = 8 * heads * length * peers.M * peers.D
    exps = 2 * heads * length * peers.M
    return flops / (sgemm_gflops * 1e9) + exps / (exp_rate * 1e9)


def table(times: list[dict], backend: str, sgemm: float | None, exp_rate: float | None) -> list[dict]:
    """One row per (mode, pass, L): each implementation's time with its 99% interval, each peer's
    time over each of ours, and for the forward pass the floor and each time over it; every ratio with
    its interval (``_low``, ``_high``: ratios of opposite ends, see the module docstring)."""
    by_key = {
        (r["implementation"], r["mode"], r["pass"], r["L"]): (
            r["value"],
            r["value"] if r.get("ci_low") is None else r["ci_low"],
            r["value"] if r.get("ci_high") is None else r["ci_high"],
        )
        for r in times
        if r["backend"] == backend
    }
    rows = []
    for mode in peers.MODES:
        for attention_pass in peers.PASSES:
            for length in peers.LENGTHS:
                row = {"backend": backend, "mode": mode, "pass": attention_pass, "L": length}
                floor = None
                if attention_pass == "forward" and sgemm and exp_rate:
                    floor = floor_seconds(length, sgemm, exp_rate)
                times_of = {}
                for name in peers.IMPLEMENTATIONS:
                    times_of[name] = by_key.get((name, mode, attention_pass, length), (None, None, None))
                    row[f"{name}_s"], row[f"{name}_low_s"], row[f"{name}_high_s"] = times_of[name]
                for ours in OURS:
                    for peer in PEERS:
                        row |= ratio_columns(f"{peer}_over_{ours}", times_of[peer], times_of[ours])
                row["floor_s"] = floor
                for name in (*OURS, *PEERS):
                    fixed = (floor, floor, floor) if floor else (None, None, None)
                    row |= ratio_columns(f"{name}_over_floor", times_of[name], fixed)
                rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in row.items()}
        )
    path.write_text(buffer.getvalue())


def plot(rows: list[dict], stem: Path, title: str) -> None:
    """One row of panels per favor-bench implementation: each peer's time over it per mode, and the
    distance to the floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(len(OURS), 3, figsize=(13.5, 4.8 * len(OURS)), constrained_layout=True)
    for axes, ours in zip(grid, OURS, strict=True):
        for ax, mode in zip(axes[:2], peers.MODES, strict=True):
            _ratio_panel(ax, rows, ours, mode)
        _floor_panel(axes[2], rows, ours)
    fig.suptitle(
        f"{title}\nerror bars: 99% intervals (ratios: of opposite ends); {UNBOUNDED_NOTE}", fontsize=9
    )
    for suffix in (".png", ".svg"):
        fig.savefig(stem.with_suffix(suffix), dpi=150)
    plt.close(fig)


UNBOUNDED_NOTE = "open marker: 99% interval unbounded on one side (bar drawn on the other)"


def _errorbar(ax, rows, mode, attention_pass, column, style, offset, **options):
    """``column`` against L with its 99% interval as error bars, each series moved ``offset`` octaves
    along L so that bars at one L do not cover each other; an end at 0 or inf (unbounded) is not
    drawn and its point is an open marker."""
    points = [
        (r["L"] * 2.0**offset, r[column], r[f"{column}_low"], r[f"{column}_high"])
        for r in rows
        if (r["mode"], r["pass"]) == (mode, attention_pass) and r[column]
    ]
    if not points:
        return
    x, y, low, high = (list(values) for values in zip(*points, strict=True))
    below = [value - end if end > 0 else 0.0 for value, end in zip(y, low, strict=True)]
    above = [end - value if math.isfinite(end) else 0.0 for value, end in zip(y, high, strict=True)]
    unbounded = [a <= 0 or not math.isfinite(b) for a, b in zip(low, high, strict=True)]
    bounded = [position for position, flag in enumerate(unbounded) if not flag]
    line = ax.errorbar(x, y, yerr=[below, above], fmt=style, capsize=3, markevery=bounded, **options)
    if any(unbounded):
        u, v = zip(*((u, v) for u, v, flag in zip(x, y, unbounded, strict=True) if flag), strict=True)
        color = line.lines[0].get_color()
        ax.plot(u, v, linestyle="none", marker=options.get("marker"), markerfacecolor="white", color=color)


def _offset(position: int, count: int, step: float = 0.08) -> float:
    """Octaves to move series ``position`` of ``count`` along L, centred on the true L."""
    return (position - (count - 1) / 2) * step


def _ratio_panel(ax, rows, ours, mode):
    """time(peer) / time(ours) against L with 99% intervals, both passes, with the target line."""
    series = [(peer, attention_pass) for peer in PEERS for attention_pass in peers.PASSES]
    for position, (peer, attention_pass) in enumerate(series):
        _errorbar(
            ax,
            rows,
            mode,
            attention_pass,
            f"{peer}_over_{ours}",
            PASS_STYLE[attention_pass],
            _offset(position, len(series)),
            marker="o",
            color=PEER_STYLE[peer],
            label=f"{peer}, {attention_pass}",
        )
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.annotate(
        f"above 1: {ours} faster",
        (0.98, 1.0),
        xycoords=ax.get_yaxis_transform(),
        xytext=(-2, 3),
        textcoords="offset points",
        ha="right",
        fontsize=7,
    )
    target = TARGETS.get(("performer-pytorch", mode))
    if target:
        ax.axhline(
            target,
            color=PEER_STYLE["performer-pytorch"],
            linestyle=":",
            linewidth=1.0,
            label=f"target vs performer-pytorch: {target:g}x",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length L")
    ax.set_ylabel(f"time(peer) / time({ours})")
    ax.set_title(f"{ours}, {mode}")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)


def _floor_panel(ax, rows, ours):
    """time / floor of ``ours`` and performer-pytorch with 99% intervals, forward, both modes."""
    names = ((ours, "tab:blue"), ("performer-pytorch", PEER_STYLE["performer-pytorch"]))
    series = [
        (mode, line, marker, name, color)
        for mode, line, marker in zip(peers.MODES, ("-", "--"), ("o", "s"), strict=True)
        for name, color in names
    ]
    for position, (mode, line, marker, name, color) in enumerate(series):
        _errorbar(
            ax,
            rows,
            mode,
            "forward",
            f"{name}_over_floor",
            line,
            _offset(position, len(series)),
            marker=marker,
            color=color,
            label=f"{name} {mode} forward",
        )
    ax.axhline(
        FLOOR_TARGET, color="gray", linestyle=":", linewidth=1.0, label=f"target: {FLOOR_TARGET:g}x floor"
    )
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("time / floor (measured sgemm and exp rates)")
    ax.set_title(f"{ours}: time over the floor")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)


def main(argv=None) -> int:
    args = parse_args(argv)
    path = args.results_file or newest_results_file(args.results_dir, TIME_KEY, args.machine)
    data = json.loads(path.read_text())
    times = benchmark_rows(data, TIME_KEY, NAMES)
    sgemm = {r["backend"]: r["value"] for r in benchmark_rows(data, SGEMM_KEY, ("backend",))}
    exp_rate = {r["backend"]: r["value"] for r in benchmark_rows(data, EXP_KEY, ("backend",))}
    rows = table(times, args.backend, sgemm.get(args.backend), exp_rate.get(args.backend))
    if not any(r[f"{ours}_s"] for r in rows for ours in OURS):
        raise SystemExit(f"no favor-bench timings for {args.backend} in {path}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "peers.csv", rows)
    verdicts = claims(rows)
    write_csv(args.out / "claims.csv", verdicts)
    versions = data.get("params", {})
    title = (
        f"{args.backend}, B={peers.BATCH}, H={peers.HEADS}, d={peers.D}, m={peers.M}, float32; one asv run "
        f"(commit {data.get('commit_hash', '?')[:8]}, {versions.get('cpu', '?')}, "
        f"{versions.get('num_cpu', '?')} cores); the floor's rates from the same run: "
        f"sgemm {sgemm.get(args.backend, math.nan):.0f} GFLOP/s, "
        f"exp {exp_rate.get(args.backend, math.nan):.2f}e9/s"
    )
    plot(rows, args.out / "peers", title)
    meta = {
        "results_file": str(path),
        "commit": data.get("commit_hash"),
        "machine": versions.get("machine"),
        "environment": data.get("env_name"),
        "date_ms": data.get("date"),
        "backend": args.backend,
        "sgemm_gflops": sgemm.get(args.backend),
        "exp_rate_1e9_per_s": exp_rate.get(args.backend),
    }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    for claim in verdicts:
        print(f"{claim['verdict']:>8}  {claim['claim']}: {claim['measured']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
