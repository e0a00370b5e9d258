"""Closed forms of the follow-up estimators (theory.md §10, claims 19–25): float64 numpy/scipy.

Rows (registry names) and what is known in closed form, x and y (…, d) broadcasting, already scaled:

==========================  =========================================================================
row                         mean / single-feature variance V1 / same-block pair covariance
==========================  =========================================================================
oprf-iid, -ort, -simplex    SM; GERF s = +1 variance at the per-pair optimum A*(‖x+y‖²) (CRT 2022);
                            pair covariance Λ²M(c) − SM², independent of A (derivation below)
gerf-trig-iid               SM; GERF s = −1 variance at A = 0.05 (theory.md §10.2)
saderf-iid, -ort            OPRF on (Ψ*x, Ψ*⁻¹y), Ψ*_l = (y_l²/x_l²)^{1/4} per pair (FAVOR#, §10.3)
positive-simplex            SM; V1_+ = SM²(e^t − 1); Cov_sim = Λ²(M(−1/(d−1)) − e^t) (SimRF, §10.4)
poisson-iid, geometric-iid  SM; exp(λd + Σ a_l²/λ) − SM² and p^{−d} Π I₀(2|a_l|/√(1−p)) − SM²,
                            a_l = x_l y_l, at the per-pair rate λ* / the second-order rule for p
positive-sorf-chi, -fixed   no closed form: SORF directions are a discrete, non-Haar law
positive-qmc, -qmc-halton   mean SM (every scrambled point is uniform); no closed-form variance
==========================  =========================================================================

Block law (theory.md §5.2): ``MSE = V1/m + (P/m²) Cov``, ``P = Σ_b n_b(n_b − 1)``, valid for any
exchangeable within-block coupling. For two rows ω₁ = a u₁, ω₂ = b u₂ of one block (a, b iid χ(d),
u₁ᵀu₂ = c fixed, the pair Haar-rotated) the exponential features give

    E[g(ω₁) g(ω₂)] = Λ² M(c),   M(c) = E_{a,b}[₀F₁(; d/2; t(a² + b² + 2cab)/4)]

with c = 0 for ORF (M(0) = E_+(t) = ₁F₁(d; d/2; t/2)) and c = −1/(d − 1) for the simplex. For a GERF
with parameter A the factor D⁴ e^{2A(a²+b²)} turns the χ(d) laws into the same laws rescaled by
√(1 − 4A), which B = √(1 − 4A) undoes exactly, so the pair moment does not depend on A [DER]: OPRF
couples exactly like the positive map (theory.md claim 21's integral equals Λ²E_+(t)).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from . import discrete_features, gerf
from .gerf import GERF_TRIG_A
from .special import log_hyp0f1
from .theory_inputs import as_output, check_dimension, host_float64, pair_stats
from .theory_relu import arccos_mean
from .theory_smreg import smreg_mean
from .theory_softmax import exp_pair_covariance, gaussian_mean, log_expm1, softmax_mean

QUADRATURE_NODES = 96
ANGULAR_NODES = 64

COUPLED_ROWS = {
    "oprf-iid": ("oprf", "iid"),
    "oprf-ort": ("oprf", "orthogonal"),
    "oprf-simplex": ("oprf", "simplex"),
    "gerf-trig-iid": ("gerf-trig", "iid"),
    "saderf-iid": ("saderf", "iid"),
    "saderf-ort": ("saderf", "orthogonal"),
    "positive-simplex": ("positive", "simplex"),
    "poisson-iid": ("poisson", "iid"),
    "geometric-iid": ("geometric", "iid"),
}
NO_CLOSED_FORM = {
    "positive-sorf-chi": "SORF rows H·D₁·H·D₂·H·D₃ take finitely many directions, not Haar ones (Yu et al. "
    "2016 give only a bias bound); χ(d) norms match the Gaussian second moment but not the fourth",
    "positive-sorf-fixed": "SORF rows have fixed √d norms and a discrete, non-Haar direction law; the mean "
    "is close to SMREG but not equal (theory.md §10.1)",
    "positive-qmc": "randomized QMC has no closed-form variance for unbounded exponential features "
    "(theory.md §10.6); the mean is exact because every scrambled point is uniform",
    "positive-qmc-halton": "randomized QMC has no closed-form variance for unbounded exponential features "
    "(theory.md §10.6); the mean is exact because every scrambled point is uniform",
}
ROWS = (*COUPLED_ROWS, *NO_CLOSED_FORM)


# --- parameters ---------------------------------------------------------------------------------


def optimal_gerf_A(rho, d):
    """A* of :func:`estimators.gerf.optimal_gerf_A` (claim 19) on float64 host values, checked."""
    return as_output(gerf.optimal_gerf_A(host_float64(rho, "rho"), check_dimension(d)))


def expplus_A(rho, d):
    """A from the TF Model Garden ``expplus`` formula: τ = (√((2ρ+d)² + 8dρ) − 2ρ − d)/(4ρ), A = (1 − 1/τ)/8.

    Algebraically equal to :func:`optimal_gerf_A` for ρ > 0 (claim 19's cross-check).
    """
    rho = host_float64(rho, "rho")
    d = check_dimension(d)
    tau = (np.sqrt((2 * rho + d) ** 2 + 8 * d * rho) - 2 * rho - d) / (4 * rho)
    return as_output((1 - 1 / tau) / 8)


def saderf_pair(x, y):
    """(Ψ*x, Ψ*⁻¹y) for pairs, Ψ*_l = ((y_l² + τ)/(x_l² + τ))^{1/4}, τ = 1e-12 (FAVOR#; claim 24).

    Ψ* minimizes ‖Ψx + Ψ⁻¹y‖² over positive diagonal Ψ and keeps xᵀy; the same rule as
    :func:`estimators.features.saderf_psi` with one query and one key.
    """
    x, y = _host_pair(x, y)
    psi = gerf.saderf_psi(x[..., None, :], y[..., None, :])[..., 0, :]
    return x * psi, y / psi


def poisson_rate(x, y):
    """λ* = √(Σ_l x_l² y_l² / d) (+1e-12), the Poisson-DIRF variance minimizer (claim 22)."""
    x, y = _host_pair(x, y)
    return discrete_features.poisson_rate(np.sum((x * y) ** 2, axis=-1), x.shape[-1])


def geometric_p(x, y):
    """p = 1 − q, q = (√(S² + 4dS) − S)/(2d) + 1e-12, S = Σ x_l²y_l²: minimizer of −d log p + S/(1 − p).

    That objective is the geometric-DIRF log second moment with log I₀(z) ≈ z²/4 (no closed-form optimum
    of the exact variance exists); the same rule as :func:`estimators.features.data_options`.
    """
    x, y = _host_pair(x, y)
    return discrete_features.geometric_p(np.sum((x * y) ** 2, axis=-1), x.shape[-1])


# --- single-feature moments ---------------------------------------------------------------------


def gerf_variance(A, x, y):
    """Var of one GERF (s = +1) term: SM²[(1−4A)^d (1−8A)^{−d/2} e^{t/(1−8A)} − 1], A < 1/8 (claim 19)."""
    A = _check_A(A)
    p = pair_stats(x, y)
    log_ratio = p.d * np.log1p(-4 * A) - p.d / 2 * np.log1p(-8 * A) + p.t / (1 - 8 * A)
    return as_output(np.exp(2 * p.inner + log_expm1(np.maximum(log_ratio, 0))))


def gerf_trig_variance(A, x, y):
    """Var of one GERF (s = −1) term (claim 20), A < 1/8:
    ½(1−4A)^d (1−8A)^{−d/2} e^{‖x‖²+‖y‖²}(1 + exp(−2(1−4A)s/(1−8A))) − SM²."""
    A = _check_A(A)
    p = pair_stats(x, y)
    log_half = p.d * np.log1p(-4 * A) - p.d / 2 * np.log1p(-8 * A) + p.sq_x + p.sq_y - math.log(2)
    second = np.exp(log_half) * (1 + np.exp(-2 * (1 - 4 * A) * p.s / (1 - 8 * A)))
    return as_output(second - np.exp(2 * p.inner))


def poisson_variance(rate, x, y):
    """Var of one Poisson-DIRF term: exp(λd + Σ_l x_l²y_l²/λ) − SM² (claim 22)."""
    return single_moment("poisson", x, y, 2, parameter=rate) - _softmax(x, y) ** 2


def geometric_variance(p, x, y):
    """Var of one geometric-DIRF term: p^{−d} Π_l I₀(2|x_l y_l|/√(1−p)) − SM² (claim 22)."""
    x, y = _host_pair(x, y)
    p = host_float64(p, "p")
    if np.any((p <= 0) | (p >= 1)):
        raise ValueError("p must lie in (0, 1)")
    z = 2 * np.abs(x * y) / np.sqrt(1 - p)[..., None]
    log_second = -x.shape[-1] * np.log(p) + np.sum(np.log(special.i0e(z)) + z, axis=-1)
    return as_output(np.exp(log_second) - _softmax(x, y) ** 2)


def single_moment(feature, x, y, k, *, parameter=None):
    """E[g^k] of one feature's term g = φ_i(x)φ_i(y)·m (the m = 1 estimator), k = 1 … 4.

    ``feature`` is ``oprf`` (parameter A, default A*), ``gerf-trig`` (A, default 0.05), ``poisson``
    (λ, default λ*) or ``geometric`` (p, default :func:`geometric_p`). Closed forms [DER]:

    * GERF s = +1: ``D^{2k} Λ^k (1 − 4kA)^{−d/2} exp(k²(1 − 4A)t / (2(1 − 4kA)))`` (needs 4kA < 1);
    * GERF s = −1: ``D^{2k} e^{k(‖x‖²+‖y‖²)/2} (1 − 4kA)^{−d/2} 2^{−k} Σ_j C(k,j)
      exp(−(k − 2j)²(1 − 4A)s / (2(1 − 4kA)))`` (cos^k as a sum of cosines);
    * Poisson: ``e^{(k−1)λd} exp(Σ_l a_l^k / λ^{k−1})``, a_l = x_l y_l;
    * geometric: ``p^{−(k−1)d} Π_l Σ_j (a_l^k/(1 − p)^{k−1})^j / (j!)^k``.

    Used for the exact variance of squared errors in the statistical tests.
    """
    check_dimension(k, "k")
    x, y = _host_pair(x, y)
    p = pair_stats(x, y)
    if feature in ("oprf", "gerf-trig"):
        default = optimal_gerf_A(p.t, p.d) if feature == "oprf" else GERF_TRIG_A
        A = host_float64(default if parameter is None else parameter, "A")
        if np.any(4 * k * A >= 1):
            raise ValueError(f"E[g^{k}] is infinite for A >= 1/(4k) = {1 / (4 * k)}")
        log_common = k * p.d / 2 * np.log1p(-4 * A) - p.d / 2 * np.log1p(-4 * k * A)
        if feature == "oprf":
            log_lambda = -(p.sq_x + p.sq_y) / 2
            return as_output(
                np.exp(log_common + k * log_lambda + k * k * (1 - 4 * A) * p.t / (2 * (1 - 4 * k * A)))
            )
        j = np.arange(k + 1)
        weights = special.comb(k, j) / 2.0**k
        decay = np.exp(-np.multiply.outer((1 - 4 * A) * p.s / (2 * (1 - 4 * k * A)), (k - 2 * j) ** 2))
        return as_output(np.exp(log_common + k * (p.sq_x + p.sq_y) / 2) * np.sum(weights * decay, axis=-1))
    a = x * y
    d = x.shape[-1]
    if feature == "poisson":
        rate = host_float64(poisson_rate(x, y) if parameter is None else parameter, "rate")
        return as_output(np.exp((k - 1) * rate * d + np.sum(a**k, axis=-1) / rate ** (k - 1)))
    if feature == "geometric":
        prob = host_float64(geometric_p(x, y) if parameter is None else parameter, "p")
        u = a**k / (1 - prob[..., None]) ** (k - 1)
        return as_output(prob ** (-(k - 1) * d) * np.prod(_bessel_like_series(u, k), axis=-1))
    raise ValueError(f"feature must be one of ('oprf', 'gerf-trig', 'poisson', 'geometric'), got {feature!r}")


def _bessel_like_series(u, k, terms=80):
    """Σ_{j<terms} u^j/(j!)^k for real u (terms fall faster than geometrically once j > |u|^{1/k})."""
    j = np.arange(terms, dtype=np.float64)
    log_terms = np.multiply.outer(np.log(np.abs(u) + 1e-300), j) - k * special.gammaln(j + 1)
    signs = np.where(np.multiply.outer(u < 0, j % 2 == 1), -1.0, 1.0)
    return np.sum(signs * np.exp(log_terms), axis=-1)


# --- coupled pairs ------------------------------------------------------------------------------


def coupled_pair_moment(t, d, c, radial_nodes=QUADRATURE_NODES, angular_nodes=ANGULAR_NODES):
    """M(c) = E_{a,b iid χ(d)}[₀F₁(; d/2; t(a² + b² + 2cab)/4)] for −1 ≤ c ≤ 1 (theory.md §10.4).

    In polar form a = r cos θ, b = r sin θ: r² = S ~ χ²_{2d} independent of φ = 2θ ∈ [0, π] with
    density ∝ sin^{d−1} φ, and a² + b² + 2cab = S(1 + c sin φ). S is integrated by Gauss–Laguerre
    (weight u^{d−1}e^{−u}, S = 2u), φ by Gauss–Legendre (the integrand is analytic), in log space.
    M(0) = E_+(t) = ₁F₁(d; d/2; t/2) (tested). M is increasing in c, so the simplex value
    c = −1/(d−1) gives the smallest pair moment of any weight-independent coupling.
    """
    t = host_float64(t, "t")
    d = check_dimension(d)
    if not -1 <= c <= 1:
        raise ValueError(f"c must be a cosine in [-1, 1], got {c}")
    if np.any(t < 0):
        raise ValueError("t = ||x + y||^2 must be >= 0")
    u, radial_weights = special.roots_genlaguerre(radial_nodes, d - 1)
    log_radial = np.log(radial_weights) - special.gammaln(d)
    nodes, angular_weights = special.roots_legendre(angular_nodes)
    phi = (nodes + 1) * np.pi / 2
    log_norm = 0.5 * np.log(np.pi) + special.gammaln(d / 2) - special.gammaln((d + 1) / 2)
    log_angular = np.log(angular_weights * np.pi / 2) + (d - 1) * np.log(np.sin(phi)) - log_norm
    squared = np.maximum(np.multiply.outer(2 * u, 1 + c * np.sin(phi)), 0)
    log_joint = log_radial[:, None] + log_angular[None, :]
    values = log_hyp0f1(d / 2, np.multiply.outer(t, squared) / 4) + log_joint
    return as_output(np.exp(special.logsumexp(values.reshape((*t.shape, -1)), axis=-1)))


def simplex_cosine(d):
    """Common cosine −1/(d − 1) of the d simplex directions of a block (claim 25)."""
    d = check_dimension(d)
    if d < 2:
        raise ValueError("d must be >= 2 for a simplex")
    return -1.0 / (d - 1)


def block_pairs(m, d):
    """P = Σ_b n_b(n_b − 1) for blocks of d rows, the last one partial (theory.md §5.2)."""
    full, rest = np.divmod(np.asarray(m, dtype=np.int64), check_dimension(d))
    return full * d * (d - 1) + rest * (rest - 1)


# --- row dispatch -------------------------------------------------------------------------------


def mean(name, x, y):
    """E[K̂(x, y)] for a follow-up row: exp(xᵀy) wherever it is known (…, d) → (…)."""
    _check_row(name)
    if name.startswith("positive-sorf"):
        raise NotImplementedError(f"the mean of {name!r} has no closed form: {NO_CLOSED_FORM[name]}")
    return as_output(_softmax(x, y))


def single_variance(name, x, y):
    """V1: variance of one projection's term (the MSE at m = 1) for a follow-up row; (…, d) → (…)."""
    feature, _ = _coupled_row(name)
    x, y = _host_pair(x, y)
    if feature == "saderf":
        x, y = saderf_pair(x, y)
        feature = "oprf"
    if feature == "oprf":
        return gerf_variance(optimal_gerf_A(pair_stats(x, y).t, x.shape[-1]), x, y)
    if feature == "positive":
        return gerf_variance(0.0, x, y)
    if feature == "gerf-trig":
        return gerf_trig_variance(GERF_TRIG_A, x, y)
    if feature == "poisson":
        return poisson_variance(poisson_rate(x, y), x, y)
    return geometric_variance(geometric_p(x, y), x, y)


def pair_covariance(name, x, y):
    """Covariance of two same-block terms (…, d) → (…): 0 (iid), Λ²(E_+ − e^t) (ORF), Λ²M(c) − SM²."""
    feature, coupling = _coupled_row(name)
    x, y = _host_pair(x, y)
    if feature == "saderf":
        x, y = saderf_pair(x, y)
    p = pair_stats(x, y)
    if coupling == "iid":
        return as_output(np.zeros(np.shape(p.t)))
    if coupling == "orthogonal":
        return as_output(exp_pair_covariance(p))
    moment = coupled_pair_moment(p.t, p.d, simplex_cosine(p.d))
    return as_output(np.exp(-(p.sq_x + p.sq_y)) * moment - np.exp(2 * p.inner))


def mse(name, x, y, m, *, target=None):
    """Exact MSE = V1/m + (P/m²)·Cov with m projections (theory.md §5.2); (…, d) → (…).

    ``target`` (a kernel name) adds (mean − kernel)², as :func:`estimators.theory.mse`.
    """
    _, coupling = _coupled_row(name)
    counts = np.asarray(m)
    if counts.dtype.kind not in "iu" or np.any(counts < 1):
        raise ValueError(f"m must be an integer >= 1 (or an integer array), got {m!r}")
    value = single_variance(name, x, y) / counts
    if coupling != "iid":
        d = np.shape(x)[-1]
        value = value + block_pairs(counts, d) / counts.astype(np.float64) ** 2 * pair_covariance(name, x, y)
    if target is not None:
        if target not in _TARGETS:
            raise ValueError(f"target must be one of {tuple(_TARGETS)}, got {target!r}")
        value = value + (mean(name, x, y) - _TARGETS[target](pair_stats(x, y))) ** 2
    return as_output(value)


_TARGETS = {"softmax": softmax_mean, "gaussian": gaussian_mean, "smreg": smreg_mean, "arccos": arccos_mean}


def _coupled_row(name):
    _check_row(name)
    if name in NO_CLOSED_FORM:
        raise NotImplementedError(f"the variance of {name!r} has no closed form: {NO_CLOSED_FORM[name]}")
    return COUPLED_ROWS[name]


def _check_row(name):
    if name not in ROWS:
        raise ValueError(f"name must be a follow-up row {ROWS}, got {name!r}")


def _check_A(A):
    A = host_float64(A, "A")
    if np.any(A >= 0.125):
        raise ValueError("A must be < 1/8 for a finite GERF variance")
    return A


def _host_pair(x, y):
    x = host_float64(x, "x")
    y = host_float64(y, "y")
    return np.broadcast_arrays(x, y)


def _softmax(x, y):
    x, y = _host_pair(x, y)
    return np.exp(np.sum(x * y, axis=-1))


__all__ = [
    "COUPLED_ROWS",
    "NO_CLOSED_FORM",
    "ROWS",
    "block_pairs",
    "coupled_pair_moment",
    "expplus_A",
    "geometric_p",
    "geometric_variance",
    "gerf_trig_variance",
    "gerf_variance",
    "mean",
    "mse",
    "optimal_gerf_A",
    "pair_covariance",
    "poisson_rate",
    "poisson_variance",
    "saderf_pair",
    "simplex_cosine",
    "single_moment",
    "single_variance",
]
