"""Theorems of Performers on orthogonal features and uniform convergence (theory.md §5.3, §7).

* Theorem 2 (camera-ready, Eq. 10): for m ≤ d,
  MSE(SM^ort+_m) ≤ MSE(SM^+_m) − 2(m − 1)/(m(d + 2)) · (SM(x, y) − Λ)², Λ = exp(−(‖x‖² + ‖y‖²)/2);
  "completely analogous" for SMREG: Theorem 6 (App. F.4) with Ω = Unif(√d S^{d−1}), g = exp, a₀ = 1
  gives the gap (1 − 1/m)(2/(d + 2)) Λ² (₀F₁(; d/2; dt/4) − 1)².
* The OpenReview submission's Theorem 2 used the gap (1 − 1/m)(2/(d + 2)) SM²: false (at x = −y both
  MSEs are 0 and the "bound" is negative). Provided only to demonstrate that it fails.
* Theorem 4: uniform convergence of trig + ORF attention, m = Θ((d/δ²) log(4 d^{3/4} R/δ)).
"""

from __future__ import annotations

import numpy as np

from .exponential import log_expm1, log_lambda_sq, positive_single_variance
from .pairs import PairStats, as_output, host_float64, pair_stats
from .regularized import fixed_single_variance, log_hyp0f1_accurate

BOUND_KERNELS = ("softmax", "smreg")


def _check_single_block(m: int, d: int) -> None:
    if m > d:
        raise ValueError(f"Theorem 2 needs m <= d (one orthogonal block), got m={m}, d={d}")


def _check_m(m) -> int:
    if isinstance(m, bool) or not hasattr(m, "__index__") or int(m) < 1:
        raise ValueError(f"m must be an integer >= 1, got {m!r}")
    return int(m)


def theorem2_gap(x, y, m, *, kernel="softmax"):
    """The subtracted term of Theorem 2 (≥ 0): 2(m−1)/(m(d+2)) (SM − Λ)² (or its SMREG analogue).

    (SM − Λ)² = Λ²(e^{t/2} − 1)² is evaluated in logs (no overflow, exact zero at t = 0).
    x, y (…, d) → (…).
    """
    return as_output(_gap(pair_stats(x, y), _check_m(m), kernel))


def _gap(p: PairStats, m: int, kernel: str):
    _check_single_block(m, p.d)
    factor = 2.0 * (m - 1) / (m * (p.d + 2.0))
    if kernel == "softmax":
        log_excess = log_expm1(p.t / 2)
    elif kernel == "smreg":
        log_excess = log_expm1(log_hyp0f1_accurate(p.d / 2, p.d * p.t / 4))
    else:
        raise ValueError(f"kernel must be one of {BOUND_KERNELS}, got {kernel!r}")
    return factor * np.exp(log_lambda_sq(p) + 2 * log_excess)


def theorem2_bound(x, y, m, *, kernel="softmax"):
    """Theorem 2 (Performers Eq. 10, camera-ready) upper bound on MSE(SM^ort+_m(x, y)), m ≤ d.

    MSE(SM^+_m) − 2(m − 1)/(m(d + 2)) (SM − Λ)²; ``kernel="smreg"`` gives the SMREG analogue (fixed
    √d norms; Theorem 6 with a₀ = 1). Compare with ``mse("positive-ort", x, y, m)`` (or
    ``"positive-ort-fixed"``). x, y (…, d) → (…).
    """
    p = pair_stats(x, y)
    m = _check_m(m)
    variance = positive_single_variance(p) if kernel == "softmax" else fixed_single_variance(p)
    return as_output(variance / m - _gap(p, m, kernel))


def theorem2_openreview_bound(x, y, m):
    """The OpenReview submission's (false) Theorem 2: MSE(SM^+_m) − (1 − 1/m)(2/(d + 2)) SM².

    Kept only to show that it fails: at z = x + y = 0 the right side is −(1 − 1/m)(2/(d + 2)) SM² < 0
    while MSE(SM^ort+_m) = 0. x, y (…, d) → (…).
    """
    p = pair_stats(x, y)
    m = _check_m(m)
    _check_single_block(m, p.d)
    return as_output(positive_single_variance(p) / m - (1 - 1 / m) * (2 / (p.d + 2.0)) * np.exp(2 * p.inner))


def theorem4_features(radius, d, epsilon, constant=1.0):
    """Theorem 4's feature count m = C (d/δ²) log(4 d^{3/4} R/δ) for ‖Â − A‖_∞ ≤ ε (trig + ORF).

    l = R d^{−1/4}, h* = exp(l²/2), δ = ε/h*² = ε e^{−l²} (Performers Theorem 4; theory.md §7). The
    theorem states m = Θ(·): the constant C is not given, so it is the parameter ``constant``; the
    result is real-valued (take a ceiling for a count) and does not depend on L. Arguments broadcast.
    Regime: rows of Q and K with L2 norm ≤ R, unnormalized attention, any constant success probability.
    """
    radius = host_float64(radius, "radius")
    d = host_float64(d, "d")
    epsilon = host_float64(epsilon, "epsilon")
    constant = host_float64(constant, "constant")
    for name, value in (("radius", radius), ("d", d), ("epsilon", epsilon), ("constant", constant)):
        if np.any(value <= 0):
            raise ValueError(f"{name} must be > 0")
    length_sq = radius**2 / np.sqrt(d)
    delta = epsilon * np.exp(-length_sq)
    return constant * d / delta**2 * np.log(4 * d**0.75 * radius / delta)
