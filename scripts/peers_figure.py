"""favor-bench against performer-pytorch and SDPA on one machine, from one asv run.

Reads ``peers.PeerAttentionTime.time_attention`` and ``peers.MachineFloor`` from the newest asv
results file that holds them and writes to ``results/peers/``. favor-bench has two rows, ``OURS``:
the default call (``favor-bench``) and ``impl="compiled"`` (``favor-bench-compiled``); every ratio
and claim is given for each.

* ``peers.csv``: per (backend, mode, pass, L) each implementation's median time, the ratios
  time(peer) / time(ours) (above 1: ours is faster), and for the forward pass the floor time and
  each time / floor;
* ``claims.csv``: the CPU-speed targets for each of ours, each measured (met, not met, or not
  attainable where the peer itself runs within the target of the floor, with the number);
* ``peers.png`` / ``.svg``: one row of panels per implementation of ours: the ratios against L per
  mode, and its and performer-pytorch's distance to the floor (a peer within a target of the floor
  cannot be beaten by that target);
* ``meta.json``: the results file, its commit, machine, environment and date
  (the committed figure's asv results file is kept beside it, ``asv_results.json``).

The floor of a FAVOR forward with B·H heads: 8·B·H·L·m·d flops at the measured sgemm rate plus
2·B·H·L·m exponentials at the measured exp rate (``favor_bench/peers.py``).

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

TIME_KEY = "peers.PeerAttentionTime.time_attention"
SGEMM_KEY = "peers.MachineFloor.track_sgemm_gflops"
EXP_KEY = "peers.MachineFloor.track_exp_rate"
NAMES = ("backend", "implementation", "mode", "pass", "L")
OURS = tuple(peers.FAVOR_IMPLS)
PEERS = ("performer-pytorch", "sdpa")
PEER_STYLE = {"performer-pytorch": "tab:green", "sdpa": "tab:red"}
PASS_STYLE = {"forward": "-", "forward+backward": "--"}
TARGETS = {
    ("performer-pytorch", "bidirectional"): 2.0,
    ("performer-pytorch", "causal"): 10.0,
}
FLOOR_TARGET, FLOOR_FROM = 2.0, 16384
CAUSAL_OVER_BIDIRECTIONAL = 1.5


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
    """One row per (mode, pass, L): each implementation's time, each peer's time over each of ours, and
    for the forward pass the floor and each time over it."""
    by_key = {
        (r["implementation"], r["mode"], r["pass"], r["L"]): r["value"]
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
                for name in peers.IMPLEMENTATIONS:
                    row[f"{name}_s"] = by_key.get((name, mode, attention_pass, length))
                for ours in OURS:
                    for peer in PEERS:
                        theirs, mine = row[f"{peer}_s"], row[f"{ours}_s"]
                        row[f"{peer}_over_{ours}"] = theirs / mine if theirs and mine else None
                row["floor_s"] = floor
                for name in (*OURS, *PEERS):
                    time = row[f"{name}_s"]
                    row[f"{name}_over_floor"] = time / floor if time and floor else None
                rows.append(row)
    return rows


def crossover(rows: list[dict], mode: str, attention_pass: str, ours: str = "favor-bench") -> str:
    """The smallest measured L from which ``ours`` beats SDPA at every larger measured L."""
    points = [r for r in rows if (r["mode"], r["pass"]) == (mode, attention_pass) and r[f"{ours}_s"]]
    faster_from = None
    for row in sorted(points, key=lambda r: r["L"], reverse=True):
        ratio = row[f"sdpa_over_{ours}"]
        if ratio is not None and ratio > 1:
            faster_from = row["L"]
        elif ratio is not None:
            break
    return "never (in the measured range)" if faster_from is None else f"L = {faster_from}"


def peer_claim(rows: list[dict], peer: str, mode: str, target: float, ours: str = "favor-bench") -> dict:
    """``{ours}: {mode} forward >= target x peer`` at every measured L, with its verdict.

    No implementation of the forward runs below the floor, so no implementation is faster than the
    peer by more than time(peer) / floor. Where the target is missed only at lengths where that bound
    is itself below the target, the verdict is "not attainable" (the peer runs within ``target`` of
    the floor there), and the measured text names those lengths and bounds.
    """
    points = [
        r
        for r in rows
        if (r["mode"], r["pass"]) == (mode, "forward") and r[f"{peer}_over_{ours}"] is not None
    ]
    claim = f"{ours}: {mode} forward >= {target:g}x {peer} at every measured L >= 1024"
    if not points:
        return {"claim": claim, "measured": "n/a", "verdict": "n/a"}
    worst = min(r[f"{peer}_over_{ours}"] for r in points)
    measured = f"least ratio {worst:.2f} over {len(points)} lengths"
    missed = [r for r in points if r[f"{peer}_over_{ours}"] < target]
    if not missed:
        return {"claim": claim, "measured": measured, "verdict": "met"}
    bounded = [r for r in missed if r[f"{peer}_over_floor"] is not None and r[f"{peer}_over_floor"] < target]
    if len(bounded) < len(missed):
        return {"claim": claim, "measured": measured, "verdict": "not met"}
    bounds = ", ".join(f"{r[f'{peer}_over_floor']:.2f} at L = {r['L']}" for r in bounded)
    measured += f"; missed only where {peer} itself runs within {target:g}x of the floor ({bounds})"
    return {"claim": claim, "measured": measured, "verdict": "not attainable"}


def _bounded_claim(claim: str, values: list[float], describe: str, target: float) -> dict:
    """``claim`` met when the largest of ``values`` is at most ``target`` (n/a without values)."""
    if not values:
        return {"claim": claim, "measured": "n/a", "verdict": "n/a"}
    largest = max(values)
    return {
        "claim": claim,
        "measured": f"{describe} {largest:.2f}",
        "verdict": "met" if largest <= target else "not met",
    }


def claims(rows: list[dict]) -> list[dict]:
    """Each CPU-speed target for each of favor-bench's implementations, with the number that decides it."""
    out = []
    for ours in OURS:
        out += [peer_claim(rows, peer, mode, target, ours) for (peer, mode), target in TARGETS.items()]
        floor = [
            r[f"{ours}_over_floor"]
            for r in rows
            if (r["mode"], r["pass"]) == ("bidirectional", "forward")
            and r["L"] >= FLOOR_FROM
            and r[f"{ours}_over_floor"] is not None
        ]
        claim = f"{ours}: bidirectional forward within {FLOOR_TARGET:g}x of the floor at L >= {FLOOR_FROM}"
        out.append(_bounded_claim(claim, floor, "largest time/floor", FLOOR_TARGET))
        forward = {(r["mode"], r["L"]): r[f"{ours}_s"] for r in rows if r["pass"] == "forward"}
        causal_ratios = [
            forward[("causal", length)] / forward[("bidirectional", length)]
            for length in peers.LENGTHS
            if forward.get(("causal", length)) and forward.get(("bidirectional", length))
        ]
        claim = f"{ours}: causal forward <= {CAUSAL_OVER_BIDIRECTIONAL:g}x bidirectional at every measured L"
        out.append(
            _bounded_claim(claim, causal_ratios, "largest causal/bidirectional", CAUSAL_OVER_BIDIRECTIONAL)
        )
        for mode in peers.MODES:
            for attention_pass in peers.PASSES:
                out.append(
                    {
                        "claim": f"{ours}: crossover with SDPA, {mode} {attention_pass}: faster from",
                        "measured": crossover(rows, mode, attention_pass, ours),
                        "verdict": "reported",
                    }
                )
    return out


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

    fig, grid = plt.subplots(len(OURS), 3, figsize=(13.5, 4.0 * len(OURS)), constrained_layout=True)
    for axes, ours in zip(grid, OURS, strict=True):
        for ax, mode in zip(axes[:2], peers.MODES, strict=True):
            _ratio_panel(ax, rows, ours, mode)
        _floor_panel(axes[2], rows, ours)
    fig.suptitle(title, fontsize=9)
    for suffix in (".png", ".svg"):
        fig.savefig(stem.with_suffix(suffix), dpi=150)
    plt.close(fig)


