"""Bidirectional FAVOR sums chunk by chunk: numerators ``Q'((K')ᵀV)`` and denominators ``Q'((K')ᵀ1)``
(Performers Eq. 4, theory.md §2), one pass over key chunks, then one over query chunks.

Key features are ``φ(k_j) = s · f_j · exp(a_j)`` with log-amplitudes ``a_j``
(:class:`estimators.features.FeatureParts`) and per-key log scales ``ρ_j``. The key sums are carried
at the running maximum of ρ, so they end at one shift per leading index (the whole-sequence key
maximum), which cancels in ``numerator / denominator``.
"""

from __future__ import annotations

import math

import numpy as np
from array_api_compat import device as device_of

from .backends import framework, namespace
from .chunks import chunk_bounds, finite_or_zero, from_chunks, pieces, to_chunks
from .features import assemble


def bidirectional_sums(featurizer, constants, queries, keys, v, keep=None, *, chunk_size=1024):
    """Bidirectional FAVOR numerators ``Q'((K')ᵀV)`` and denominators ``Q'((K')ᵀ1)``, chunk by chunk.

    Same arguments as :func:`estimators.causal.prefix_sums` (``queries`` (…, L, ·), ``keys`` and ``v``
    (…, M, ·), ``keep`` (…, M, 1)). One pass over the keys accumulates ``(K')ᵀV`` (m × d_v) and
    ``(K')ᵀ1`` at the running maximum of ρ, rescaling by ``e^{M_old − M_new} ≤ 1`` when it grows, so
    they end at the whole-sequence key maximum (one shift per leading index, as the public code). The
    ``eps`` part of each key feature does not depend on the shift and is added at the end, so every key
    feature is exactly ``s·(f·exp(a − max) + eps)``. A pass over the queries then multiplies. Memory per
    head O((L + M)·(d + d_v) + C·m + m·d_v), never an (L, m) feature matrix.

    Returns numerators (…, L, d_v) and denominators (…, L), both scaled by ``e^{−max}``.
    """
    length = keys.shape[-2]
    chunk = min(chunk_size, max(length, queries.shape[-2]))
    if framework(v).traces_loops:
        return _bidirectional_jax(featurizer, constants, queries, keys, v, keep, chunk)
    xp = namespace(v)
    step = _KeySumStep(featurizer, constants, xp)
    sums = _initial_key_sums(step, keys, v, keep)
    key_bounds = chunk_bounds(length, chunk)
    for piece in zip(*(pieces(a, key_bounds) for a in (keys, keep, v)), strict=True):
        sums, _ = step(sums, piece)
    key_values, key_sum = step.totals(sums)
    numerators, denominators = [], []
    for piece in pieces(queries, chunk_bounds(queries.shape[-2], chunk)):
        phi_q = featurizer.queries(constants, piece)
        numerators.append(xp.matmul(phi_q, key_values))
        denominators.append(xp.matmul(phi_q, key_sum)[..., 0])
    return xp.concat(numerators, axis=-2), xp.concat(denominators, axis=-1)


class _KeySumStep:
    """One key chunk: ``(S, z, M, E, n) -> (S', z', M', E', n')`` with S = Σ φ(k_j) e^{−M} v_jᵀ,
    z = Σ φ(k_j) e^{−M} (exponential part only), E = Σ_kept v_j, n = #kept keys."""

    def __init__(self, featurizer, constants, xp):
        self.featurizer, self.constants, self.xp = featurizer, constants, xp
        self.scale = 1.0

    def __call__(self, sums, chunk):
        xp = self.xp
        state, normalizer, shift, value_sum, count = sums
        keys, keep, v = chunk
        parts, log_scale = self.featurizer.keys(self.constants, keys)
        self.scale = parts.scale
        if keep is not None:
            log_scale = xp.where(keep, log_scale, -math.inf)
        new_shift = xp.maximum(xp.max(log_scale, axis=-2, keepdims=True), shift)
        key_shift = new_shift if keep is None else xp.where(keep, new_shift, math.inf)
        phi_k = assemble(parts, key_shift, 0.0, keep_float32=True)
        if keep is not None:
            phi_k = xp.where(keep, phi_k, 0.0)
            v = xp.where(keep, v, 0.0)
        rescale = xp.exp(xp.minimum(finite_or_zero(xp, shift) - finite_or_zero(xp, new_shift), 0.0))
        state = state * rescale + xp.matmul(xp.matrix_transpose(phi_k), v)
        normalizer = normalizer * rescale + xp.matrix_transpose(xp.sum(phi_k, axis=-2, keepdims=True))
        kept = keys.shape[-2] if keep is None else xp.sum(xp.astype(keep, v.dtype), axis=-2, keepdims=True)
        return (
            state,
            normalizer,
            new_shift,
            value_sum + xp.sum(v, axis=-2, keepdims=True),
            count + kept,
        ), None

    def totals(self, sums):
        """(K')ᵀV (…, m, d_v) and (K')ᵀ1 (…, m, 1), the eps part (eps·s per kept key) included."""
        state, normalizer, _, value_sum, count = sums
        eps = self.featurizer.eps * self.scale
        if not eps:
            return state, normalizer
        return state + eps * value_sum, normalizer + eps * count


def _initial_key_sums(step, keys, v, keep):
    """Zero sums shaped from one key row's features (broadcast leading dims), M = −∞."""
    xp = step.xp
    parts, _ = step.featurizer.keys(step.constants, keys[..., :1, :])
    step.scale = parts.scale
    phi_k = assemble(parts, None, 0.0, keep_float32=True)
    shapes = [tuple(a.shape[:-2]) for a in (phi_k, v) + (() if keep is None else (keep,))]
    batch = np.broadcast_shapes(*shapes)
    dtype, dev = phi_k.dtype, device_of(phi_k)
    rank, width = phi_k.shape[-1], v.shape[-1]
    return (
        xp.zeros((*batch, rank, width), dtype=dtype, device=dev),
        xp.zeros((*batch, rank, 1), dtype=dtype, device=dev),
        xp.full((*batch, 1, 1), -math.inf, dtype=dtype, device=dev),
        xp.zeros((*batch, 1, width), dtype=dtype, device=dev),
        xp.zeros((*batch, 1, 1), dtype=dtype, device=dev),
    )


def _bidirectional_jax(featurizer, constants, queries, keys, v, keep, chunk):
    """:func:`bidirectional_sums` with ``lax.scan`` over key chunks and ``lax.map`` over query chunks."""
    import jax
    import jax.numpy as jnp

    length = keys.shape[-2]
    count = -(-length // chunk)
    if keep is None and count * chunk != length:
        keep = jnp.ones((*keys.shape[:-2], length, 1), dtype=bool)
    step = _KeySumStep(featurizer, constants, jnp)
    sums = _initial_key_sums(step, keys, v, keep)
    chunked = tuple(None if a is None else to_chunks(jnp, a, chunk, count) for a in (keys, keep, v))
    sums, _ = jax.lax.scan(step, sums, chunked)
    key_values, key_sum = step.totals(sums)

    def multiply(rows):
        phi_q = featurizer.queries(constants, rows)
        return jnp.matmul(phi_q, key_values), jnp.matmul(phi_q, key_sum)

    query_count = -(-queries.shape[-2] // chunk)
    numerators, denominators = jax.lax.map(multiply, to_chunks(jnp, queries, chunk, query_count))
    length = queries.shape[-2]
    return from_chunks(jnp, numerators, length), from_chunks(jnp, denominators, length)[..., 0]


__all__ = ["bidirectional_sums"]
