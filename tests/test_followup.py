"""Follow-up estimators (theory.md §10, claims 19–25): samplers, feature maps, data rules, closed forms.

Exact (Tier 0) checks only: identities that hold draw by draw, closed forms against independent
formulas, backend agreement given the same W, errors. The Monte Carlo checks are in
tests/statistical/test_followup_statistical.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
from scipy import optimize, special, stats

from estimators import attention, backends, features, kernels, projections, registry, theory
from tests.conftest import to_numpy

GAUSSIAN_MAPS = ("oprf", "gerf-trig", "saderf")
DISCRETE_MAPS = ("poisson", "geometric")
MAP_OPTIONS = {
    "oprf": {"A": -0.07},
    "gerf-trig": {"A": 0.04},
    "saderf": {"psi": np.array([[0.5, 1.0, 2.0, 1.5]]), "A": -0.03},
    "poisson": {"rate": 0.7},
    "geometric": {"p": 0.6},
}


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    return rng.standard_normal((2, 5, 4)) * 0.5


def _projection_for(name, m=6, d=4, seed=1):
    if name in DISCRETE_MAPS:
        return projections.uniform(m, d, seed=seed)
    return projections.iid(m, d, seed=seed)


def _reference(name, x, W, options):
    """theory.md §10.2–10.3 feature formulas written out directly (scipy for the discrete laws)."""
    m, d = W.shape
    if name in GAUSSIAN_MAPS:
        A = options["A"]
        x = x * options.get("psi", 1.0)
        B, D = math.sqrt(1 - 4 * A), (1 - 4 * A) ** (d / 4)
        sq_w = (W**2).sum(-1)
        sq_x = (x**2).sum(-1, keepdims=True)
        if name == "gerf-trig":
            amplitude = D * np.exp(A * sq_w + sq_x / 2)
            u = B * x @ W.T
            return np.concatenate([amplitude * np.cos(u), amplitude * np.sin(u)], -1) / math.sqrt(m)
        return D * np.exp(A * sq_w + B * x @ W.T - sq_x / 2) / math.sqrt(m)
    if name == "poisson":
        law = stats.poisson(options["rate"])
        counts = law.ppf(W)
    else:
        law = stats.geom(options["p"], loc=-1)
        counts = law.ppf(W)
    weights = 1 / np.sqrt(special.factorial(counts) * law.pmf(counts))
    powers = x[..., None, :] ** counts
    return np.prod(powers * weights, axis=-1) / math.sqrt(m)


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


def test_uniform_draws_lie_in_the_unit_interval():
    U = projections.uniform(50, 3, seed=8)
    assert U.shape == (50, 3) and np.all((U >= 0) & (U < 1))


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


# --- feature maps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*GAUSSIAN_MAPS, *DISCRETE_MAPS])
def test_followup_maps_match_their_formulas(name, inputs):
    W = _projection_for(name)
    options = MAP_OPTIONS[name]
    result = features.feature_map(name)(inputs, W, **options)
    assert result.shape == (2, 5, 6 * features.features_per_projection(name))
    np.testing.assert_allclose(result, _reference(name, inputs, W, options), rtol=1e-12, atol=1e-300)


def test_discrete_maps_handle_zero_and_negative_coordinates():
    """0⁰ = 1 and 0^k = 0 for k > 0; odd powers of negative coordinates flip the sign."""
    x = np.array([[0.0, -0.8, 0.3, -0.5]])
    for name in DISCRETE_MAPS:
        W = projections.uniform(40, 4, seed=10)
        np.testing.assert_allclose(
            features.feature_map(name)(x, W, **MAP_OPTIONS[name]),
            _reference(name, x, W, MAP_OPTIONS[name]),
            rtol=1e-12,
        )


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


@pytest.mark.parametrize("name", ["oprf", "saderf", "poisson", "geometric"])
@pytest.mark.parametrize("stabilizer", ["row", "global"])
def test_stabilizers_are_pure_log_shifts(name, stabilizer, inputs):
    W = _projection_for(name)
    options = MAP_OPTIONS[name]
    plain = features.feature_map(name)(inputs, W, **options)
    parts = features.feature_parts(name, inputs, W, **options)
    shift = features.row_shift(parts) if stabilizer == "row" else features.global_shift(parts)
    shifted = features.feature_map(name)(inputs, W, stabilizer=stabilizer, **options)
    np.testing.assert_allclose(shifted * np.exp(shift), plain, rtol=1e-12)


@pytest.mark.parametrize("name", [*GAUSSIAN_MAPS, *DISCRETE_MAPS])
@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-12), ("float32", 2e-5)])
def test_maps_agree_across_backends_given_the_same_W(name, dtype, rtol, inputs, backend, to_backend):
    W = _projection_for(name)
    options = {
        k: (to_backend(v, dtype) if isinstance(v, np.ndarray) else v) for k, v in MAP_OPTIONS[name].items()
    }
    result = features.feature_map(name)(to_backend(inputs, dtype), to_backend(W, dtype), **options)
    assert backends.backend_of(result) == backend
    assert backends.dtype_name(result) == dtype
    reference = _reference(name, inputs, W, MAP_OPTIONS[name])
    np.testing.assert_allclose(to_numpy(result), reference, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("name", ["oprf", "gerf-trig", "saderf", "poisson"])
def test_maps_use_only_the_array_api(name, inputs):
    """array_api_strict rejects non-standard calls (geometric needs lgamma, which the standard lacks)."""
    target = backends.resolve_target(backend="array_api_strict")
    W = _projection_for(name)
    options = {
        k: (target.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in MAP_OPTIONS[name].items()
    }
    result = features.feature_map(name)(target.asarray(inputs), target.asarray(W), **options)
    np.testing.assert_allclose(np.asarray(result), _reference(name, inputs, W, MAP_OPTIONS[name]), rtol=1e-12)


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


def test_feature_errors_name_the_argument(inputs):
    W = projections.iid(6, 4, seed=13)
    with pytest.raises(ValueError, match="A must lie in"):
        features.oprf(inputs, W, A=0.25)
    with pytest.raises(ValueError, match="rate must lie in"):
        features.poisson(inputs, projections.uniform(6, 4), rate=0.0)
    with pytest.raises(ValueError, match="p must lie in"):
        features.geometric(inputs, projections.uniform(6, 4), p=1.0)
    with pytest.raises(ValueError, match="psi must lie in"):
        features.saderf(inputs, W, psi=np.array([[1.0, -1.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="Uniform"):
        features.geometric(inputs, W)
    with pytest.raises(TypeError, match="takes no options"):
        features.feature_parts("positive", inputs, W, A=0.1)
    with pytest.raises(TypeError, match="A must be a float or an array"):
        features.oprf(inputs, W, A="small")


# --- data rules -----------------------------------------------------------------------------------


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


def test_per_pair_data_options_equal_the_theory_parameters():
    rng = np.random.default_rng(16)
    x, y = rng.standard_normal((2, 6)) * 0.5
    one_x, one_y = x[None], y[None]
    t = np.sum((x + y) ** 2)
    np.testing.assert_allclose(
        features.data_options("oprf", one_x, one_y)[0]["A"][0, 0],
        theory.optimal_gerf_A(t, 6),
        rtol=1e-13,
    )
    np.testing.assert_allclose(
        features.data_options("poisson", one_x, one_y)[0]["rate"][0, 0],
        theory.poisson_rate(x, y),
        rtol=1e-13,
    )
    np.testing.assert_allclose(
        features.data_options("geometric", one_x, one_y)[0]["p"][0, 0],
        theory.geometric_p(x, y),
        rtol=1e-13,
    )
    query_options, key_options = features.data_options("saderf", one_x, one_y)
    sx, sy = theory.saderf_pair(x, y)
    np.testing.assert_allclose(x * query_options["psi"][0], sx, rtol=1e-13)
    np.testing.assert_allclose(y * key_options["psi"][0], sy, rtol=1e-13)
    assert features.data_options("positive", one_x, one_y) == ({}, {})


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


@pytest.mark.parametrize("feature", ["oprf", "gerf-trig", "poisson", "geometric"])
def test_single_moments_give_the_mean_and_the_variance(feature):
    """E[g] = SM and E[g²] − SM² = V1 from the k-th moment formulas used by the statistical tests."""
    rng = np.random.default_rng(20)
    x, y = rng.standard_normal((2, 4, 5)) * 0.5
    sm = np.exp(np.sum(x * y, -1))
    np.testing.assert_allclose(theory.single_moment(feature, x, y, 1), sm, rtol=1e-10)
    variance = {
        "oprf": "oprf-iid",
        "gerf-trig": "gerf-trig-iid",
        "poisson": "poisson-iid",
        "geometric": "geometric-iid",
    }
    np.testing.assert_allclose(
        theory.single_moment(feature, x, y, 2) - sm**2,
        theory.mse(variance[feature], x, y, 1),
        rtol=1e-9,
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


def test_rows_without_closed_forms_say_why():
    x, y = np.full(4, 0.2), np.full(4, -0.1)
    for name in ("positive-sorf-chi", "positive-sorf-fixed"):
        with pytest.raises(NotImplementedError, match="SORF"):
            theory.mean(name, x, y)
    for name in ("positive-qmc", "positive-qmc-halton"):
        np.testing.assert_allclose(theory.mean(name, x, y), np.exp(x @ y))
        with pytest.raises(NotImplementedError, match="QMC"):
            theory.mse(name, x, y, 4)


# --- registry and attention -----------------------------------------------------------------------


@pytest.mark.parametrize("name", registry.names())
def test_registry_rows_draw_their_own_projection_law(name):
    row = registry.get(name)
    W = row.draw(6, 4, batch_shape=(2,), seed=21)
    assert W.shape == (2, 6, 4)
    if row.projection == "uniform":
        assert np.all((W >= 0) & (W < 1))
    if row.norms == "fixed":
        np.testing.assert_allclose(np.linalg.norm(W, axis=-1), 2.0, rtol=1e-13)


@pytest.mark.parametrize("name", ["oprf-ort", "saderf-iid", "poisson-iid"])
def test_registry_gram_uses_the_homogeneity_rule(name, inputs):
    row = registry.get(name)
    W = row.draw(8, 4, seed=22)
    queries, keys = inputs[0], inputs[1]
    query_options, key_options = features.data_options(row.feature, queries, keys)
    expected = row.features(queries, W, **query_options) @ row.features(keys, W, **key_options).T
    np.testing.assert_allclose(row.estimate_gram(queries, keys, W), expected, rtol=1e-13)


@pytest.mark.parametrize("name", ["oprf", "gerf-trig", "saderf", "poisson", "geometric"])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_with_followup_features_is_the_favor_algebra(name, causal, inputs):
    """FAVOR with a follow-up map and per-side data options equals the normalized kernel estimate
    built from the same features (SADERF needs Ψ for queries and Ψ⁻¹ for keys)."""
    rng = np.random.default_rng(23)
    q, k = inputs[0], inputs[1]
    v = rng.standard_normal((5, 3))
    W = _projection_for(name, m=16)
    query_options, key_options = features.data_options(name, q, k, scale_inputs=True)
    out = attention.favor(
        q,
        k,
        v,
        W,
        feature=name,
        causal=causal,
        feature_options=(query_options, key_options),
        denominator="raw",
    )
    phi_q = features.feature_map(name)(q, W, scale_inputs=True, **query_options)
    phi_k = features.feature_map(name)(k, W, scale_inputs=True, **key_options)
    scores = kernels.estimate_gram(phi_q, phi_k)
    if causal:
        scores = np.tril(scores)
    np.testing.assert_allclose(out, scores @ v / scores.sum(-1, keepdims=True), rtol=1e-10, atol=1e-12)


def test_oprf_variance_reduction_examples_of_theory_md():
    """theory.md §10.2: log(Var_PosRF / Var_OPRF) = 1.13 (d=16, ρ=4), 4.39 (d=64, ρ=16), 12.7 (d=64, ρ=32)."""
    for d, rho, expected in ((16, 4.0, 1.13), (64, 16.0, 4.39), (64, 32.0, 12.7)):
        x = np.zeros(d)
        x[0] = math.sqrt(rho) / 2
        ratio = theory.gerf_variance(0.0, x, x) / theory.gerf_variance(theory.optimal_gerf_A(rho, d), x, x)
        assert round(float(np.log(ratio)), 2 if expected < 10 else 1) == expected


@pytest.mark.parametrize("name", ["oprf", "saderf", "poisson"])
def test_attention_with_followup_features_agrees_across_backends(name, inputs, backend, to_backend):
    rng = np.random.default_rng(24)
    q, k = inputs[0], inputs[1]
    v = rng.standard_normal((5, 3))
    W = _projection_for(name, m=16)
    reference_options = features.data_options(name, q, k, scale_inputs=True)
    reference = attention.favor(q, k, v, W, feature=name, feature_options=reference_options)
    qb, kb, vb, Wb = (to_backend(a) for a in (q, k, v, W))
    options = features.data_options(name, qb, kb, scale_inputs=True)
    out = attention.favor(qb, kb, vb, Wb, feature=name, feature_options=options)
    assert backends.backend_of(out) == backend
    np.testing.assert_allclose(to_numpy(out), reference, rtol=1e-10)


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
