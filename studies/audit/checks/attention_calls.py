"""One attention call of a check and what it is compared with: the inputs, the features m and the
projection W, the adapter's call on read-only copies, the dense float64 FAVOR of the same W, and the
round-off bound of that call.

Deterministic checks compare against float64 references given the SAME projection W, with the
round-off bound of :mod:`~studies.audit.checks.precision` for the implementation's working
precision (declared or detected) and the size of the computation. Inputs are raw q, k (FAVOR scales
them by d^{-1/4}); the adapter receives read-only float64 arrays.
"""

from __future__ import annotations

import numpy as np

from estimators import features as feature_maps
from estimators import registry
from studies.core import stats

from .core import not_applicable, read_only, seeds_for
from .precision import UNIT_ROUNDOFF, attention_bound, condition, exponent_scale, working_precision


def call_attention(adapter, q, k, v, W, *, causal=False, mask=None, dtype="float64") -> np.ndarray:
    """The adapter's attention on read-only copies; (B, H, L, d_v) float64."""
    q, k, v, W = read_only(q, k, v, W)
    if mask is not None:
        mask = np.array(mask, dtype=bool)
        mask.setflags(write=False)
    out = stats.host(adapter.attention(q, k, v, W, causal=causal, mask=mask, dtype=dtype))
    if out.shape != v.shape:
        raise ValueError(f"attention must return {v.shape} (B, H, L, d_v), got {out.shape}")
    return out


def attention_inputs(rng, batch=1, heads=2, length=16, d=8, scale=1.0):
    """Raw q, k (B, H, L, d) with N(0, scale²) entries and values v (B, H, L, d) uniform on [−1, 1]."""
    q = scale * rng.standard_normal((batch, heads, length, d))
    k = scale * rng.standard_normal((batch, heads, length, d))
    v = rng.uniform(-1, 1, (batch, heads, length, d))
    return q, k, v


def unshifted_features(row: str, a, W) -> np.ndarray:
    feature = registry.get(row).feature
    return stats.host(feature_maps.assemble(feature_maps.feature_parts(feature, a, W, scale_inputs=True)))


def dense_reference(row: str, q, k, v, W, causal=False) -> tuple[np.ndarray, np.ndarray]:
    """(o, Â): D̂⁻¹ÂV with Â = φ(Q)φ(K)ᵀ (tril when causal) from UNSHIFTED, ε = 0 float64 features of
    registry row ``row`` (Performers Eq. 2/4): the quadratic form, independent of any prefix-sum or
    stabilizer code."""
    gram = unshifted_features(row, q, W) @ np.swapaxes(unshifted_features(row, k, W), -1, -2)
    if causal:
        gram = np.tril(gram)
    return (gram @ v) / gram.sum(axis=-1, keepdims=True), gram


def roundoff_bound(adapter, out, q, k, v, W, gram) -> tuple[float, str]:
    """(bound, description) of |o_library − o_reference| for one call in its working precision."""
    precision, how = working_precision(adapter, out)
    return bound_per_roundoff(adapter, q, k, v, W, gram) * UNIT_ROUNDOFF[precision], f"{precision} ({how})"


def bound_per_roundoff(adapter, q, k, v, W, gram) -> float:
    """The round-off bound of one call divided by the unit round-off u."""
    d, length = q.shape[-1], q.shape[-2]
    exponent = exponent_scale(np.concatenate([q, k], axis=-2) * d**-0.25, W)
    features = registry.get(adapter.claims).feature_width(W.shape[0])
    bound = attention_bound(
        1.0, d=d, features=features, length=length, exponent=exponent, kappa=np.max(condition(gram)), values=v
    )
    return float(bound)


ATTENTION_FEATURES = 16
"""Features m of the deterministic attention checks (d = 8), or m = d for a library that builds only that."""


def attention_features(adapter, d: int) -> int | None:
    """m for the deterministic attention checks: 16, or d where the library builds only m = d; None
    when it builds neither (the check is then n-a)."""
    for m in (ATTENTION_FEATURES, d):
        if adapter.accepts_projection(m, d):
            return m
    return None


def no_features(name, title, d):
    """The n-a verdict of a check whose adapter builds neither m of :func:`attention_features`."""
    return not_applicable(name, title, f"the adapter builds neither m = {ATTENTION_FEATURES} nor m = d = {d}")


def draw_projection(adapter, settings, label, m, d):
    """One projection W (m, d) from the adapter's sampler, seeded by the check's ``label``."""
    return stats.host(adapter.sample_projection(m, d, seeds_for(settings, label, 1)[0]))
