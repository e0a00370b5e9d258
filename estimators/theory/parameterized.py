"""Closed forms of the parameterized feature families (theory.md §10.2–§10.3; claims 19–24).

Float64 numpy/scipy on the host, x and y (…, d) broadcasting, already scaled. The families and their
one-projection variance V1 (the mean of every one is SM = exp(xᵀy)):

* GERF s = +1 (OPRF of FAVOR++): SM²[(1−4A)^d (1−8A)^{−d/2} e^{t/(1−8A)} − 1] at the per-pair optimum
  A*(‖x + y‖²) (claim 19); A = 0 is the positive map;
* GERF s = −1 (claim 20) at A = 0.05 (theory.md §10.2);
* SADERF (FAVOR#): OPRF on (Ψ*x, Ψ*⁻¹y), Ψ*_l = (y_l²/x_l²)^{1/4} per pair (§10.3, claim 24);
* Poisson and geometric DIRFs: exp(λd + Σ a_l²/λ) − SM² and p^{−d} Π I₀(2|a_l|/√(1−p)) − SM²,
  a_l = x_l y_l, at the per-pair rate λ* and the second-order rule for p (claim 22).

Each parameter rule is the one the feature maps use (:mod:`estimators.gerf`,
:mod:`estimators.discrete_features`), evaluated here on checked float64 host values. The
``*_single_variance`` functions of :class:`~estimators.theory.pairs.PairStats` are the table's
entries (:mod:`estimators.theory.table`); the same-block pair covariances are in
:mod:`estimators.theory.coupled`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from .. import discrete_features, gerf
from ..gerf import GERF_TRIG_A
from .exponential import log_expm1
from .pairs import PairStats, as_output, check_dimension, host_float64, pair_stats

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
    return _gerf_variance(A, pair_stats(x, y))


def _gerf_variance(A, p: PairStats):
    A = _check_A(A)
    log_ratio = p.d * np.log1p(-4 * A) - p.d / 2 * np.log1p(-8 * A) + p.t / (1 - 8 * A)
    return as_output(np.exp(2 * p.inner + log_expm1(np.maximum(log_ratio, 0))))


def gerf_trig_variance(A, x, y):
    """Var of one GERF (s = −1) term (claim 20), A < 1/8:
    ½(1−4A)^d (1−8A)^{−d/2} e^{‖x‖²+‖y‖²}(1 + exp(−2(1−4A)s/(1−8A))) − SM²."""
    return _gerf_trig_variance(A, pair_stats(x, y))


def _gerf_trig_variance(A, p: PairStats):
    A = _check_A(A)
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


# --- the table's entries: V1 of each family at its parameter rule ---------------------------------


def oprf_single_variance(p: PairStats):
    """V1 of OPRF: the GERF s = +1 variance at the pair's optimum A*(‖x + y‖²) (claim 19)."""
    return _gerf_variance(optimal_gerf_A(p.t, p.d), p)


def gerf_trig_single_variance(p: PairStats):
    """V1 of the GERF s = −1 map at A = 0.05 (claim 20, theory.md §10.2)."""
    return _gerf_trig_variance(GERF_TRIG_A, p)


def saderf_stats(p: PairStats) -> PairStats:
    """The pair statistics of (Ψ*x, Ψ*⁻¹y): SADERF is OPRF on the rescaled pair (claim 24)."""
    return pair_stats(*saderf_pair(p.x, p.y))


def saderf_single_variance(p: PairStats):
    """V1 of SADERF: :func:`oprf_single_variance` of the rescaled pair (claim 24)."""
    return oprf_single_variance(saderf_stats(p))


def poisson_single_variance(p: PairStats):
    """V1 of the Poisson DIRF at the pair's rate λ* (claim 22)."""
    return poisson_variance(poisson_rate(p.x, p.y), p.x, p.y)


def geometric_single_variance(p: PairStats):
    """V1 of the geometric DIRF at the pair's p of :func:`geometric_p` (claim 22)."""
    return geometric_variance(geometric_p(p.x, p.y), p.x, p.y)


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
