"""Hybrid random features (theory.md §10.5): draw-by-draw identities on every backend.

* the tensor-product features give K̂ = w T + (1 − w) H with λ̂ from the signs of Ξ, as a direct
  float64 transcription of the public notebook's estimator (trig weight λ̂) and of the exact-ends
  orientation (trig weight 1 − λ̂) computes it; the direct Gram equals the features' inner products;
* the exact-ends orientation is exact at x = y (θ = 0: K̂ = T = e^{‖x‖²}) and x = −y (θ = π: K̂ = H =
  e^{−‖x‖²}) on every draw; the notebook orientation is not;
* FAVOR with hybrid features equals the normalized Gram rows (bidirectional and causal), so the
  query/key sides are applied inside attention;
* backend, dtype and array_api_strict; argument errors.

Tolerances: every identity is a few sums of m terms of size e^{O(‖x‖²)}: rtol 1e-12 in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from estimators import attention, backends, features, hybrid_features, registry
from estimators.hybrid_split import split
from tests.conftest import to_numpy

NAMES = ("hybrid", "hybrid-notebook")


def _transcription(x, y, W, trig_weight_is_lambda):
    """The notebook's estimator on pairs, in float64 numpy: λ = 1/2 − Σ_r (sgn/√(2n))(sgn/√(2n))."""
    k, n = split(W.shape[-2])
    omega, xi = W[:k], W[k:]

    def rff(u):
        return np.exp(u @ u / 2) / np.sqrt(k) * np.concatenate([np.cos(omega @ u), np.sin(omega @ u)])

    def favor(u):
        return np.exp(-u @ u / 2) / np.sqrt(2 * k) * np.concatenate([np.exp(omega @ u), np.exp(-omega @ u)])

    lam = 0.5 - np.sum(np.sign(xi @ x) * np.sign(xi @ y)) / (2 * n)
    weight = lam if trig_weight_is_lambda else 1 - lam
    return weight * rff(x) @ rff(y) + (1 - weight) * favor(x) @ favor(y)


def _sets(seed=0, d=5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((4, d)) * 0.4, rng.standard_normal((3, d)) * 0.4, rng.standard_normal((12, d))


@pytest.mark.parametrize("name", NAMES)
def test_features_and_gram_equal_the_transcribed_estimator(name):
    x, y, W = _sets()
    query, key = features.data_options(name, x, y)
    phi_x = features.feature_map(name)(x, W, **query)
    phi_y = features.feature_map(name)(y, W, **key)
    assert phi_x.shape == (4, hybrid_features.width(12)) == (4, features.feature_width(name, 12))
    expected = [[_transcription(a, b, W, name == "hybrid-notebook") for b in y] for a in x]
    np.testing.assert_allclose(phi_x @ phi_y.T, expected, rtol=1e-12)
    np.testing.assert_allclose(hybrid_features.gram(name, x, y, W), expected, rtol=1e-12)
    same_side = features.feature_map(name)(y, W, **query)
    assert not np.allclose(phi_x @ same_side.T, expected), "query features on both sides flip the weight"


@pytest.mark.parametrize("name", NAMES)
def test_pair_estimates_equal_the_transcribed_estimator(name):
    """``Estimator.estimate`` (the direct form on pairs) for one W and for a batch of W."""
    x, y, W = _sets()
    pairs_x, row = x[:3], registry.get(f"{name}-iid")
    batch = np.stack([W, W[::-1]])
    expected = [
        [_transcription(a, b, w, name == "hybrid-notebook") for a, b in zip(pairs_x, y, strict=True)]
        for w in batch
    ]
    np.testing.assert_allclose(row.estimate(pairs_x, y, W), expected[0], rtol=1e-12)
    np.testing.assert_allclose(
        row.estimate(pairs_x[:, None, :], y[:, None, :], batch), np.transpose(expected), rtol=1e-12
    )


@pytest.mark.parametrize("m", [2, 3, 10, 80])
def test_exact_ends_orientation_is_exact_at_theta_0_and_pi(m):
    rng = np.random.default_rng(m)
    x = rng.standard_normal(6) * 0.5
    W = rng.standard_normal((50, m, 6))
    for name, exact in (("hybrid-iid", True), ("hybrid-notebook-iid", False)):
        row = registry.get(name)
        same = row.estimate(x, x, W) / np.exp(x @ x) - 1
        opposite = row.estimate(x, -x, W) / np.exp(-x @ x) - 1
        if exact:
            assert np.max(np.abs(same)) < 1e-12 and np.max(np.abs(opposite)) < 1e-12
        else:
            assert np.max(np.abs(same)) > 1e-3 and np.max(np.abs(opposite)) > 1e-3


@pytest.mark.parametrize("name", ["hybrid-iid", "hybrid-notebook-iid"])
@pytest.mark.parametrize("causal", [False, True])
def test_favor_uses_query_and_key_sides(name, causal):
    rng = np.random.default_rng(3)
    q, k, v = rng.standard_normal((3, 10, 6)) * 0.6
    row = registry.get(name)
    W = row.draw(16, 6, seed=2)
    gram = row.estimate_gram(q * 6**-0.25, k * 6**-0.25, W)
    if causal:
        gram = np.tril(gram)
    expected = gram @ v / gram.sum(-1, keepdims=True)
    for options in (None, {}, ({}, {})):
        out = attention.favor(q, k, v, W, feature=name, causal=causal, feature_options=options)
        np.testing.assert_allclose(out, expected, rtol=1e-10)


def test_backends_keep_device_and_dtype_and_array_api_strict_runs(backend, to_backend):
    x, y, W = _sets(5)
    reference = hybrid_features.gram("hybrid", x, y, W)
    gram = hybrid_features.gram("hybrid", to_backend(x), to_backend(y), to_backend(W))
    assert backends.backend_of(gram) == backend
    np.testing.assert_allclose(to_numpy(gram), reference, rtol=1e-12)
    phi = features.hybrid(to_backend(x, "float32"), to_backend(W, "float32"), side="key")
    assert backends.dtype_name(phi) == "float32"
    strict = backends.resolve_target(backend="array_api_strict")
    phi_strict = features.hybrid(strict.asarray(x), strict.asarray(W), side="query", notebook=True)
    expected = features.hybrid(x, W, side="query", notebook=True)
    np.testing.assert_allclose(np.asarray(phi_strict), expected, rtol=1e-13)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda x, W: features.hybrid(x, W), TypeError, "side"),
        (lambda x, W: features.hybrid(x, W, side="keys"), ValueError, "side must be one of"),
        (lambda x, W: features.hybrid(x, W[:1], side="query"), ValueError, "m must be an integer >= 2"),
        (lambda x, W: features.features_per_projection("hybrid"), ValueError, "feature_width"),
    ],
)
def test_bad_arguments_are_named(call, error, message):
    x, _, W = _sets()
    with pytest.raises(error, match=message):
        call(x, W)
