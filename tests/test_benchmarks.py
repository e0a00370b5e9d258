"""pytest-benchmark micro-benchmarks of the hot functions, each checked against a closed form.

CI runs them once with ``--benchmark-disable`` (every assertion still executes); time them with
``pytest tests/test_benchmarks.py --benchmark-enable``. Sizes: L = 1024, d = 64, m = 256, float64,
every installed backend. Each benchmarked call ends with a device sync.
"""

from __future__ import annotations

import numpy as np
import pytest

from estimators import attention, features, kernels, projections
from estimators.backends import sync
from tests.conftest import to_numpy

L, D, M = 1024, 64, 256


def synced(function, *args, **kwargs):
    """``function(*args, **kwargs)``, waiting for the device before returning."""
    result = function(*args, **kwargs)
    sync(result)
    return result


@pytest.fixture
def inputs(to_backend):
    """q, k, v (L, d) standard normal (seeds 1, 2, 3) and W (m, d) block-orthogonal (seed 0)."""
    q, k, v = (to_backend(np.random.default_rng(seed).standard_normal((L, D))) for seed in (1, 2, 3))
    W = projections.orthogonal(M, D, seed=0, like=q)
    return q, k, v, W


def positive_features_reference(x, W):
    """Performers Lemma 1, float64 host: m^{-1/2} exp(W x̃ − ‖x̃‖²/2) with x̃ = x d^{-1/4}."""
    x = to_numpy(x) * D**-0.25
    W = to_numpy(W)
    return np.exp(x @ W.T - 0.5 * np.sum(x * x, axis=-1, keepdims=True)) / np.sqrt(M)


def test_orthogonal_draw_gives_orthogonal_blocks(benchmark, backend):
    """Within each block of d rows, W Wᵀ is diagonal (Performers §2.4), to rounding."""
    W = to_numpy(benchmark(synced, projections.orthogonal, M, D, seed=0, backend=backend, dtype="float64"))
    for block in W.reshape(M // D, D, D):
        gram = block @ block.T
        np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-10)


def test_positive_features_match_lemma_1(benchmark, inputs):
    q, _, _, W = inputs
    phi = benchmark(synced, features.positive, q, W, scale_inputs=True)
    assert phi.shape == (L, M)
    np.testing.assert_allclose(to_numpy(phi), positive_features_reference(q, W), rtol=1e-12)


def test_gram_estimate_is_the_feature_inner_product(benchmark, inputs):
    q, k, _, W = inputs
    phi_q = features.positive(q, W, scale_inputs=True)
    phi_k = features.positive(k, W, scale_inputs=True)
    gram = benchmark(synced, kernels.estimate_gram, phi_q, phi_k)
    expected = positive_features_reference(q, W) @ positive_features_reference(k, W).T
    np.testing.assert_allclose(to_numpy(gram), expected, rtol=1e-12)


def test_exact_attention_matches_softmax_formula(benchmark, inputs):
    """Performers Eq. 1: D⁻¹ A V with A = exp(Q Kᵀ/√d)."""
    q, k, v, _ = inputs
    out = benchmark(synced, attention.exact, q, k, v)
    logits = to_numpy(q) @ to_numpy(k).T / np.sqrt(D)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    expected = weights @ to_numpy(v) / weights.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(to_numpy(out), expected, rtol=1e-10, atol=1e-12)


def _favor_quadratic_reference(q, k, v, W, causal):
    """D̂⁻¹ (Q'K'ᵀ) V from the Lemma 1 features, built quadratically (Performers Eq. 4; causal: tril)."""
    scores = positive_features_reference(q, W) @ positive_features_reference(k, W).T
    if causal:
        scores = np.tril(scores)
    return scores @ to_numpy(v) / scores.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_favor_equals_its_quadratic_form(benchmark, inputs, causal):
    """Re-association and chunked prefix sums are exact identities (theory.md §11, claim 15)."""
    q, k, v, W = inputs
    out = benchmark(synced, attention.favor, q, k, v, W, causal=causal)
    expected = _favor_quadratic_reference(q, k, v, W, causal)
    np.testing.assert_allclose(to_numpy(out), expected, rtol=1e-10, atol=1e-12)
