"""Input families of theory.md §7.2: reproducible from the seed, calibrated to ρ, and of the stated law.

The statistical test: the mean of ‖q‖² over N tokens has expectation tr Σ = d (E r² = 1) and, for
the anisotropic family, variance (e^{4s²}(d² + 2 tr Σ²) − d²)/N (E r⁴ = e^{4s²}, E‖z‖⁴ = (tr Σ)² +
2 tr Σ², r ⊥ z); for the isotropic family 2d/N. Null: the generator follows the stated law;
two-sided z-test at α = 0.001 (one test per family, family-wise 0.002). N = 20 000 detects the
planted bug (a radial factor without its −s² centring, E r² = e^{2s²} = 1.65) at z ≈ 50, power ≈ 1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from estimators import input_families
from estimators.gerf import homogeneity_rho

CRITICAL = float(stats.norm.isf(0.0005))
TOKENS = 10_000


@pytest.mark.parametrize("family", input_families.FAMILIES)
def test_draws_are_reproducible_from_the_seed_and_calibrated_to_rho(family):
    first = input_families.draw(family, 32, 8, rho=1.5, seed=7)
    again = input_families.draw(family, 32, 8, rho=1.5, seed=np.random.default_rng(7))
    other = input_families.draw(family, 32, 8, rho=1.5, seed=8)
    for a, b, c in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    q, k, v = first
    assert q.shape == k.shape == v.shape == (32, 8)
    scale = 8**-0.25
    np.testing.assert_allclose(homogeneity_rho(q * scale, k * scale)[0, 0], 1.5, rtol=1e-13)
    q, k, v = input_families.draw(family, 32, 8, rho=0.5, seed=7, queries=5)
    assert q.shape == (5, 8) and k.shape == v.shape == (32, 8)


def test_anisotropic_covariance_is_low_rank_plus_noise_with_trace_d():
    """Eigenvalues: λ_l + σ² with λ_l ∝ 2^{-l} (l ≤ 4) summing to 0.9 d, then σ² = 0.1."""
    d = 16
    sigma = input_families.covariance(d, np.random.default_rng(0))
    signal = 2.0 ** -np.arange(1, 5)
    signal *= 0.9 * d / signal.sum()
    expected = np.sort(np.concatenate([signal + 0.1, np.full(d - 4, 0.1)]))
    np.testing.assert_allclose(np.linalg.eigvalsh(sigma), expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(sigma, sigma.T, atol=0)


def _z_of_mean_square_norm(tokens, family, d):
    squares = np.sum(tokens**2, axis=-1).ravel()
    if family == "isotropic":
        variance = 2 * d
    else:
        trace_sq = float(
            np.sum(np.linalg.eigvalsh(input_families.covariance(d, np.random.default_rng(0))) ** 2)
        )
        variance = math.exp(4 * input_families.RADIAL_SIGMA**2) * (d * d + 2 * trace_sq) - d * d
    return (squares.mean() - d) / math.sqrt(variance / squares.size)


@pytest.mark.parametrize("family", input_families.FAMILIES)
def test_token_second_moment_follows_the_stated_law_and_a_planted_bug_fails(family):
    d = 16
    tokens = input_families.tokens(family, TOKENS, d, np.random.default_rng(11))
    assert abs(_z_of_mean_square_norm(tokens, family, d)) < CRITICAL
    if family == "anisotropic":
        planted = tokens * math.exp(input_families.RADIAL_SIGMA**2)  # exp(sξ) instead of exp(sξ − s²)
        assert abs(_z_of_mean_square_norm(planted, family, d)) > 10 * CRITICAL


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"family": "gaussian"}, "family must be one of"),
        ({"rho": 0.0}, "rho must be"),
        ({"rho": math.nan}, "rho must be"),
        ({"length": 0}, "length must be"),
        ({"queries": -1}, "queries must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    arguments = {"family": "isotropic", "length": 4, "d": 2, "rho": 1.0, "seed": 0, **kwargs}
    family, length, d = arguments.pop("family"), arguments.pop("length"), arguments.pop("d")
    with pytest.raises(ValueError, match=message):
        input_families.draw(family, length, d, **arguments)
