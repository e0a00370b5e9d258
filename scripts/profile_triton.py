"""Where the time of the fused FAVOR kernels goes, on one CUDA GPU: per-kernel GPU time and host time.

For each (causal, mode, L) cell this prints

* ``events``: the CUDA-event time of one call (median of repeats), what ``scripts/gpu_compare.py``
  reports;
* ``kernels``: the sum of the GPU kernel times of one call from ``torch.profiler``, and each kernel's
  share (name, count, total µs);
* ``host``: the wall time of launching one call without waiting for the GPU (median), which bounds
  the call from below at small L, where the GPU finishes its work before the next launch.

    python scripts/profile_triton.py --lengths 4096,8192,1048576
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="4096,8192,1048576")
    parser.add_argument("--causal", default="false,true")
    parser.add_argument("--modes", default="forward,forward+backward")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--feature", default="positive")
    parser.add_argument("--dtype", default="float16")
    parser.add_argument("--repeats", type=int, default=10)
    return parser.parse_args(argv)


def make_call(causal, mode, L, args):
    import torch

    from estimators.projections import orthogonal
    from estimators.triton_favor import favor_triton

    dtype = getattr(torch, args.dtype)
    generator = torch.Generator(device="cuda").manual_seed(L)
    shape = (1, args.heads, L, args.head_dim)
    q, k, v = (torch.randn(shape, device="cuda", dtype=dtype, generator=generator) for _ in range(3))
    W = orthogonal(args.features, args.head_dim, seed=0, backend="torch", device="cuda", dtype="float32")
    if mode == "forward":

        def call():
            with torch.no_grad():
                return favor_triton(q, k, v, W, args.feature, causal)

        return call
    leaves = [x.requires_grad_() for x in (q, k, v)]
    grad_out = torch.randn_like(q)

    def call_with_backward():
        for x in leaves:
            x.grad = None
        out = favor_triton(*leaves, W, args.feature, causal)
        out.backward(grad_out)
        return out

    return call_with_backward


def event_ms(call, repeats):
    import torch

    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return float(np.median(times))


def host_ms(call, repeats):
    """Median wall time to issue one call (the GPU is drained before each)."""
    import torch

    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        started = time.perf_counter()
        call()
        times.append(1e3 * (time.perf_counter() - started))
    torch.cuda.synchronize()
    return float(np.median(times))


def kernel_times(call):
    """{kernel name: (count, total µs)} of one call, from the profiler's device events."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        call()
        torch.cuda.synchronize()
    totals = defaultdict(lambda: [0, 0.0])
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            totals[event.name][0] += 1
            totals[event.name][1] += event.device_time_total
    return dict(totals)


def main(argv=None):
    import torch

    args = parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("profile_triton.py times the fused kernels on a CUDA GPU; torch sees none")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    for causal in (x.strip().lower() == "true" for x in args.causal.split(",")):
        for mode in args.modes.split(","):
            for L in (int(x) for x in args.lengths.split(",")):
                call = make_call(causal, mode, L, args)
                call()
                events, host = event_ms(call, args.repeats), host_ms(call, args.repeats)
                kernels = kernel_times(call)
                total = sum(us for _, us in kernels.values()) / 1e3
                kind = "causal" if causal else "bidirectional"
                times = f"events {events:.3f} ms, kernels {total:.3f} ms, host {host:.3f} ms"
                print(f"\n{kind} {mode} L={L}: {times}")
                for name, (count, us) in sorted(kernels.items(), key=lambda item: -item[1][1]):
                    print(f"    {us / 1e3:8.3f} ms  x{count:<3d} {name[:90]}")
                del call
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
