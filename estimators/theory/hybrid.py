"""Closed forms of the angular hybrid random features (HRF; Choromanski et al., ICLR 2022, arXiv
2110.04367; theory.md §10.5, claim 26): the MSE and the fourth central moment of K̂.

The estimator. W (m, d) holds k = m − n iid N(0, I_d) rows ω (shared by the trigonometric and the
hyperbolic estimator) and n rows ξ (iid N(0, I_d), independent of ω; :func:`estimators.hybrid_split.split`):

    K̂ = w T + (1 − w) H,   T = (1/k) Σ_i t_i,   H = (1/k) Σ_i h_i,
    t_i = e^{(‖x‖²+‖y‖²)/2} cos(ω_iᵀΔ),   h_i = Λ cosh(ω_iᵀz),   λ̂ = (1/n) #{r : sgn ξ_rᵀx ≠ sgn ξ_rᵀy},

with E λ̂ = θ/π (θ the angle between x and y). The trig weight w is λ̂ in the public notebook
(``orientation="notebook"``: [code: HL-hanlin/HRF_ICLR2022 ``Angular Hybrid.ipynb``]) and 1 − λ̂ in
the orientation for which the estimator is exact at θ = 0 (x = y) and θ = π (x = −y)
(``orientation="exact-ends"``; theory.md §10.5 settles which one [HRF]'s claims hold for). In both,
n·w ~ Binomial(n, q) with q = θ/π (notebook) or 1 − θ/π (exact-ends), independent of ω.

Moments [DER]. Given w every per-projection term Y_i = w t_i + (1 − w) h_i has mean SM, so
K̂ − SM = (1/k) Σ_i (Y_i − SM) is a mean of iid centred terms conditionally on w, and

    MSE = (1/k) E_w[σ²(w)],   σ²(w) = w² V_t + (1 − w)² V_h + 2 w (1 − w) C,
    E(K̂ − SM)⁴ = (1/k³) E_w[μ₄(w) + 3 (k − 1) σ²(w)²],

with V_t, V_h the one-projection variances of §4, C = Cov(t_i, h_i) = e^{(t−s)/2} cos(zᵀΔ) − SM²
= −2 SM² sin²((‖x‖² − ‖y‖²)/2) (from E e^{ωᵀ(z + iΔ)} = e^{(t − s)/2 + i zᵀΔ}), and
μ₄(w) = Σ_j C(4, j) w^j (1 − w)^{4−j} E[(t_i − SM)^j (h_i − SM)^{4−j}], whose joint moments expand
cos^a and cosh^b into E[cos(cωᵀΔ) e^{c′ωᵀz}] = e^{(c′²t − c²s)/2} cos(c c′ zᵀΔ). The w-averages use
E w = q, E w² = q² + q(1 − q)/n (so the MSE is §10.5's formula) and, for the fourth moment, the
binomial law of n·w summed exactly.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from ..hybrid_split import split
from .exponential import hyperbolic_single_variance, softmax_mean, trig_single_variance
from .pairs import PairStats

ORIENTATIONS = ("exact-ends", "notebook")


def trig_weight_mean(p: PairStats, orientation: str):
    """q = E w, the mean trig weight: θ/π (notebook) or 1 − θ/π (exact-ends), (…) float64."""
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    return (p.angle if orientation == "notebook" else p.supplement) / np.pi


def _covariance(p: PairStats):
    """C = Cov(t_i, h_i) = −2 SM² sin²((‖x‖² − ‖y‖²)/2)."""
    return -2 * softmax_mean(p) ** 2 * np.sin((p.sq_x - p.sq_y) / 2) ** 2


def mse(p: PairStats, m: int, orientation: str):
    """MSE of K̂ (…) with m rows (module docstring; §10.5's formula with λ ↔ the trig weight)."""
    k, n = split(m)
    q = trig_weight_mean(p, orientation)
    spread = q * (1 - q) / n
    second_t = q * q + spread
    second_h = (1 - q) ** 2 + spread
    cross = q * (1 - q) - spread
    variance = second_t * trig_single_variance(p) + second_h * hyperbolic_single_variance(p)
    return (variance + 2 * cross * _covariance(p)) / k


def _joint_raw_moment(p: PairStats, a: int, b: int):
    """E[t_i^a h_i^b] (…) for one projection ω ~ N(0, I_d)."""
    total = 0.0
    inner = p.sq_x - p.sq_y  # zᵀΔ
    for i in range(a + 1):
        for j in range(b + 1):
            c, c_prime = 2 * i - a, 2 * j - b
            weight = special.comb(a, i) * special.comb(b, j) / 2.0 ** (a + b)
            log_scale = a * (p.sq_x + p.sq_y) / 2 - b * (p.sq_x + p.sq_y) / 2
            total = total + weight * np.exp(log_scale + (c_prime**2 * p.t - c**2 * p.s) / 2) * np.cos(
                c * c_prime * inner
            )
    return total


def _central_moment(p: PairStats, j: int, i: int):
    """E[(t_i − SM)^j (h_i − SM)^i] (…) from the raw joint moments."""
    sm = softmax_mean(p)
    total = 0.0
    for a in range(j + 1):
        for b in range(i + 1):
            coefficient = special.comb(j, a) * special.comb(i, b)
            total = total + coefficient * _joint_raw_moment(p, a, b) * (-sm) ** (j - a + i - b)
    return total


def squared_error_moments(p: PairStats, m: int, orientation: str):
    """(MSE, Var[(K̂ − SM)²]) (…) with m rows: the second and the fourth central moment minus MSE²."""
    k, n = split(m)
    q = trig_weight_mean(p, orientation)
    counts = np.arange(n + 1)
    q = np.asarray(q)[..., None]
    pmf = special.comb(n, counts) * q**counts * (1 - q) ** (n - counts)
    w = counts / n
    v_t, v_h, cov = (
        trig_single_variance(p)[..., None],
        hyperbolic_single_variance(p)[..., None],
        _covariance(p)[..., None],
    )
    sigma2 = w * w * v_t + (1 - w) ** 2 * v_h + 2 * w * (1 - w) * cov
    mu4 = sum(
        math.comb(4, j) * w**j * (1 - w) ** (4 - j) * _central_moment(p, j, 4 - j)[..., None]
        for j in range(5)
    )
    second = np.sum(pmf * sigma2, axis=-1) / k
    fourth = np.sum(pmf * (mu4 + 3 * (k - 1) * sigma2**2), axis=-1) / k**3
    return second, fourth - second**2


__all__ = ["ORIENTATIONS", "mse", "squared_error_moments", "trig_weight_mean"]
