"""The timings table of ``scripts/gpu_compare.py``: its CSV, its figure and its summary.

One row per (impl, causal, mode, L) cell: the median time of a call (``time_ms``), the working memory
beyond inputs and outputs (``peak_extra_bytes``), the status (``ok`` or ``oom``), and the device and
package versions it was measured with. From the rows: ``speed_memory.png`` (time and memory against L,
bidirectional and causal, with the crossover lengths where the kernels overtake exact attention
marked) and ``summary.md``. Needs no GPU: ``gpu_compare.py --replot`` redraws from the CSV.
"""

from __future__ import annotations

import csv

import numpy as np

IMPLS = ("triton", "sdpa", "performer", "reference")
"""The implementations compared, in the order they are measured and drawn."""
MODES = ("forward", "forward+backward")
MEMORY_FLOOR_BYTES = 2**20
"""Working memory below this is under what the allocator's peak resolves here (sdpa's forward reads
1.5 KiB at every L): drawn as an open marker on the floor line, not as a value."""
FIELDS = (
    "impl",
    "causal",
    "mode",
    "L",
    "B",
    "H",
    "d",
    "m",
    "dtype",
    "time_ms",
    "peak_extra_bytes",
    "status",
    "finite",
    "device",
    "torch",
    "triton",
)
"""Columns of ``timings.csv``, one row per (impl, causal, mode, L) cell."""


def write_csv(rows, path):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({field: row.get(field, "") for field in FIELDS})


def crossover(rows, causal, mode, impl="triton", against="sdpa"):
    """Smallest L from which ``impl`` is faster than ``against`` at every measured longer L, or None."""
    times = {
        (r["impl"], r["L"]): r["time_ms"]
        for r in rows
        if r["causal"] == causal and r["mode"] == mode and r["status"] == "ok"
    }
    lengths = sorted({L for (name, L) in times if name == impl})
    faster = [L for L in lengths if (against, L) not in times or times[(impl, L)] < times[(against, L)]]
    for L in lengths:
        if all(x in faster for x in lengths if x >= L):
            return L
    return None


def plot(rows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(triton="C0", reference="C1", performer="C2", sdpa="C3")
    styles = {"forward": "-", "forward+backward": "--"}
    figure, axes = plt.subplots(2, 2, figsize=(13, 9), sharex=True)
    for row_index, causal in enumerate((False, True)):
        notes = []
        for mode in MODES:
            for impl in IMPLS:
                cells = sorted(
                    (r["L"], r["time_ms"], r["peak_extra_bytes"])
                    for r in rows
                    if r["impl"] == impl
                    and r["causal"] == causal
                    and r["mode"] == mode
                    and r["status"] == "ok"
                )
                if not cells:
                    continue
                L, t, memory = (np.array(x, dtype=float) for x in zip(*cells, strict=True))
                label = f"{impl} {mode}"
                axes[row_index, 0].plot(L, t, styles[mode], color=colors[impl], marker="o", ms=3, label=label)
                measured = memory >= MEMORY_FLOOR_BYTES
                axes[row_index, 1].plot(
                    L[measured], memory[measured] / 2**30, styles[mode], color=colors[impl], marker="o", ms=3,
                    label=label,
                )  # fmt: skip
                axes[row_index, 1].plot(
                    L[~measured], np.full((~measured).sum(), MEMORY_FLOOR_BYTES / 2**30), linestyle="none",
                    marker="v", ms=5, markerfacecolor="none", color=colors[impl],
                )  # fmt: skip
            L_cross = crossover(rows, causal, mode)
            if L_cross is not None:
                axes[row_index, 0].axvline(L_cross, color="k", ls=styles[mode], lw=0.8)
            notes.append(f"triton faster than sdpa ({mode}): from L = {L_cross}")
        axes[row_index, 0].text(
            0.98, 0.02, "\n".join(notes), transform=axes[row_index, 0].transAxes, ha="right", va="bottom",
            fontsize=8, bbox=dict(facecolor="white", alpha=0.8, lw=0.5),
        )  # fmt: skip
        kind = "causal" if causal else "bidirectional"
        axes[row_index, 0].set(ylabel="time per call (ms)", title=f"{kind}: time")
        axes[row_index, 1].axhline(MEMORY_FLOOR_BYTES / 2**30, color="grey", ls=":", lw=0.8)
        axes[row_index, 1].set(ylabel="peak memory beyond inputs/outputs (GiB)", title=f"{kind}: memory")
    for axis in axes.flat:
        axis.set(xscale="log", yscale="log")
        axis.grid(True, which="both", alpha=0.3)
    for axis in axes[1]:
        axis.set_xlabel("sequence length L")
    from matplotlib.lines import Line2D

    axes[0, 0].legend(fontsize=7, ncol=2)
    floor = f"measurement floor ({MEMORY_FLOOR_BYTES // 2**20} MiB)"
    below = "below the floor (no value)"
    floor_handles = [
        Line2D([], [], color="grey", ls=":", lw=0.8, label=floor),
        Line2D([], [], color="grey", ls="none", marker="v", markerfacecolor="none", label=below),
    ]
    axes[0, 1].legend(handles=floor_handles, fontsize=7, loc="upper left")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def summary(rows, title):
    lines = [f"# {title}", "", "| impl | causal | mode | L | time (ms) | extra memory (GiB) | status |"]
    lines.append("|---|---|---|---|---|---|---|")
    for r in rows:
        t = f"{r['time_ms']:.3f}" if "time_ms" in r else "-"
        memory = f"{r['peak_extra_bytes'] / 2**30:.3f}" if r.get("peak_extra_bytes") is not None else "-"
        lines.append(
            f"| {r['impl']} | {r['causal']} | {r['mode']} | {r['L']} | {t} | {memory} | {r['status']} |"
        )
    lines += ["", "Crossover (triton faster than sdpa from L on):", ""]
    for causal in (False, True):
        for mode in MODES:
            lines.append(f"- causal={causal}, {mode}: {crossover(rows, causal, mode)}")
    return "\n".join(lines) + "\n"


def read_csv(path):
    """Rows of a timings.csv written by :func:`write_csv`, with numbers and booleans restored."""
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            row = {key: value for key, value in row.items() if value != ""}
            row["causal"] = row["causal"] == "True"
            for key in ("L", "B", "H", "d", "m", "peak_extra_bytes"):
                if key in row:
                    row[key] = int(float(row[key]))
            if "time_ms" in row:
                row["time_ms"] = float(row["time_ms"])
            rows.append(row)
    return rows


def title_from_rows(rows):
    """The figure title from the measured rows: device, shapes, dtype and the package versions the
    timings were taken with (every distinct value, should a file mix runs)."""

    def values(key):
        return "/".join(str(v) for v in dict.fromkeys(r[key] for r in rows))

    return (
        f"FAVOR+ vs exact attention on {values('device')}: B={values('B')}, H={values('H')}, "
        f"d={values('d')}, m={values('m')}, {values('dtype')} (torch {values('torch')}, "
        f"triton {values('triton')})"
    )
