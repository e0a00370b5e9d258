"""Tier 1: the error of the renormalized FAVOR output against the delta method (theory.md §7.1,
claim 17).

Fixed seeds, theoretical variance: the output error of positive iid features against the
delta-method bias and covariance, at two m (so the error must fall as m^{-1/2}); a slow Tier 2 test
measures the family false-positive rate and the power against two planted estimator bugs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from estimators import projections
from estimators.attention import exact, favor

from .attention_support import D


def _delta_method(q, k, v, u):
    """Per query row i: bias u·b_i and variance uᵀΣ_iu of ô_i for PRF iid features with m = 1.

    theory.md §7.1: E[ô_i] − o_i ≈ −(1/m) Σ w_j w_j' G_jj' (v_j − o_i), Cov ≈ (1/m) Σ w_j w_j' G_jj'
    (v_j − o_i)(v_j' − o_i)ᵀ, with w the exact softmax weights and G_jj' = exp(z_jᵀz_j'), z_j = x_i + y_j.
    """
    x, y = q * D**-0.25, k * D**-0.25
    scores = np.exp(x @ y.T)
    weights = scores / scores.sum(-1, keepdims=True)
    exact_output = weights @ v
    bias, variance = [], []
    for i in range(len(x)):
        z = x[i] + y
        coupling = np.outer(weights[i], weights[i]) * np.exp(z @ z.T)
        centered = (v - exact_output[i]) @ u
        bias.append(-coupling.sum(1) @ centered)
        variance.append(centered @ coupling @ centered)
    return exact_output @ u, np.array(bias), np.array(variance)


DELTA_REPEATS, DELTA_M, DELTA_TESTS = 400, (128, 1024), 12
DELTA_CRITICAL = stats.norm.isf(1e-3 / DELTA_TESTS / 2)


def _delta_method_z(seed, projection_fraction=1.0, eps=0.0):
    """z statistics (m, test, row) of the test below for the W drawn from ``seed``.

    ``projection_fraction`` < 1 plants an estimator that uses fewer projections than it claims (its
    error does not fall as m^{-1/2}); ``eps`` > 0 plants the public code's biasing regularizer.
    """
    rng = np.random.default_rng(11)
    q, k = 0.25 * rng.standard_normal((3, D)), 0.25 * rng.standard_normal((5, D))
    v = rng.standard_normal((5, 2))
    u = np.array([1.0, 0.0])
    exact_projection, bias, variance = _delta_method(q, k, v, u)
    np.testing.assert_allclose(exact(q, k, v) @ u, exact_projection, rtol=1e-13)
    statistics = []
    for m in DELTA_M:
        used = int(m * projection_fraction)
        W = projections.iid(used, D, batch_shape=(DELTA_REPEATS,), seed=np.random.SeedSequence([seed, m]))
        errors = favor(q, k, v, W, eps=eps) @ u - exact_projection - bias / m
        sigma2 = variance / m
        z_mean = errors.mean(0) / np.sqrt(sigma2 / DELTA_REPEATS)
        z_variance = ((errors**2).sum(0) / sigma2 - DELTA_REPEATS) / math.sqrt(2 * DELTA_REPEATS)
        statistics.append([z_mean, z_variance])
    return np.array(statistics)


def test_output_error_follows_delta_method_and_falls_as_inverse_sqrt_m():
    """Renormalized FAVOR+ (positive features, iid W) against theory.md §7.1, at m = 128 and 1024.

    For each of 3 query rows and each m, R = 400 independent W give errors e_r = u·(ô − o) − u·b/m.
    Null: E e = 0 and Var e = uᵀΣu/m (the delta-method bias and covariance; inputs with
    ‖x+y‖² < 1, where §7.1 is accurate). Tests, each on the theoretical variance σ² = uᵀΣu/m:
    mean z = ē / sqrt(σ²/R); variance z = (Σ e²/σ² − R) / sqrt(2R) (e is a mean of m iid terms, so
    close to normal). 12 tests, family α = 1e-3 (Bonferroni, per-test α = 8.3e-5, |z| < 3.94).
    Power (per test, from the normal approximation): > 0.99 against a variance off by 50% (variance
    z shifted by ≈ 7: an error that does not fall as m^{-1/2}, a wrong feature scale) and against a
    bias of 6 standard errors. Measured by ``pytest tests/test_attention_delta_method.py -m slow`` (see
    :func:`test_delta_method_test_calibration_and_power`).
    """
    statistics = _delta_method_z(11)
    assert np.all(np.abs(statistics) < DELTA_CRITICAL), statistics


@pytest.mark.slow
def test_delta_method_test_calibration_and_power():
    """Tier 2 for the test above: its family false-positive rate over 200 seeds, and its power
    against an estimator that silently uses m/2 projections and against eps = 1e-2 (public default
    regularizers are 1e-6..1e-4), 50 seeds each. Measured: 0 of 200 null runs rejected; both
    planted bugs rejected in 50 of 50 runs."""
    rejects = lambda z: bool(np.any(np.abs(z) >= DELTA_CRITICAL))  # noqa: E731
    false_positive = np.mean([rejects(_delta_method_z(seed)) for seed in range(200)])
    half_projections = np.mean(
        [rejects(_delta_method_z(seed, projection_fraction=0.5)) for seed in range(50)]
    )
    regularized = np.mean([rejects(_delta_method_z(seed, eps=1e-2)) for seed in range(50)])
    print(f"false positive {false_positive}, power m/2 {half_projections}, power eps {regularized}")
    assert false_positive <= 0.02
    assert half_projections >= 0.9
    assert regularized >= 0.9
