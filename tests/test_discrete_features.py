"""Discretely-induced random features (Poisson and geometric DIRFs; theory.md §10.2, claim 22): the
Uniform draws they map to counts, zero and negative coordinates, the Poisson rate's optimality, and
per-pair parameters against batched draws.

Exact (Tier 0) checks only; the checks every parameterized map shares are in
tests/test_parameterized_features.py, the Monte Carlo checks in
tests/statistical/test_parameterized_and_coupled_rows.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from estimators import features, projections, registry, theory
from estimators.backends import framework
from estimators.discrete_features import log_factorial
from tests.conftest import to_numpy
from tests.parameterized_support import DISCRETE_MAPS, MAP_OPTIONS, reference_features


def test_uniform_draws_lie_in_the_unit_interval():
    U = projections.uniform(50, 3, seed=8)
    assert U.shape == (50, 3) and np.all((U >= 0) & (U < 1))


def test_uniform_draws_rounded_to_float32_stay_below_one(to_backend):
    U = projections.uniform(50, 3, seed=8, dtype="float32")
    assert U.dtype == np.float32 and np.all((U >= 0) & (U < 1))
    rounded_up = to_backend(np.array([0.25, 1.0, 1.0 - 2.0**-30]), "float32")
    below = np.nextafter(np.float32(1), np.float32(0))
    assert to_numpy(projections.below_one(rounded_up)).tolist() == [0.25, below, below]


def test_discrete_maps_handle_zero_and_negative_coordinates():
    """0⁰ = 1 and 0^k = 0 for k > 0; odd powers of negative coordinates flip the sign."""
    x = np.array([[0.0, -0.8, 0.3, -0.5]])
    for name in DISCRETE_MAPS:
        W = projections.uniform(40, 4, seed=10)
        np.testing.assert_allclose(
            features.feature_map(name)(x, W, **MAP_OPTIONS[name]),
            reference_features(name, x, W, MAP_OPTIONS[name]),
            rtol=1e-12,
        )


def test_poisson_rate_minimizes_the_poisson_variance():
    """Claim 22: λ* = √(Σ x_l²y_l²/d) minimizes exp(λd + Σ x_l²y_l²/λ) − SM²."""
    rng = np.random.default_rng(17)
    x, y = rng.standard_normal((2, 5)) * 0.6
    best = optimize.minimize_scalar(
        lambda r: theory.poisson_variance(r, x, y),
        bounds=(1e-4, 5),
        method="bounded",
        options={"xatol": 1e-10},
    )
    np.testing.assert_allclose(best.x, theory.poisson_rate(x, y), rtol=1e-5)


@pytest.mark.parametrize("name", ["poisson-iid", "geometric-iid"])
def test_discrete_rows_broadcast_per_pair_parameters_over_batched_W(name):
    """Per-pair optima (…, 1, 1) against a batch of W (R, 1, m, d) give one estimate per (draw, pair)."""
    row = registry.get(name)
    W = row.draw(8, 6, batch_shape=(4, 1), seed=0)
    x = np.random.default_rng(0).standard_normal((5, 6)) * 0.3
    y = x[::-1]
    batched = row.estimate(x, y, W)
    assert batched.shape == (4, 5)
    for draw in range(4):
        for pair in range(5):
            single = row.estimate(x[pair], y[pair], W[draw, 0])
            np.testing.assert_allclose(batched[draw, pair], single, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_factorial_looks_up_the_values_log_gamma_gives(backend, to_backend, dtype):
    """The table lookup equals log Γ(ω + 1) element by element, also where the largest count makes the
    table larger than the counts (log Γ itself then)."""
    rng = np.random.default_rng(4)
    for counts in (np.floor(rng.exponential(3.0, size=(7, 5, 3))), np.array([[0.0, 40.0]])):
        on_backend = to_backend(counts, dtype=dtype)
        expected = to_numpy(framework(on_backend).log_gamma(on_backend + 1))
        np.testing.assert_array_equal(to_numpy(log_factorial(on_backend)), expected)
