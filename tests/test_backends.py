"""Backends: target resolution, placement, random sources, sync and import hygiene."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from estimators import backends
from estimators.backends import make_rng, native_rng, resolve_target
from tests.conftest import to_numpy


def test_import_estimators_loads_neither_torch_nor_jax():
    code = (
        "import sys, estimators, estimators.registry, estimators.kernels;"
        "bad = [m for m in ('torch', 'jax') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_asarray_keeps_backend_device_dtype(backend, dtype):
    target = resolve_target(backend=backend, dtype=dtype)
    x = target.asarray(np.arange(6.0).reshape(2, 3))
    assert backends.backend_of(x) == backend
    assert backends.device_name(x) == "cpu"
    assert backends.dtype_name(x) == dtype
    assert resolve_target(like=x) == target


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"backend": "cupy"}, ValueError, "backend must be one of"),
        ({"device": "mps"}, ValueError, "device must be one of"),
        ({"dtype": "int32"}, TypeError, "dtype must be one of"),
        ({"backend": "numpy", "device": "cuda"}, ValueError, "not available for backend 'numpy'"),
        ({"backend": "numpy", "dtype": "bfloat16"}, TypeError, "bfloat16"),
        ({"backend": "torch", "device": "tpu"}, ValueError, "needs backend 'jax'"),
    ],
)
def test_resolve_target_rejects_bad_names(kwargs, error, message):
    with pytest.raises(error, match=message):
        resolve_target(**kwargs)


def test_cuda_request_without_gpu_names_the_device():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="device 'cuda'"):
        resolve_target(backend="torch", device="gpu")


def test_portable_rng_is_reproducible_and_seed_types_agree():
    a = make_rng(7).normal((3, 2))
    b = make_rng(np.random.SeedSequence(7)).normal((3, 2))
    c = make_rng(np.random.default_rng(7)).normal((3, 2))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, make_rng(8).normal((3, 2)))


def test_native_rngs_draw_on_their_backend_and_repeat_with_the_seed(backend):
    target = resolve_target(backend=backend, dtype="float32")
    first = native_rng(5, target).normal((4, 3))
    second = native_rng(5, target).normal((4, 3))
    assert backends.backend_of(first) == backend
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))


def test_make_rng_rejects_unknown_seed_types():
    with pytest.raises(TypeError, match="seed must be"):
        make_rng("seven")


def test_sync_accepts_nested_arrays(backend, to_backend):
    x = to_backend(np.ones(3))
    backends.sync({"a": [x, (x,)], "b": None})


def test_backend_of_rejects_lists():
    with pytest.raises(TypeError, match="expected a numpy, torch or jax array"):
        backends.backend_of([1.0, 2.0])


def test_exp_of_temporary_writes_over_its_input_where_the_framework_can(backend, to_backend):
    """numpy and torch compute exp in the caller's buffer (no fresh pages); jax returns a new array."""
    host = np.linspace(-3.0, 2.0, 12).reshape(3, 4)
    expected = np.exp(host)
    x = to_backend(host.copy())
    out = backends.framework(x).exp_of_temporary(x)
    np.testing.assert_allclose(to_numpy(out), expected, rtol=1e-15)
    if backend in ("numpy", "torch"):
        np.testing.assert_allclose(to_numpy(x), expected, rtol=1e-15)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cos_and_sin_is_the_concatenation_bit_for_bit(backend, to_backend, dtype):
    """[cos x, sin x] along the last axis, equal to the framework's own cos and sin of each entry
    (numpy writes both halves into one array; the others concatenate)."""
    host = np.linspace(-40.0, 40.0, 2 * 3 * 5).reshape(2, 3, 5).astype(dtype)
    x = to_backend(host, dtype)
    xp = backends.namespace(x)
    joined = backends.framework(x).cos_and_sin(x)
    assert tuple(joined.shape) == (2, 3, 10) and backends.dtype_name(joined) == dtype
    out = to_numpy(joined)
    np.testing.assert_array_equal(out[..., :5], to_numpy(xp.cos(x)))
    np.testing.assert_array_equal(out[..., 5:], to_numpy(xp.sin(x)))
