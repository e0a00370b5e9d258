"""Rank tests of ``studies.core.rank_tests`` against independent computations, their false-positive rate
under the null, their power against a stated effect, and a planted estimator defect they must catch.

Null experiments: 400 fixed-seed pairs of samples from one law (heavy-tailed log-normal σ = 3, and a
discrete law with many ties), S = 2 strata of 32 draws; at α = 0.01 per test the rejections must stay
within the 99.9% quantile of Binomial(400, 0.01) (10): a test whose real level were 0.03 would exceed
it with probability 0.98. Power: against P(a < b) = 0.8 with 64 draws per side at the strictest Holm
level of the study (0.01/765) the approximation gives 0.93; 100 fixed-seed experiments must reject
at least 80 times (the 0.1% binomial quantile at 0.93 is 84).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from estimators import attention_metrics, input_families, registry
from studies.core import rank_tests


def _brute_force_z(a, b):
    """van Elteren's z by explicit double loops and the textbook tie-corrected variance."""
    numerator = variance_sum = 0.0
    for a_s, b_s in zip(a, b, strict=True):
        u = sum(1.0 if y > x else 0.5 if y == x else 0.0 for x, y in itertools.product(a_s, b_s))
        pooled = np.concatenate([a_s, b_s])
        n_a, n_b, total = len(a_s), len(b_s), len(pooled)
        ties = sum(t**3 - t for t in np.unique(pooled, return_counts=True)[1])
        variance = n_a * n_b / 12 * (total + 1 - ties / (total * (total - 1)))
        weight = 1 / (total + 1)
        numerator += weight * (u - n_a * n_b / 2)
        variance_sum += weight**2 * variance
    return numerator / math.sqrt(variance_sum)


def test_mann_whitney_matches_scipy_and_a_brute_force_stratified_sum():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1, 20)), rng.standard_normal((1, 25)) + 0.5
    scipy_p = stats.mannwhitneyu(b[0], a[0], method="asymptotic", use_continuity=False).pvalue
    np.testing.assert_allclose(
        rank_tests.two_sided_p(rank_tests.stratified_mann_whitney(a, b)), scipy_p, rtol=1e-12
    )
    a, b = rng.integers(0, 4, (3, 12)).astype(float), rng.integers(0, 5, (3, 9)).astype(float)
    np.testing.assert_allclose(rank_tests.stratified_mann_whitney(a, b), _brute_force_z(a, b), rtol=1e-12)


@pytest.mark.parametrize("law", ["log-normal", "ties"])
def test_false_positive_rate_under_the_null(law):
    rng = np.random.default_rng(20260)
    rejections = 0
    for _ in range(400):
        if law == "log-normal":
            a, b = np.exp(3 * rng.standard_normal((2, 2, 32)))
        else:
            a, b = rng.binomial(64, 0.1, (2, 2, 32)) / 64
        rejections += rank_tests.two_sided_p(rank_tests.stratified_mann_whitney(a, b)) < 0.01
    assert rejections <= stats.binom.ppf(0.999, 400, 0.01)


def test_power_against_the_stated_effect():
    shift = math.sqrt(2) * stats.norm.ppf(0.8)  # P(a < b) = 0.8 for N(0, 1) against N(shift, 1)
    alpha = 0.01 / 765
    assert rank_tests.mann_whitney_power(0.8, 64, alpha) == pytest.approx(0.93, abs=0.01)
    rng = np.random.default_rng(5)
    rejections = sum(
        rank_tests.two_sided_p(
            rank_tests.stratified_mann_whitney(
                rng.standard_normal((2, 32)), rng.standard_normal((2, 32)) + shift
            )
        )
        < alpha
        for _ in range(100)
    )
    assert rejections >= 80


def _kl_draws(name, seed, scale=1.0):
    """Per-draw mean KL of registry row ``name`` (2 input draws × 32 W, m = 32), W scaled by ``scale``."""
    row = registry.get(name)
    values = []
    for draw in range(2):
        q, k, _ = input_families.draw("isotropic", 32, 8, rho=1.5, seed=100 + draw)
        x, y = q * 8**-0.25, k * 8**-0.25
        gram = np.exp(x @ y.T)
        W = row.draw(32, 8, batch_shape=(32,), seed=seed + draw) * scale
        values.append(
            attention_metrics.row_kl(gram / gram.sum(-1, keepdims=True), row.estimate_gram(x, y, W)).mean(-1)
        )
    return np.array(values)


def test_a_planted_estimator_defect_is_ranked_worse_and_a_copy_is_not():
    """positive-ort with W rows 1.3× too long (a wrong feature scale: biased, heavier-tailed weights)
    must be significantly worse on KL than positive-ort; the same row with another seed must not differ
    (α = 0.01, one test each)."""
    control = _kl_draws("positive-ort", 1)
    assert (
        rank_tests.two_sided_p(rank_tests.stratified_mann_whitney(control, _kl_draws("positive-ort", 50)))
        > 0.01
    )
    z = rank_tests.stratified_mann_whitney(control, _kl_draws("positive-ort", 50, scale=1.3))
    assert z > stats.norm.isf(0.005)


def test_holm_kendall_and_bootstrap_on_hand_examples():
    """Holm at α = 0.05 on p = (0.01, 0.04, 0.03, 0.005): 0.005 ≤ 0.05/4, 0.01 ≤ 0.05/3, 0.03 > 0.05/2
    stops. Kendall τ of (1, 2, 3, 4) and (1, 3, 2, 4): 5 concordant, 1 discordant pair → 4/6."""
    assert rank_tests.holm([0.01, 0.04, 0.03, 0.005], 0.05).tolist() == [True, False, False, True]
    assert rank_tests.holm([0.2, 0.3], 0.05).tolist() == [False, False]
    assert rank_tests.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6, abs=1e-15)
    samples = np.stack([np.full((2, 5), 3.0), np.arange(10.0).reshape(2, 5)])
    boot = rank_tests.bootstrap_means(samples, np.random.default_rng(0), 200)
    assert boot.shape == (200, 2) and np.all(boot[:, 0] == 3.0)
    assert np.all((boot[:, 1] >= 0) & (boot[:, 1] <= 9))
    low, high = rank_tests.tau_interval(np.tile([1.0, 2.0], (50, 1)), np.tile([3.0, 4.0], (50, 1)))
    assert low == high == 1.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: rank_tests.stratified_mann_whitney(np.ones(3), np.ones((1, 3))), "a must be a"),
        (
            lambda: rank_tests.stratified_mann_whitney(np.ones((2, 3)), np.ones((1, 3))),
            "same number of strata",
        ),
        (lambda: rank_tests.stratified_mann_whitney(np.full((1, 3), np.nan), np.ones((1, 3))), "NaN"),
        (lambda: rank_tests.holm([0.1], 1.5), "alpha"),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
