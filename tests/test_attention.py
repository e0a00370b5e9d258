"""Attention: exact softmax and FAVOR, bidirectional and causal, as exact identities (theory.md §2, §8;
claims 15, 16, 18).

Tier 0 (draw by draw): exact attention against textbook softmax; the FAVOR algebra against the
quadratic forms built from the same features (claim 15), chunked and causal, for every feature map and
the parameterized maps (GERF, SADERF, DIRFs) with their data options; stabilizer cancellation (claim 16);
causality under perturbations of the future, and the leak of the public code's global stabilizer (claim 18).
The interface (masks, denominators, bad inputs) is in ``test_attention_inputs``, backends, dtypes and
gradients in ``test_attention_backends``, the Tier 1 error of the output (claim 17) in
``test_attention_delta_method``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from estimators import causal as causal_scan
from estimators import features, registry
from estimators.attention import DenominatorError, exact, favor, favor_from_features
from estimators.backends import operations

from .attention_support import (
    B,
    D,
    L,
    inputs,
    key_mask,
    projection,
    quadratic,
    relative_error,
    unshifted_features,
)
from .conftest import BACKENDS, to_numpy

FEATURE_NAMES = ("positive", "hyperbolic", "trig", "generalized")


def _softmax_reference(q, k, v, causal=False, keep=None):
    """Textbook softmax attention in float64 numpy; rows without a visible key are zero."""
    logits = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    visible = np.ones(logits.shape, dtype=bool)
    if causal:
        visible &= np.tril(np.ones(logits.shape[-2:], dtype=bool))
    if keep is not None:
        visible &= keep[..., None, :]
    weights = np.where(visible, np.exp(logits), 0.0)
    total = weights.sum(-1, keepdims=True)
    return np.where(total > 0, weights @ v / np.where(total > 0, total, 1.0), 0.0)


# ---- Tier 0: exact identities ------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_exact_matches_textbook_softmax(to_backend, causal):
    q, k, v = inputs(scale=2.0)
    keep = np.random.default_rng(5).random((B, 1, L)) > 0.3
    for mask in (None, keep):
        out = exact(*map(to_backend, (q, k, v)), causal=causal, key_padding_mask=key_mask(to_backend, mask))
        assert relative_error(out, _softmax_reference(q, k, v, causal, mask)) < 1e-12


# JAX compiles one graph per configuration (about 1 s of CPU each), so it runs a representative subset.
FEATURE_CASES = [
    (backend, name)
    for backend in BACKENDS
    for name in FEATURE_NAMES
    if backend != "jax" or name in ("positive", "trig")
]


@pytest.mark.parametrize(("backend", "name"), FEATURE_CASES)
@pytest.mark.parametrize("causal", [False, True])
def test_favor_equals_quadratic_form_of_the_same_features(to_backend, backend, name, causal):
    """Claim 15: D̂⁻¹(Q'((K')ᵀV)) = D̂⁻¹(Q'K'ᵀ)V and the prefix sums equal the tril form (1e-10),
    with chunks of 1, of 4 (L = 11: a partial last chunk) and one chunk for the whole sequence."""
    q, k, v = inputs(scale=0.3)
    W = projection(per_head=True)
    expected = quadratic(unshifted_features(name, q, W), unshifted_features(name, k, W), v, causal)
    chunk_sizes = (4,) if backend == "jax" else (None, 1, 4)
    for chunk_size in chunk_sizes:
        out = favor(*map(to_backend, (q, k, v, W)), feature=name, causal=causal, chunk_size=chunk_size)
        assert relative_error(out, expected) < 1e-10


@pytest.mark.parametrize("block_rows", [4, 8, 12])
def test_causal_blocks_of_several_chunks_carry_the_state(to_backend, backend, monkeypatch, block_rows):
    """The causal scan batches k = block_rows / C chunks per step (C = 4 here: k = 1, 2, 3) and carries
    the state between blocks; L = 37 ends with a partial block and a one-row remainder. With a mask and
    a large key mid-block (the running shift jumps inside a block), the output equals the masked tril
    form of the unshifted features (1e-10)."""
    monkeypatch.setattr(causal_scan, "BLOCK_ROWS", block_rows)
    if backend == "jax":  # the jitted graphs were traced with the default block size: fresh caches
        monkeypatch.setattr(operations, "_jax_jit", functools.cache(operations._jax_jit.__wrapped__))
    q, k, v = inputs(scale=0.3, length=37)
    k[..., 18, :] *= 12.0
    keep = np.random.default_rng(6).random((B, 1, 37)) > 0.25
    W = projection(per_head=True)
    expected = quadratic(
        unshifted_features("positive", q, W), unshifted_features("positive", k, W), v, True, keep
    )
    args = map(to_backend, (q, k, v, W))
    out = favor(*args, causal=True, key_padding_mask=key_mask(to_backend, keep), chunk_size=4)
    assert relative_error(out, expected) < 1e-10


PARAMETERIZED_CASES = [
    ("numpy", "oprf-ort"),
    ("numpy", "gerf-trig-iid"),
    ("numpy", "saderf-iid"),
    ("numpy", "poisson-iid"),
    ("numpy", "geometric-iid"),
    *([("jax", "saderf-iid")] if "jax" in BACKENDS else []),
]


@pytest.mark.parametrize(("backend", "row"), PARAMETERIZED_CASES)
@pytest.mark.parametrize("causal", [False, True])
def test_parameterized_feature_maps_with_per_side_options(to_backend, backend, row, causal):
    """Parameterized maps (theory.md §10) through FAVOR, with their (query, key) data options (array
    valued for SADERF): equal to the quadratic form of the same unshifted features (1e-10)."""
    q, k, v = inputs(scale=0.3)
    estimator = registry.get(row)
    W = estimator.draw(16, D, seed=2)
    query_options, key_options = features.data_options(estimator.feature, q, k, scale_inputs=True)
    phi_q, phi_k = (
        to_numpy(
            features.assemble(features.feature_parts(estimator.feature, x, W, scale_inputs=True, **options))
        )
        for x, options in ((q, query_options), (k, key_options))
    )
    expected = quadratic(phi_q, phi_k, v, causal)
    backend_options = tuple(
        {name: to_backend(value) if hasattr(value, "shape") else value for name, value in side.items()}
        for side in (query_options, key_options)
    )
    args = tuple(map(to_backend, (q, k, v, W)))
    out = favor(*args, row, causal, feature_options=backend_options, chunk_size=4, denominator="raw")
    assert relative_error(out, expected) < 1e-10


@pytest.mark.parametrize("name", features.DATA_TUNED)
def test_data_tuned_maps_default_to_their_attention_rules(to_backend, name):
    """feature_options=None: bidirectionally the data_options rules (equal outputs to 1e-13, unlike the
    plain defaults {}); causal raises, since those rules read later positions, and {} is accepted."""
    q, k, v = map(to_backend, inputs(scale=0.3))
    estimator = next(row for row in registry.rows() if row.feature == name)
    W = estimator.draw(16, D, seed=2, like=q)
    tuned = features.data_options(name, q, k, scale_inputs=True)
    default = favor(q, k, v, W, name, denominator="zero")
    assert (
        relative_error(default, to_numpy(favor(q, k, v, W, name, feature_options=tuned, denominator="zero")))
        < 1e-13
    )
    assert (
        relative_error(default, to_numpy(favor(q, k, v, W, name, feature_options={}, denominator="zero")))
        > 1e-6
    )
    with pytest.raises(ValueError, match="feature_options"):
        favor(q, k, v, W, name, causal=True)
    assert (
        to_numpy(favor(q, k, v, W, name, causal=True, feature_options={}, denominator="zero")).shape
        == v.shape
    )


@pytest.mark.parametrize("causal", [False, True])
def test_favor_from_features_equals_quadratic_form(to_backend, causal):
    q, k, v = inputs()
    W = projection()
    phi_q, phi_k = unshifted_features("positive", q, W), unshifted_features("positive", k, W)
    out = favor_from_features(*map(to_backend, (phi_q, phi_k, v)), causal=causal, chunk_size=3)
    assert relative_error(out, quadratic(phi_q, phi_k, v, causal)) < 1e-10


STABILIZER_CASES = [
    (backend, stabilizer, causal)
    for backend in BACKENDS
    for stabilizer in ("auto", "global")
    for causal in (False, True)
    if backend != "jax" or (stabilizer, causal) == ("auto", True)
]


@pytest.mark.parametrize(("backend", "stabilizer", "causal"), STABILIZER_CASES)
def test_stabilizers_cancel_exactly(to_backend, backend, stabilizer, causal):
    """Claim 16: with eps = 0 the row and key shifts leave the output unchanged (1e-12)."""
    q, k, v = inputs(scale=1.5)
    args = tuple(map(to_backend, (q, k, v, projection())))
    plain = to_numpy(favor(*args, causal=causal, stabilizer="none", chunk_size=4))
    shifted = favor(*args, causal=causal, stabilizer=stabilizer, chunk_size=4)
    assert relative_error(shifted, plain) < 1e-12


@pytest.mark.parametrize("name", ["positive", "hyperbolic"])
def test_bidirectional_eps_is_the_public_codes(name):
    """With eps > 0, chunked bidirectional FAVOR equals the quadratic form of the public code's
    features: queries shifted by their row maximum, keys by the whole-sequence maximum, then + eps
    (theory.md §8), for every chunking."""
    q, k, v = inputs(scale=1.0)
    W = projection()
    feature = features.feature_map(name)
    phi_q = to_numpy(feature(q, W, scale_inputs=True, stabilizer="row", eps=1e-2))
    phi_k = to_numpy(feature(k, W, scale_inputs=True, stabilizer="global", eps=1e-2))
    expected = quadratic(phi_q, phi_k, v)
    for chunk_size in (1, 4, None):
        assert relative_error(favor(q, k, v, W, name, eps=1e-2, chunk_size=chunk_size), expected) < 1e-12


def test_stabilizer_keeps_large_inputs_finite_in_float32():
    """Inputs whose unshifted features overflow float32 still give the float64 answer with "auto"."""
    q, k, v = inputs(scale=12.0)
    W = projection()
    expected = to_numpy(favor(q, k, v, W))
    q32, k32, v32, W32 = (a.astype(np.float32) for a in (q, k, v, W))
    with pytest.raises(DenominatorError), np.errstate(over="ignore", invalid="ignore"):
        favor(q32, k32, v32, W32, stabilizer="none")
    assert relative_error(favor(q32, k32, v32, W32), expected) < 1e-4


# ---- causality -----------------------------------------------------------------------------------


def _perturb_future(q, k, v, t, seed=7):
    """Keys and values after position t replaced; one of them a huge-norm outlier key."""
    rng = np.random.default_rng(seed)
    k2, v2 = k.copy(), v.copy()
    k2[..., t + 1 :, :] = rng.standard_normal(k2[..., t + 1 :, :].shape)
    v2[..., t + 1 :, :] = 100 * rng.standard_normal(v2[..., t + 1 :, :].shape)
    k2[..., t + 2, :] = 1e3 * rng.standard_normal(D)
    return k2, v2


FUTURE_CASES = [
    (backend, name, eps)
    for backend in BACKENDS
    for name in ("positive", "hyperbolic", "trig")
    for eps in (0.0, 1e-3)
    if backend != "jax" or name == "trig"
]


@pytest.mark.parametrize(("backend", "name", "eps"), FUTURE_CASES)
def test_causal_output_ignores_the_future(to_backend, backend, name, eps):
    """Outputs at positions <= t are unchanged (1e-12) when later keys/values change, incl. an outlier."""
    q, k, v = inputs(scale=0.3)
    W = projection()
    t = 5
    k2, v2 = _perturb_future(q, k, v, t)
    outputs = [
        to_numpy(
            favor(*map(to_backend, (q, kk, vv, W)), name, True, eps=eps, chunk_size=4, denominator="zero")
        )
        for kk, vv in ((k, v), (k2, v2))
    ]
    np.testing.assert_allclose(outputs[1][..., : t + 1, :], outputs[0][..., : t + 1, :], rtol=1e-12, atol=0)


def test_global_stabilizer_leaks_the_future_in_causal_mode():
    """Claim 18: the public code's whole-sequence key max with eps > 0 lets later keys move earlier
    outputs. This is the bug the causal-perturbation test above must be able to catch."""
    q, k, v = inputs(scale=0.3)
    W = projection()
    t = 5
    k2, v2 = _perturb_future(q, k, v, t)
    before, after = (
        favor(q, kk, vv, W, causal=True, stabilizer="global", eps=1e-3) for kk, vv in ((k, v), (k2, v2))
    )
    assert np.max(np.abs(after[..., : t + 1, :] - before[..., : t + 1, :])) > 1e-6


def test_exact_causal_ignores_the_future(to_backend):
    q, k, v = inputs()
    t = 5
    k2, v2 = _perturb_future(q, k, v, t)
    before, after = (
        to_numpy(exact(*map(to_backend, (q, kk, vv)), causal=True)) for kk, vv in ((k, v), (k2, v2))
    )
    np.testing.assert_allclose(after[..., : t + 1, :], before[..., : t + 1, :], rtol=1e-12, atol=0)
