"""GERF features (theory.md §10.2–10.3; claims 19, 20, 24): OPRF (FAVOR++), the s = −1 GERF and
SADERF (FAVOR#). The special cases at A = 0, SADERF's kept dot products, JAX tracing, the parameter
rules (ρ, A*, Ψ*) and their optimality, the closed-form variances and higher moments, and theory.md's
variance-reduction examples.

Exact (Tier 0) checks only; the checks every parameterized map shares are in
tests/test_parameterized_features.py, the Monte Carlo checks in
tests/statistical/test_parameterized_and_coupled_rows.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
from scipy import optimize, stats

from estimators import features, projections, theory
from tests.conftest import to_numpy
from tests.parameterized_support import inputs as inputs  # a fixture; the alias marks it as used

# --- feature maps ---------------------------------------------------------------------------------


def test_gerf_at_A_zero_reduces_to_the_positive_and_trig_maps(inputs):
    """Claim 19/20 special cases: A = 0, s = +1 is PRF; A = 0, s = −1 is the trigonometric map."""
    W = projections.iid(6, 4, seed=11)
    np.testing.assert_allclose(features.oprf(inputs, W, A=0.0), features.positive(inputs, W), rtol=1e-13)
    np.testing.assert_allclose(features.saderf(inputs, W), features.positive(inputs, W), rtol=1e-13)
    np.testing.assert_allclose(features.gerf_trig(inputs, W, A=0.0), features.trig(inputs, W), rtol=1e-13)


def test_saderf_keeps_every_dot_product(inputs):
    """Claim 24: (Ψx)ᵀ(Ψ⁻¹y) = xᵀy, so SADERF is OPRF on rescaled inputs with the same kernel."""
    queries, keys = inputs[0], inputs[1]
    query_options, key_options = features.data_options("saderf", queries, keys)
    scaled = (queries * query_options["psi"]) @ (keys * key_options["psi"]).T
    np.testing.assert_allclose(scaled, queries @ keys.T, rtol=1e-13)


def test_oprf_runs_under_jax_jit(inputs):
    jax = pytest.importorskip("jax")
    W = projections.iid(6, 4, seed=12, backend="jax")
    x = jax.numpy.asarray(inputs)

    @jax.jit
    def optimal_features(x, W):
        options, _ = features.data_options("oprf", x, x)
        return features.oprf(x, W, **options)

    options, _ = features.data_options("oprf", inputs, inputs)
    expected = features.oprf(inputs, to_numpy(W), **options)
    np.testing.assert_allclose(to_numpy(optimal_features(x, W)), expected, rtol=1e-12)


# --- parameter rules ------------------------------------------------------------------------------


def test_homogeneity_rho_is_the_mean_over_all_pairs(inputs):
    queries, keys = inputs[0], inputs[1][:3]
    brute = np.mean([[np.sum((q + k) ** 2) for k in keys] for q in queries])
    np.testing.assert_allclose(features.homogeneity_rho(queries, keys)[0, 0], brute, rtol=1e-13)


def test_optimal_A_is_the_expplus_value_nonpositive_and_zero_only_at_t_zero():
    """Claim 19: A* ≤ 0, A* = 0 iff t = 0, and TF's expplus formula gives the same A."""
    rho = np.array([1e-3, 0.5, 2.0, 10.0, 100.0])
    for d in (4, 16, 64):
        A = theory.optimal_gerf_A(rho, d)
        # TF's form cancels for small ρ (1 − 1/τ with τ → 1), so it is compared where it is accurate
        np.testing.assert_allclose(A[1:], theory.expplus_A(rho[1:], d), rtol=1e-10)
        assert np.all(A < 0)
        np.testing.assert_allclose(features.optimal_gerf_A(rho, d), A, rtol=1e-15)
    assert theory.optimal_gerf_A(0.0, 8) == 0.0


