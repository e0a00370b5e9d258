"""Options in combination, tuning rules and sampler tails: corners the single-option tests miss.

* eps > 0 with a key mask, bidirectional and causal, with chunks smaller than L and L not a multiple
  of the chunk, against a float64 reference written from the documented semantics;
* the data-tuned parameter rules: the same parameters whether the caller scaled the inputs or asked
  ``scale_inputs`` to, and each rule at the optimum it claims (found here by a numerical minimizer);
* the discrete samplers' inverse CDFs against ``scipy.stats`` at quantiles up to 1 − 1e-9.

Each group ends with a planted change that keeps the estimators unbiased (an ε term moved, a
tuning parameter moved, a tail cut) and shows the check catches it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from estimators import (
    discrete_features,
    favor_algebra,
    feature_options,
    feature_parts,
    features,
    projections,
    theory,
)
from estimators.attention import favor

D, DV, M = 4, 3, 8
EPS = 0.05
UNIT = np.finfo(np.float64).eps / 2


# ---- eps > 0 with a key mask, chunked, against a float64 reference ----------------------------


def _log_amplitudes(name, x, W):
    """Log-amplitudes a (…, L, r) of the positive or hyperbolic map at x d^{-1/4} and the scale s."""
    x = x * x.shape[-1] ** -0.25
    projected = x @ W.T
    half_sq_norm = (x**2).sum(-1, keepdims=True) / 2
    if name == "positive":
        return projected - half_sq_norm, W.shape[0] ** -0.5
    return np.concatenate([projected, -projected], -1) - half_sq_norm, (2 * W.shape[0]) ** -0.5


def _eps_reference(name, q, k, v, W, keep, causal, eps):
    """FAVOR with eps > 0 as documented in :mod:`estimators.attention`, in float64 with (L, M) matrices.

    Queries: s(e^{a_i − max_r a_ir} + eps). Bidirectional keys: s(e^{a_j − c} + eps) with c the largest
    log-amplitude over kept keys (the public code's shift). Causal keys: at their own running shift
    c_j = max_{j' ≤ j, kept} max_r a_j'r, so query i weighs key j ≤ i by
    φ(q_i)ᵀ s(e^{a_j − c_j} + eps) e^{c_j} (the common factor e^{−c_i} cancels). Removed keys and rows
    with no visible key: as documented.
    """
    a_q, s = _log_amplitudes(name, q, W)
    a_k, _ = _log_amplitudes(name, k, W)
    phi_q = s * (np.exp(a_q - a_q.max(-1, keepdims=True)) + eps)
    rho = np.where(keep, a_k.max(-1), -np.inf)
    if causal:
        shift = np.maximum.accumulate(rho)
        shift = np.where(np.isfinite(shift), shift, 0.0)
        weight = np.exp(shift - shift.max())
    else:
        shift = np.full_like(rho, rho.max())
        weight = np.ones_like(rho)
    phi_k = s * (np.exp(a_k - shift[:, None]) + eps) * weight[:, None]
    scores = (phi_q @ phi_k.T) * keep[None, :]
    if causal:
        scores = np.tril(scores)
    total = scores.sum(-1, keepdims=True)
    return np.where(total > 0, scores @ v / np.where(total > 0, total, 1.0), 0.0)


def _eps_inputs(length, seed=0):
    rng = np.random.default_rng(seed)
    q, k = (0.7 * rng.standard_normal((length, D)) for _ in range(2))
    k[length // 2] *= 4.0  # an outlier key mid-sequence: the running shift jumps there
    v = rng.standard_normal((length, DV))
    keep = rng.random(length) > 0.3
    keep[0] = False  # causal row 0 sees no key: a zero row
    return q, k, v, keep


def _check_eps_against_reference(name, causal, length, chunk):
    """Max deviation from the reference within 8·(L + r)·u·max|v|: each output is a ratio of sums of
    at most L positive products of r terms, each term a few roundings from exact (u = 2^-53)."""
    q, k, v, keep = _eps_inputs(length)
    W = projections.orthogonal(M, D, seed=5)
    expected = _eps_reference(name, q, k, v, W, keep, causal, EPS)
    actual = favor(q, k, v, W, name, causal, keep, eps=EPS, chunk_size=chunk)
    rank = M * features.features_per_projection(name)
    tolerance = 8 * (length + rank) * UNIT * np.abs(v).max()
    deviation = np.abs(actual - expected).max()
    assert deviation <= tolerance, f"max deviation {deviation:.3g} > {tolerance:.3g}"


@pytest.mark.parametrize(("length", "chunk"), [(13, 4), (13, 5), (16, 3), (16, 16)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", ["positive", "hyperbolic"])
def test_eps_with_a_key_mask_matches_the_float64_reference(name, causal, length, chunk):
    _check_eps_against_reference(name, causal, length, chunk)


def _queries_without_eps(self, constants, rows):
    parts, shift = feature_parts.row_stabilized(
        self._parts(constants.W, rows, self.query_options, constants.query_options)
    )
    return features.assemble(parts, shift, 0.0, keep_float32=True)


@pytest.mark.parametrize("causal", [False, True])
def test_planted_eps_moves_are_caught(causal, monkeypatch):
    """Planted: eps dropped from the query features (still unbiased at eps = 0, biased differently
    at eps > 0), and in causal mode eps added at the whole-sequence key shift (``"global"``)."""
    with monkeypatch.context() as patch:
        patch.setattr(favor_algebra.FeatureMap, "queries", _queries_without_eps)
        with pytest.raises(AssertionError, match="max deviation"):
            _check_eps_against_reference("positive", causal, 13, 4)
    if causal:
        q, k, v, keep = _eps_inputs(13)
        W = projections.orthogonal(M, D, seed=5)
        expected = _eps_reference("positive", q, k, v, W, keep, True, EPS)
        leaked = favor(q, k, v, W, "positive", True, keep, eps=EPS, chunk_size=4, stabilizer="global")
        assert np.abs(leaked - expected).max() > 1e3 * 8 * (13 + M) * UNIT * np.abs(v).max()


# ---- data-tuned parameter rules ---------------------------------------------------------------


def _sets(rows_q=5, rows_k=9, d=D, seed=2):
    rng = np.random.default_rng(seed)
    return 1.3 * rng.standard_normal((rows_q, d)), 0.9 * rng.standard_normal((rows_k, d)) + 0.2


@pytest.mark.parametrize("name", features.DATA_TUNED)
def test_tuned_parameters_do_not_depend_on_who_scales_the_inputs(name):
    """``data_options(q, k, scale_inputs=True)`` equals the rule on caller-scaled inputs bit for bit,
    and favor's default (the rule applied to raw q, k) equals favor given those options."""
    q, k = _sets()
    scale = D**-0.25
    own = features.data_options(name, q, k, scale_inputs=True)
    callers = features.data_options(name, q * scale, k * scale)
    for side_own, side_callers in zip(own, callers, strict=True):
        assert side_own.keys() == side_callers.keys()
        for key in side_own:
            np.testing.assert_array_equal(side_own[key], side_callers[key])
    k_same, v = k[:5], np.random.default_rng(3).standard_normal((5, DV))
    W = (
        projections.uniform(M, D, seed=4)
        if name in ("poisson", "geometric")
        else projections.iid(M, D, seed=4)
    )
    chosen = features.data_options(name, q * scale, k_same * scale)
    np.testing.assert_array_equal(
        favor(q, k_same, v, W, name, denominator="raw"),
        favor(q, k_same, v, W, name, denominator="raw", feature_options=chosen),
    )


def _gerf_objective(A, rho, d):
    """The s = +1 GERF log-variance term that A* minimizes (CRT 2022, the OPRF derivation)."""
    return d * math.log(1 - 4 * A) - d / 2 * math.log(1 - 8 * A) + rho / (1 - 8 * A)


def _argmin(objective, low, high):
    """Bounded scalar minimizer with an x tolerance of 1e-10 (of the interval's scale)."""
    return optimize.minimize_scalar(
        objective, bounds=(low, high), method="bounded", options={"xatol": 1e-10}
    ).x


def _oprf_optimum(q, k):
    rho = np.mean([np.sum((x + y) ** 2) for x in q for y in k])
    return _argmin(lambda A: _gerf_objective(A, rho, q.shape[-1]), -20.0, 0.125 - 1e-9)


def _saderf_optimum(q, k):
    """Ψ minimizing mean_{i,j} ‖Ψx_i + Ψ⁻¹y_j‖², one coordinate at a time (it separates)."""

    def spread(log_psi, column):
        psi = math.exp(log_psi)
        return np.mean((psi * q[:, column, None] + k[None, :, column] / psi) ** 2)

    return np.array([math.exp(_argmin(lambda t, c=c: spread(t, c), -10, 10)) for c in range(q.shape[-1])])


def _poisson_optimum(x, y):
    """λ minimizing the exact single-feature variance of the pair (theory.poisson_variance)."""
    log_rate = _argmin(lambda t: theory.poisson_variance(math.exp(t), x, y), -10, 5)
    return math.exp(log_rate)


def _check_rules(q, k):
    """Each rule against its numerical optimum; the minimizer's tolerance (1e-10 in A or log Ψ, log λ)
    and the objectives' flatness near the optimum (quadratic: x error ≈ √(f tolerance)) give 1e-4."""
    A = features.data_options("oprf", q, k)[0]["A"]
    assert float(A[0, 0]) == pytest.approx(_oprf_optimum(q, k), rel=1e-4)
    psi = features.data_options("saderf", q, k)[0]["psi"]
    np.testing.assert_allclose(psi[0], _saderf_optimum(q, k), rtol=1e-4)
    x, y = q[:1], k[:1]
    rate = features.data_options("poisson", x, y)[0]["rate"]
    assert float(rate[0, 0]) == pytest.approx(_poisson_optimum(x[0], y[0]), rel=1e-4)


def test_tuning_rules_sit_at_the_optima_they_claim():
    q, k = _sets()
    _check_rules(q, k)
    _check_rules(q, k[:5])
    p = float(features.data_options("geometric", q[:1], k[:1])[0]["p"][0, 0])
    S, d = float(np.sum(q[0] ** 2 * k[0] ** 2)), D
    root = 1 - p - 1e-12  # the rule floors q = 1 − p at 1e-12 above the root of d q² + S q − S = 0
    assert d * root**2 + S * root - S == pytest.approx(0.0, abs=64 * UNIT * (d + S))


def test_planted_tuning_moves_are_caught(monkeypatch):
    """Planted: A* at 90%, and the rules applied to unscaled inputs (both keep OPRF unbiased)."""
    q, k = _sets()
    optimal = features.optimal_gerf_A
    with monkeypatch.context() as patch:
        patch.setattr(feature_options, "optimal_gerf_A", lambda rho, d: 0.9 * optimal(rho, d))
        with pytest.raises(AssertionError):
            _check_rules(q, k)
    with monkeypatch.context() as patch:
        data_options = features.data_options
        patch.setattr(
            features, "data_options", lambda name, q, k, scale_inputs=False: data_options(name, q, k)
        )
        with pytest.raises(AssertionError):
            test_tuned_parameters_do_not_depend_on_who_scales_the_inputs("oprf")


# ---- discrete samplers: inverse CDFs at far quantiles -----------------------------------------

QUANTILES = (0.6, 0.9, 0.99, 1 - 1e-3, 1 - 1e-5, 1 - 1e-7, 1 - 1e-9)
RATES = (0.05, 1.0, 4.0, 30.0, 200.0)
P_VALUES = (0.05, 0.5, 0.95)


def _poisson_counts_at(quantiles, rate):
    uniforms = np.asarray(quantiles, dtype=np.float64)[None, :]
    return discrete_features.poisson_counts(uniforms, rate)[0]


def _geometric_counts_at(quantiles, p):
    """The geometric map's counts ⌊log(1 − U) / log(1 − p)⌋ for uniforms U, via its log-weights."""
    uniforms = np.asarray(quantiles, dtype=np.float64)[:, None]
    return np.floor(np.log1p(-uniforms) / math.log1p(-p))[:, 0]


def _check_poisson_tails():
    """Counts from U = q equal ``poisson.ppf(q)`` (the smallest k with F(k) ≥ q); deterministic, so
    α = 0 and any sampler whose quantile function differs at one of these 35 points fails. Both
    paths are checked: one rate (a table searched at once) and a rate per batch row (level by level)."""
    expected = stats.poisson.ppf(np.asarray(QUANTILES)[None, :], np.asarray(RATES)[:, None])
    for rate, row in zip(RATES, expected, strict=True):
        np.testing.assert_array_equal(_poisson_counts_at(QUANTILES, rate), row, err_msg=f"rate {rate}")
    uniforms = np.broadcast_to(np.asarray(QUANTILES), expected.shape)
    per_row = discrete_features.poisson_counts(uniforms, np.asarray(RATES)[:, None])
    np.testing.assert_array_equal(per_row, expected, err_msg="rate per batch row")


def test_poisson_sampler_tails_match_scipy():
    _check_poisson_tails()


@pytest.mark.parametrize("p", P_VALUES)
def test_geometric_sampler_tails_match_scipy(p):
    """P(k) = p(1 − p)^k on k ≥ 0 is scipy's ``geom`` (support k ≥ 1) shifted by one; α = 0 as above.
    The counts go through the feature map itself: with x = 0 only the count-0 projections are nonzero."""
    expected = stats.geom.ppf(QUANTILES, p) - 1
    np.testing.assert_array_equal(_geometric_counts_at(QUANTILES, p), expected)
    W = np.repeat(np.asarray(QUANTILES)[:, None], D, axis=1)
    values = features.geometric(np.zeros((1, D)), W, p=p)
    np.testing.assert_array_equal(values[0] != 0, expected == 0)


def test_planted_tail_cut_is_caught(monkeypatch):
    """Planted: the inverse-CDF loop stops at ⌈λ + 3√λ⌉ (mass beyond ~1e-3 lost for λ = 30)."""
    counts = discrete_features.poisson_counts

    def short(uniforms, rate):
        return np.minimum(counts(uniforms, rate), math.ceil(rate + 3 * math.sqrt(rate)))

    monkeypatch.setattr(discrete_features, "poisson_counts", short)
    with pytest.raises(AssertionError, match="rate"):
        _check_poisson_tails()
