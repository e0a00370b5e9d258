"""Exact kernels against independent computations, and the estimate helpers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special

from estimators import kernels
from tests.conftest import to_numpy


@pytest.fixture
def pair():
    rng = np.random.default_rng(3)
    return rng.standard_normal(5) * 0.6, rng.standard_normal(5) * 0.6


def test_softmax_and_gaussian_closed_forms(pair):
    x, y = pair
    assert kernels.softmax(x, y) == pytest.approx(np.exp(x @ y), rel=1e-14)
    assert kernels.gaussian(x, y) == pytest.approx(np.exp(-np.sum((x - y) ** 2) / 2), rel=1e-14)


def test_smreg_matches_the_series_of_eq_30_and_is_below_softmax(pair):
    """SMREG/SM = e^{−w} Σ_k w^k/k! f(k, d), f(k, d) = d^k/((d+2k−2)···d), w = ‖x+y‖²/2."""
    x, y = pair
    d = len(x)
    w = np.sum((x + y) ** 2) / 2
    f = [np.prod([d / (d + 2 * j) for j in range(k)]) for k in range(80)]
    series = np.exp(-w) * sum(w**k / special.factorial(k) * f[k] for k in range(80))
    assert kernels.smreg(x, y) / kernels.softmax(x, y) == pytest.approx(series, rel=1e-12)
    assert kernels.smreg(x, y) <= kernels.softmax(x, y)


def test_smreg_stays_finite_for_large_inputs():
    x = np.full(64, 4.0)
    value = kernels.smreg(x, x)
    assert np.isfinite(value) and 0 < value and np.log(value) <= x @ x


def test_arccos_matches_gaussian_quadrature():
    """E[ReLU(ωᵀx) ReLU(ωᵀy)] over the 2-d Gaussian plane spanned by x and y (claim 27)."""
    x = np.array([1.0, 0.0])
    y = np.array([0.6, 0.9])

    def integrand(b, a):
        u = a * x[0] + b * x[1]
        v = a * y[0] + b * y[1]
        return max(u, 0) * max(v, 0) * np.exp(-(a * a + b * b) / 2) / (2 * np.pi)

    value, _ = integrate.dblquad(integrand, -9, 9, -9, 9, epsabs=1e-10)
    assert kernels.arccos(x, y) == pytest.approx(value, rel=1e-6)
    assert kernels.arccos(x, x) == pytest.approx(0.5, rel=1e-14)
    assert kernels.arccos(x, -x) == 0.0


@pytest.mark.parametrize("name", kernels.KERNELS)
def test_gram_equals_pairs_on_every_backend(name, backend, to_backend):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4)) * 0.5
    y = rng.standard_normal((2, 4)) * 0.5
    gram = to_numpy(kernels.exact_gram(name, to_backend(x), to_backend(y)))
    pairs = to_numpy(kernels.exact(name, to_backend(x[:, None, :]), to_backend(y[None, :, :])))
    np.testing.assert_allclose(gram, pairs, rtol=1e-13)


def test_estimate_and_gram_estimate_agree():
    rng = np.random.default_rng(5)
    phi_x, phi_y = rng.random((3, 6)), rng.random((2, 6))
    np.testing.assert_allclose(
        kernels.estimate_gram(phi_x, phi_y), kernels.estimate(phi_x[:, None], phi_y[None]), rtol=1e-14
    )


def test_kernel_errors_name_the_argument(pair):
    x, y = pair
    with pytest.raises(ValueError, match="kernel must be one of"):
        kernels.exact("laplace", x, y)
    with pytest.raises(ValueError, match="x has d=5 but y has d=4"):
        kernels.softmax(x, y[:4])


@pytest.mark.parametrize("epsilon", [1e-1, 1e-2, 1e-4, 1e-7, 0.0])
def test_arccos_keeps_relative_accuracy_at_nearly_opposite_inputs(epsilon):
    """Near θ = π, J₁ = sin ε − ε cos ε ≈ ε³/3 cancels; compare with 50-digit arithmetic."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    x = np.array([1.0, 0.0, 0.0])
    y = np.array([-np.cos(epsilon), np.sin(epsilon), 0.0])
    e = mpmath.mpf(epsilon)
    reference = float((mpmath.sin(e) - e * mpmath.cos(e)) / (2 * mpmath.pi))
    assert kernels.arccos(x, y) == pytest.approx(reference, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("theta", [1e-8, 0.3, np.pi / 2, 2.5])
def test_arccos_agrees_with_the_textbook_formula_away_from_pi(theta):
    x = np.array([2.0, 0.0])
    y = np.array([np.cos(theta), np.sin(theta)]) * 0.5
    textbook = (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi)
    assert kernels.arccos(x, y) == pytest.approx(textbook, rel=1e-12)
