"""Delta method for the normalized attention output (estimators.theory.delta_method; theory.md §7.1,
claim 17): its structure, and its bias and variance against Monte Carlo z-tests with the delta
variance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from estimators import theory

# ----------------------------------------------------------------------------------------------
# Delta method for the normalized attention output (theory.md §7.1, claim 17)
#
# Family: 12 bias tests + 4 variance tests, family α = 0.01, per-test α = 6.25e-4, |z| < 3.42.

DELTA_Z = float(special.ndtri(1 - 6.25e-4 / 2))


def delta_inputs():
    rng = np.random.default_rng(31)
    return rng.normal(size=(2, 4)) * 0.3, rng.normal(size=(6, 4)) * 0.3, rng.normal(size=(6, 2))


def normalized_outputs(name, q, k, v, m, reps, seed, chunk=2000):
    """ô for ``reps`` iid Gaussian W (m, d), features of Lemma 1 / §2.3 written out directly (the
    1/√m scale cancels in the ratio)."""
    rng = np.random.default_rng(seed)
    rows = np.concatenate([q, k])
    half = np.sum(rows * rows, axis=-1)[:, None] / 2
    outputs = []
    for _ in range(reps // chunk):
        proj = rows @ np.swapaxes(rng.standard_normal((chunk, m, rows.shape[-1])), -1, -2)
        if name == "positive-iid":
            phi = np.exp(proj - half)
        elif name == "hyperbolic-iid":
            phi = np.concatenate([np.exp(proj - half), np.exp(-proj - half)], axis=-1)
        else:
            phi = np.exp(half) * np.concatenate([np.cos(proj), np.sin(proj)], axis=-1)
        scores = phi[:, : len(q)] @ np.swapaxes(phi[:, len(q) :], -1, -2)
        outputs.append(scores @ v / np.sum(scores, axis=-1, keepdims=True))
    return np.concatenate(outputs)


def test_delta_method_structure():
    q, k, v = delta_inputs()
    result = theory.attention_delta("positive-iid", q, k, v, 10)
    weights = np.exp(q @ k.T) / np.sum(np.exp(q @ k.T), axis=-1, keepdims=True)
    np.testing.assert_allclose(result.output, weights @ v, rtol=1e-13)
    np.testing.assert_allclose(result.covariance, np.swapaxes(result.covariance, -1, -2), rtol=1e-13)
    assert np.all(np.linalg.eigvalsh(result.covariance) >= -1e-15)
    np.testing.assert_allclose(theory.attention_delta("positive-iid", q, k, v, 40).bias, result.bias / 4)
    scaled = theory.attention_delta("trig-iid", q * 4**0.25, k * 4**0.25, v, 10, scale_inputs=True)
    np.testing.assert_allclose(scaled.covariance, theory.attention_delta("trig-iid", q, k, v, 10).covariance)
    one_key = theory.attention_delta("hyperbolic-iid", q, k[:1], v[:1], 10)
    np.testing.assert_allclose(one_key.bias, 0, atol=1e-15)
    with pytest.raises(ValueError, match="name must be one of"):
        theory.attention_delta("positive-ort", q, k, v, 10)
    with pytest.raises(ValueError, match="v has 5 rows"):
        theory.attention_delta("positive-iid", q, k, v[:5], 10)


@pytest.mark.parametrize("name", ["positive-iid", "hyperbolic-iid", "trig-iid"])
def test_delta_method_bias_matches_monte_carlo(name):
    """Claim 17: E ô_i − o_i = delta bias + O(1/m²) at m = 32, max ‖x_i + y_j‖² = 1.2.

    H0: mean of ô − o equals the delta bias; z per query and coordinate with the delta variance
    Cov_cc/N, N = 40000, per-test α = 6.25e-4. The O(1/m²) remainder, measured at N = 2·10⁵, is
    under 0.5 SE here. Power: the same draws must reject "no bias" (bias = 0) in some coordinate.
    """
    q, k, v = delta_inputs()
    m = 32
    delta = theory.attention_delta(name, q, k, v, m)
    outputs = normalized_outputs(name, q, k, v, m, 40000, seed=17)
    se = np.sqrt(np.diagonal(delta.covariance, axis1=-2, axis2=-1) / outputs.shape[0])
    error = outputs.mean(axis=0) - delta.output
    assert np.all(np.abs((error - delta.bias) / se) < DELTA_Z), (error, delta.bias)
    assert np.max(np.abs(error / se)) > DELTA_Z, "no power against an unbiased ratio"


def test_delta_method_variance_matches_monte_carlo():
    """Claim 17: Var ô_i = delta covariance + O(1/m²) at m = 512 (positive features).

    H0: Var ô_ic = Cov_cc; under the delta method's own normal limit the sample variance has
    variance 2 Cov_cc²/(N − 1), N = 10000, per-test α = 6.25e-4 (the O(1/m) relative remainder,
    ≈ 0.5% here, is 0.35 SE). Power: an 8% error in Cov (5.7 SE) is detected with probability > 0.95,
    and the planted error is checked on the same draws.
    """
    q, k, v = delta_inputs()
    m, reps = 512, 10000
    delta = theory.attention_delta("positive-iid", q, k, v, m)
    sample = np.var(normalized_outputs("positive-iid", q, k, v, m, reps, seed=23), axis=0, ddof=1)
    variance = np.diagonal(delta.covariance, axis1=-2, axis2=-1)
    se = variance * math.sqrt(2 / (reps - 1))
    assert np.all(np.abs((sample - variance) / se) < DELTA_Z), (sample, variance)
    assert np.all(np.abs((sample - 1.08 * variance) / se) > DELTA_Z), "no power against an 8% error"


def explicit_delta(name, x, y, v, m):
    """The §7.1 sums written out pair by pair: G_jj′ from its definition, O(Lq·Lk²) memory; also the
    scales of their rounding errors, Σ_jj′ |w_j w_j′ G_jj′| ‖c_j‖ (bias) and Σ_jj′ |w_j w_j′ G_jj′|
    ‖c_j‖ ‖c_j′‖ (covariance), over m."""
    logits = x @ y.T
    w = np.exp(logits - special.logsumexp(logits, axis=-1, keepdims=True))
    output = w @ v
    pairs = (x[:, None, :] - y[None]) if name == "trig-iid" else (x[:, None, :] + y[None])
    inner = pairs @ np.swapaxes(pairs, -1, -2)
    moment = np.exp(inner) if name == "positive-iid" else np.cosh(inner)
    weights = w[:, :, None] * w[:, None, :] * moment
    centred = v[None] - output[:, None, :]
    bias = -np.einsum("ijk,ijd->id", weights, centred) / m
    covariance = np.einsum("ijk,ijd,ike->ide", weights, centred, centred) / m
    norms = np.linalg.norm(centred, axis=-1)
    bias_scale = np.einsum("ijk,ij->i", np.abs(weights), norms) / m
    covariance_scale = np.einsum("ijk,ij,ik->i", np.abs(weights), norms, norms) / m
    return output, bias, covariance, bias_scale, covariance_scale


@pytest.mark.parametrize("name", theory.DELTA_ROWS)
def test_factored_sums_equal_the_pair_by_pair_definition(name):
    """The key-by-key factorization (module docstring of estimators.theory.delta_method) equals the
    explicit sums up to float64 rounding: each of the Lk² terms carries a few relative roundings
    (the factors a_j, E_jj′ and the products), so the error is at most c·Lk²·ε times the absolute
    sum of the terms, with c = 16 covering the exponentials' and the products' roundings."""
    rng = np.random.default_rng(8)
    x, y, v = rng.normal(size=(5, 4)) * 0.6, rng.normal(size=(9, 4)) * 0.6, rng.normal(size=(9, 3))
    output, bias, covariance, bias_scale, covariance_scale = explicit_delta(name, x, y, v, 7)
    delta = theory.attention_delta(name, x, y, v, 7)
    rounding = 16 * y.shape[0] ** 2 * np.finfo(np.float64).eps
    np.testing.assert_allclose(delta.output, output, rtol=16 * y.shape[0] * np.finfo(np.float64).eps)
    assert np.all(np.abs(delta.covariance - covariance) <= rounding * covariance_scale[:, None, None])
    assert np.all(np.abs(delta.bias - bias) <= rounding * bias_scale[:, None])
    planted = theory.attention_delta(name, x, y[::-1], v, 7)
    gap = np.max(np.abs(planted.covariance - covariance))
    assert gap > 1e6 * rounding * np.max(covariance_scale), "no power against reordered keys"


def test_pair_moments_that_overflow_are_an_error_not_a_number():
    x, y, v = np.full((1, 4), 20.0), np.full((3, 4), 20.0), np.ones((3, 2))
    with pytest.raises(OverflowError, match="too large for the delta method"):
        theory.attention_delta("positive-iid", x, y, v, 4)


@pytest.mark.parametrize("name", theory.DELTA_ROWS)
def test_delta_trace_is_the_trace_and_squared_bias_of_the_full_terms(name):
    """attention_delta_trace (products with K and K ∘ VVᵀ) against the trace of attention_delta's
    covariance and the squared norm of its bias, per query row, with a batch axis."""
    rng = np.random.default_rng(17)
    x, y, v = rng.normal(size=(2, 5, 4)) * 0.4, rng.normal(size=(2, 9, 4)) * 0.4, rng.normal(size=(2, 9, 3))
    full = theory.attention_delta(name, x, y, v, 7)
    reduced = theory.attention_delta_trace(name, x, y, v, 7)
    np.testing.assert_allclose(reduced.bias_sq, np.sum(full.bias**2, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(reduced.trace, np.trace(full.covariance, axis1=-2, axis2=-1), rtol=1e-12)
    with pytest.raises(ValueError, match="name must be one of"):
        theory.attention_delta_trace("trig-ort", x, y, v, 7)
