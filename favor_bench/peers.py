"""FAVOR against what a user would pick instead, timed in one run: performer-pytorch and SDPA.

The configuration of the CPU comparison: q, k, v (B, H, L, d) = (1, 4, L, 64) standard normal,
m = 256 features, float32, bidirectional and causal, forward and forward+backward. Implementations:

* ``favor-bench``: :func:`estimators.attention.favor` (positive features, block-orthogonal W with
  χ(d) norms; chunked causal prefix sums);
* ``favor-bench-compiled``: the same call with ``impl="compiled"`` (each chunk or block step through
  ``torch.compile``; compiled during ``setup``, which the timings exclude);
* ``performer-pytorch``: ``performer_pytorch.FastAttention(dim_heads=d, nb_features=m, causal=...)``
  (1.1.4, its own W; its causal path without the optional CUDA extension materializes the
  (B, H, L, m, d) prefix sums, so its working set is B·H·L·m·d floats);
* ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=...)``, exact
  softmax attention (its working set is counted as one B·H·L² score matrix).

Only the torch backends run (``numpy`` and ``jax`` are n/a: the peers are PyTorch code); a peer that
is not installed, or a size whose working set exceeds the device budget, is n/a. Ratios between
implementations are read from one ``asv run`` (``scripts/peers_figure.py``).

:class:`MachineFloor` measures the same machine's float32 matrix-multiply and exponential
throughput, from which ``scripts/peers_figure.py`` derives a floor for the FAVOR forward:
8·B·H·L·m·d floating-point operations (two projections, KᵀV and Q(KᵀV), 2·L·m·d each) and
2·B·H·L·m exponentials (query and key features).
"""

from __future__ import annotations

import functools
import importlib.util

from estimators import projections

from . import common

FAVOR_IMPLS = {"favor-bench": "auto", "favor-bench-compiled": "compiled"}
"""favor-bench's rows: the ``impl`` each passes to :func:`estimators.attention.favor`."""
IMPLEMENTATIONS = (*FAVOR_IMPLS, "performer-pytorch", "sdpa")
MODES = ("bidirectional", "causal")
PASSES = ("forward", "forward+backward")
LENGTHS = (1024, 4096, 16384, 65536)
BATCH, HEADS, D, M = 1, 4, 64, 256
FLOOR_MATRIX = 1024
FLOOR_ELEMENTS = 1 << 22
CPU_EXP_PIECE = 1 << 16


def working_set_bytes(implementation: str, mode: str, attention_pass: str, length: int) -> int:
    """Rough peak float32 bytes of one call (x2 with the backward pass); see the module docstring."""
    rows = BATCH * HEADS * length
    if implementation == "sdpa":
        elements = rows * length
    elif implementation == "performer-pytorch" and mode == "causal":
        elements = rows * M * D
    else:
        elements = 4 * rows * (M + D)
    return (2 if attention_pass == "forward+backward" else 1) * elements * 4


def _require_torch(backend: str) -> None:
    if not backend.startswith("torch:"):
        raise NotImplementedError("the peers are PyTorch code: torch backends only")


def _implementation(name: str, mode: str, W):
    """A function (q, k, v) -> output for ``name``; ``NotImplementedError`` when it is not installed."""
    import torch

    causal = mode == "causal"
    if name in FAVOR_IMPLS:
        from estimators import attention

        return lambda q, k, v: attention.favor(q, k, v, W, causal=causal, impl=FAVOR_IMPLS[name])
    if name == "sdpa":
        return lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    if importlib.util.find_spec("performer_pytorch") is None:
        raise NotImplementedError("performer-pytorch is not installed (pip install 'favor-bench[audit]')")
    import setuptools  # noqa: F401  (performer_pytorch imports distutils, which setuptools provides)
    from performer_pytorch import FastAttention

    module = FastAttention(dim_heads=D, nb_features=M, causal=causal).to(W.device)
    return module


