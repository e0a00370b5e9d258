"""SMREG and the fixed-√d-norm rows (estimators.theory.regularized; theory.md §6, claims 12–13,
Theorem 1) against independent computations: the kernels of estimators.kernels, quadrature over the
sphere, the ₀F₁ series, mpmath at 50 digits for the fixed-norm covariances, and SMREG ≤ softmax with
the stated bias on random grids.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from estimators import kernels, theory
from estimators.theory.pairs import pair_stats
from tests.theory_support import grid_pairs, pair_with, random_pairs, sphere_coordinate_expectation


def test_kernels_match_the_core_kernels_and_quadrature():
    rng = np.random.default_rng(4)
    x, y = random_pairs(rng, 5, 7, 0.5)
    for name in ("softmax", "gaussian", "smreg", "arccos"):
        np.testing.assert_allclose(getattr(theory, name)(x, y), kernels.exact(name, x, y), rtol=1e-12)
    for d in (3, 8, 64):
        x1, y1 = pair_with(1.3, 0.7, d)
        t = float(np.sum((x1 + y1) ** 2))
        lam = math.exp(-(x1 @ x1 + y1 @ y1) / 2)
        reference = lam * sphere_coordinate_expectation(lambda v, t=t, d=d: math.exp(math.sqrt(d * t) * v), d)
        assert theory.smreg(x1, y1) == pytest.approx(reference, rel=1e-10)


def test_smreg_series_equals_closed_form_and_stays_below_softmax():
    """Claim 12 and Eq. 29–31; the §6 practical-note values at d = 64."""
    t = np.concatenate([np.linspace(0, 50, 41), [1e-9, 1e-3]])
    for d in (2, 3, 8, 64, 1024):
        series = theory.smreg_ratio_series(t, d)
        np.testing.assert_allclose(series, theory.smreg_ratio(t, d), rtol=1e-11)
        assert np.all(series <= 1 + 1e-15)
    assert theory.smreg_ratio(1.0, 64) == pytest.approx(0.996, abs=5e-4)
    assert theory.smreg_ratio(4.0, 64) == pytest.approx(0.945, abs=5e-4)
    lower, upper = theory.theorem1_bounds(64)
    assert lower == pytest.approx(0.5) and upper == 1.0
    rng = np.random.default_rng(6)
    x, y = random_pairs(rng, 500, 5, 0.8)
    assert np.all(theory.smreg(x, y) <= theory.softmax(x, y) * (1 + 1e-14))


def test_fixed_norm_covariances_match_mpmath():
    mp = pytest.importorskip("mpmath")
    for d in (2, 8, 64, 1024):
        for t in (1e-8, 1e-3, 0.3, 2.0, 50.0):
            x, y = pair_with(t, 0.5, d)
            stats = pair_stats(x, y)
            with mp.workdps(50):
                b, u = mp.mpf(d) / 2, mp.mpf(d) * mp.mpf(float(stats.t)) / 4
                lam2 = mp.exp(-mp.mpf(float(stats.sq_x + stats.sq_y)))
                f1 = mp.hyp0f1(b, u)
                cov = float(lam2 * (mp.hyp0f1(b, 2 * u) - f1**2))
                var = float(lam2 * (mp.hyp0f1(b, 4 * u) - f1**2))
            assert theory.pair_covariance("positive-ort-fixed", x, y) == pytest.approx(cov, rel=1e-8)
            assert theory.single_variance("positive-iid-fixed", x, y) == pytest.approx(var, rel=1e-9)


def test_smreg_fixed_norm_mean_is_below_softmax_with_the_stated_bias():
    """Claims 12–13: SMREG ≤ SM; relative bias of fixed norms 1 − ₀F₁(; d/2; dt/4) e^{−t/2}."""
    for d, x, y in grid_pairs(15, count=200):
        sm = theory.softmax(x, y)
        smreg = theory.mean("positive-ort-fixed", x, y)
        assert np.all(smreg <= sm * (1 + 1e-14))
        t = np.sum((x + y) ** 2, -1)
        np.testing.assert_allclose(1 - smreg / sm, 1 - theory.smreg_ratio(t, d), rtol=1e-10, atol=1e-15)
        variance = theory.mse("positive-ort-fixed", x, y, 3)
        against_sm = theory.mse("positive-ort-fixed", x, y, 3, target="softmax")
        np.testing.assert_allclose(against_sm, variance + (smreg - sm) ** 2, rtol=1e-13)
