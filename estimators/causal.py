"""Causal FAVOR by chunked prefix sums with a causal running-maximum stabilizer.

Performers App. B.1, Eq. 11 (theory.md §2): the causal numerator of query i is
``Σ_{j≤i} (φ(q_i)ᵀφ(k_j)) v_j = φ(q_i)ᵀ G^PS_i`` with the prefix sum ``G^PS_i = Σ_{j≤i} φ(k_j) v_jᵀ``,
and the denominator is the same with v_j replaced by 1. Storing every ``G^PS_i`` costs O(L·m·d_v)
memory; here the sequence is cut into chunks of C positions instead:

* inside a chunk the masked quadratic form ``tril(Q'_c K'_cᵀ) V_c`` is computed directly (C × C);
* across chunks only the running state ``S = Σ φ(k_j) v_jᵀ`` (m × d_v) and ``z = Σ φ(k_j)`` (m) are
  carried,

so memory is O(L·(m + d) + C² + m·d_v) per head and time O(L·(C + m)·(m + d_v)).

Stabilizer (log space, never looking ahead). Key features are ``φ(k_j) = s · f_j · exp(a_j)`` with
log-amplitudes ``a_j`` (:class:`estimators.features.FeatureParts`). Let ``ρ_j`` be a per-key log
scale (its largest log-amplitude; ``−∞`` for a padded key) and ``c_j = max_{j'≤j} ρ_{j'}`` its prefix
maximum. Key j is assembled at its own shift, ``φ̃_j = φ(k_j) e^{−c_j}`` (entries ≤ s), and query i
combines every visible key at the common shift ``c_i``:
``φ(k_j) e^{−c_i} = φ̃_j · e^{c_j − c_i}`` with ``e^{c_j − c_i} ≤ 1`` for j ≤ i. The carried state is
kept at the shift ``M`` of the last key seen and rescaled by ``e^{M_old − M_new} ≤ 1`` when the
maximum grows. Every shift cancels in ``numerator / denominator``; no shift depends on a later
position, so outputs at i are unchanged (bit for bit) by anything at positions > i.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from array_api_compat import device as device_of

from .backends import backend_of, namespace
from .features import FeatureParts, assemble


def prefix_sums(phi_q, key_parts: FeatureParts, key_log_scale, keep, v, *, eps=0.0, chunk_size=128):
    """Causal numerators and denominators of FAVOR.

    Parameters
    ----------
    phi_q : array (…, L, r)
        Query features (already stabilized; any per-row factor cancels in the ratio).
    key_parts : FeatureParts
        Key feature parts; ``log_amplitude`` (…, L, r) or (…, L, 1) or ``None``; ``factor``
        (…, L, r) or ``None``.
    key_log_scale : array (…, L, 1)
        ρ_j, the per-key log scale whose prefix maximum c_j is the key shift; ``−∞`` marks a removed
        key. Not differentiated (the shifts cancel). Pass a constant for a data-independent shift.
    keep : bool array (…, L, 1) or None
        False removes key j from numerator and denominator.
    v : array (…, L, d_v)
    eps : float
        Added to every key feature after its shift (see :func:`estimators.features.assemble`).
    chunk_size : int
        Positions per chunk C.

    Returns
    -------
    numerator : array (…, L, d_v)
        ``e^{−c_i} Σ_{j≤i} (φ(q_i)ᵀφ(k_j)) v_j``.
    denominator : array (…, L)
        ``e^{−c_i} Σ_{j≤i} φ(q_i)ᵀφ(k_j)``.
    """
    xp = namespace(phi_q)
    length = phi_q.shape[-2]
    chunk = min(chunk_size, length)
    key_shift = cumulative_max(key_log_scale, axis=-2)
    phi_k = _shifted_key_features(xp, key_parts, key_shift, keep, eps)
    sequences = (phi_q, phi_k, key_shift, keep, v)
    carry = _initial_state(xp, phi_q, v, sequences)
    if backend_of(phi_q) == "jax":
        numerator, denominator = _jitted_scan()(carry, sequences, chunk, length)
    else:
        step = _ChunkStep(xp, chunk, device_of(phi_q))
        numerator, denominator = _loop(step, carry, sequences, chunk, length)
    return numerator, denominator[..., 0]


def cumulative_max(x, axis=-1):
    """Running maximum of ``x`` along ``axis`` (numpy, torch or jax; not differentiated)."""
    backend = backend_of(x)
    axis = axis % x.ndim
    if backend == "torch":
        import torch

        return torch.cummax(x, dim=axis).values
    if backend == "jax":
        import jax

        return jax.lax.cummax(x, axis=axis)
    return np.maximum.accumulate(x, axis=axis)


def _shifted_key_features(xp, parts, key_shift, keep, eps):
    """φ̃_j = φ(k_j) e^{−c_j} (…, L, r), zero for removed keys (assembled at shift +∞, so finite)."""
    shift = key_shift if keep is None else xp.where(keep, key_shift, math.inf)
    phi_k = assemble(parts, shift, eps, keep_float32=True)
    return phi_k if keep is None else xp.where(keep, phi_k, 0.0)


def _initial_state(xp, phi_q, v, sequences):
    batch = np.broadcast_shapes(*(tuple(a.shape[:-2]) for a in sequences if a is not None))
    rank, width = phi_q.shape[-1], v.shape[-1]
    dtype, dev = phi_q.dtype, device_of(phi_q)
    state = xp.zeros((*batch, rank, width), dtype=dtype, device=dev)
    normalizer = xp.zeros((*batch, rank, 1), dtype=dtype, device=dev)
    shift = xp.full((*batch, 1, 1), -math.inf, dtype=dtype, device=dev)
    return state, normalizer, shift


class _ChunkStep:
    """One chunk of the causal scan: ``(S, z, M), chunk -> (S', z', M'), (numerator, denominator)``.

    ``S`` (…, r, d_v) and ``z`` (…, r, 1) hold ``Σ φ(k_j) e^{−M} v_jᵀ`` and ``Σ φ(k_j) e^{−M}`` over the
    previous chunks, ``M`` (…, 1, 1) is the key shift at the last of them (−∞ before any kept key).
    """

    def __init__(self, xp, chunk, dev):
        self.xp, self.device = xp, dev
        self.tril = self._tril(chunk)

    def _tril(self, size):
        index = self.xp.arange(size, device=self.device)
        return index[:, None] >= index[None, :]

    def __call__(self, carry, chunk):
        xp = self.xp
        state, normalizer, shift = carry
        phi_q, phi_k, key_shift, keep, v = chunk
        tril = self.tril if phi_q.shape[-2] == self.tril.shape[0] else self._tril(phi_q.shape[-2])
        visible = tril if keep is None else tril & xp.matrix_transpose(keep)
        current = _finite_or_zero(xp, key_shift)
        decay = xp.exp(xp.where(visible, xp.matrix_transpose(current) - current, -math.inf))
        scores = xp.matmul(phi_q, xp.matrix_transpose(phi_k)) * decay
        old = _finite_or_zero(xp, shift)
        carried = xp.where(shift > -math.inf, xp.exp(xp.minimum(old - current, 0.0)), 0.0)
        numerator = carried * xp.matmul(phi_q, state) + xp.matmul(scores, v)
        denominator = carried * xp.matmul(phi_q, normalizer) + xp.sum(scores, axis=-1, keepdims=True)

        new_shift = xp.maximum(key_shift[..., -1:, :], shift)
        new = _finite_or_zero(xp, new_shift)
        weighted = phi_k * xp.exp(xp.where(key_shift > -math.inf, xp.minimum(current - new, 0.0), -math.inf))
        rescale = xp.exp(xp.minimum(old - new, 0.0))
        state = state * rescale + xp.matmul(xp.matrix_transpose(weighted), v)
        normalizer = normalizer * rescale + xp.matrix_transpose(xp.sum(weighted, axis=-2, keepdims=True))
        return (state, normalizer, new_shift), (numerator, denominator)


def _finite_or_zero(xp, shift):
    return xp.where(shift > -math.inf, shift, 0.0)


def _loop(step, carry, sequences, chunk, length):
    xp = step.xp
    numerators, denominators = [], []
    for start in range(0, length, chunk):
        pieces = tuple(None if a is None else a[..., start : start + chunk, :] for a in sequences)
        carry, (numerator, denominator) = step(carry, pieces)
        numerators.append(numerator)
        denominators.append(denominator)
    return xp.concat(numerators, axis=-2), xp.concat(denominators, axis=-2)


@functools.cache
def _jitted_scan():
    """``lax.scan`` over chunks, jitted once per (shapes, chunk, length) and reused across calls."""
    import jax
    import jax.numpy as jnp

    def scan(carry, sequences, chunk, length):
        count = -(-length // chunk)
        chunked = tuple(None if a is None else _to_chunks(jnp, a, chunk, count) for a in sequences)
        _, (numerators, denominators) = jax.lax.scan(_ChunkStep(jnp, chunk, None), carry, chunked)
        return _from_chunks(jnp, numerators, length), _from_chunks(jnp, denominators, length)

    return jax.jit(scan, static_argnums=(2, 3))


def _to_chunks(jnp, a, chunk, count):
    """(…, L, w) -> (count, …, chunk, w), padding the end with zeros (False for masks).

    Padded positions come after every real one, so causality keeps them out of real outputs.
    """
    padding = count * chunk - a.shape[-2]
    if padding:
        a = jnp.concat([a, jnp.zeros((*a.shape[:-2], padding, a.shape[-1]), dtype=a.dtype)], axis=-2)
    a = jnp.reshape(a, (*a.shape[:-2], count, chunk, a.shape[-1]))
    return jnp.moveaxis(a, -3, 0)


def _from_chunks(jnp, stacked, length):
    """(count, …, chunk, w) -> (…, L, w)."""
    a = jnp.moveaxis(stacked, 0, -3)
    a = jnp.reshape(a, (*a.shape[:-3], a.shape[-3] * a.shape[-2], a.shape[-1]))
    return a[..., :length, :]


__all__ = ["prefix_sums"]
