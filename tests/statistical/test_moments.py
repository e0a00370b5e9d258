"""The 4th-moment closed forms behind the squared-error test agree with estimators.theory and limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from estimators import registry, theory
from estimators.theory import fourth_moments as moments

X = np.array([0.3, 0.1, -0.2, 0.2])
Y = np.array([0.2, -0.3, 0.1, 0.25])
ROWS = [
    "trig-iid",
    "trig-ort",
    "positive-iid",
    "positive-ort",
    "hyperbolic-iid",
    "hyperbolic-ort",
    "positive-iid-fixed",
    "positive-ort-fixed",
]


@pytest.mark.parametrize("name", ROWS)
@pytest.mark.parametrize("m", [1, 3, 4, 6])
def test_mean_and_mse_match_theory(name, m):
    row = registry.get(name)
    raw = moments.raw_moments(row.feature, row.norms, X, Y, 4, m, orthogonal=row.projection == "orthogonal")
    assert raw[0] == pytest.approx(theory.mean(name, X, Y), rel=1e-12)
    assert raw[1] - raw[0] ** 2 == pytest.approx(theory.mse(name, X, Y, m), rel=1e-10)


def test_single_row_reduces_to_gaussian_moments():
    t = 0.7
    for c in (1, 2, 3):
        assert moments.coupled_hyp0f1((c * c,), t, 5, "chi") == pytest.approx(
            math.exp(c * c * t / 2), rel=1e-12
        )
        assert moments.coupled_hyp0f1((c * c,), -t, 5, "chi") == pytest.approx(
            math.exp(-c * c * t / 2), rel=1e-11
        )


def test_fixed_norms_use_hyp0f1():
    assert moments.coupled_hyp0f1((1, 4), 0.3, 6, "fixed") == pytest.approx(
        special.hyp0f1(3, 0.3 * 6 * 5 / 4)
    )


def test_orthogonal_pair_matches_theory_pair_moment():
    """E[e^{(ω₁+ω₂)ᵀz}] = Σ_k t^k c_k(d)/k! (theory.md §5.2)."""
    t, d = 0.8, 4
    series = sum(
        t**k / math.factorial(k) * math.prod((d + j) / (d + 2 * j) for j in range(k)) for k in range(60)
    )
    assert moments.coupled_hyp0f1((1, 1), t, d, "chi") == pytest.approx(series, rel=1e-12)


def test_fourth_moment_is_a_valid_variance():
    for name in ROWS:
        row = registry.get(name)
        mse, var = moments.squared_error_moments(
            row.feature, row.norms, X, Y, 4, 3, orthogonal=row.projection == "orthogonal"
        )
        assert var > 0 and mse > 0


def test_unknown_feature_is_rejected():
    with pytest.raises(ValueError, match="feature"):
        moments.raw_moments("relu", "chi", X, Y, 4, 2, orthogonal=False)
