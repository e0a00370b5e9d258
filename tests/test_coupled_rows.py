"""Coupled projection rows (theory.md §5.2, §10.1, §10.4, §10.6; claim 25): the simplex, SORF and QMC
samplers, the projection law every registry row draws, the pair moment M(c) of two coupled rows and
the MSE ordering simplex < orthogonal < iid; SORF and QMC rows have no closed-form MSE and say why.

Exact (Tier 0) checks only: identities that hold draw by draw, closed forms against independent
formulas, backend agreement given the same seed, errors. The Monte Carlo checks are in
tests/statistical/test_parameterized_and_coupled_rows.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
from scipy import optimize, special

from estimators import backends, projections, qmc_points, registry, theory
from tests.conftest import to_numpy

# --- samplers -------------------------------------------------------------------------------------


def test_simplex_directions_have_the_simplex_gram_and_blocks_are_truncated():
    """Claim 25: the d directions of a block have Gram (d/(d−1)) I − (1/(d−1)) 11ᵀ."""
    d = 5
    W = projections.simplex(12, d, norms="fixed", seed=3)
    assert W.shape == (12, d)
    directions = W / math.sqrt(d)
    gram = directions[:d] @ directions[:d].T
    np.testing.assert_allclose(gram, (d / (d - 1)) * np.eye(d) - np.ones((d, d)) / (d - 1), atol=1e-13)
    np.testing.assert_allclose(directions[d : 2 * d].sum(0), 0.0, atol=1e-13)
    np.testing.assert_allclose(projections.simplex_vertices(d).sum(0), 0.0, atol=1e-15)


def test_simplex_chi_norms_are_drawn_and_blocks_are_independent():
    W = projections.simplex(8, 4, seed=4)
    norms = np.linalg.norm(W, axis=-1)
    assert np.unique(np.round(norms, 12)).size == 8
    assert not np.allclose(W[:4] / norms[:4, None], W[4:] / norms[4:, None])


def test_fwht_is_the_normalized_sylvester_hadamard_matrix():
    for n in (1, 2, 8, 32):
        np.testing.assert_allclose(
            projections.fwht(np.eye(n)), scipy.linalg.hadamard(n) / math.sqrt(n), atol=1e-14
        )


def test_sorf_blocks_are_h_d1_h_d2_h_d3_applied_fast():
    """The fast transform equals the dense product H D₁ H D₂ H D₃ (Yu et al. 2016, §4), row by row."""
    n = 8
    rng = np.random.default_rng(5)
    signs = np.where(rng.random((3, n)) < 0.5, -1.0, 1.0)
    H = scipy.linalg.hadamard(n) / math.sqrt(n)
    dense = H @ np.diag(signs[0]) @ H @ np.diag(signs[1]) @ H @ np.diag(signs[2])
    x = rng.standard_normal((4, n))
    np.testing.assert_allclose(projections.sorf_project(x, signs), x @ dense.T, atol=1e-13)


@pytest.mark.parametrize("d", [8, 5])
def test_sorf_rows_are_orthogonal_with_the_requested_norms(d):
    n = projections.sorf_width(d)
    W = projections.sorf(2 * n, d, norms="fixed", seed=6)
    np.testing.assert_allclose(np.linalg.norm(W, axis=-1), math.sqrt(d), rtol=1e-13)
    if d == n:
        np.testing.assert_allclose(W[:n] @ W[:n].T, d * np.eye(n), atol=1e-12)
    chi = projections.sorf(n, d, norms="chi", seed=6)
    assert np.unique(np.round(np.linalg.norm(chi, axis=-1), 12)).size == n


def test_qmc_rows_are_gaussian_images_of_scrambled_points():
    W = projections.qmc(16, 3, batch_shape=(2,), seed=7)
    assert W.shape == (2, 16, 3)
    assert np.all(np.isfinite(W))
    np.testing.assert_array_equal(W, projections.qmc(16, 3, batch_shape=(2,), seed=7))
    assert not np.allclose(W[0], W[1])
    points = special.ndtr(W[0])
    # a scrambled Sobol' net of 16 points puts exactly one point in each of 16 strata per coordinate
    for column in points.T:
        np.testing.assert_array_equal(np.sort(np.floor(column * 16)), np.arange(16))
    assert projections.qmc(5, 3, sequence="halton", seed=7).shape == (5, 3)


@pytest.mark.parametrize(("m", "column", "base"), [(8, 0, 2), (9, 1, 3), (25, 2, 5)])
def test_scrambled_halton_keeps_one_point_per_stratum_of_its_base(m, column, base):
    """For m = b^k, coordinate j of a scrambled Halton set has one point in each interval of length b^−k."""
    assert qmc_points.first_primes(3) == [2, 3, 5]
    points = qmc_points.scrambled_halton(m, 3, 4, np.random.default_rng(5))
    for randomization in points:
        np.testing.assert_array_equal(np.sort(np.floor(randomization[:, column] * m)), np.arange(m))
    assert len({tuple(r[:, column]) for r in points}) == 4


def test_scrambled_sobol_digits_are_an_invertible_scramble_of_the_plain_points():
    """LMS + shift maps the m plain points of a coordinate one-to-one onto the m strata, every time."""
    points = qmc_points.scrambled_sobol(32, 4, 6, np.random.default_rng(8))
    for randomization in points:
        for column in randomization.T:
            np.testing.assert_array_equal(np.sort(np.floor(column * 32)), np.arange(32))
    assert np.all((points > 0) & (points < 1))


@pytest.mark.parametrize("name", ["simplex", "sorf", "qmc", "qmc-halton", "uniform"])
def test_samplers_give_the_same_W_on_every_backend(name, backend):
    reference = projections.sampler(name)(7, 4, seed=9)
    W = projections.sampler(name)(7, 4, seed=9, backend=backend)
    assert backends.backend_of(W) == backend
    np.testing.assert_allclose(to_numpy(W), reference, rtol=1e-12, atol=1e-14)
    assert backends.dtype_name(projections.sampler(name)(7, 4, seed=9, backend=backend, dtype="float32")) == (
        "float32"
    )


def test_sorf_and_simplex_accept_native_generators():
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(0)
    assert projections.sorf(6, 4, seed=generator).shape == (6, 4)
    assert projections.simplex(6, 4, seed=generator).shape == (6, 4)


def test_sampler_errors_name_the_argument():
    with pytest.raises(ValueError, match="d must be >= 2"):
        projections.simplex(3, 1)
    with pytest.raises(ValueError, match="power-of-two"):
        projections.fwht(np.ones((2, 6)))
    with pytest.raises(ValueError, match="sequence must be one of"):
        projections.qmc(4, 2, sequence="lattice")
    with pytest.raises(ValueError, match="norms must be one of"):
        projections.qmc(4, 2, norms="fixed")
    with pytest.raises(ValueError, match="projection must be one of"):
        projections.sampler("hadamard")
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="seed for qmc"):
        projections.qmc(4, 2, seed=torch.Generator())


@pytest.mark.parametrize("name", registry.names())
def test_registry_rows_draw_their_own_projection_law(name):
    row = registry.get(name)
    W = row.draw(6, 4, batch_shape=(2,), seed=21)
    assert W.shape == (2, 6, 4)
    if row.projection == "uniform":
        assert np.all((W >= 0) & (W < 1))
    if row.norms == "fixed":
        np.testing.assert_allclose(np.linalg.norm(W, axis=-1), 2.0, rtol=1e-13)


# --- closed forms ---------------------------------------------------------------------------------


def test_coupled_pair_moment_at_c_zero_is_the_orthogonal_moment():
    """M(0) = E_+(t) = ₁F₁(d; d/2; t/2) (theory.md §5.2), checked against scipy's hyp1f1."""
    for d in (2, 6, 32):
        t = np.array([0.01, 0.7, 3.0, 12.0])
        np.testing.assert_allclose(
            theory.coupled_pair_moment(t, d, 0.0), special.hyp1f1(d, d / 2, t / 2), rtol=1e-12
        )


