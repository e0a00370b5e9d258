"""Closed forms of the ReLU rows (estimators.theory.rectified; claim 27): the arc-cosine kernel, the
single-feature moments and the orthogonal pair covariance.

Independent routes: polar quadrature of the 2-D Gaussian, mpmath at 50 digits for nearly opposite
inputs, exact points (x ∥ y, d = 2), scipy.dblquad of the pair integral, and a fixed-seed Monte Carlo
z-test of the orthogonal pair moment whose variance is the exact one (never the sample SD).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special

from estimators import registry, theory
from estimators.theory.pairs import pair_stats
from estimators.theory.rectified import relu_pair_covariance
from tests.theory_support import gaussian_expectation, pair_at_angle, relu_product_moment

# ----------------------------------------------------------------------------------------------
# Single-feature moments


@pytest.mark.parametrize("angle", [0.0, 0.7, math.pi / 2, 2.6, math.pi - 1e-3])
def test_relu_moments_match_polar_quadrature(angle):
    x, y = pair_at_angle(1.3, 0.8, angle, 4)
    moments = theory.relu_moments(x, y)
    assert moments.first_x == pytest.approx(1.3 / math.sqrt(2 * math.pi), rel=1e-14)
    assert moments.first_x == pytest.approx(gaussian_expectation(lambda a: max(a, 0.0), 1.69), rel=1e-10)
    second = gaussian_expectation(lambda a: max(a, 0.0) ** 2, 0.64)
    assert moments.second_y == pytest.approx(second, rel=1e-10)
    for value, power in ((moments.cross, 1), (moments.cross_squares, 2)):
        reference = relu_product_moment(1.3, 0.8, angle, power)
        assert value == pytest.approx(reference, rel=1e-9, abs=1e-300)


def test_arccos_moments_are_accurate_for_nearly_opposite_inputs():
    """J₁, J₂ vanish like ε³, ε⁵ as θ → π (ε = π − θ); the kernel keeps full relative accuracy there."""
    mp = pytest.importorskip("mpmath")
    for eps in (1e-5, 1e-2, 0.3, 0.99, 1.01, 2.0):
        x = np.array([1.0, 0.0, 0.0])
        y = np.array([-math.cos(eps), math.sin(eps), 0.0])
        with mp.workdps(50):
            e = mp.atan2(mp.mpf(float(y[1])), -mp.mpf(float(y[0])))
            j1 = mp.sin(e) - e * mp.cos(e)
            j2 = e * (2 + mp.cos(2 * e)) - mp.mpf(3) / 2 * mp.sin(2 * e)
        moments = theory.relu_moments(x, y)
        assert moments.cross == pytest.approx(float(j1 / (2 * mp.pi)), rel=1e-13)
        assert moments.cross_squares == pytest.approx(float(j2 / (2 * mp.pi)), rel=1e-13)
        theta = np.pi - eps
        with mp.workdps(50):
            e = mp.mpf(np.pi) - mp.mpf(theta)
            reference = float(mp.sin(e) - e * mp.cos(e))
        assert theory.arccos_j1(theta) == pytest.approx(reference, rel=1e-13)


# ----------------------------------------------------------------------------------------------
# Orthogonal pair covariance


def test_relu_pair_covariance_exact_points():
    """x ∥ y: Cov_ort = −‖x‖²‖y‖²/(2(d + 2)); d = 2: the partner is ±the perpendicular direction."""
    for d in (2, 3, 4, 9, 64, 1024):
        x, y = pair_at_angle(1.2, 0.7, 0.0, max(d, 2))
        assert theory.pair_covariance("relu-ort", x, y) == pytest.approx(-(0.84**2) / (2 * (d + 2)), rel=1e-9)
    for angle in (0.4, 1.7, 2.9):
        x, y = pair_at_angle(1.0, 1.0, angle, 2)
        moment, _ = integrate.quad(_perpendicular_product, 0, 2 * math.pi, args=(angle,), limit=200, epsabs=0)
        expected = 4 * moment / (2 * math.pi) - relu_product_moment(1.0, 1.0, angle, 1) ** 2
        assert theory.pair_covariance("relu-ort", x, y) == pytest.approx(expected, rel=1e-8)


def _perpendicular_product(phi, angle):
    """g(u)·E[g(u′)] for unit u at angle φ and u′ = ±u^⊥ (d = 2), g(u) = ReLU(u₁)ReLU(u·(cos θ, sin θ))."""

    def g(p):
        return max(math.cos(p), 0.0) * max(math.cos(p - angle), 0.0)

    return g(phi) * (g(phi + math.pi / 2) + g(phi - math.pi / 2)) / 2


@pytest.mark.parametrize(("d", "angle"), [(3, 0.5), (4, 1.5), (8, 2.5), (32, 1.0)])
def test_relu_pair_covariance_matches_adaptive_quadrature(d, angle):
    """Gauss rule against scipy.dblquad of the same 2-D integral over r² ~ Beta(1, (d−2)/2) and φ."""
    beta = (d - 2) / 2

    def integrand(s, phi):
        cx, cy = math.cos(phi), math.cos(phi - angle)
        a, b = 1 - s * cx * cx, 1 - s * cy * cy
        norm = math.sqrt(a * b)
        psi = math.acos(min(max((math.cos(angle) - s * cx * cy) / norm, -1.0), 1.0))
        j1 = math.sin(psi) + (math.pi - psi) * math.cos(psi)
        return s * cx * cy * norm * j1 * beta * (1 - s) ** (beta - 1)

    arc = (angle - math.pi / 2, math.pi / 2)
    value, _ = integrate.dblquad(integrand, *arc, 0, 1, epsabs=1e-13, epsrel=1e-11)
    expected = d**2 / (d - 1) * value / (2 * math.pi) ** 2 - relu_product_moment(1, 1, angle, 1) ** 2
    x, y = pair_at_angle(1.0, 1.0, angle, d)
    assert float(relu_pair_covariance(pair_stats(x, y))) == pytest.approx(expected, rel=1e-8)


# ----------------------------------------------------------------------------------------------
# Orthogonal pair moment against Monte Carlo


def relu_orthogonal_product_moment(power, angle, d):
    """E[g(ω₁)^n g(ω₂)^n] for an orthogonal χ(d) pair, g(ω) = ReLU(ωᵀx)ReLU(ωᵀy), unit x, y at ``angle``.

    Conditioning on u₁ (projection r(cos φ, sin φ) onto span(x, y), r² ~ Beta(1, (d − 2)/2)), u₂ is
    uniform on the unit sphere of u₁^⊥, so E[g(u₂)^n | u₁] = ‖x′‖^n‖y′‖^n J_n(ψ)/(2π E ρ_{d−1}^{2n});
    the χ norms contribute (E ρ_d^{2n})². Adaptive scipy.dblquad (d ≥ 3).
    """
    beta = (d - 2) / 2

    def j(psi):
        if power == 1:
            return math.sin(psi) + (math.pi - psi) * math.cos(psi)
        return 3 * math.sin(psi) * math.cos(psi) + (math.pi - psi) * (1 + 2 * math.cos(psi) ** 2)

    def rising(k):
        return math.prod(k + 2 * i for i in range(power))

    def integrand(s, phi):
        cx, cy = math.cos(phi), math.cos(phi - angle)
        a, b = 1 - s * cx * cx, 1 - s * cy * cy
        psi = math.acos(min(max((math.cos(angle) - s * cx * cy) / math.sqrt(a * b), -1.0), 1.0))
        inner = (a * b) ** (power / 2) * j(psi) / (2 * math.pi * rising(d - 1))
        return (s * cx * cy) ** power * inner * beta * (1 - s) ** (beta - 1) / (2 * math.pi)

    arc = (angle - math.pi / 2, math.pi / 2)
    value, _ = integrate.dblquad(integrand, *arc, 0, 1, epsabs=0, epsrel=1e-10 if power == 1 else 1e-6)
    return rising(d) ** 2 * value


def test_monte_carlo_relu_orthogonal_pair_moment():
    """relu-ort Cov_ort at a generic angle against draws of the core's orthogonal pairs.

    H0: E[g(ω₁)g(ω₂)] = Cov_ort + k₁² (θ = 1.2, d = 5, unit inputs); z with the exact variance
    E[g₁²g₂²] − (E g₁g₂)² from :func:`relu_orthogonal_product_moment`, N = 20000, one test of its own
    family, α = 1e-3. Power: the same draws must reject the iid value k₁² (Cov = 0; z ≈ −11 expected).
    """
    d, angle = 5, 1.2
    x, y = pair_at_angle(1.0, 1.0, angle, d)
    k1 = float(theory.arccos(x, y))
    pair_moment = float(theory.pair_covariance("relu-ort", x, y)) + k1**2
    assert pair_moment == pytest.approx(relu_orthogonal_product_moment(1, angle, d), rel=1e-8)
    variance = relu_orthogonal_product_moment(2, angle, d) - pair_moment**2
    W = registry.get("relu-ort").draw(2, d, batch_shape=(20000,), seed=41)
    terms = np.maximum(W @ x, 0) * np.maximum(W @ y, 0)
    products = terms[:, 0] * terms[:, 1]
    se = math.sqrt(variance / products.size)
    critical = float(special.ndtri(1 - 1e-3 / 2))
    assert abs(products.mean() - pair_moment) / se < critical
    assert abs(products.mean() - k1**2) / se > critical, "no power against independent rows"