@common.cached
def peer_call(backend: str, implementation: str, mode: str, attention_pass: str, length: int):
    """A warmed-up zero-argument call of one implementation; n/a where it cannot run here."""
    _require_torch(backend)
    common.require_length(backend, length)
    where = common.target(backend)
    size = working_set_bytes(implementation, mode, attention_pass, length)
    common.require_fits(where, size, f"{implementation} {mode} {attention_pass} at L = {length}")
    shape = (BATCH, HEADS, length, D)
    q, k, v = (common.normal(backend, "float32", shape, seed=seed) for seed in (21, 22, 23))
    W = projections.orthogonal(M, D, seed=0, like=q)
    function = _implementation(implementation, mode, W)
    if attention_pass == "forward":
        import torch

        def forward(q, k, v):
            with torch.no_grad():
                return function(q, k, v)

        return common.skip_if_out_of_memory(lambda: common.warmed_up(functools.partial(forward, q, k, v)))
    gradients = common.gradient_function(where, function, 3)
    q, k, v = (common.requires_grad(a) for a in (q, k, v))
    return common.skip_if_out_of_memory(lambda: common.warmed_up(functools.partial(gradients, q, k, v)))


class PeerAttentionTime(common.HeavyBenchmark):
    """Time vs L, B = 1, H = 4, d = 64, m = 256, float32: favor-bench (eager and compiled) vs
    performer-pytorch vs SDPA."""

    params = (common.BACKENDS, IMPLEMENTATIONS, MODES, PASSES, LENGTHS)
    param_names = ("backend", "implementation", "mode", "pass", "L")
    rounds = 2
    """Two processes per combination, in interleaved rounds: at L = 1k one implementation's median
    moved by up to 1.6x between runs at one commit while its spread within each process stayed
    tight, so the variation comes with the process (what in it was not established); the median
    over two processes started a round apart is what the ratios compare."""
    repeat = (1, 15, 4.0)
    """Up to 15 samples a round within four seconds (one at least): the verdicts in
    ``scripts/peers_figure.py`` use asv's 99% interval for each median. From order statistics it
    needs 8 samples (asv falls back to a posterior below that) and is the whole sample range up to
    10; over 30 samples (two rounds) it is the 8th to the 23rd smallest. Calls over four seconds
    still take one sample a round."""

    def setup(self, probe, backend, implementation, mode, attention_pass, length):
        common.require_backend(probe, backend)
        self.run = peer_call(backend, implementation, mode, attention_pass, length)

    def time_attention(self, probe, backend, implementation, mode, attention_pass, length):
        common.sync(self.run())


def _throughput(call, operations: float) -> float:
    """``operations`` per second of ``call`` (synchronized; the best of five timed runs)."""
    timer = common.benchmark_timer()
    common.sync(call())
    best = float("inf")
    for _ in range(5):
        start = timer()
        common.sync(call())
        best = min(best, timer() - start)
    return operations / best


def _exp_of_pieces(xp, pieces):
    """``exp`` of each piece in turn, keeping only the last output (so the allocator reuses the
    memory of the others); on an asynchronous device the last output completes after the others."""
    out = None
    for piece in pieces:
        out = xp.exp(piece)
    return out


class MachineFloor(common.BackendBenchmark):
    """The machine's float32 throughput on a backend: matrix multiply (GFLOP/s) and exp (1e9 per s).

    ``track_sgemm_gflops``: a 1024 × 1024 by 1024 × 1024 product, 2·1024³ operations;
    ``track_exp_rate``: ``exp`` of 2²² float32 values, on a CPU in pieces of 2¹⁶ (256 KB, which stay
    in cache and whose outputs the allocator reuses: one 16 MB output per call would mostly time the
    page faults of fresh memory). Best of five runs (the floor is a best case).
    """

    params = (common.BACKENDS,)
    param_names = ("backend",)

    def setup(self, probe, backend):
        common.require_backend(probe, backend)
        self.where = common.target(backend)
        self.a, self.b = (
            common.normal(backend, "float32", (FLOOR_MATRIX, FLOOR_MATRIX), seed=s) for s in (31, 32)
        )
        x = common.normal(backend, "float32", (FLOOR_ELEMENTS,), seed=33)
        piece = CPU_EXP_PIECE if self.where.device == "cpu" else FLOOR_ELEMENTS
        self.pieces = [x[start : start + piece] for start in range(0, FLOOR_ELEMENTS, piece)]

    def track_sgemm_gflops(self, probe, backend):
        xp = self.where.xp
        return _throughput(lambda: xp.matmul(self.a, self.b), 2 * FLOOR_MATRIX**3) / 1e9

    track_sgemm_gflops.unit = "GFLOP/s"

    def track_exp_rate(self, probe, backend):
        xp = self.where.xp
        return _throughput(lambda: _exp_of_pieces(xp, self.pieces), FLOOR_ELEMENTS) / 1e9

    track_exp_rate.unit = "1e9 exp/s"
