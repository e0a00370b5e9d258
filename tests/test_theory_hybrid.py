"""Closed forms of the hybrid rows (theory.md §10.5) against independent computations.

* The one-projection joint moments E[t^a h^b] (a + b ≤ 4) against 2-D Gauss–Hermite quadrature over
  (ω·e₁, ω·e₂) in the plane of x and y (t and h depend on ω only through ωᵀΔ and ωᵀz); 60 nodes per
  axis integrate e^{c ω} cos(c′ω) at these norms to ~1e-14 relative.
* The fourth central moment for k = n = 1 (one ω, one ξ: K̂ = t or h with probabilities q, 1 − q)
  equals q E(t − SM)⁴ + (1 − q) E(h − SM)⁴ from the same quadrature.
* The MSE of §10.5 (through E w, E w²) equals the second moment of the binomial sum.
* Both orientations coincide at θ = π/2, and exchange under θ ↔ π − θ for equal norms.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from estimators import theory
from estimators.theory import hybrid
from estimators.theory.pairs import pair_stats

NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(60)
WEIGHTS = WEIGHTS / WEIGHTS.sum()


def _plane(x, y):
    """Orthonormal basis (2, d) of span{x, y}."""
    q, _ = np.linalg.qr(np.stack([x, y]).T)
    return q.T


def _quadrature(x, y, function):
    """E[function(t, h)] over one ω ~ N(0, I_d), by quadrature in the plane of x and y."""
    basis = _plane(x, y)
    a, b = np.meshgrid(NODES, NODES, indexing="ij")
    omega_dot = lambda v: a * (basis[0] @ v) + b * (basis[1] @ v)  # noqa: E731
    t = np.exp((x @ x + y @ y) / 2) * np.cos(omega_dot(x - y))
    h = np.exp(-(x @ x + y @ y) / 2) * np.cosh(omega_dot(x + y))
    return float(np.sum(np.outer(WEIGHTS, WEIGHTS) * function(t, h)))


PAIRS = [
    (np.array([0.4, 0.0, 0.0, 0.0]), np.array([0.25, 0.0, 0.0, 0.0])),
    (np.array([0.3, -0.2, 0.1, 0.1]), np.array([-0.1, 0.35, -0.2, 0.3])),
    (np.array([0.5, 0.2, 0.0, -0.1]), np.array([-0.3, 0.1, 0.4, 0.2])),
]


@pytest.mark.parametrize("pair", range(len(PAIRS)))
def test_joint_raw_moments_match_quadrature(pair):
    x, y = PAIRS[pair]
    p = pair_stats(x, y)
    for a in range(5):
        for b in range(5 - a):
            expected = _quadrature(x, y, lambda t, h, a=a, b=b: t**a * h**b)
            assert float(hybrid._joint_raw_moment(p, a, b)) == pytest.approx(expected, rel=1e-11, abs=1e-14)


@pytest.mark.parametrize("orientation", hybrid.ORIENTATIONS)
@pytest.mark.parametrize("pair", range(len(PAIRS)))
def test_fourth_moment_with_one_omega_and_one_xi(orientation, pair):
    x, y = PAIRS[pair]
    p = pair_stats(x, y)
    q = float(hybrid.trig_weight_mean(p, orientation))
    sm = math.exp(x @ y)
    second, variance = hybrid.squared_error_moments(p, 2, orientation)  # m = 2: k = n = 1
    expected_second = q * _quadrature(x, y, lambda t, h: (t - sm) ** 2) + (1 - q) * _quadrature(
        x, y, lambda t, h: (h - sm) ** 2
    )
    expected_fourth = q * _quadrature(x, y, lambda t, h: (t - sm) ** 4) + (1 - q) * _quadrature(
        x, y, lambda t, h: (h - sm) ** 4
    )
    assert float(second) == pytest.approx(expected_second, rel=1e-10)
    assert float(variance + second**2) == pytest.approx(expected_fourth, rel=1e-9)


@pytest.mark.parametrize("m", [2, 3, 10, 80, 256])
def test_mse_formula_equals_the_binomial_second_moment_and_the_registry_entry(m):
    x, y = np.stack([a for a, _ in PAIRS]), np.stack([b for _, b in PAIRS])
    p = pair_stats(x, y)
    for orientation, name in zip(hybrid.ORIENTATIONS, ("hybrid-iid", "hybrid-notebook-iid"), strict=True):
        closed = hybrid.mse(p, m, orientation)
        np.testing.assert_allclose(closed, hybrid.squared_error_moments(p, m, orientation)[0], rtol=1e-12)
        np.testing.assert_array_equal(theory.mse(name, x, y, m), closed)
        np.testing.assert_allclose(theory.mean(name, x, y), np.exp(np.sum(x * y, axis=-1)), rtol=1e-15)
    # an array of m: each pair gets the MSE at its own m
    np.testing.assert_array_equal(
        theory.mse("hybrid-iid", x, y, np.array([m, 2, m])),
        [
            hybrid.mse(p, m, "exact-ends")[0],
            hybrid.mse(p, 2, "exact-ends")[1],
            hybrid.mse(p, m, "exact-ends")[2],
        ],
    )


def test_orientations_agree_at_right_angles_and_mirror_for_equal_norms():
    x = np.array([0.6, 0.0, 0.0])
    right = pair_stats(x, np.array([0.0, 0.6, 0.0]))
    assert float(hybrid.mse(right, 10, "notebook")) == pytest.approx(
        float(hybrid.mse(right, 10, "exact-ends")), rel=1e-14
    )
    theta = 0.7
    near = pair_stats(x, 0.6 * np.array([math.cos(theta), math.sin(theta), 0.0]))
    far = pair_stats(x, 0.6 * np.array([-math.cos(theta), math.sin(theta), 0.0]))
    assert float(hybrid.trig_weight_mean(near, "notebook")) == pytest.approx(
        1 - float(hybrid.trig_weight_mean(far, "notebook")), rel=1e-14
    )


def test_single_variance_of_a_hybrid_row_says_why_there_is_none():
    with pytest.raises(NotImplementedError, match="not V1/m"):
        theory.single_variance("hybrid-iid", np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="m must be an integer >= 2"):
        theory.mse("hybrid-iid", np.ones(3) * 0.1, np.ones(3) * 0.1, 1)
