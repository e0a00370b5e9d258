"""Generalized exponential random features (GERF; Likhosherstov et al., NeurIPS 2022, "Chefs' Random
Tables", CRT) and the dense-exponential SADERF (FAVOR#, 2023); theory.md §10.2–10.3.

A GERF with s = +1 is ``φ(x) = m^{-1/2} D exp(A‖ω‖² + B ωᵀx − ‖x‖²/2)``, ``B = √(1 − 4A)``,
``D = (1 − 4A)^{d/4}``: unbiased for exp(xᵀy) for A < 1/4 (A = 0 is FAVOR+'s positive map; the
variance-optimal ``A*`` gives OPRF, the FAVOR++ estimator). ``gerf-trig`` is the s = −1 real part.
SADERF applies OPRF to ``Ψx`` and ``Ψ⁻¹y``. Each function here returns :class:`FeatureParts` of
inputs x (…, L, d) and W (…, m, d); the parameter rules (``A*``, ρ, Ψ*) are functions of the query and
key sets.
"""

from __future__ import annotations

import math

from .backends import framework, namespace
from .feature_parts import PARAMETER_FLOOR, FeatureParts, as_parameter

GERF_TRIG_A = 0.05
"""Default A of ``gerf-trig`` (the s = −1 GERF), the value of theory.md Appendix A's ``gerf`` check."""


def gerf_constants(A, d, like):
    """(A, B, log D) of a GERF: B = √(1 − 4A), log D = (d/4) log(1 − 4A); A must be < 1/4."""
    A = as_parameter(A, "A", like, -math.inf, 0.25)
    xp = namespace(like)
    one_minus = 1 - 4 * A
    if isinstance(one_minus, float):
        return A, math.sqrt(one_minus), d / 4 * math.log(one_minus)
    return A, xp.sqrt(one_minus), d / 4 * xp.log(one_minus)


def oprf_parts(x, W, dtype, *, A=0.0):
    xp = namespace(x)
    d, m = x.shape[-1], W.shape[-2]
    A, B, log_d = gerf_constants(A, d, x)
    projected = xp.matmul(x, xp.matrix_transpose(W))
    sq_w = xp.sum(W * W, axis=-1)[..., None, :]
    half_sq_norm = xp.sum(x * x, axis=-1, keepdims=True) / 2
    return FeatureParts(A * sq_w + B * projected - half_sq_norm + log_d, None, m**-0.5, dtype)


def gerf_trig_parts(x, W, dtype, *, A=GERF_TRIG_A):
    xp = namespace(x)
    d, m = x.shape[-1], W.shape[-2]
    A, B, log_d = gerf_constants(A, d, x)
    projected = B * xp.matmul(x, xp.matrix_transpose(W))
    sq_w = xp.sum(W * W, axis=-1)[..., None, :]
    log_amplitude = A * sq_w + xp.sum(x * x, axis=-1, keepdims=True) / 2 + log_d
    trig = framework(projected).cos_and_sin(projected)
    return FeatureParts(xp.concat([log_amplitude, log_amplitude], axis=-1), trig, m**-0.5, dtype)


def saderf_parts(x, W, dtype, *, psi=1.0, A=0.0):
    psi = as_parameter(psi, "psi", x, 0.0, math.inf)
    return oprf_parts(x * psi, W, dtype, A=A)


def optimal_gerf_A(rho, d):
    """Variance-optimal GERF parameter (CRT; theory.md §10.2, claim 19), same shape as ``rho``.

    ``A* = (d − 2ρ − √((2ρ + d)² + 8dρ)) / (16 d) ≤ 0`` minimizes
    ``d log(1−4A) − (d/2) log(1−8A) + ρ/(1−8A)`` over A < 1/8, i.e. the s = +1 variance at
    ``ρ = ‖x + y‖²``; with ρ from :func:`homogeneity_rho` it is the attention rule.
    """
    xp = namespace(rho)
    return (d - 2 * rho - xp.sqrt((2 * rho + d) ** 2 + 8 * d * rho)) / (16 * d)


def homogeneity_rho(queries, keys):
    """ρ = mean_{i,j} ‖x_i + y_j‖² (…, 1, 1) in O((L + M) d) (CRT's homogeneity rule, theory.md §10.2).

    ``= mean_i ‖x_i‖² + mean_j ‖y_j‖² + 2 x̄ᵀȳ`` for queries (…, L, d) and keys (…, M, d).
    """
    xp = namespace(queries, keys)
    mean_sq = xp.mean(xp.sum(queries * queries, axis=-1), axis=-1) + xp.mean(
        xp.sum(keys * keys, axis=-1), axis=-1
    )
    cross = xp.sum(xp.mean(queries, axis=-2) * xp.mean(keys, axis=-2), axis=-1)
    return (mean_sq + 2 * cross)[..., None, None]


def saderf_psi(queries, keys):
    """Ψ* (…, 1, d) minimizing mean_{i,j} ‖Ψx_i + Ψ⁻¹y_j‖² (FAVOR#, theory.md §10.3, claim 24).

    The mean separates by coordinate into ``Ψ_l² mean_i x_il² + Ψ_l⁻² mean_j y_jl² + const``, so
    ``Ψ*_l = ((L/M) (Σ_j y_jl² + τ) / (Σ_i x_il² + τ))^{1/4}`` for L queries and M keys (the factor L/M
    turns the sums into means; it is applied only when L ≠ M), with τ = 1e-12 keeping a coordinate
    that is zero in every query or key finite (its contribution is then τ-small instead of exactly 0).
    """
    xp = namespace(queries, keys)
    query_power = xp.sum(queries * queries, axis=-2, keepdims=True)
    key_power = xp.sum(keys * keys, axis=-2, keepdims=True)
    ratio = (key_power + PARAMETER_FLOOR) / (query_power + PARAMETER_FLOOR)
    if queries.shape[-2] != keys.shape[-2]:
        ratio = ratio * (queries.shape[-2] / keys.shape[-2])
    return ratio**0.25


__all__ = [
    "GERF_TRIG_A",
    "gerf_constants",
    "gerf_trig_parts",
    "homogeneity_rho",
    "oprf_parts",
    "optimal_gerf_A",
    "saderf_parts",
    "saderf_psi",
]
