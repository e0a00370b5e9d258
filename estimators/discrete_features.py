"""Discretely-induced random features (DIRF; CRT, Likhosherstov et al., NeurIPS 2022; theory.md §10.2).

W holds Uniform[0, 1) variates (m, d), turned into integer counts ω_il by an inverse CDF (Poisson or
geometric); ``φ(u) = m^{-1/2} w(ω) Π_l u_l^{ω_l}`` with the weights that make φ(x)ᵀφ(y) unbiased for
exp(xᵀy) (the Taylor series of each exp(x_l y_l)). Each function returns :class:`FeatureParts` of
inputs x (…, L, d) and uniforms W (…, m, d).
"""

from __future__ import annotations

import math

from .backends import framework, is_tracer, namespace
from .feature_parts import PARAMETER_FLOOR, FeatureParts, as_parameter


def poisson_rate(power, d):
    """λ* = √(S/d) + 1e-12 for S = Σ_l S_l, S_l = x_l²y_l² for a pair (per pair the exact variance
    minimizer, claim 22) or mean_i x_il² · mean_j y_jl² for query and key sets (the attention rule)."""
    xp = namespace(power)
    return xp.sqrt(power / d) + PARAMETER_FLOOR


def geometric_p(power, d):
    """p = 1 − q, q = (√(S² + 4dS) − S)/(2d) + 1e-12, with S as in :func:`poisson_rate`: the minimizer
    of −d log p + S/(1 − p), the geometric-DIRF log second moment with log I₀(z) ≈ z²/4 (no
    closed-form optimum of the exact variance exists)."""
    xp = namespace(power)
    return 1 - ((xp.sqrt(power * power + 4 * d * power) - power) / (2 * d) + PARAMETER_FLOOR)


def poisson_parts(x, W, dtype, *, rate=1.0):
    xp = namespace(x)
    check_uniforms(W, "poisson")
    rate = as_parameter(rate, "rate", x, 0.0, math.inf)
    counts = poisson_counts(W, rate)
    log_rate = math.log(rate) if isinstance(rate, float) else xp.log(rate)
    log_weight = x.shape[-1] * rate / 2 - log_rate / 2 * xp.sum(counts, axis=-1)[..., None, :]
    return discrete_parts(x, counts, log_weight, dtype)


def geometric_parts(x, W, dtype, *, p=0.5):
    xp = namespace(x)
    check_uniforms(W, "geometric")
    p = as_parameter(p, "p", x, 0.0, 1.0)
    log_p = math.log(p) if isinstance(p, float) else xp.log(p)
    log_q = math.log1p(-p) if isinstance(p, float) else xp.log1p(-p)
    counts = xp.floor(xp.log1p(-W) / log_q)
    per_projection = (
        log_q * xp.sum(counts, axis=-1)[..., None, :] + xp.sum(log_factorial(counts), axis=-1)[..., None, :]
    )
    log_weight = -x.shape[-1] * log_p / 2 - per_projection / 2
    return discrete_parts(x, counts, log_weight, dtype)


def log_factorial(counts):
    """log(ω!) = log Γ(ω + 1) for integer-valued counts ω ≥ 0 (…).

    Looked up in the table of log Γ(k + 1), k = 0 … max ω (the values ``log_gamma`` gives element by
    element) when that table is smaller than ``counts``; ``log_gamma`` of every count otherwise, and
    inside ``jax.jit``, where the largest count cannot be read.
    """
    operations = framework(counts)
    size = math.prod(counts.shape)
    if is_tracer(counts) or size == 0:
        return operations.log_gamma(counts + 1)
    xp = namespace(counts)
    largest = int(xp.max(counts))
    if largest + 1 >= size:
        return operations.log_gamma(counts + 1)
    table = operations.log_gamma(xp.arange(largest + 1, dtype=counts.dtype) + 1)
    index = xp.reshape(xp.astype(counts, xp.int32), (-1,))
    return xp.reshape(xp.take(table, index, axis=0), counts.shape)