def test_optimal_A_minimizes_the_closed_form_gerf_variance():
    """Claim 19: A* is the argmin over A < 1/8 of SM²[(1−4A)^d(1−8A)^{−d/2}e^{t/(1−8A)} − 1]."""
    rng = np.random.default_rng(14)
    for d, scale in ((6, 0.4), (16, 0.3), (64, 0.15)):
        x, y = rng.standard_normal((2, d)) * scale
        t = float(np.sum((x + y) ** 2))
        best = optimize.minimize_scalar(
            lambda A, x=x, y=y: theory.gerf_variance(A, x, y),
            bounds=(-1.0, 0.124),
            method="bounded",
            options={"xatol": 1e-10},
        )
        np.testing.assert_allclose(best.x, theory.optimal_gerf_A(t, d), atol=1e-6)


def test_psi_star_minimizes_the_homogeneity_objective(inputs):
    """Claim 24: no positive diagonal perturbation of Ψ* lowers mean_{i,j} ‖Ψx_i + Ψ⁻¹y_j‖²."""
    queries, keys = inputs[0], inputs[1]
    psi = features.saderf_psi(queries, keys)

    def objective(scale):
        return features.homogeneity_rho(queries * scale, keys / scale)[0, 0]

    best = objective(psi)
    rng = np.random.default_rng(15)
    for _ in range(200):
        assert objective(psi * np.exp(0.05 * rng.standard_normal(psi.shape))) >= best - 1e-12
    assert best <= objective(np.ones_like(psi)) + 1e-12


# --- closed forms ---------------------------------------------------------------------------------


def test_gerf_variances_at_A_zero_are_lemma_2():
    """Claims 19–20: A = 0 recovers V1_+ = SM²(e^t − 1) and V1_trig = ½e^{‖x‖²+‖y‖²}(1 − e^{−s})²."""
    rng = np.random.default_rng(19)
    x, y = rng.standard_normal((2, 10, 5)) * 0.5
    np.testing.assert_allclose(
        theory.gerf_variance(0.0, x, y), theory.mse("positive-iid", x, y, 1), rtol=1e-12
    )
    np.testing.assert_allclose(
        theory.gerf_trig_variance(0.0, x, y), theory.mse("trig-iid", x, y, 1), rtol=1e-10
    )


def test_single_moments_agree_with_quadrature():
    """E[g³], E[g⁴] of the GERF maps against direct numerical integration over ω (d = 1)."""
    x, y = np.array([0.4]), np.array([-0.3])
    for feature, A in (("oprf", -0.06), ("gerf-trig", 0.03)):
        B, D2 = math.sqrt(1 - 4 * A), math.sqrt(1 - 4 * A)

        def term(w, feature=feature, A=A, B=B, D2=D2):
            if feature == "oprf":
                return D2 * math.exp(2 * A * w * w + B * w * (x[0] + y[0]) - (x[0] ** 2 + y[0] ** 2) / 2)
            return (
                D2 * math.exp(2 * A * w * w + (x[0] ** 2 + y[0] ** 2) / 2) * math.cos(B * w * (x[0] - y[0]))
            )

        for k in (3, 4):
            value = scipy.integrate.quad(lambda w, k=k, term=term: term(w) ** k * stats.norm.pdf(w), -40, 40)[
                0
            ]
            np.testing.assert_allclose(theory.single_moment(feature, x, y, k, parameter=A), value, rtol=1e-9)


def test_oprf_variance_reduction_examples_of_theory_md():
    """theory.md §10.2: log(Var_PosRF / Var_OPRF) = 1.13 (d=16, ρ=4), 4.39 (d=64, ρ=16), 12.7 (d=64, ρ=32)."""
    for d, rho, expected in ((16, 4.0, 1.13), (64, 16.0, 4.39), (64, 32.0, 12.7)):
        x = np.zeros(d)
        x[0] = math.sqrt(rho) / 2
        ratio = theory.gerf_variance(0.0, x, x) / theory.gerf_variance(theory.optimal_gerf_A(rho, d), x, x)
        assert round(float(np.log(ratio)), 2 if expected < 10 else 1) == expected
