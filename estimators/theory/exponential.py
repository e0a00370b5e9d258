"""Closed-form moments of the softmax-kernel estimators (trig, positive, hyperbolic), theory.md §4–§5.

Notation (theory.md §1): Λ = exp(−(‖x‖² + ‖y‖²)/2), t = ‖x + y‖², s = ‖x − y‖², SM = exp(xᵀy) = Λ e^{t/2},
c_k(d) = Π_{j<k} (d + j)/(d + 2j). Everything is evaluated in log space so that large ‖x‖, ‖y‖, t or s
neither overflow nor cancel.

Orthogonal-pair moments (theory.md §5.2, [DER, NUM:orf]): for an orthogonal pair ω₁ ⟂ ω₂ with Haar
directions and iid χ(d) norms, ω₁ ± ω₂ has squared norm S ~ χ²_{2d} and a uniform direction, so

* E_+(t) = E[exp(ω₁ᵀz) exp(ω₂ᵀz)] = Σ_k t^k c_k(d)/k! = E_S[₀F₁(; d/2; tS/4)] = ₁F₁(d; d/2; t/2),
* E_cos(s) = E[cos(ω₁ᵀΔ) cos(ω₂ᵀΔ)] = Σ_k (−s)^k c_k(d)/k! = E_S[₀F₁(; d/2; −sS/4)] = ₁F₁(d; d/2; −s/2),

(the ₁F₁ form follows from E[S^k] = 2^k (d)_k and c_k = (d)_k / (2^k (d/2)_k)). For iid pairs the same
moments are e^t and e^{−s}; the covariances of §5.2 need the gaps e^t − E_+(t) and E_cos(s) − e^{−s},
which are computed directly (:func:`log_exp_pair_gap`, :func:`cos_pair_gap`), never as a difference of
two nearly equal numbers.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from .pairs import PairStats, check_dimension, host_float64

_SERIES_CHUNK = 1 << 22
_COS_SERIES_MAX_S = 2.0
_COS_SERIES_TERMS = 64


def log_expm1(u):
    """log(e^u − 1) for u ≥ 0 without overflow (−inf at u = 0)."""
    u = np.asarray(u, dtype=np.float64)
    with np.errstate(divide="ignore"):
        small = np.log(np.expm1(np.minimum(u, 1.0)))
        large = u + np.log(-np.expm1(-np.maximum(u, 1.0)))
    return np.where(u <= 1.0, small, large)


def log_one_minus_c(d: int, terms: int) -> np.ndarray:
    """log(1 − c_k(d)) for k = 0 … terms−1 (−inf for k = 0, 1, where c_k = 1).

    log c_k = Σ_{j<k} log1p(−j/(d + 2j)), so 1 − c_k = −expm1(log c_k) keeps full relative accuracy
    even when c_k is within 1/d of 1.
    """
    j = np.arange(terms - 1, dtype=np.float64)
    log_c = np.concatenate([[0.0], np.cumsum(np.log1p(-j / (d + 2.0 * j)))])
    with np.errstate(divide="ignore"):
        return np.log(-np.expm1(log_c))


def _series_terms(max_argument: float) -> int:
    """Terms of a Poisson-weighted series in u^k/k! needed for u ≤ max_argument (tail < e^{-70})."""
    return int(max_argument + 12.0 * math.sqrt(max_argument) + 48)


def log_exp_pair_gap(t, d):
    """log(e^t − E_+(t)) for t = ‖x + y‖² ≥ 0 (array) and dimension d; −inf at t = 0.

    e^t − E_+(t) = Σ_{k≥2} t^k (1 − c_k(d))/k! has only positive terms (c_k < 1 for k ≥ 2), so it is
    summed with log-sum-exp over k ≤ t + 12√t + 48: no overflow for any t, no cancellation, relative
    accuracy ~1e-15 (theory.md §5.2, [DER]).
    """
    d = check_dimension(d)
    t = host_float64(t, "t")
    if np.any(t < 0):
        raise ValueError("t = ||x + y||^2 must be >= 0")
    flat = t.ravel()
    out = np.full(flat.shape, -np.inf)
    live = np.nonzero(flat > 0)[0]
    if live.size:
        terms = _series_terms(float(flat[live].max()))
        k = np.arange(terms, dtype=np.float64)[2:]
        log_coeff = log_one_minus_c(d, terms)[2:] - special.gammaln(k + 1.0)
        rows = max(1, _SERIES_CHUNK // terms)
        for start in range(0, live.size, rows):
            index = live[start : start + rows]
            exponents = k * np.log(flat[index])[:, None] + log_coeff
            out[index] = special.logsumexp(exponents, axis=-1)
    return out.reshape(t.shape)


def exp_pair_moment(t, d):
    """E_+(t) = E[exp(ω₁ᵀz + ω₂ᵀz)] for an orthogonal pair, t = ‖z‖² (theory.md §5.2): e^t − gap."""
    t = host_float64(t, "t")
    return np.exp(t) - np.exp(log_exp_pair_gap(t, d))


def cos_pair_gap(s, d):
    """E_cos(s) − e^{−s}: orthogonal minus iid pair moment of cos(ωᵀΔ), s = ‖Δ‖² ≥ 0 (theory.md §5.2).

    For s ≤ 2 the alternating series Σ_{k≥2} (−s)^k (c_k(d) − 1)/k! (64 terms) is summed directly: it
    starts at −s²/(2(d + 2)) with no cancellation against e^{−s}, and its terms are at most e²
    times the result. For s > 2, E_cos(s) = ₁F₁(d; d/2; −s/2) is evaluated by scipy's ``hyp1f1``
    (Boost; against mpmath at 50 digits, d ≤ 1024 and s ≤ 120, the gap is within 4e-13 relative) and e^{−s}
    is subtracted; the gap is then at least ~s²/(2d) of e^{−s}. Sign changes: the gap is negative
    (orthogonal better) for small s and turns positive for large s when d ≥ 3 (theory.md §5.3).
    """
    d = check_dimension(d)
    s = host_float64(s, "s")
    if np.any(s < 0):
        raise ValueError("s = ||x - y||^2 must be >= 0")
    small = s <= _COS_SERIES_MAX_S
    k = np.arange(_COS_SERIES_TERMS, dtype=np.float64)[2:]
    log_coeff = log_one_minus_c(d, _COS_SERIES_TERMS)[2:] - special.gammaln(k + 1.0)
    s_small = np.where(small, s, 1.0)[..., None]
    signs = -((-1.0) ** k)
    with np.errstate(divide="ignore"):
        series = np.sum(signs * np.exp(k * np.log(s_small) + log_coeff), axis=-1)
    series = np.where(s[...] == 0, 0.0, series)
    s_large = np.where(small, 2 * _COS_SERIES_MAX_S, s)
    direct = special.hyp1f1(d, d / 2.0, -s_large / 2.0) - np.exp(-s_large)
    return np.where(small, series, direct)


def cos_pair_moment(s, d):
    """E_cos(s) = E[cos(ω₁ᵀΔ) cos(ω₂ᵀΔ)] for an orthogonal pair = ₁F₁(d; d/2; −s/2) (theory.md §5.2)."""
    s = host_float64(s, "s")
    return np.exp(-s) + cos_pair_gap(s, d)


def log_lambda_sq(p: PairStats):
    """log Λ² = −(‖x‖² + ‖y‖²)."""
    return -(p.sq_x + p.sq_y)


def softmax_mean(p: PairStats):
    """SM(x, y) = exp(xᵀy) (Performers Eq. 6): the mean of every trig/positive/hyperbolic row."""
    return np.exp(p.inner)


def gaussian_mean(p: PairStats):
    """K_gauss(x, y) = exp(−‖x − y‖²/2) (theory.md §1)."""
    return np.exp(-p.s / 2)


def positive_single_variance(p: PairStats):
    """V1_+ = Λ²(e^{2t} − e^t) = SM²(e^t − 1) (theory.md §4, Lemma 2 with m = 1)."""
    return np.exp(2 * p.inner + log_expm1(p.t))


def hyperbolic_single_variance(p: PairStats):
    """V1_hyp = ½ Λ² (e^t − 1)² for one projection ω (two features), theory.md §4 / Lemma 2."""
    return np.exp(log_lambda_sq(p) + 2 * log_expm1(p.t) - math.log(2.0))


def trig_single_variance(p: PairStats):
    """V1_trig = ½ e^{‖x‖²+‖y‖²} (1 − e^{−s})² (theory.md §4; Yu et al. 2016 Lemma 1)."""
    with np.errstate(divide="ignore"):
        log_factor = 2 * np.log(-np.expm1(-p.s))
    return np.exp(p.sq_x + p.sq_y + log_factor - math.log(2.0))


def exp_pair_covariance(p: PairStats):
    """Cov_ort = Λ²(E_+(t) − e^t) ≤ 0 for positive and hyperbolic features (theory.md §5.2).

    Hyperbolic features share it because cosh a cosh b = ½[cosh(a + b) + cosh(a − b)].
    """
    _require_pairs(p.d)
    return -np.exp(log_lambda_sq(p) + log_exp_pair_gap(p.t, p.d))


def trig_pair_covariance(p: PairStats):
    """Cov_ort = e^{‖x‖²+‖y‖²} (E_cos(s) − e^{−s}) for trig features (theory.md §5.2)."""
    _require_pairs(p.d)
    gap = cos_pair_gap(p.s, p.d)
    with np.errstate(divide="ignore"):
        return np.sign(gap) * np.exp(p.sq_x + p.sq_y + np.log(np.abs(gap)))


def _require_pairs(d: int) -> None:
    if d < 2:
        raise ValueError("an orthogonal pair needs d >= 2 (with d = 1 every block has one row)")


def utility_ratio(phi, length):
    """r(φ, l) = MSE_trig / MSE_+ for ‖x‖ = ‖y‖ = l at angle φ (Performers Fig. 2; theory.md §4).

    From Lemma 2, with s = 2l²(1 − cos φ) and t = 2l²(1 + cos φ) (m cancels):
    r = (1 − e^{−s})² / (2 e^{4l² cos φ} (1 − e^{−t})). (theory.md §4 prints the denominator as
    2 e^{2l² cos φ}(e^{t} − 1), which is e^{2l²} times this one; its quoted values, e.g.
    r(1.0) = 0.0218 at l = 1, match the form used here.) ``length`` is l ≠ 0; φ and l broadcast;
    +inf at φ = ±π (MSE_+ = 0 there), 0 at φ = 0.
    """
    phi = host_float64(phi, "phi")
    length = host_float64(length, "length")
    if np.any(length == 0):
        raise ValueError("length must be nonzero: at l = 0 both MSEs vanish and r is undefined")
    sq = length * length
    cos = np.cos(phi)
    with np.errstate(divide="ignore"):
        numerator = 2 * np.log(-np.expm1(-2 * sq * (1 - cos)))
        denominator = math.log(2.0) + 4 * sq * cos + np.log(-np.expm1(-2 * sq * (1 + cos)))
    return np.exp(numerator - denominator)
