"""Where the time of the fused FAVOR kernels goes, on one CUDA GPU: per-kernel GPU time and host time.

For each (causal, mode, L) cell this prints

* ``events``: the CUDA-event time of one call (median of repeats), what ``scripts/gpu_compare.py``
  reports (its inputs, positive features and timing are used here);
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
from gpu_compare import build_call, event_time, make_inputs, make_run  # the script beside this one


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="4096,8192,1048576")
    parser.add_argument("--causal", default="false,true")
    parser.add_argument("--modes", default="forward,forward+backward")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--dtype", default="float16")
    parser.add_argument("--repeats", type=int, default=10)
    return parser.parse_args(argv)


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
                inputs, W = make_inputs(args, L)
                call = make_run(build_call("triton", *inputs, W, causal), mode, inputs)
                call()
                events = float(np.median([event_time(call) for _ in range(args.repeats)]))
                host = host_ms(call, args.repeats)
                kernels = kernel_times(call)
                total = sum(us for _, us in kernels.values()) / 1e3
                kind = "causal" if causal else "bidirectional"
                times = f"events {events:.3f} ms, kernels {total:.3f} ms, host {host:.3f} ms"
                print(f"\n{kind} {mode} L={L}: {times}")
                for name, (count, us) in sorted(kernels.items(), key=lambda item: -item[1][1]):
                    print(f"    {us / 1e3:8.3f} ms  x{count:<3d} {name[:90]}")
                del call, inputs
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