def _points(rows, mode, attention_pass, column):
    return [
        (r["L"], r[column]) for r in rows if (r["mode"], r["pass"]) == (mode, attention_pass) and r[column]
    ]


def _ratio_panel(ax, rows, ours, mode):
    """time(peer) / time(ours) against L, both passes, with the target line."""
    for peer in PEERS:
        for attention_pass in peers.PASSES:
            points = _points(rows, mode, attention_pass, f"{peer}_over_{ours}")
            if points:
                x, y = zip(*points, strict=True)
                style = PASS_STYLE[attention_pass]
                ax.plot(x, y, style, marker="o", color=PEER_STYLE[peer], label=f"{peer}, {attention_pass}")
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
        ax.axhline(target, color=PEER_STYLE["performer-pytorch"], linestyle=":", linewidth=1.0)
        ax.annotate(
            f"target vs performer: {target:g}x",
            (0.98, target),
            xycoords=ax.get_yaxis_transform(),
            xytext=(-2, -9),
            textcoords="offset points",
            ha="right",
            fontsize=7,
            color=PEER_STYLE["performer-pytorch"],
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length L")
    ax.set_ylabel(f"time(peer) / time({ours})")
    ax.set_title(f"{ours}, {mode}")
    ax.legend(fontsize=7, loc="best")


def _floor_panel(ax, rows, ours):
    """time / floor of ``ours`` and performer-pytorch, forward, both modes."""
    for mode, line, marker in zip(peers.MODES, ("-", "--"), ("o", "s"), strict=True):
        for name, color in ((ours, "tab:blue"), ("performer-pytorch", PEER_STYLE["performer-pytorch"])):
            points = _points(rows, mode, "forward", f"{name}_over_floor")
            if points:
                x, y = zip(*points, strict=True)
                ax.plot(x, y, line, marker=marker, color=color, label=f"{name} {mode} forward")
    ax.axhline(
        FLOOR_TARGET, color="gray", linestyle=":", linewidth=1.0, label=f"target: {FLOOR_TARGET:g}x floor"
    )
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("time / floor (measured sgemm and exp rates)")
    ax.set_title(f"{ours}: time over the floor")
    ax.legend(fontsize=7, loc="best")


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
    write_csv(args.out / "claims.csv", claims(rows))
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
    for claim in claims(rows):
        print(f"{claim['verdict']:>8}  {claim['claim']}: {claim['measured']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
