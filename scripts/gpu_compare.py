"""Time and peak memory of FAVOR attention implementations and exact attention on one CUDA GPU.

Compares, in one run on one device, for L from 4k to 1M, bidirectional and causal, forward and
forward+backward:

* ``triton``: :func:`estimators.triton_favor.favor_triton` (fused kernels);
* ``reference``: ``estimators.attention.favor(..., impl="reference")`` (plain PyTorch);
* ``performer``: ``performer_pytorch.FastAttention`` (lucidrains, from PyPI; causal without its
  optional CUDA extension uses its chunked PyTorch fallback);
* ``sdpa``: exact attention, ``torch.nn.functional.scaled_dot_product_attention`` (flash backend).

Each cell is timed with CUDA events (median of repeats after a warm-up call) and its peak device
memory is the allocator's peak minus what was allocated before the call, minus the outputs (and
gradients) it returns: the working memory beyond inputs and outputs. An implementation is skipped
at larger L once it ran out of memory or took longer than ``--max-seconds``.

Writes ``<out>/timings.csv``, ``<out>/speed_memory.png`` (crossover lengths where the kernels
overtake exact attention are marked) and ``<out>/summary.md``.

    python scripts/gpu_compare.py --out results/gpu_speed_memory
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

IMPLS = ("triton", "sdpa", "performer", "reference")
MODES = ("forward", "forward+backward")
DTYPES = {"float16": "float16", "bfloat16": "bfloat16", "float32": "float32"}
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/gpu_speed_memory"))
    parser.add_argument("--lengths", default="4096,8192,16384,32768,65536,131072,262144,524288,1048576")
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--causal", default="false,true")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float16")
    parser.add_argument("--max-seconds", type=float, default=2.0, help="skip larger L after a call this slow")
    parser.add_argument("--budget", type=float, default=480.0, help="stop starting cells after this many s")
    parser.add_argument("--replot", action="store_true", help="only redraw <out>/timings.csv (no GPU needed)")
    return parser.parse_args(argv)


def build_call(impl, q, k, v, W, causal):
    """A zero-argument function computing impl's attention output for (q, k, v)."""
    import torch

    if impl == "triton":
        from estimators.triton_favor import favor_triton

        return lambda: favor_triton(q, k, v, W, "positive", causal)
    if impl == "reference":
        from estimators.attention import favor

        return lambda: favor(q, k, v, W, "positive", causal, impl="reference")
    if impl == "performer":
        import setuptools  # noqa: F401  (performer_pytorch imports distutils, provided by setuptools)
        from performer_pytorch import FastAttention

        module = FastAttention(dim_heads=q.shape[-1], nb_features=W.shape[0], causal=causal).to(q.device)
        return lambda: module(q, k, v)
    if impl == "sdpa":
        return lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")


def with_backward(call, inputs, grad_out):
    """``call`` followed by backward with ``grad_out``; gradients are freed before each run."""

    def run():
        for x in inputs:
            x.grad = None
        out = call()
        out.backward(grad_out)
        return out

    return run


def make_inputs(args, L):
    """q, k, v (B, H, L, d) in ``args.dtype`` on the GPU (seeded by L) and an orthogonal W (m, d), float32."""
    import torch

    from estimators.projections import orthogonal

    shape = (args.batch, args.heads, L, args.head_dim)
    generator = torch.Generator(device="cuda").manual_seed(L)
    dtype = getattr(torch, args.dtype)
    inputs = [torch.randn(shape, device="cuda", dtype=dtype, generator=generator) for _ in range(3)]
    W = orthogonal(args.features, args.head_dim, seed=0, backend="torch", device="cuda", dtype="float32")
    return inputs, W


def make_run(call, mode, inputs):
    """A zero-argument function running ``call`` in ``mode``: forward without autograd, or forward and
    backward (``inputs`` then require grad)."""
    import torch

    if mode == "forward":

        def run():
            with torch.no_grad():
                return call()

        return run
    for x in inputs:
        x.requires_grad_(True)
    return with_backward(call, inputs, torch.randn_like(inputs[0]))


