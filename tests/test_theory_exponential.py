"""Closed forms of the trig, positive and hyperbolic rows (estimators.theory.exponential; theory.md
§4–§5, claims 2–5, 10, 11) against independent computations.

Independent routes: one-dimensional quadrature (scipy.integrate) for the single-feature variances,
Lemma 2's printed expressions, a Gauss–Laguerre integral over the two χ(d) norms for the orthogonal
pair moments, mpmath at 50–60 digits for the pair gaps and the MSE at large ‖x + y‖² and d. Exact
special cases (x = ±y, one projection, full and partial blocks) and the inequalities between rows
(hyperbolic vs. positive, orthogonal vs. iid trig) are checked on random grids.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from estimators import registry, theory
from estimators.theory.pairs import pair_stats
from tests.theory_support import (
    BASE_ROWS,
    central_moments_of_pair_mean,
    gaussian_expectation,
    grid_pairs,
    orthogonal_pair_mgf,
    pair_with,
    random_pairs,
    relu_product_moment,
    sphere_coordinate_expectation,
)

ORTHOGONAL_ROWS = [name for name in BASE_ROWS if "-ort" in name]


# ----------------------------------------------------------------------------------------------
# Single-feature variances and Lemma 2


def test_single_variances_match_one_dimensional_quadrature():
    x, y = pair_with(0.9, 1.4, 6)
    stats = pair_stats(x, y)
    t, s, n = float(stats.t), float(stats.s), float(stats.sq_x + stats.sq_y)
    lam = math.exp(-n / 2)
    sm = math.exp(float(stats.inner))

    def variance(f, var, mean):
        return gaussian_expectation(lambda a: f(a) ** 2, var) - mean**2

    expected = {
        "positive-iid": variance(lambda a: lam * math.exp(a), t, sm),
        "hyperbolic-iid": variance(lambda a: lam * math.cosh(a), t, sm),
        "trig-iid": variance(lambda a: math.exp(n / 2) * math.cos(a), s, sm),
    }
    smreg = float(theory.smreg(x, y))
    second = sphere_coordinate_expectation(lambda v: lam**2 * math.exp(2 * math.sqrt(6 * t) * v), 6)
    expected["positive-iid-fixed"] = second - smreg**2
    angle = float(stats.angle)
    norms = math.sqrt(float(stats.sq_x)), math.sqrt(float(stats.sq_y))
    expected["relu-iid"] = relu_product_moment(*norms, angle, 2) - relu_product_moment(*norms, angle, 1) ** 2
    for name, reference in expected.items():
        assert theory.single_variance(name, x, y) == pytest.approx(reference, rel=1e-9), name


def test_lemma2_closed_forms_as_printed():
    """Claims 2–4: the MSEs equal Lemma 2's printed expressions (Performers Eq. 8)."""
    rng = np.random.default_rng(5)
    x, y = random_pairs(rng, 20, 8, 0.4)
    t, s = np.sum((x + y) ** 2, -1), np.sum((x - y) ** 2, -1)
    sm = np.exp(np.sum(x * y, -1))
    m = 7
    trig = np.exp(t) * sm**-2 * (1 - np.exp(-s)) ** 2 / (2 * m)
    positive = np.exp(t) * sm**2 * (1 - np.exp(-t)) / m
    np.testing.assert_allclose(theory.mse("trig-iid", x, y, m), trig, rtol=1e-12)
    np.testing.assert_allclose(theory.mse("positive-iid", x, y, m), positive, rtol=1e-12)
    hyperbolic = (1 - np.exp(-t)) / 2 * positive
    np.testing.assert_allclose(theory.mse("hyperbolic-iid", x, y, m), hyperbolic, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Orthogonal pair moments and covariances


@pytest.mark.parametrize("d", [2, 4, 8, 16])
def test_pair_moments_match_chi_square_quadrature(d):
    """E_+(t) and E_cos(s) against a Gauss–Laguerre integral over the two χ(d) norms (theory.md §5.2)."""
    for value in (0.05, 0.7, 3.0):
        assert theory.exp_pair_moment(value, d) == pytest.approx(
            orthogonal_pair_mgf(1, 1, value, d, "exp"), rel=1e-10
        )
        assert theory.cos_pair_moment(value, d) == pytest.approx(
            orthogonal_pair_mgf(1, 1, value, d, "cos"), rel=1e-9
        )


@pytest.mark.parametrize("d", [2, 3, 4, 8, 64, 257, 1024])
def test_pair_gaps_match_mpmath_for_large_arguments(d):
    """Robustness: relative accuracy of e^t − E_+(t) and E_cos(s) − e^{−s} up to t, s = 120."""
    mp = pytest.importorskip("mpmath")
    values = [1e-8, 1e-3, 0.5, 1.99, 2.01, 7.0, 25.0, 50.0, 120.0]
    got_exp = theory.exp_pair_gap(np.array(values), d)
    got_cos = theory.cos_pair_gap(np.array(values), d)
    with mp.workdps(50):
        for k, v in enumerate(values):
            v_mp = mp.mpf(v)
            ref_exp = mp.exp(v_mp) - mp.hyp1f1(d, mp.mpf(d) / 2, v_mp / 2, maxprec=20000)
            ref_cos = mp.hyp1f1(d, mp.mpf(d) / 2, -v_mp / 2, maxprec=20000) - mp.exp(-v_mp)
            assert got_exp[k] == pytest.approx(float(ref_exp), rel=1e-12)
            assert got_cos[k] == pytest.approx(float(ref_cos), rel=1e-10)


@pytest.mark.parametrize("name", ["positive-ort", "hyperbolic-ort", "trig-ort", "positive-ort-fixed"])
def test_two_projection_mse_matches_pair_mgf_quadrature(name):
    """MSE at m = 2 from raw pair moments (Gauss–Laguerre over the χ norms), an independent route."""
    x, y = pair_with(0.8, 0.6, 5)
    reference, _ = central_moments_of_pair_mean(name, x, y, "orthogonal")
    assert theory.mse(name, x, y, 2) == pytest.approx(reference, rel=1e-9)


# ----------------------------------------------------------------------------------------------
# Special cases that hold exactly


def test_opposite_inputs_make_positive_features_exact():
    """Claim 5: at x = −y (z = 0) positive and hyperbolic MSEs vanish for every m and coupling."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4, 6))
    for name in ("positive-iid", "positive-ort", "hyperbolic-iid", "hyperbolic-ort"):
        for m in (1, 4, 6, 13):
            np.testing.assert_array_equal(theory.mse(name, x, -x, m), 0.0)
    row = registry.get("positive-ort")
    W = row.draw(9, 6, seed=3)
    np.testing.assert_allclose(row.estimate(x, -x, W), theory.softmax(x, -x), rtol=1e-13)


def test_equal_inputs_make_trig_features_exact():
    """Claim 5: at x = y (Δ = 0) the trig MSE vanishes for every m and coupling."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(4, 6))
    for name in ("trig-iid", "trig-ort"):
        for m in (1, 5, 6, 17):
            np.testing.assert_array_equal(theory.mse(name, x, x, m), 0.0)


@pytest.mark.parametrize("name", ORTHOGONAL_ROWS)
def test_one_projection_orthogonal_equals_iid(name):
    rng = np.random.default_rng(9)
    x, y = random_pairs(rng, 6, 5, 0.5)
    iid = name.replace("-ort", "-iid")
    np.testing.assert_array_equal(theory.mse(name, x, y, 1), theory.mse(iid, x, y, 1))


@pytest.mark.parametrize("name", ORTHOGONAL_ROWS)
def test_full_block_ratio_is_the_same_for_every_number_of_blocks(name):
    """Claim 10: m = k d gives MSE_ort/MSE_iid = 1 + (d − 1) Cov_ort/V1 for every k."""
    rng = np.random.default_rng(10)
    d = 6
    x, y = random_pairs(rng, 5, d, 0.5)
    iid = name.replace("-ort", "-iid")
    expected = 1 + (d - 1) * theory.pair_covariance(name, x, y) / theory.single_variance(iid, x, y)
    for blocks in (1, 2, 3, 7):
        ratio = theory.mse(name, x, y, blocks * d) / theory.mse(iid, x, y, blocks * d)
        np.testing.assert_allclose(ratio, expected, rtol=1e-12)


def test_partial_blocks_follow_the_pair_count():
    rng = np.random.default_rng(11)
    x, y = random_pairs(rng, 3, 4, 0.5)
    v1 = theory.single_variance("positive-ort", x, y)
    cov = theory.pair_covariance("positive-ort", x, y)
    for m, pairs in ((5, 12), (6, 14), (7, 18), (11, 30)):
        np.testing.assert_allclose(
            theory.mse("positive-ort", x, y, m), v1 / m + pairs / m**2 * cov, rtol=1e-14
        )


# ----------------------------------------------------------------------------------------------
# Inequalities on random grids


def test_hyperbolic_beats_positive_with_twice_the_features():
    """Claim 4: MSE(SM^hyp+_m)/MSE(SM^+_{2m}) = 1 − e^{−t} < 1 for z ≠ 0 (equal feature dimension 2m)."""
    for _, x, y in grid_pairs(14, count=200):
        t = np.sum((x + y) ** 2, -1)
        for m in (1, 3, 10):
            ratio = theory.mse("hyperbolic-iid", x, y, m) / theory.mse("positive-iid", x, y, 2 * m)
            np.testing.assert_allclose(ratio, -np.expm1(-t), rtol=1e-12)
            assert np.all(ratio < 1)


def test_orthogonal_trig_can_be_worse_than_iid():
    """Claim 11: d = 4, ‖x − y‖² = 10: the ORF pair moment 1.12e−3 exceeds e^{−10} = 4.5e−5."""
    assert theory.cos_pair_moment(10.0, 4) == pytest.approx(1.12e-3, abs=5e-6)
    assert theory.cos_pair_gap(10.0, 4) == pytest.approx(1.08e-3, abs=5e-6)
    assert theory.cos_pair_gap(10.0, 8) == pytest.approx(4.8e-4, abs=5e-6)
    assert theory.cos_pair_gap(10.0, 16) == pytest.approx(-3.1e-5, abs=5e-7)
    x, y = pair_with(0.5, 10.0, 4)
    for m in (2, 4, 8):
        assert theory.mse("trig-ort", x, y, m) > theory.mse("trig-iid", x, y, m)
    roots = {d: optimize.brentq(lambda s, d=d: theory.cos_pair_gap(s, d), 5, 14) for d in (3, 4, 8, 16)}
    for d, near in {3: 11.0, 4: 9.5, 8: 8.8, 16: 10.7}.items():
        assert roots[d] == pytest.approx(near, abs=0.1)


def test_large_d_trig_gap_follows_its_leading_order():
    """Claim 11: E_cos(s) − e^{−s} ≈ −e^{−s} s²/(2d) for large d (relative error O(1/d))."""
    for s in (0.1, 1.0, 3.0):
        leading = -math.exp(-s) * s**2 / (2 * 1024)
        assert theory.cos_pair_gap(s, 1024) == pytest.approx(leading, rel=10 * (1 + s**2) / 1024)


# ----------------------------------------------------------------------------------------------
# Robustness: large ‖x + y‖², large d


@pytest.mark.parametrize("d", [2, 64, 1024])
def test_every_row_is_finite_for_large_norms_and_dimensions(d):
    for t in (1e-6, 5.0, 20.0, 50.0):
        x, y = pair_with(t, 1.0, d)
        for name in BASE_ROWS:
            for m in (1, d // 2 + 1, 3 * d + 1):
                value = theory.mse(name, x, y, m)
                assert np.isfinite(value) and value >= 0, (name, t, m)


def test_positive_orthogonal_mse_is_accurate_at_large_t_and_d():
    """Against mpmath: MSE(SM^ort+_m) = V1/m + (P/m²)Λ²(E_+(t) − e^t) at t = 50, d = 1024."""
    mp = pytest.importorskip("mpmath")
    for d, t, m in ((1024, 50.0, 1024), (1024, 50.0, 2500), (64, 50.0, 40), (8, 30.0, 5)):
        x, y = pair_with(t, 2.0, d)
        stats = pair_stats(x, y)
        pairs = theory.block_pairs(m, d)
        with mp.workdps(60):
            tt = mp.mpf(float(stats.t))
            lam2 = mp.exp(-mp.mpf(float(stats.sq_x + stats.sq_y)))
            v1 = lam2 * (mp.exp(2 * tt) - mp.exp(tt))
            cov = lam2 * (mp.hyp1f1(d, mp.mpf(d) / 2, tt / 2, maxprec=20000) - mp.exp(tt))
            reference = float(v1 / m + mp.mpf(int(pairs)) / m**2 * cov)
        assert theory.mse("positive-ort", x, y, m) == pytest.approx(reference, rel=1e-12)
