"""Attention across backends and dtypes, its dispatch, and its gradients.

numpy, torch and JAX give the same output (1e-12); half-precision inputs accumulate in float32 and
keep their dtype; registry names select their feature map, impl="auto" is the reference off CUDA and
JAX's jit equals eager; torch's gradcheck and JAX's check_grads pass for FAVOR and exact attention,
and gradients stay finite with an outlier key and masked keys.
"""

from __future__ import annotations

import numpy as np
import pytest

from estimators import projections
from estimators.attention import exact, favor
from estimators.features import FEATURES

from .attention_support import B, D, L, inputs, projection, relative_error
from .conftest import BACKENDS, to_numpy

# ---- backends, dtypes, dispatch ------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_backends_agree(causal):
    q, k, v = inputs()
    W = projection(per_head=True)
    keep = np.random.default_rng(2).random((B, 1, L)) > 0.2
    results = {}
    for backend in BACKENDS:
        from estimators.backends import resolve_target

        target = resolve_target(backend=backend, dtype="float64")
        mask = target.asarray(keep.astype(np.float64)) > 0.5
        results[backend] = to_numpy(
            favor(*map(target.asarray, (q, k, v, W)), causal=causal, key_padding_mask=mask, chunk_size=4)
        )
    for backend, out in results.items():
        np.testing.assert_allclose(out, results["numpy"], rtol=1e-12, atol=1e-14, err_msg=backend)


LOW_PRECISION_CASES = [
    ("numpy", "float16", False),
    ("numpy", "float16", True),
    ("torch", "float16", True),
    ("torch", "bfloat16", False),
    ("torch", "bfloat16", True),
]


@pytest.mark.parametrize(("backend", "dtype", "causal"), [c for c in LOW_PRECISION_CASES if c[0] in BACKENDS])
def test_low_precision_accumulates_in_float32_and_keeps_dtype(to_backend, backend, dtype, causal):
    """Half-precision inputs give half-precision outputs within one rounding of the float64 result
    on the same (rounded) inputs, so the accumulation is not in half precision."""
    q, k, v = inputs()
    W = projection()
    args = tuple(to_backend(a, dtype) for a in (q, k, v, W))
    expected = to_numpy(favor(*(to_backend(to_numpy(a)) for a in args), causal=causal))
    for out in (favor(*args, causal=causal), exact(*args[:3], causal=causal)):
        assert str(out.dtype).endswith(dtype)
    tolerance = {"float16": 2e-3, "bfloat16": 1e-2}[dtype]
    assert relative_error(favor(*args, causal=causal), expected) < tolerance


def test_registry_names_select_their_feature_map():
    q, k, v = inputs()
    W = projection()
    np.testing.assert_array_equal(
        favor(q, k, v, W, feature="positive-ort"), favor(q, k, v, W, feature="positive")
    )
    np.testing.assert_array_equal(favor(q, k, v, W, feature="trig-iid"), favor(q, k, v, W, feature="trig"))


def test_reference_and_auto_impl_agree_off_cuda():
    q, k, v = inputs()
    W = projection()
    np.testing.assert_array_equal(favor(q, k, v, W, impl="auto"), favor(q, k, v, W, impl="reference"))
    with pytest.raises(ValueError, match="impl='triton'"):
        favor(q, k, v, W, impl="triton")


def test_jit_matches_eager_in_jax():
    jax = pytest.importorskip("jax")
    q, k, v = inputs()
    W = projection()
    args = tuple(jax.numpy.asarray(a) for a in (q, k, v, W))
    jitted = jax.jit(lambda *a: favor(*a, causal=True, chunk_size=4))
    np.testing.assert_allclose(
        np.asarray(jitted(*args)), np.asarray(favor(*args, causal=True, chunk_size=4)), rtol=1e-13
    )


# ---- gradients -----------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_gradients_torch(causal):
    torch = pytest.importorskip("torch")
    q, k, v = (torch.tensor(a[0, 0, :5], requires_grad=True) for a in inputs())
    W = torch.tensor(projection())
    keep = torch.tensor([True, False, True, True, True])

    def function(q, k, v):
        return favor(q, k, v, W, causal=causal, key_padding_mask=keep, chunk_size=2)

    assert torch.autograd.gradcheck(function, (q, k, v), eps=1e-6, atol=1e-8)
    assert torch.autograd.gradcheck(
        lambda q, k, v: exact(q, k, v, causal=causal, key_padding_mask=keep), (q, k, v)
    )


@pytest.mark.parametrize("name", [name for name in FEATURES if name != "generalized"])
@pytest.mark.parametrize("causal", [False, True])
def test_gradients_torch_every_feature_map(name, causal):
    """Every exponential map's log-amplitudes are shifted and exponentiated in place inside FAVOR:
    torch's gradcheck (finite differences in float64) still agrees with autograd for each, and an
    in-place step that autograd needs would raise here. (Signed maps can give D̂ ≤ 0 at 8 features:
    those rows are zero, the same on both sides of every finite difference.)"""
    torch = pytest.importorskip("torch")
    q, k, v = (torch.tensor(a[0, 0, :5] * 0.6, requires_grad=True) for a in inputs())
    draw = projections.uniform if name in ("poisson", "geometric") else projections.orthogonal
    W = torch.tensor(draw(8, D, seed=1))
    keep = torch.tensor([True, False, True, True, True])

    def function(q, k, v):
        return favor(
            q,
            k,
            v,
            W,
            feature=name,
            causal=causal,
            key_padding_mask=keep,
            chunk_size=2,
            feature_options={},
            denominator="zero",
        )

    assert torch.autograd.gradcheck(function, (q, k, v), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("causal", [False, True])
def test_gradients_jax(causal):
    jax = pytest.importorskip("jax")
    from jax.test_util import check_grads

    jnp = jax.numpy
    q, k, v = (jnp.asarray(a[0, 0, :5]) for a in inputs())
    W = jnp.asarray(projection())
    keep = jnp.asarray([True, False, True, True, True])

    def function(q, k, v):
        q, k, v = (jnp.asarray(a) for a in (q, k, v))
        return favor(q, k, v, W, causal=causal, key_padding_mask=keep, chunk_size=2)

    check_grads(jax.jit(function), (q, k, v), order=1, modes=["rev"])


@pytest.mark.parametrize("name", ["positive", "trig", "hyperbolic"])
@pytest.mark.parametrize("causal", [False, True])
def test_gradients_stay_finite_with_an_outlier_key_and_masks(name, causal):
    """Removed keys are assembled at shift +inf and masked with where: no Inf*0 reaches a gradient,
    even with a key of norm ~600 (torch; JAX for the causal trig map)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    q, k, v = (0.5 * rng.standard_normal((9, D)) for _ in range(3))
    k[5] = 300 * rng.standard_normal(D)
    keep = np.ones(9, dtype=bool)
    keep[[0, 6]] = False
    W = projection(m=8)
    tensors = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    out = favor(*tensors, torch.tensor(W), name, causal, torch.tensor(keep), chunk_size=4, denominator="zero")
    out.sum().backward()
    assert all(bool(torch.isfinite(t.grad).all()) for t in tensors)
    if "jax" in BACKENDS and name == "trig" and causal:
        import jax

        jnp = jax.numpy
        gradients = jax.grad(
            lambda q, k, v: favor(
                q, k, v, jnp.asarray(W), name, True, jnp.asarray(keep), chunk_size=4, denominator="zero"
            ).sum(),
            argnums=(0, 1, 2),
        )(*map(jnp.asarray, (q, k, v)))
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in gradients)