def time_and_memory(run, returned_bytes, inputs, max_seconds):
    """(median ms, peak bytes beyond inputs and outputs, output finite) of ``run``.

    The first call (which also warms up and compiles) gives the memory; a call slower than
    ``max_seconds`` is timed once more, faster ones repeat for about 0.2 s (CUDA events, median).
    """
    import torch

    for x in inputs:
        x.grad = None
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    out = run()
    stop.record()
    stop.synchronize()
    first = start.elapsed_time(stop)
    peak = torch.cuda.max_memory_allocated() - before - returned_bytes
    finite = bool(torch.isfinite(out).all())
    del out
    if first > 1000 * max_seconds:  # the first call may have compiled kernels: time a second one
        return event_time(run), peak, finite
    repeats = int(min(20, max(3, 200.0 / max(first, 1e-3))))
    return float(np.median([event_time(run) for _ in range(repeats)])), peak, finite


def event_time(run):
    import torch

    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    run()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop)


def measure(impl, causal, mode, L, args, versions):
    """One CSV row for (impl, causal, mode, L)."""
    import torch

    inputs, W = make_inputs(args, L)
    row = dict(impl=impl, causal=causal, mode=mode, L=L, B=args.batch, H=args.heads, d=args.head_dim)
    row.update(m=args.features, dtype=args.dtype, **versions)
    item_bytes = inputs[0].numel() * inputs[0].element_size()
    returned = item_bytes if mode == "forward" else 4 * item_bytes  # out, or out and three gradients
    try:
        run = make_run(build_call(impl, *inputs, W, causal), mode, inputs)
        row["time_ms"], row["peak_extra_bytes"], row["finite"] = time_and_memory(
            run, returned, inputs, args.max_seconds
        )
        row["status"] = "ok"
    except torch.cuda.OutOfMemoryError:
        row["status"] = "oom"
    finally:
        del inputs
        torch.cuda.empty_cache()
    return row


def versions_of():
    import torch
    import triton

    return dict(device=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__)


def sweep(args):
    """All cells, impl by impl, shortest L first; an impl stops growing L after an OOM or a slow call.

    Rows are appended to ``<out>/timings.csv`` as they finish, so an interrupted run keeps them.
    """
    versions = versions_of()
    lengths = [int(x) for x in args.lengths.split(",")]
    causals = [x.strip().lower() == "true" for x in args.causal.split(",")]
    rows, started = [], time.monotonic()
    for impl in args.impls.split(","):
        for causal in causals:
            for mode in args.modes.split(","):
                for L in lengths:
                    if time.monotonic() - started > args.budget:
                        print(f"budget reached: skipping {impl} causal={causal} {mode} L={L}", flush=True)
                        break
                    row = measure(impl, causal, mode, L, args, versions)
                    rows.append(row)
                    write_csv(rows, args.out / "timings.csv")
                    print(format_row(row), flush=True)
                    if row["status"] != "ok" or row["time_ms"] > 1000 * args.max_seconds:
                        break
    return rows


def format_row(row):
    time_ms = f"{row['time_ms']:10.3f} ms" if "time_ms" in row else "         - ms"
    memory = row.get("peak_extra_bytes")
    memory = f"{memory / 2**30:8.3f} GiB" if memory is not None else "       - GiB"
    kind = "causal" if row["causal"] else "bidir "
    return f"{row['impl']:9s} {kind} {row['mode']:16s} L={row['L']:8d} {time_ms} {memory} {row['status']}"


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


def main(argv=None):
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        rows = read_csv(args.out / "timings.csv")
        title = title_from_rows(rows)
    else:
        rows = sweep(args)
        versions = versions_of()
        title = (
            f"FAVOR+ vs exact attention on {versions['device']}: B={args.batch}, H={args.heads}, "
            f"d={args.head_dim}, m={args.features}, {args.dtype} (torch {versions['torch']}, "
            f"triton {versions['triton']})"
        )
    write_csv(rows, args.out / "timings.csv")
    text = summary(rows, title)
    (args.out / "summary.md").write_text(text)
    plot(rows, args.out / "speed_memory.png", title)
    print(text)


if __name__ == "__main__":
    main()
