"""Regenerate the speed/memory figure (Performers Fig. 3 style) from airspeed-velocity results.

Reads ``attention.AttentionTime.time_attention`` and ``attention.AttentionPeakMemory.track_peak_bytes``
from asv's results JSON (``.asv/results/<machine>/<commit>-<env>.json``; by default the newest file
for the newest machine that holds them) and writes to ``results/speed_memory/``:

* ``speed_memory.csv``: one row per (backend, method, pass, L) with the median time, its
  interquartile range and the peak working memory;
* ``claims.csv``: the performance claims of the attention issue, measured (causal / bidirectional
  time ratio per L; time(16 384) / time(4 096) per method; causal peak memory over L·(m + d)
  float32 values per L, forward (claim ≤ 4 at L = 65 536) and forward+backward (linear: flat in L));
* ``speed_memory.png`` / ``.svg``: time and peak memory vs L, exact vs FAVOR+ bidirectional vs
  causal, one panel per backend, log-log, with the fitted log-log slope of each curve in the legend
  and the crossover length (where FAVOR+ becomes faster than exact attention) marked;
* ``meta.json``: machine, commit, environment, python, the results file and the date.

Run: ``asv run -E existing:$(which python) --bench "attention.Attention(Time|PeakMemory)"
--set-commit-hash $(git rev-parse HEAD)``, then ``python scripts/speed_memory_figure.py``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from favor_bench import asv_results
from favor_bench.common import BACKENDS

TIME_KEY = "attention.AttentionTime.time_attention"
MEMORY_KEY = "attention.AttentionPeakMemory.track_peak_bytes"
METHOD_STYLE = {"exact": "tab:red", "favor": "tab:blue", "favor-causal": "tab:green"}
METHOD_LABEL = {"exact": "exact softmax", "favor": "FAVOR+ bidirectional", "favor-causal": "FAVOR+ causal"}
PASS_STYLE = {"forward": "-", "forward+backward": "--"}
MEMORY_CLAIMS = {"forward": "<= 4", "forward+backward": "flat in L (linear memory)"}
D, M = 64, 256
FLOAT32_BYTES = 4
SLOPE_FROM = 4096
LEGEND_INCHES = 1.0
LABEL_GAP_POINTS = 8.5
"""Least vertical distance between two slope labels of one panel (7-point text)."""


NAMES = ("backend", "method", "pass", "L")


def benchmark_rows(data: dict, key: str) -> list[dict]:
    """Rows of one benchmark of a results file (:func:`favor_bench.asv_results.benchmark_rows`)."""
    return asv_results.benchmark_rows(data, key, NAMES)


def merge(times: list[dict], memory: list[dict]) -> list[dict]:
    """One record per (backend, method, pass, L) with ``time_s``, IQR and ``peak_bytes`` (or None)."""
    peak = {(r["backend"], r["method"], r["pass"], r["L"]): r["value"] for r in memory}
    keys = {(r["backend"], r["method"], r["pass"], r["L"]) for r in times} | set(peak)
    timing = {(r["backend"], r["method"], r["pass"], r["L"]): r for r in times}
    records = []
    for key in sorted(keys, key=lambda k: (k[0], list(METHOD_STYLE).index(k[1]), k[2], k[3])):
        row = timing.get(key, {})
        records.append(
            {
                "backend": key[0],
                "method": key[1],
                "pass": key[2],
                "L": key[3],
                "time_s": row.get("value"),
                "time_q25_s": row.get("q25"),
                "time_q75_s": row.get("q75"),
                "peak_bytes": peak.get(key),
            }
        )
    return records


def series(records, backend, method, attention_pass, field):
    """Sorted (L, value) arrays of ``field`` for one curve, missing values dropped."""
    points = sorted(
        (r["L"], r[field])
        for r in records
        if (r["backend"], r["method"], r["pass"]) == (backend, method, attention_pass)
        and r[field] is not None
    )
    return np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)


def loglog_slope(lengths, values, min_length=None):
    """Least-squares slope of log(value) on log(L) over L >= ``min_length`` (start-up costs excluded)."""
    keep = lengths >= (SLOPE_FROM if min_length is None else min_length)
    if keep.sum() < 2:
        keep = np.ones_like(lengths, bool)
    if keep.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(lengths[keep]), np.log(values[keep]), 1)[0])


def crossover_length(records, backend, attention_pass="forward"):
    """L where bidirectional FAVOR+ time meets exact time, log-log interpolated; None if never."""
    exact_l, exact_t = series(records, backend, "exact", attention_pass, "time_s")
    favor_l, favor_t = series(records, backend, "favor", attention_pass, "time_s")
    common_l = np.intersect1d(exact_l, favor_l)
    if common_l.size == 0:
        return None
    ratio = np.log(np.array([favor_t[favor_l == x][0] / exact_t[exact_l == x][0] for x in common_l]))
    if ratio[0] <= 0:
        return float(common_l[0])
    for i in range(1, len(common_l)):
        if ratio[i] <= 0 < ratio[i - 1]:
            a, b = np.log(common_l[i - 1]), np.log(common_l[i])
            return float(np.exp(a + (b - a) * ratio[i - 1] / (ratio[i - 1] - ratio[i])))
    return None


def claims(records) -> list[dict]:
    """The attention issue's CPU performance claims (d = 64, m = 256), measured per backend."""
    rows = []
    for backend in sorted({r["backend"] for r in records}):
        for attention_pass in PASS_STYLE:
            bi_l, bi_t = series(records, backend, "favor", attention_pass, "time_s")
            ca_l, ca_t = series(records, backend, "favor-causal", attention_pass, "time_s")
            for length in np.intersect1d(bi_l, ca_l):
                ratio = ca_t[ca_l == length][0] / bi_t[bi_l == length][0]
                rows.append(
                    _claim(backend, attention_pass, "causal/bidirectional time", length, ratio, "<= 2")
                )
            for method in METHOD_STYLE:
                lengths, times = series(records, backend, method, attention_pass, "time_s")
                if 4096 in lengths and 16384 in lengths:
                    ratio = times[lengths == 16384][0] / times[lengths == 4096][0]
                    rows.append(
                        _claim(
                            backend,
                            attention_pass,
                            f"{method} time(16384)/time(4096)",
                            16384,
                            ratio,
                            "3.5-4.5",
                        )
                    )
        for attention_pass, target in MEMORY_CLAIMS.items():
            lengths, peaks = series(records, backend, "favor-causal", attention_pass, "peak_bytes")
            for length, peak in zip(lengths, peaks, strict=True):
                ratio = peak / (length * (M + D) * FLOAT32_BYTES)
                quantity = "causal peak bytes / (L(m+d) float32)"
                rows.append(_claim(backend, attention_pass, quantity, length, ratio, target))
    return rows


