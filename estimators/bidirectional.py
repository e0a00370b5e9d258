"""Bidirectional FAVOR sums chunk by chunk: numerators ``Q'((K')ᵀV)`` and denominators ``Q'((K')ᵀ1)``
(Performers Eq. 4, theory.md §2), one pass over key chunks, then one over query chunks; the
denominators are the last column of one product with ``[V | 1]``.

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
from .chunks import (
    chunk_bounds,
    concat_rows,
    finite_or_zero,
    from_chunks,
    numerators_and_denominators,
    pieces,
    step_function,
    to_chunks,
    with_ones,
)
from .feature_parts import assemble, is_row_constant


def bidirectional_sums(
    featurizer, constants, queries, keys, v, keep=None, *, chunk_size=1024, compiled=False
):
    """Bidirectional FAVOR numerators ``Q'((K')ᵀV)`` and denominators ``Q'((K')ᵀ1)``, chunk by chunk.

    Same arguments as :func:`estimators.causal.prefix_sums` (``queries`` (…, L, ·), ``keys`` and ``v``
    (…, M, ·), ``keep`` (…, M, 1)). The values get a column of ones, ``[V | 1]`` (…, M, d_v + 1), so
    one product gives both sums: a pass over the keys accumulates ``(K')ᵀ[V | 1]`` (m × (d_v + 1)) at
    the running maximum of ρ, rescaling by ``e^{M_old − M_new} ≤ 1`` when it grows, so it ends at the
    whole-sequence key maximum (one shift per leading index, as the public code). The ``eps`` part of
    each key feature does not depend on the shift and is added at the end, so every key feature is
    exactly ``s·(f·exp(a − max) + eps)``. A pass over the queries then multiplies. Memory per head
    O((L + M)·(d + d_v) + C·m + m·d_v), never an (L, m) feature matrix. With ``compiled``, each key
    chunk's step and each query chunk's product run compiled (``framework(v).compiled_step``).

    Returns numerators (…, L, d_v) and denominators (…, L), both scaled by ``e^{−max}``.
    """
    length = keys.shape[-2]
    chunk = min(chunk_size, max(length, queries.shape[-2]))
    xp = namespace(v)
    values = with_ones(xp, v)
    if framework(v).traces_loops:
        return numerators_and_denominators(
            _bidirectional_jax(featurizer, constants, queries, keys, values, keep, chunk)
        )
    totals = key_sums(featurizer, constants, keys, values, keep, chunk_size=chunk, compiled=compiled)
    product = step_function(_query_product, v, compiled)
    outputs = [
        product(featurizer, constants, piece, totals)
        for piece in pieces(queries, chunk_bounds(queries.shape[-2], chunk))
    ]
    return numerators_and_denominators(concat_rows(xp, outputs))


def _query_product(featurizer, constants, queries, totals):
    """``Q'(K')ᵀ[V | 1]`` (…, C, d_v + 1) of one chunk of queries (…, C, ·) and the key sums."""
    return namespace(totals).matmul(featurizer.queries(constants, queries), totals)


def key_sums(featurizer, constants, keys, values, keep=None, *, chunk_size, compiled=False):
    """``(K')ᵀ[V | 1]`` (…, r, d_v + 1) of keys (…, M, ·) and ``values`` [V | 1] (…, M, d_v + 1)
    (``keep`` (…, M, 1) or None), at the whole-sequence key maximum, the eps part included: one pass
    over chunks of ``chunk_size`` keys (no (M, r) feature matrix; a Python loop, not ``lax.scan``),
    each chunk's step compiled with ``compiled``."""
    step = _KeySumStep(featurizer, constants, namespace(values))
    call = step_function(_KeySumStep.__call__, values, compiled)
    sums = None
    bounds = chunk_bounds(keys.shape[-2], chunk_size)
    for piece in zip(*(pieces(a, bounds) for a in (keys, keep, values)), strict=True):
        sums, _ = call(step, sums, piece)
    return step.totals(sums)


class _KeySumStep:
    """One key chunk: ``(S, M, E) -> (S', M', E')`` with S = Σ φ(k_j) e^{−M} [v_j | 1]ᵀ (exponential
    part only) and E = Σ_kept [v_j | 1] (its last entry counts the kept keys; None without eps).
    ``None`` sums stand for none yet (the first chunk starts them)."""

    def __init__(self, featurizer, constants, xp):
        self.featurizer, self.constants, self.xp = featurizer, constants, xp
        self.scale = 1.0

    def __call__(self, sums, chunk):
        xp = self.xp
        keys, keep, values = chunk
        parts, log_scale = self.featurizer.keys(self.constants, keys)
        self.scale = parts.scale
        if keep is not None:
            log_scale = xp.where(keep, log_scale, -math.inf)
        new_shift = xp.max(log_scale, axis=-2, keepdims=True)
        if sums is not None:
            new_shift = xp.maximum(new_shift, sums[1])
        key_shift = new_shift if keep is None else xp.where(keep, new_shift, math.inf)
        phi_k, values = _weighted_keys(parts, key_shift, values)
        if keep is not None:
            phi_k = xp.where(keep, phi_k, 0.0)
            values = xp.where(keep, values, 0.0)
        state = xp.matmul(xp.matrix_transpose(phi_k), values)
        value_sum = xp.sum(values, axis=-2, keepdims=True) if self.featurizer.eps else None
        if sums is not None:
            old_state, shift, old_value_sum = sums
            rescale = xp.exp(xp.clip(finite_or_zero(xp, shift) - finite_or_zero(xp, new_shift), max=0.0))
            state = old_state * rescale + state
            value_sum = None if value_sum is None else old_value_sum + value_sum
        return (state, new_shift, value_sum), None

    def totals(self, sums):
        """(K')ᵀ[V | 1] (…, m, d_v + 1), the eps part (eps·s per kept key) included."""
        state, _, value_sum = sums
        eps = self.featurizer.eps * self.scale
        return state + eps * value_sum if eps else state


def _weighted_keys(parts, key_shift, values):
    """(φ̃ (…, C, r), values (…, C, w)) whose product φ̃ᵀ values is Σ_j φ(k_j) e^{−shift_j} [v_j | 1]ᵀ.
    Features that are one exponential per key times a factor (the trigonometric map) put that
    exponential on the w values of each key instead of its r features."""
    if is_row_constant(parts):
        weights = assemble(parts._replace(factor=None), key_shift, 0.0, keep_float32=True)
        return parts.factor, values * weights
    return assemble(parts, key_shift, 0.0, keep_float32=True, overwrite=True), values


def _initial_key_sums(step, keys, values, keep):
    """Zero sums shaped from one key row's features (broadcast leading dims), M = −∞ (the carry
    ``lax.scan`` needs from the start)."""
    xp = step.xp
    parts, _ = step.featurizer.keys(step.constants, keys[..., :1, :])
    step.scale = parts.scale
    phi_k = assemble(parts, None, 0.0, keep_float32=True)
    shapes = [tuple(a.shape[:-2]) for a in (phi_k, values) + (() if keep is None else (keep,))]
    batch = np.broadcast_shapes(*shapes)
    dtype, dev = phi_k.dtype, device_of(phi_k)
    rank, width = phi_k.shape[-1], values.shape[-1]
    value_sum = xp.zeros((*batch, 1, width), dtype=dtype, device=dev) if step.featurizer.eps else None
    return (
        xp.zeros((*batch, rank, width), dtype=dtype, device=dev),
        xp.full((*batch, 1, 1), -math.inf, dtype=dtype, device=dev),
        value_sum,
    )


def _bidirectional_jax(featurizer, constants, queries, keys, values, keep, chunk):
    """Q'((K')ᵀ[V | 1]) with ``lax.scan`` over key chunks and ``lax.map`` over query chunks."""
    import jax
    import jax.numpy as jnp

    length = keys.shape[-2]
    count = -(-length // chunk)
    if keep is None and count * chunk != length:
        keep = jnp.ones((*keys.shape[:-2], length, 1), dtype=bool)
    step = _KeySumStep(featurizer, constants, jnp)
    sums = _initial_key_sums(step, keys, values, keep)
    chunked = tuple(None if a is None else to_chunks(jnp, a, chunk, count) for a in (keys, keep, values))
    sums, _ = jax.lax.scan(step, sums, chunked)
    key_sums = step.totals(sums)

    def multiply(rows):
        return jnp.matmul(featurizer.queries(constants, rows), key_sums)

    query_count = -(-queries.shape[-2] // chunk)
    outputs = jax.lax.map(multiply, to_chunks(jnp, queries, chunk, query_count))
    return from_chunks(jnp, outputs, queries.shape[-2])


__all__ = ["bidirectional_sums", "key_sums"]
