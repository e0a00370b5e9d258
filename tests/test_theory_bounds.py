"""Theorems of Performers (estimators.theory.bounds; theory.md §5.3, §7, claims 8–9): Theorem 2 and its
SMREG analogue hold on random grids, Theorem 6 for hyperbolic features, the gap's series
coefficients against exact rationals, the OpenReview variant of Theorem 2 fails at x = −y, and
Theorem 4's feature count.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from estimators import theory
from estimators.theory.exponential import log_one_minus_c
from tests.theory_support import grid_pairs


def test_theorem2_holds_on_random_grids():
    """Claim 8 / Theorem 2 (camera-ready) and its SMREG analogue, every m ≤ d."""
    for d, x, y in grid_pairs(12):
        for m in range(1, d + 1):
            bound = theory.theorem2_bound(x, y, m)
            exact = theory.mse("positive-ort", x, y, m)
            assert np.all(exact <= bound * (1 + 1e-12)), (d, m)
            assert np.all(theory.theorem2_gap(x, y, m) >= 0)
            fixed = theory.mse("positive-ort-fixed", x, y, m)
            assert np.all(fixed <= theory.theorem2_bound(x, y, m, kernel="smreg") * (1 + 1e-12)), (d, m)


def test_theorem6_holds_for_hyperbolic_features():
    """Claim 9: Theorem 6 with g = cosh (a₀ = 1, F = e^{t/2}) has Theorem 2's gap; hyp+ shares Cov_ort."""
    for d, x, y in grid_pairs(16, count=200, dims=(2, 5, 12)):
        np.testing.assert_allclose(
            theory.pair_covariance("hyperbolic-ort", x, y), theory.pair_covariance("positive-ort", x, y)
        )
        for m in range(2, d + 1):
            bound = theory.mse("hyperbolic-iid", x, y, m) - theory.theorem2_gap(x, y, m)
            assert np.all(theory.mse("hyperbolic-ort", x, y, m) <= bound * (1 + 1e-12)), (d, m)


def test_theorem2_gap_follows_from_the_series_coefficients():
    """1 − c_k(d) ≥ (2/(d + 2))(1 − 2^{1−k}) for k ≥ 2, equality at k = 2 (theory.md §5.3 [DER]).

    The log-space coefficients used by the pair moments are checked against exact rationals.
    """
    for d in (1, 2, 5, 64, 1024):
        one_minus_c = np.exp(log_one_minus_c(d, 200))
        exact, c = [], Fraction(1)
        for k in range(40):
            exact.append(float(1 - c))
            c *= Fraction(d + k, d + 2 * k)
        np.testing.assert_allclose(one_minus_c[:40], exact, rtol=1e-13)
        k = np.arange(2, 200)
        lower = 2 / (d + 2) * (1 - 2.0 ** (1 - k))
        assert np.all(one_minus_c[2:] >= lower * (1 - 1e-13))
        assert one_minus_c[2] == pytest.approx(lower[0], rel=1e-13)


def test_openreview_theorem2_fails_at_zero_z():
    """Claim 8: the OpenReview gap (1 − 1/m)(2/(d + 2)) SM² is violated at x = −y (both MSEs are 0)."""
    rng = np.random.default_rng(13)
    x = rng.normal(size=(5, 8)) * 0.5
    for m in (2, 4, 8):
        bound = theory.theorem2_openreview_bound(x, -x, m)
        assert np.all(bound < 0) and np.all(theory.mse("positive-ort", x, -x, m) == 0)
        assert np.all(theory.mse("positive-ort", x, -x, m) > bound)


def test_theorem4_feature_count():
    """m = C (d/δ²) log(4 d^{3/4} R/δ), δ = ε e^{−R²/√d}; linear in C, independent of L."""
    d, radius, eps = 64, 2.0, 0.1
    delta = eps * math.exp(-(radius**2) / math.sqrt(d))
    expected = d / delta**2 * math.log(4 * d**0.75 * radius / delta)
    assert theory.theorem4_features(radius, d, eps) == pytest.approx(expected, rel=1e-14)
    assert theory.theorem4_features(radius, d, eps, constant=3.0) == pytest.approx(3 * expected, rel=1e-14)
    counts = theory.theorem4_features(radius, np.array([16, 64, 256]), eps)
    assert np.all(np.diff(counts) > 0)
