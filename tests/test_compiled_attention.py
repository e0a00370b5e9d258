"""``favor(..., impl="compiled")``: the reference algebra with each chunk or block step compiled.

torch compiles each step with ``torch.compile`` (Inductor, a C++ compiler on a CPU); the tests check
its outputs and gradients against the float64 reference within float32 rounding, that the steps
compile into graphs without a graph break (a break would silently run part of a step eagerly), that
numpy is refused by name, that JAX gives its jitted reference, and that a failed compilation says
what to do. The sizes are small, with blocks and chunks shortened, so that the first, a carried and a
remainder block (or key chunk) each compile, and a second length (new shapes and strides) compiles
again and is as right.

Tolerance: a float32 FAVOR output sums L key terms of m features, each from a d-term projection, so
its relative rounding error is at most about (L + m + d)·u with u = 2⁻²⁴ (recursive summation,
Higham §4.2); the eager float32 reference is held to the same bound, so the bound is not set for the
compiled path alone.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from estimators import causal as causal_module
from estimators.attention import favor
from estimators.backends import operations

from .conftest import to_numpy

torch = pytest.importorskip("torch")

HAS_COMPILER = any(shutil.which(name) for name in ("g++", "c++", "clang++"))
needs_compiler = pytest.mark.skipif(not HAS_COMPILER, reason="torch.compile on a CPU needs a C++ compiler")

B, H, LENGTH, OTHER_LENGTH, D, M = 1, 2, 72, 88, 16, 32
CHUNK, BLOCK_ROWS = 16, 32
"""Causal: blocks of 32 rows (the first, one carried), then 8 rows (L = 72) or 16 and 8 (L = 88);
bidirectional chunks of 32, 32 and 8 or 24 rows (``chunk_size=32``)."""
UNIT_ROUNDOFF = 2.0**-24
BOUND = (OTHER_LENGTH + M + D) * UNIT_ROUNDOFF


def _inputs(seed=0, length=LENGTH):
    rng = np.random.default_rng(seed)
    q, k = (0.5 * rng.standard_normal((B, H, length, D)) for _ in range(2))
    v = rng.standard_normal((B, H, length, D))
    W = rng.standard_normal((M, D))
    keep = rng.random((B, 1, length)) > 0.2
    return q, k, v, W, keep


def _call(arrays, keep, causal, impl, dtype):
    q, k, v, W = (torch.tensor(a, dtype=dtype) for a in arrays)
    mask = torch.tensor(keep)
    chunk_size = CHUNK if causal else 2 * CHUNK
    return favor(q, k, v, W, causal=causal, key_padding_mask=mask, chunk_size=chunk_size, impl=impl)


def _relative(actual, expected):
    return float(np.max(np.abs(to_numpy(actual) - expected)) / np.max(np.abs(expected)))


@pytest.fixture
def short_blocks(monkeypatch):
    monkeypatch.setattr(causal_module, "BLOCK_ROWS", BLOCK_ROWS)


@needs_compiler
@pytest.mark.parametrize("causal", [False, True])
def test_compiled_output_is_the_reference_within_float32_rounding(short_blocks, causal):
    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    counters.clear()
    for length in (LENGTH, OTHER_LENGTH):
        q, k, v, W, keep = _inputs(length=length)
        expected = to_numpy(_call((q, k, v, W), keep, causal, "reference", torch.float64))
        compiled = _call((q, k, v, W), keep, causal, "compiled", torch.float32)
        eager = _call((q, k, v, W), keep, causal, "reference", torch.float32)
        assert compiled.dtype == torch.float32 and compiled.shape == (B, H, length, D)
        assert _relative(eager, expected) <= BOUND
        assert _relative(compiled, expected) <= BOUND
    assert counters["stats"]["unique_graphs"] >= 2
    assert not counters["graph_break"], dict(counters["graph_break"])


@needs_compiler
def test_compiled_causal_gradients_are_the_reference_within_float32_rounding(short_blocks):
    q, k, v, W, keep = _inputs(seed=1)
    weights = np.random.default_rng(2).standard_normal((B, H, LENGTH, D))

    def gradients(impl, dtype):
        tensors = [torch.tensor(a, dtype=dtype, requires_grad=True) for a in (q, k, v)]
        out = favor(
            *tensors,
            torch.tensor(W, dtype=dtype),
            causal=True,
            key_padding_mask=torch.tensor(keep),
            chunk_size=CHUNK,
            impl=impl,
        )
        (out * torch.tensor(weights, dtype=dtype)).sum().backward()
        return [t.grad for t in tensors]

    expected = [to_numpy(g) for g in gradients("reference", torch.float64)]
    for impl in ("reference", "compiled"):
        for name, actual, reference in zip("qkv", gradients(impl, torch.float32), expected, strict=True):
            assert _relative(actual, reference) <= BOUND, (impl, name)


def test_compiled_refuses_numpy_by_name():
    q, k, v, W, _ = _inputs()
    with pytest.raises(ValueError, match="impl='compiled' needs torch or JAX arrays"):
        favor(q, k, v, W, impl="compiled")


def test_compiled_jax_is_its_jitted_reference():
    jnp = pytest.importorskip("jax.numpy")
    q, k, v, W, keep = _inputs()
    arrays = [jnp.asarray(a, dtype=jnp.float32) for a in (q, k, v, W)]
    for causal in (False, True):
        compiled = favor(*arrays, causal=causal, key_padding_mask=jnp.asarray(keep), impl="compiled")
        reference = favor(*arrays, causal=causal, key_padding_mask=jnp.asarray(keep), impl="reference")
        np.testing.assert_array_equal(np.asarray(compiled), np.asarray(reference))


def test_a_failed_compilation_says_what_to_do(monkeypatch):
    from torch._dynamo.exc import BackendCompilerFailed

    def compile_that_fails(function, **options):
        def call(*args):
            raise BackendCompilerFailed(
                function, RuntimeError("InvalidCxxCompiler: no working C++ compiler"), None
            )

        return call

    monkeypatch.setattr(torch, "compile", compile_that_fails)
    operations._torch_compiled.cache_clear()
    try:
        q, k, v, W, _ = _inputs()
        tensors = [torch.tensor(a, dtype=torch.float32) for a in (q, k, v, W)]
        with pytest.raises(RuntimeError, match=r"needs a working C\+\+ compiler.*impl='reference'"):
            favor(*tensors, impl="compiled")
    finally:
        operations._torch_compiled.cache_clear()