def test_coupled_pair_moment_matches_its_series_for_the_simplex():
    """M(c) by quadrature against Σ_k (t/4)^k E[(a² + b² + 2cab)^k]/(k!(d/2)_k) with exact χ moments."""
    d, t = 6, 0.8
    c = theory.simplex_cosine(d)

    def chi_moment(j):
        return 2 ** (j / 2) * math.exp(special.gammaln((d + j) / 2) - special.gammaln(d / 2))

    total = 0.0
    for k in range(40):
        expectation = 0.0
        for i in range(k + 1):
            for j in range(k + 1 - i):
                n = k - i - j
                coefficient = math.factorial(k) / (math.factorial(i) * math.factorial(j) * math.factorial(n))
                expectation += coefficient * (2 * c) ** n * chi_moment(2 * i + n) * chi_moment(2 * j + n)
        total += (t / 4) ** k * expectation / (math.factorial(k) * special.poch(d / 2, k))
    np.testing.assert_allclose(theory.coupled_pair_moment(t, d, c), total, rtol=1e-12)


def test_simrf_example_of_theory_md():
    """theory.md §10.4: d = m = 6, ‖x‖ = 0.7, ‖y‖ = 0.6, iid 0.5601 → ORF 0.4749 → SimRF 0.2749."""
    d = 6

    def pair(angle):
        x, y = np.zeros(d), np.zeros(d)
        x[0], y[0], y[1] = 0.7, 0.6 * math.cos(angle), 0.6 * math.sin(angle)
        return x, y

    angle = optimize.brentq(lambda a: theory.mse("positive-iid", *pair(a), 6) - 0.5601, 0.0, math.pi)
    x, y = pair(angle)
    assert round(float(theory.mse("positive-ort", x, y, 6)), 4) == 0.4749
    assert round(float(theory.mse("positive-simplex", x, y, 6)), 4) == 0.2749


def test_simplex_beats_orthogonal_beats_iid_for_every_nonzero_z():
    """Claim 25: MSE_sim < MSE_ort < MSE_iid at m = d for z ≠ 0 (positive and OPRF maps)."""
    rng = np.random.default_rng(18)
    for d in (3, 8, 16):
        x, y = rng.standard_normal((2, 20, d)) * 0.4
        for prefix in ("positive", "oprf"):
            iid = theory.mse(f"{prefix}-iid", x, y, d)
            ort = theory.mse(f"{prefix}-ort", x, y, d)
            simplex = theory.mse(f"{prefix}-simplex", x, y, d)
            assert np.all(simplex < ort) and np.all(ort < iid)


def test_coupled_pair_moment_increases_with_the_cosine():
    moments = [theory.coupled_pair_moment(1.5, 6, c) for c in np.linspace(-1, 1, 9)]
    assert np.all(np.diff(moments) > 0)


def test_rows_without_closed_forms_say_why():
    x, y = np.full(4, 0.2), np.full(4, -0.1)
    for name in ("positive-sorf-chi", "positive-sorf-fixed"):
        with pytest.raises(NotImplementedError, match="SORF"):
            theory.mean(name, x, y)
    for name in ("positive-qmc", "positive-qmc-halton"):
        np.testing.assert_allclose(theory.mean(name, x, y), np.exp(x @ y))
        with pytest.raises(NotImplementedError, match="QMC"):
            theory.mse(name, x, y, 4)
