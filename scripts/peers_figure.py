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

Intervals and verdicts. asv gives each median a 99% confidence interval (order statistics of the
samples of every round, pooled). A ratio's interval is the ratio of opposite ends, [a_lo / b_hi,
a_hi / b_lo]: it holds the ratio of the two medians whenever both intervals hold theirs, so with
probability at least 98% (Bonferroni; no independence needed). A target at one L is met when the
whole interval is on its side, missed when the whole interval is on the other, and undecided
otherwise; a claim over k lengths is met (or missed) only as its lengths say, so a wrong "met" or
"not met" needs an interval that missed its median: at most 2k% per claim. The floor's rates (the
best of five runs) are taken as exact. The intervals describe the variation within one run: a
median can move further between runs (up to 1.6x at L = 1k, ``PeerAttentionTime.rounds``), so a
verdict is about the run it names.

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
    """One row per (mode, pass, L): each implementation's time with its 99% interval, each peer's
    time over each of ours, and for the forward pass the floor and each time over it; every ratio with
    its interval (``_low``, ``_high``: ratios of opposite ends, see the module docstring)."""
    by_key = {
        (r["implementation"], r["mode"], r["pass"], r["L"]): (
            r["value"],
            r.get("ci_low") or r["value"],
            r.get("ci_high") or r["value"],
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
                        row |= _ratio_columns(f"{peer}_over_{ours}", times_of[peer], times_of[ours])
                row["floor_s"] = floor
                for name in (*OURS, *PEERS):
                    fixed = (floor, floor, floor) if floor else (None, None, None)
                    row |= _ratio_columns(f"{name}_over_floor", times_of[name], fixed)
                rows.append(row)
    return rows


def _ratio_columns(name: str, numerator: tuple, denominator: tuple) -> dict:
    """``{name, name_low, name_high}``: the ratio of two (median, low, high) triples and its interval
    [low / high', high / low'] (None where either is missing). asv extends an interval it cannot
    bound by order statistics (fewer than 6 samples) with a posterior that can reach below zero; a
    time's interval is cut at zero, so such an end of the ratio is 0 or inf (unbounded)."""
    (a, a_low, a_high), (b, b_low, b_high) = numerator, denominator
    if not (a and b):
        return {name: None, f"{name}_low": None, f"{name}_high": None}
    low = a_low / b_high if a_low > 0 else 0.0
    high = a_high / b_low if b_low > 0 else math.inf
    return {name: a / b, f"{name}_low": low, f"{name}_high": high}


def side_of(low: float, high: float, target: float, at_least: bool) -> str:
    """Where an interval [low, high] lies against a target ``ratio >= target`` (``at_least``) or
    ``ratio <= target``: "met" (wholly on its side), "missed" (wholly on the other) or "undecided"."""
    if at_least:
        return "met" if low >= target else "missed" if high < target else "undecided"
    return "met" if high <= target else "missed" if low > target else "undecided"


def _interval(value: float, low: float, high: float) -> str:
    return f"{value:.2f} (99% interval {low:.2f}-{high:.2f})"


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


def _crossover_text(rows: list[dict], mode: str, attention_pass: str, ours: str) -> str:
    """:func:`crossover` with SDPA's time over ours at that L and its 99% interval."""
    found = crossover(rows, mode, attention_pass, ours)
    column = f"sdpa_over_{ours}"
    for row in rows:
        if (row["mode"], row["pass"]) == (mode, attention_pass) and found == f"L = {row['L']}":
            ratio = _interval(row[column], row[f"{column}_low"], row[f"{column}_high"])
            return f"{found}; sdpa/{ours} there {ratio}"
    return found


def peer_claim(rows: list[dict], peer: str, mode: str, target: float, ours: str = "favor-bench") -> dict:
    """``{ours}: {mode} forward >= target x peer`` at every measured L, with its verdict.

    Each length is met, missed or undecided by its ratio's interval (:func:`side_of`). No
    implementation of the forward runs below the floor, so none is faster than the peer by more than
    time(peer) / floor: a length where that bound is below the target cannot be met. Verdict: "not
    met" where some length with room is missed; else "not attainable" where some length without room
    is not met; else "undecided" where some length is; else "met". The measured text gives the least
    ratio with its interval and names the lengths that decide a verdict other than "met".
    """
    column = f"{peer}_over_{ours}"
    points = [r for r in rows if (r["mode"], r["pass"]) == (mode, "forward") and r[column] is not None]
    claim = f"{ours}: {mode} forward >= {target:g}x {peer} at every measured L >= 1024"
    if not points:
        return {"claim": claim, "measured": "n/a", "verdict": "n/a"}
    worst = min(points, key=lambda r: r[column])
    measured = (
        f"least ratio {_interval(worst[column], worst[f'{column}_low'], worst[f'{column}_high'])} "
        f"at L = {worst['L']}, over {len(points)} lengths"
    )
    sides = {r["L"]: side_of(r[f"{column}_low"], r[f"{column}_high"], target, at_least=True) for r in points}
    room = {r["L"]: r[f"{peer}_over_floor"] is None or r[f"{peer}_over_floor"] >= target for r in points}
    missed = [length for length, side in sides.items() if side == "missed" and room[length]]
    bounded = [r for r in points if sides[r["L"]] != "met" and not room[r["L"]]]
    undecided = [length for length, side in sides.items() if side == "undecided"]
    if missed:
        verdict = "not met"
        measured += "; missed at " + _lengths(missed)
    elif bounded:
        verdict = "not attainable"
        bounds = ", ".join(f"{r[f'{peer}_over_floor']:.2f} at L = {r['L']}" for r in bounded)
        measured += f"; not met only where {peer} itself runs within {target:g}x of the floor ({bounds})"
    elif undecided:
        verdict = "undecided"
        measured += f"; the interval holds {target:g} at " + _lengths(undecided)
    else:
        verdict = "met"
    return {"claim": claim, "measured": measured, "verdict": verdict}


def _lengths(lengths: list[int]) -> str:
    return "L = " + ", ".join(str(length) for length in lengths)


def _bounded_claim(claim: str, points: list[tuple], describe: str, target: float) -> dict:
    """``claim``: every (L, value, low, high) in ``points`` at most ``target``; "not met" where some
    interval lies wholly above it, "undecided" where some holds it (:func:`side_of`), n/a without
    points."""
    if not points:
        return {"claim": claim, "measured": "n/a", "verdict": "n/a"}
    length, value, low, high = max(points, key=lambda point: point[1])
    sides = {point[0]: side_of(point[2], point[3], target, at_least=False) for point in points}
    measured = f"{describe} {_interval(value, low, high)} at L = {length}"
    missed = [length for length, side in sides.items() if side == "missed"]
    undecided = [length for length, side in sides.items() if side == "undecided"]
    if missed:
        return {"claim": claim, "measured": f"{measured}; missed at {_lengths(missed)}", "verdict": "not met"}
    if undecided:
        measured += f"; the interval holds {target:g} at {_lengths(undecided)}"
        return {"claim": claim, "measured": measured, "verdict": "undecided"}
    return {"claim": claim, "measured": measured, "verdict": "met"}


def claims(rows: list[dict]) -> list[dict]:
    """Each CPU-speed target for each of favor-bench's implementations, with the number that decides it."""
    out = []
    for ours in OURS:
        out += [peer_claim(rows, peer, mode, target, ours) for (peer, mode), target in TARGETS.items()]
        column = f"{ours}_over_floor"
        floor = [
            (r["L"], r[column], r[f"{column}_low"], r[f"{column}_high"])
            for r in rows
            if (r["mode"], r["pass"]) == ("bidirectional", "forward")
            and r["L"] >= FLOOR_FROM
            and r[column] is not None
        ]
        claim = f"{ours}: bidirectional forward within {FLOOR_TARGET:g}x of the floor at L >= {FLOOR_FROM}"
        out.append(_bounded_claim(claim, floor, "largest time/floor", FLOOR_TARGET))
        forward = {
            (r["mode"], r["L"]): (r[f"{ours}_s"], r[f"{ours}_low_s"], r[f"{ours}_high_s"])
            for r in rows
            if r["pass"] == "forward"
        }
        causal_ratios = []
        for length in peers.LENGTHS:
            pair = forward.get(("causal", length)), forward.get(("bidirectional", length))
            ratio = _ratio_columns("r", *pair) if all(pair) else {"r": None}
            if ratio["r"] is not None:
                causal_ratios.append((length, ratio["r"], ratio["r_low"], ratio["r_high"]))
        claim = f"{ours}: causal forward <= {CAUSAL_OVER_BIDIRECTIONAL:g}x bidirectional at every measured L"
        out.append(
            _bounded_claim(claim, causal_ratios, "largest causal/bidirectional", CAUSAL_OVER_BIDIRECTIONAL)
        )
        for mode in peers.MODES:
            for attention_pass in peers.PASSES:
                out.append(
                    {
                        "claim": f"{ours}: crossover with SDPA, {mode} {attention_pass}: faster from",
                        "measured": _crossover_text(rows, mode, attention_pass, ours),
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
