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
overtake exact attention are marked) and ``<out>/summary.md`` (``scripts/gpu_compare_report.py``).

    python scripts/gpu_compare.py --out results/gpu_speed_memory
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from gpu_compare_report import (  # the script beside this one
    IMPLS,
    MODES,
    plot,
    read_csv,
    summary,
    title_from_rows,
    write_csv,
)

DTYPES = {"float16": "float16", "bfloat16": "bfloat16", "float32": "float32"}


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
