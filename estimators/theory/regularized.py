"""Regularized softmax kernel SMREG and its fixed-norm estimator (Performers §2.3, App. F.3; theory.md §6).

With rows ω = √d u, u uniform on S^{d−1}, the positive estimator Λ (1/m) Σ exp(ω_iᵀz) has mean

    SMREG(x, y) = Λ ₀F₁(; d/2; d t/4),  t = ‖x + y‖²,

because E[exp(r uᵀv)] = ₀F₁(; d/2; r²‖v‖²/4) (theory.md §1). Write F(u) = ₀F₁(; d/2; u) and
u = d t/4. Then [DER, NUM:smreg]

* V1 = Λ² (F(4u) − F(u)²)  (ω = √d u: E exp(2ωᵀz) = F(4u)),
* Cov_ort = Λ² (F(2u) − F(u)²)  (an orthogonal pair: ‖ω₁ + ω₂‖ = √(2d) exactly).

F is evaluated as log F by :func:`estimators.special.log_hyp0f1` (no overflow for any u).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import special

from ..special import log_hyp0f1
from .exponential import _series_terms, log_lambda_sq
from .pairs import PairStats, check_dimension, host_float64

_PAIR_SERIES_MAX_U = 50.0
_SMALL_U = 8.0
_SMALL_U_TERMS = 64


def log_hyp0f1_accurate(b, u):
    """log ₀F₁(; b; u) for u ≥ 0 with full relative accuracy also when u → 0 (log F ≈ u/b).

    For u ≤ 8: log1p(Σ_{k≥1} u^k/((b)_k k!)) (64 positive terms); otherwise
    :func:`estimators.special.log_hyp0f1`.
    """
    u = np.asarray(u, dtype=np.float64)
    small = u <= _SMALL_U
    k = np.arange(1, _SMALL_U_TERMS + 1, dtype=np.float64)
    log_coeff = -np.cumsum(np.log(b + k - 1.0)) - special.gammaln(k + 1.0)
    with np.errstate(divide="ignore"):
        series = np.sum(np.exp(k * np.log(np.where(small, u, 1.0))[..., None] + log_coeff), axis=-1)
    return np.where(small, np.log1p(series), log_hyp0f1(b, np.where(small, 2 * _SMALL_U, u)))


def smreg_mean(p: PairStats):
    """SMREG(x, y) = Λ ₀F₁(; d/2; d‖x + y‖²/4) (theory.md §6, [DER, NUM:smreg])."""
    return np.exp(log_lambda_sq(p) / 2 + log_hyp0f1(p.d / 2, p.d * p.t / 4))


def smreg_ratio(t, d):
    """SMREG/SM = e^{−t/2} ₀F₁(; d/2; d t/4) ≤ 1 as a function of t = ‖x + y‖² (theory.md §6, Eq. 31)."""
    d = check_dimension(d)
    t = host_float64(t, "t")
    if np.any(t < 0):
        raise ValueError("t = ||x + y||^2 must be >= 0")
    return np.exp(-t / 2 + log_hyp0f1(d / 2, d * t / 4))


def smreg_ratio_series(t, d):
    """SMREG/SM by the series of Performers App. F.3, Eq. 29–30: e^{−w} Σ_k w^k/k! f(k, d).

    w = t/2 and f(k, d) = d^k / ((d + 2k − 2)(d + 2k − 4)···d) = Π_{j<k} d/(d + 2j) ≤ 1, summed with
    log-sum-exp over k ≤ w + 12√w + 48 (independent of :func:`smreg_ratio`, which uses ₀F₁).
    """
    d = check_dimension(d)
    t = host_float64(t, "t")
    if np.any(t < 0):
        raise ValueError("t = ||x + y||^2 must be >= 0")
    w = t / 2
    terms = _series_terms(float(np.max(w, initial=0.0)))
    k = np.arange(terms, dtype=np.float64)
    log_f = np.concatenate([[0.0], np.cumsum(np.log(d / (d + 2.0 * k[:-1])))])
    log_w = np.log(np.where(w > 0, w, 1.0))[..., None]
    exponents = k * log_w - special.gammaln(k + 1.0) + log_f
    exponents = np.where((w[..., None] == 0) & (k > 0), -np.inf, exponents)
    return np.exp(special.logsumexp(exponents, axis=-1) - w)


def theorem1_bounds(d):
    """Theorem 1 of Performers (Eq. 9): (lower, upper) = (1 − 2/d^{1/3}, 1) for SMREG/SM.

    The lower bound holds asymptotically, up to o(d^{−1/3}), over attention entries with ‖A‖_∞ ≤ C;
    the upper bound 1 holds for every x, y and d ≥ 2 (Eq. 31). Regime: a statement about d → ∞, not
    a sharp finite-d bound (at d = 64 the bound is 0.5 while SMREG/SM = 0.996 at t = 1).
    """
    d = np.asarray(d, dtype=np.float64)
    if np.any(d < 1):
        raise ValueError("d must be >= 1")
    return 1.0 - 2.0 / np.cbrt(d), np.ones_like(d)


def fixed_single_variance(p: PairStats):
    """V1 = Λ² (F(dt) − F(dt/4)²) for one √d-normed row (theory.md §6, [DER, NUM:smreg]).

    Evaluated as Λ² F(u)² expm1(log F(4u) − 2 log F(u)) with :func:`log_hyp0f1_accurate`; the log
    difference is ≈ t for small t, so there is no cancellation.
    """
    u = p.d * p.t / 4
    log_fu = log_hyp0f1_accurate(p.d / 2, u)
    excess = log_hyp0f1_accurate(p.d / 2, 4 * u) - 2 * log_fu
    return np.exp(log_lambda_sq(p) + 2 * log_fu) * np.expm1(excess)


def fixed_pair_covariance(p: PairStats):
    """Cov_ort = Λ² (F(dt/2) − F(dt/4)²) ≤ 0 for an orthogonal pair of √d-normed rows (theory.md §6).

    For u = dt/4 ≤ 50 the difference F(2u) − F(u)² is summed as one power series in u whose
    coefficients are all ≤ 0 (:func:`_log_pair_deficit_coefficients`), so no cancellation; for larger u
    the relative gap is ≳ t²/(2d) and the log-space difference keeps ~1e-9 relative accuracy (d ≤ 1024).
    """
    if p.d < 2:
        raise ValueError("an orthogonal pair needs d >= 2 (with d = 1 every block has one row)")
    u = p.d * p.t / 4
    log_fu = log_hyp0f1(p.d / 2, u)
    with np.errstate(divide="ignore"):
        by_logs = np.log(-np.expm1(log_hyp0f1(p.d / 2, 2 * u) - 2 * log_fu)) + 2 * log_fu
    small = u <= _PAIR_SERIES_MAX_U
    if np.any(small):
        log_coeff = _log_pair_deficit_coefficients(p.d, _series_terms(_PAIR_SERIES_MAX_U))
        k = np.arange(log_coeff.size, dtype=np.float64)
        with np.errstate(divide="ignore"):
            exponents = k * np.log(np.where(small, u, 1.0))[..., None] + log_coeff
        by_series = special.logsumexp(exponents, axis=-1)
        by_logs = np.where(small, by_series, by_logs)
    by_logs = np.where(u == 0, -np.inf, by_logs)
    return -np.exp(log_lambda_sq(p) + by_logs)


@functools.lru_cache(maxsize=32)
def _log_pair_deficit_coefficients(d: int, terms: int) -> np.ndarray:
    """log |a_k| with F(u)² − F(2u) = Σ_k |a_k| u^k, F = ₀F₁(; b; ·), b = d/2.

    a_k = (1/k!) Σ_j C(k, j) [1/(b)_k − 1/((b)_j (b)_{k−j})]; each bracket is
    −(1 − R_jk)/((b)_j (b)_{k−j}) with R_jk = (b)_j (b)_{k−j}/(b)_k = Π_{i<j} (b + i)/(b + k − j + i) ≤ 1,
    summed in logs (R via log1p, 1 − R via expm1), so every term has one sign.
    """
    b = d / 2.0
    log_poch = np.concatenate([[0.0], np.cumsum(np.log(b + np.arange(terms - 1.0)))])
    out = np.full(terms, -np.inf)
    for k in range(2, terms):
        j = np.arange(1, k)
        i = np.arange(k)
        steps = np.log1p(-(k - j)[:, None] / (b + (k - j)[:, None] + i[None, :]))
        log_r = np.sum(np.where(i[None, :] < j[:, None], steps, 0.0), axis=-1)
        log_binom = special.gammaln(k + 1.0) - special.gammaln(j + 1.0) - special.gammaln(k - j + 1.0)
        terms_k = log_binom - log_poch[j] - log_poch[k - j] + np.log(-np.expm1(log_r))
        out[k] = special.logsumexp(terms_k) - special.gammaln(k + 1.0)
    return out