def _claim(backend, attention_pass, quantity, length, value, target):
    return {
        "backend": backend,
        "pass": attention_pass,
        "quantity": quantity,
        "L": int(length),
        "value": round(float(value), 4),
        "claim": target,
    }


def plot(records, out: Path, title_suffix: str) -> None:
    """Write speed_memory.png/.svg: a time panel per backend, then a memory panel per backend that has one.

    Each curve ends with its log-log slope over L >= 4096; one legend below the panels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    backends = _in_suite_order({r["backend"] for r in records if r["time_s"] is not None})
    memory_backends = _in_suite_order({r["backend"] for r in records if r["peak_bytes"] is not None})
    panels = [("time_s", b) for b in backends] + [("peak_bytes", b) for b in memory_backends]
    ncols = math.ceil(math.sqrt(len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    height = 4.0 * nrows + LEGEND_INCHES
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols, height), squeeze=False)
    slope_labels = {
        ax: _panel(ax, records, field, backend)
        for ax, (field, backend) in zip(axes.flat, panels, strict=False)
    }
    for ax in axes.flat[len(panels) :]:
        fig.delaxes(ax)
    handles = [
        Line2D(
            [],
            [],
            color=METHOD_STYLE[method],
            ls=PASS_STYLE[attention_pass],
            marker="o",
            ms=3,
            label=f"{METHOD_LABEL[method]}, {attention_pass}",
        )
        for method, attention_pass in itertools.product(METHOD_STYLE, PASS_STYLE)
    ]
    handles.append(Line2D([], [], color="black", lw=0.8, ls=":", label="L·(m + d) float32 values (memory)"))
    handles.append(Line2D([], [], color="grey", lw=1.2, ls=":", label="crossover: FAVOR+ = exact (forward)"))
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=3,
        fontsize=8,
        frameon=False,
        title=f"number at each curve end: log-log slope over L ≥ {SLOPE_FROM:,} (1 linear, 2 quadratic)",
        title_fontsize=8,
    )
    fig.suptitle(f"Attention cost vs sequence length: one head, d = {D}, m = {M}, float32\n{title_suffix}")
    fig.tight_layout(rect=(0, LEGEND_INCHES / height, 1, 1))
    for ax, labels in slope_labels.items():
        _slope_labels(ax, labels)
    for suffix in ("png", "svg"):
        fig.savefig(out / f"speed_memory.{suffix}", dpi=150)
    plt.close(fig)


def _in_suite_order(backends):
    return sorted(backends, key=BACKENDS.index)


def _panel(ax, records, field, backend):
    """Draw one panel; return its slope labels (x, y, text, colour), placed after the layout."""
    scale = 2**-20 if field == "peak_bytes" else 1.0
    lengths_seen, labels = [], []
    for method, attention_pass in itertools.product(METHOD_STYLE, PASS_STYLE):
        lengths, values = series(records, backend, method, attention_pass, field)
        if lengths.size == 0:
            continue
        values = values * scale
        lengths_seen.extend(lengths)
        color = METHOD_STYLE[method]
        ax.plot(lengths, values, PASS_STYLE[attention_pass], marker="o", ms=3, color=color)
        labels.append((lengths[-1], values[-1], f"{loglog_slope(lengths, values):.2f}", color))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlim(min(lengths_seen) / 1.5, max(lengths_seen) * 3)
    ax.set_xlabel("sequence length L")
    if field == "time_s":
        ax.set_ylabel("time per call [s]")
        ax.set_title(f"time, {backend}")
        crossover = crossover_length(records, backend)
        if crossover is not None:
            ax.axvline(crossover, color="grey", ls=":", lw=1.2)
            ax.annotate(
                f"crossover L ≈ {crossover:,.0f}",
                (crossover, 0.97),
                xycoords=("data", "axes fraction"),
                ha="left",
                va="top",
                fontsize=8,
                color="dimgrey",
                xytext=(4, 0),
                textcoords="offset points",
            )
    else:
        ax.set_ylabel("peak working memory [MiB]")
        ax.set_title(f"peak memory above inputs, {backend}")
        lengths = np.array(sorted(set(lengths_seen)), float)
        ax.plot(lengths, lengths * (M + D) * FLOAT32_BYTES * scale, color="black", lw=0.8, ls=":")
    ax.grid(True, which="major", alpha=0.3)
    return labels


def _slope_labels(ax, labels) -> None:
    """Write each curve's slope at its last point, spread vertically so that no two overlap.

    ``labels``: (x, y, text, colour). Labels are sorted by height in display space and pushed apart
    to at least :data:`LABEL_GAP_POINTS`, then centred on their curves' mean height.
    """
    if not labels:
        return
    points_per_pixel = 72 / ax.figure.dpi
    heights = [ax.transData.transform((x, y))[1] * points_per_pixel for x, y, _, _ in labels]
    order = np.argsort(heights)
    placed = np.array([heights[i] for i in order])
    for k in range(1, len(placed)):
        placed[k] = max(placed[k], placed[k - 1] + LABEL_GAP_POINTS)
    placed += np.mean([heights[i] for i in order]) - placed.mean()
    for k in range(1, len(placed)):
        placed[k] = max(placed[k], placed[k - 1] + LABEL_GAP_POINTS)
    for k, index in enumerate(order):
        x, y, text, color = labels[index]
        ax.annotate(
            text,
            (x, y),
            xytext=(5, placed[k] - heights[index]),
            textcoords="offset points",
            va="center",
            fontsize=7,
            color=color,
        )


def write_csv(path: Path, rows: list[dict]) -> None:
    """Atomic CSV write (temporary file, then rename)."""
    if not rows:
        return
    with tempfile.NamedTemporaryFile("w", delete=False, dir=path.parent, newline="", suffix=".tmp") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(handle.name, path)


def read_csv(path: Path) -> list[dict]:
    """Records of a ``speed_memory.csv`` with their types (empty cells are None)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    floats = ("time_s", "time_q25_s", "time_q75_s", "peak_bytes")
    return [
        {**row, "L": int(row["L"]), **{key: float(row[key]) if row[key] else None for key in floats}}
        for row in rows
    ]


