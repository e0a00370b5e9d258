"""The fused Triton FAVOR kernels (:mod:`estimators.triton_favor`): time, device memory, accuracy.

B = 1, H = 8, d = 64, m = 256 block-orthogonal projections with χ(d) norms, positive features,
float16 inputs (the issue's target configuration); bidirectional and causal; ``forward`` and
``forward+backward`` (gradients of sum(output) w.r.t. q, k, v). The kernels need CUDA torch tensors
and Triton: every other backend value is n/a. Lengths 4k to 1M.

The same cells against the plain-PyTorch path, performer-pytorch and SDPA, in one run, are
``python scripts/gpu_compare.py --out results/gpu_speed_memory``.
"""

from __future__ import annotations

import importlib.util

from estimators import projections

from . import common

DIRECTIONS = ("bidirectional", "causal")
PASSES = ("forward", "forward+backward")
LENGTHS = tuple(4**power for power in range(6, 11))
B, H, D, M = 1, 8, 64, 256
DTYPE = "float16"
ACCURACY_LENGTH = 4096


def require_kernels(backend: str) -> None:
    """n/a unless ``backend`` is torch:cuda and Triton is importable (decided before importing torch)."""
    if backend != "torch:cuda":
        raise NotImplementedError("the Triton kernels run on CUDA torch tensors only")
    if importlib.util.find_spec("triton") is None:
        raise NotImplementedError("triton is not installed")


def inputs(backend: str, length: int, dtype: str = DTYPE):
    """q, k, v (B, H, L, d) standard normal in ``dtype`` and W (m, d) float32 on the backend's device.

    Drawn on the device with a seeded ``torch.Generator`` (a float64 host copy of q, k, v at
    L = 2^20 would take 13 GB).
    """
    import torch

    where = common.target(backend, dtype)
    generator = torch.Generator(device=where.native_device).manual_seed(length)
    q, k, v = (
        torch.randn(
            (B, H, length, D), generator=generator, device=where.native_device, dtype=where.native_dtype
        )
        for _ in range(3)
    )
    W = projections.orthogonal(M, D, seed=0, like=q, dtype="float32")
    return q, k, v, W


@common.cached
def kernel_call(backend: str, direction: str, attention_pass: str, length: int):
    """A warmed-up zero-argument callable running one pass of the kernels; n/a where they cannot run."""
    require_kernels(backend)
    common.require_length(backend, length)
    from estimators.triton_favor import favor_triton

    where = common.target(backend, DTYPE)
    q, k, v, W = inputs(backend, length)
    causal = direction == "causal"

    def function(q, k, v):
        return favor_triton(q, k, v, W, "positive", causal)

    if attention_pass == "forward":
        return common.skip_if_out_of_memory(lambda: common.warmed_up(lambda: function(q, k, v)))
    gradients = common.gradient_function(where, function, 3)
    q, k, v = (common.requires_grad(a) for a in (q, k, v))
    return common.skip_if_out_of_memory(lambda: common.warmed_up(lambda: gradients(q, k, v)))


class TritonFavorTime(common.HeavyBenchmark):
    """Time vs L of the fused kernels (B=1, H=8, d=64, m=256, float16), forward and forward+backward."""

    params = (common.BACKENDS, DIRECTIONS, PASSES, LENGTHS)
    param_names = ("backend", "direction", "pass", "L")

    def setup(self, probe, backend, direction, attention_pass, length):
        require_kernels(backend)
        common.require_backend(probe, backend)
        self.run = kernel_call(backend, direction, attention_pass, length)

    def time_favor_triton(self, probe, backend, direction, attention_pass, length):
        common.sync(self.run())


class TritonFavorMemory(common.BackendBenchmark):
    """Device allocator peak of one call beyond the inputs (outputs and gradients included)."""

    params = (common.BACKENDS, DIRECTIONS, PASSES, LENGTHS)
    param_names = ("backend", "direction", "pass", "L")
    unit = "bytes"
    timeout = 600

    def setup(self, probe, backend, direction, attention_pass, length):
        require_kernels(backend)
        common.require_backend(probe, backend)
        self.where = common.target(backend, DTYPE)
        self.run = kernel_call(backend, direction, attention_pass, length)

    def track_peak_bytes(self, probe, backend, direction, attention_pass, length):
        return common.peak_bytes(self.where, self.run)


class TritonFavorAccuracy(common.BackendBenchmark):
    """Relative error ‖out − ref‖/‖ref‖ against ``favor(..., impl="reference")`` in float64, L = 4096."""

    params = (common.BACKENDS, DIRECTIONS, ("float16", "bfloat16", "float32"))
    param_names = ("backend", "direction", "dtype")
    unit = "relative error"

    def setup(self, probe, backend, direction, dtype):
        require_kernels(backend)
        common.require_backend(probe, backend)
        from estimators.attention import favor
        from estimators.triton_favor import favor_triton

        causal = direction == "causal"
        q, k, v, W = inputs(backend, ACCURACY_LENGTH, dtype)
        self.out = favor_triton(q, k, v, W, "positive", causal).double()
        self.reference = favor(
            q.double(), k.double(), v.double(), W.double(), "positive", causal, impl="reference"
        )

    def track_relative_error(self, probe, backend, direction, dtype):
        return float((self.out - self.reference).norm() / self.reference.norm())