def check_uniforms(W, name):
    """Discrete maps read W as Uniform[0, 1) variates; anything else would give meaningless counts."""
    if is_tracer(W):
        return
    xp = namespace(W)
    if not bool(xp.all((W >= 0) & (W < 1))):
        raise ValueError(f"W for feature {name!r} must hold Uniform[0, 1) variates (projections.uniform)")


def poisson_counts(uniforms, rate):
    """Counts ω = #{k ≥ 0 : F_λ(k) ≤ U} ~ Poisson(λ) from uniforms (…, m, d) by the inverse CDF.

    Summed up to k_max = ⌈λ + 8√λ + 16⌉ for the largest λ, beyond which the Poisson tail is below
    1e-15 (λ ≤ 1000). Inside ``jax.jit`` λ cannot be read and k_max = 64, exact to 1e-15 for λ ≤ 20.
    One rate (a float or a one-element array) gives one table of F_λ(0 … k_max − 1), searched for
    every uniform at once; rates that vary across the batch are compared level by level.
    """
    xp = namespace(uniforms)
    largest = float(rate) if isinstance(rate, float) else None
    if largest is None and not is_tracer(rate):
        largest = float(xp.max(rate))
    k_max = 64 if largest is None else math.ceil(largest + 8 * math.sqrt(largest) + 16)
    single = isinstance(rate, float) or (largest is not None and math.prod(rate.shape) == 1)
    if single:
        rate = rate if isinstance(rate, float) else xp.reshape(rate, ())
    levels = _poisson_cdf_levels(xp, rate, k_max)
    if single:
        from array_api_compat import device

        table = (
            xp.asarray(levels, dtype=uniforms.dtype, device=device(uniforms))
            if isinstance(rate, float)
            else xp.astype(xp.stack(levels), uniforms.dtype)
        )
        return xp.astype(xp.searchsorted(table, uniforms, side="right"), uniforms.dtype)
    counts = xp.zeros_like(uniforms)
    for level in levels:
        counts = counts + xp.astype(uniforms >= level, uniforms.dtype)
    return counts


def _poisson_cdf_levels(xp, rate, k_max):
    """F_λ(0), …, F_λ(k_max − 1) by the recurrence p_k = p_{k−1}·λ/k (floats or arrays like ``rate``)."""
    mass = math.exp(-rate) if isinstance(rate, float) else xp.exp(-rate)
    cdf = mass
    levels = []
    for k in range(1, k_max + 1):
        levels.append(cdf)
        mass = mass * rate / k
        cdf = cdf + mass
    return levels


def discrete_parts(x, counts, log_weight, dtype):
    """φ(u) = m^{-1/2} exp(log_weight) Π_l u_l^{ω_l}: log |·| by one matmul, signs and zeros by two.

    A zero coordinate with ω_l > 0 makes the feature 0; with ω_l = 0 it contributes 0⁰ = 1.
    """
    xp = namespace(x)
    counts_t = xp.matrix_transpose(counts)
    is_zero = x == 0
    log_abs = xp.log(xp.where(is_zero, xp.ones_like(x), xp.abs(x)))
    zero_hits = xp.matmul(xp.astype(is_zero, x.dtype), counts_t)
    negative_powers = xp.matmul(xp.astype(x < 0, x.dtype), counts_t)
    sign = 1 - 2 * xp.remainder(negative_powers, 2.0)
    factor = xp.where(zero_hits > 0, xp.zeros_like(sign), sign)
    return FeatureParts(xp.matmul(log_abs, counts_t) + log_weight, factor, counts.shape[-2] ** -0.5, dtype)


__all__ = [
    "check_uniforms",
    "discrete_parts",
    "geometric_p",
    "geometric_parts",
    "log_factorial",
    "poisson_counts",
    "poisson_parts",
    "poisson_rate",
]
