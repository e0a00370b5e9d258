"""Exact softmax attention against FAVOR+ bidirectional and causal: time and device memory.

One head, q, k, v (L, d) standard normal, W (m, d) block-orthogonal with χ(d) norms (FAVOR+,
positive features), :func:`estimators.attention.favor` with its defaults (row/running-max
stabilizers, chunked causal prefix sums). Methods: ``exact`` (the L × L softmax), ``favor``
(bidirectional, Performers Eq. 4) and ``favor-causal`` (App. B.1). Passes: ``forward``, and
``forward+backward`` (gradients of sum(output) w.r.t. q, k, v; torch autograd, jitted ``jax.grad``;
n/a on numpy).

Lengths run to 65 536 on a CPU and 1 048 576 on an accelerator; a size whose estimated working set
exceeds the device budget, or that runs out of memory, is n/a (``common.require_fits``).
Reproduce the paper's speed/memory figure with ``python scripts/speed_memory_figure.py``.
"""

from __future__ import annotations

import functools

from estimators import projections

from . import common

METHODS = ("exact", "favor", "favor-causal")
PASSES = ("forward", "forward+backward")
LENGTHS = tuple(4**power for power in range(4, 11))
D, M = 64, 256
SHAPE_LENGTH = 4096
FEATURE_COUNTS = (64, 256, 1024)
HEAD_DIMS = (32, 64, 128)


def working_set_bytes(method: str, attention_pass: str, length: int, m: int, d: int, dtype: str) -> int:
    """Rough peak bytes of one call: 3 L × L buffers for exact, 4 L × (m + d) for FAVOR; x2 with backward.

    Half precision is computed in float32, so it is counted at 4 bytes.
    """
    itemsize = max(common.ITEMSIZE[dtype], 4)
    elements = 3 * length * length if method == "exact" else 4 * length * (m + d) + m * d
    passes = 2 if attention_pass == "forward+backward" else 1
    return passes * elements * itemsize


def _attention_function(method: str):
    from estimators import attention

    if method == "exact":
        return lambda q, k, v, W: attention.exact(q, k, v)
    causal = method == "favor-causal"
    return lambda q, k, v, W: attention.favor(q, k, v, W, causal=causal)


@common.cached
def attention_call(backend, method, attention_pass, length, m=M, d=D, dtype="float32"):
    """A warmed-up ``functools.partial`` running one attention pass (its function and arguments let
    :func:`common.peak_bytes` read XLA's buffer plan on JAX CPU); n/a where it cannot run."""
    common.require_length(backend, length)
    where = common.target(backend, dtype)
    size = working_set_bytes(method, attention_pass, length, m, d, dtype)
    common.require_fits(where, size, f"{method} {attention_pass} at L = {length}")
    q, k, v = (common.normal(backend, dtype, (length, d), seed=seed) for seed in (11, 12, 13))
    W = projections.orthogonal(m, d, seed=0, like=q)
    function = _attention_function(method)
    if attention_pass == "forward":
        forward = common.compile_function(where, function)
        return common.skip_if_out_of_memory(lambda: common.warmed_up(functools.partial(forward, q, k, v, W)))
    gradients = common.gradient_function(where, function, 3)
    q, k, v = (common.requires_grad(a) for a in (q, k, v))
    return common.skip_if_out_of_memory(lambda: common.warmed_up(functools.partial(gradients, q, k, v, W)))


class AttentionTime(common.HeavyBenchmark):
    """Time vs L (d = 64, m = 256, float32): exact vs FAVOR+ bidirectional vs causal, fwd and fwd+bwd."""

    params = (common.BACKENDS, METHODS, PASSES, LENGTHS)
    param_names = ("backend", "method", "pass", "L")

    def setup(self, probe, backend, method, attention_pass, length):
        common.require_length(backend, length)
        common.require_backend(probe, backend)
        self.run = attention_call(backend, method, attention_pass, length)

    def time_attention(self, probe, backend, method, attention_pass, length):
        common.sync(self.run())


class AttentionPeakMemory(common.BackendBenchmark):
    """Working memory of one call on its device vs L (bytes above the inputs; see common.peak_bytes)."""

    params = AttentionTime.params
    param_names = AttentionTime.param_names
    timeout = 600

    def setup(self, probe, backend, method, attention_pass, length):
        common.require_length(backend, length)
        common.require_peak_bytes(backend)
        common.require_backend(probe, backend)
        self.where = common.target(backend)
        self.run = attention_call(backend, method, attention_pass, length)

    def track_peak_bytes(self, probe, backend, method, attention_pass, length):
        return common.peak_bytes(self.where, self.run)

    track_peak_bytes.unit = "bytes"


class AttentionFeatureCount(common.HeavyBenchmark):
    """FAVOR+ forward time vs the number of random features m (L = 4096, d = 64, float32)."""

    params = (common.BACKENDS, ("favor", "favor-causal"), FEATURE_COUNTS)
    param_names = ("backend", "method", "m")

    def setup(self, probe, backend, method, m):
        common.require_backend(probe, backend)
        self.run = attention_call(backend, method, "forward", SHAPE_LENGTH, m=m)

    def time_attention(self, probe, backend, method, m):
        common.sync(self.run())


class AttentionHeadDim(common.HeavyBenchmark):
    """Forward time vs head dimension d (L = 4096, m = 256, float32)."""

    params = (common.BACKENDS, METHODS, HEAD_DIMS)
    param_names = ("backend", "method", "d")

    def setup(self, probe, backend, method, d):
        common.require_backend(probe, backend)
        self.run = attention_call(backend, method, "forward", SHAPE_LENGTH, d=d)

    def time_attention(self, probe, backend, method, d):
        common.sync(self.run())


class AttentionDtype(common.HeavyBenchmark):
    """Forward time per dtype (L = 4096, d = 64, m = 256); half precision accumulates in float32."""

    params = (common.BACKENDS, METHODS, common.DTYPES)
    param_names = ("backend", "method", "dtype")

    def setup(self, probe, backend, method, dtype):
        common.require_backend(probe, backend)
        self.run = attention_call(backend, method, "forward", SHAPE_LENGTH, dtype=dtype)

    def time_attention(self, probe, backend, method, dtype):
        common.sync(self.run())


class AttentionHostPeakMemory:
    """Host peak RSS of one numpy forward call (asv ``peakmem_``; the process baseline is included)."""

    params = (METHODS, (1024, 4096, 16384, 65536))
    param_names = ("method", "L")
    timeout = 600

    def setup(self, method, length):
        self.run = attention_call("numpy", method, "forward", length)

    def peakmem_forward(self, method, length):
        self.run()