def redraw(out: Path) -> None:
    """Redraw the figure from ``out/speed_memory.csv``, titled from ``out/meta.json``."""
    meta = json.loads((out / "meta.json").read_text())
    machine = meta["machine"].get("machine", "unknown")
    plot(read_csv(out / "speed_memory.csv"), out, f"{meta['note']}; {machine}, commit {meta['commit'][:8]}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-dir", type=Path, default=Path(".asv/results"))
    parser.add_argument("--machine", default=None, help="asv machine name (default: any)")
    parser.add_argument("--results-file", type=Path, default=None, help="one asv results JSON file")
    parser.add_argument(
        "--from-csv",
        action="store_true",
        help="redraw from the committed speed_memory.csv and meta.json in --out (no asv results needed)",
    )
    parser.add_argument("--out", type=Path, default=Path("results/speed_memory"))
    parser.add_argument("--note", default="wall-clock time", help="how time was measured (title, meta.json)")
    args = parser.parse_args(argv)
    if args.from_csv:
        redraw(args.out)
        return
    path = args.results_file or asv_results.newest_results_file(args.results_dir, TIME_KEY, args.machine)
    data = json.loads(path.read_text())
    records = merge(benchmark_rows(data, TIME_KEY), benchmark_rows(data, MEMORY_KEY))
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "speed_memory.csv", records)
    measured = claims(records)
    write_csv(args.out / "claims.csv", measured)
    machine = data["params"].get("machine", "unknown")
    plot(records, args.out, f"{args.note}; {machine}, commit {data['commit_hash'][:8]}")
    meta = {
        "machine": data["params"],
        "commit": data["commit_hash"],
        "env_name": data["env_name"],
        "python": data["python"],
        "results_file": str(path),
        "date_ms": data["date"],
        "note": args.note,
    }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    for row in measured:
        print(
            f"{row['backend']:<10} {row['pass']:<17} {row['quantity']:<42} L={row['L']:<6} "
            f"{row['value']:>8.3f}  (claim {row['claim']})"
        )


if __name__ == "__main__":
    main()
