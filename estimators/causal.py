"""Causal FAVOR sums chunk by chunk: prefix sums with a causal running-maximum stabilizer (the
bidirectional sums are in :mod:`estimators.bidirectional`).

Performers App. B.1, Eq. 11 (theory.md §2): the causal numerator of query i is
``Σ_{j≤i} (φ(q_i)ᵀφ(k_j)) v_j = φ(q_i)ᵀ G^PS_i`` with the prefix sum ``G^PS_i = Σ_{j≤i} φ(k_j) v_jᵀ``,
and the denominator is the same with v_j replaced by 1. Storing every ``G^PS_i`` costs O(L·m·d_v)
memory; here the sequence is cut into chunks of C positions instead:

* inside a chunk the masked quadratic form ``tril(Q'_c K'_cᵀ) V_c`` is computed directly (C × C);
* across chunks only the running state ``[S | z] = Σ φ(k_j) [v_j | 1]ᵀ`` (m × (d_v + 1)) is carried;
* chunks are processed in blocks of k = ``BLOCK_ROWS`` / C chunks (:class:`_BlockStep`): features
  are computed a block at a time (never a whole (L, m) feature matrix), the quadratic parts and each
  chunk's state increment are batched over the block, and a loop over its k chunks carries the
  state (m × (d_v + 1) per head) from chunk to chunk.

The forward pass holds O(L·(d + d_v) + B·(C + m) + m·d_v) numbers per head (B = k·C rows per
block), and time is O(L·(C + m)·(m + d_v) + L·m·d). Reverse-mode autodiff keeps each
block's features and states: O(L·m + (L/C)·m·d_v), still linear in L (torch splits the inputs with
one ``split``, whose backward is one concatenation; per-piece slicing would cost O(L²/C)).

Stabilizer (log space, never looking ahead). Key features are ``φ(k_j) = s · f_j · exp(a_j)`` with
log-amplitudes ``a_j`` (:class:`estimators.features.FeatureParts`). Let ``ρ_j`` be a per-key log
scale (its largest log-amplitude; ``−∞`` for a removed key) and ``c_j = max_{j'≤j} ρ_{j'}`` its running
maximum. Key j is assembled at its own shift, ``φ̃_j = φ(k_j) e^{−c_j}`` (entries ≤ s), and query i
combines every visible key at the common shift ``c_i``:
``φ(k_j) e^{−c_i} = φ̃_j · e^{c_j − c_i}`` with ``e^{c_j − c_i} ≤ 1`` for j ≤ i. The carried state is
kept at the shift ``M`` of the last key seen and rescaled by ``e^{M_old − M_new} ≤ 1`` when the
maximum grows. Every shift cancels in ``numerator / denominator``; no shift depends on a later
position, so outputs at i are unchanged (bit for bit) by anything at positions > i.
"""

from __future__ import annotations

import math

import numpy as np
from array_api_compat import device as device_of

from .backends import framework, namespace
from .chunks import (
    concat_rows,
    finite_or_zero,
    from_chunks,
    numerators_and_denominators,
    pieces,
    step_function,
    to_chunks,
    with_ones,
)
from .feature_parts import assemble

BLOCK_ROWS = 512


def prefix_sums(featurizer, constants, queries, keys, v, keep=None, *, chunk_size=64, compiled=False):
    """Causal FAVOR numerators and denominators, features computed chunk by chunk.

    Parameters
    ----------
    featurizer : object
        Hashable; ``featurizer.queries(constants, rows)`` gives stabilized query features (…, C, r),
        ``featurizer.keys(constants, rows)`` key :class:`~estimators.features.FeatureParts` and
        per-key log scales ρ (…, C, 1) (not differentiated: the shifts cancel), ``featurizer.eps``
        the constant added to each shifted key feature (see :func:`estimators.feature_parts.assemble`).
    constants : pytree of arrays
        Passed through to ``featurizer`` (the projection W, …).
    queries, keys : arrays (…, L, ·)
        Rows that ``featurizer`` maps to features (raw q/k, or precomputed features).
    v : array (…, L, d_v)
    keep : bool array (…, L, 1) or None
        False removes key j from numerator and denominator.
    chunk_size : int
        Positions per chunk C.
    compiled : bool
        Run each block step compiled (``framework(v).compiled_step``: ``torch.compile`` for torch).

    Returns
    -------
    numerator : array (…, L, d_v)
        ``e^{−c_i} Σ_{j≤i} (φ(q_i)ᵀφ(k_j)) v_j``.
    denominator : array (…, L)
        ``e^{−c_i} Σ_{j≤i} φ(q_i)ᵀφ(k_j)``.
    """
    length = queries.shape[-2]
    chunk = min(chunk_size, length)
    sequences = (queries, keys, keep, with_ones(namespace(v), v))
    if framework(v).traces_loops:
        return numerators_and_denominators(_scan_jax(featurizer, constants, sequences, chunk, length))
    return numerators_and_denominators(_loop(featurizer, constants, sequences, chunk, length, compiled))


class _BlockStep:
    """One block of the causal scan: ``(S, M), block -> (S', M'), [numerators | denominators]``.

    A block is ``k`` chunks of ``C`` positions. The values carry a column of ones, ``[v | 1]``, so one
    product gives numerators and denominators together. ``S`` (…, r, d_v + 1) holds
    ``Σ φ(k_j) e^{−M} [v_j | 1]ᵀ`` over the previous blocks, ``M`` (…, 1, 1) is the key shift at the
    last of them (−∞ before any kept key); a ``None`` carry stands for zero S before the first block.

    The quadratic parts inside the chunks are batched over the block's chunks. A loop over the k
    chunks then carries the state: chunk t reads ``P_t`` at shift ``F_t`` (``P_0 = S``, ``F_0 = M``)
    and passes on ``P_{t+1} = e^{F_t − E_t} P_t + ΔS_t`` at ``F_{t+1} = E_t``, the shift where the
    chunk ends (the running maximum at its last key), with its own contribution
    ``ΔS_t = Σ_{j∈t} φ̃_j (e^{c_j − E_t} [v_j | 1])ᵀ`` (the factor applied to the d_v + 1 values, not
    the r features). Every exponent is ≤ 0 and no factor looks past the chunk it serves.
    """

    def __init__(self, featurizer, constants, xp, chunk, dev):
        self.featurizer, self.constants, self.xp, self.device = featurizer, constants, xp, dev
        self.chunk = chunk

    def features(self, queries, keys, keep, shift):
        """Query features, shifted key features φ̃ (zero if removed) and key shifts c (…, B, 1).

        ``shift`` (…, 1, 1) is the running maximum carried from earlier blocks (None: none yet).
        """
        xp = self.xp
        phi_q = self.featurizer.queries(self.constants, queries)
        parts, log_scale = self.featurizer.keys(self.constants, keys)
        if keep is not None:
            log_scale = xp.where(keep, log_scale, -math.inf)
        key_shift = framework(log_scale).cumulative_max(log_scale, log_scale.ndim - 2)
        if shift is not None:
            key_shift = xp.maximum(key_shift, shift)
        assembled_at = key_shift if keep is None else xp.where(keep, key_shift, math.inf)
        phi_k = assemble(parts, assembled_at, self.featurizer.eps, keep_float32=True, overwrite=True)
        return phi_q, phi_k if keep is None else xp.where(keep, phi_k, 0.0), key_shift

    def __call__(self, carry, block):
        xp = self.xp
        queries, keys, keep, values = block
        phi_q, phi_k, key_shift = self.features(queries, keys, keep, None if carry is None else carry[1])
        state, shift = self.empty_carry(phi_q, phi_k, keep, values) if carry is None else carry
        size = self.chunk if phi_q.shape[-2] % self.chunk == 0 else phi_q.shape[-2]
        phi_q, phi_k, key_shift, values = (_split(xp, a, size) for a in (phi_q, phi_k, key_shift, values))
        current = finite_or_zero(xp, key_shift)

        visible = _lower_triangle(xp, size, self.device)
        if keep is not None:
            visible = visible & xp.matrix_transpose(_split(xp, keep, size))
        decay = framework(values).exp_of_temporary(
            xp.where(visible, xp.matrix_transpose(current) - current, -math.inf)
        )
        scores = xp.matmul(phi_q, xp.matrix_transpose(phi_k))
        scores *= decay
        within = xp.matmul(scores, values)

        ends = key_shift[..., -1:, :]
        end_shifts = finite_or_zero(xp, ends)
        weighted_values = values * xp.exp(
            xp.where(key_shift > -math.inf, xp.clip(current - end_shifts, max=0.0), -math.inf)
        )
        frames = xp.concat([xp.reshape(shift, (*shift.shape[:-2], 1, 1, 1)), ends[..., :-1, :, :]], axis=-3)
        frame_shifts = finite_or_zero(xp, frames)
        seen = xp.where(frames > -math.inf, xp.exp(xp.clip(frame_shifts - current, max=0.0)), 0.0)
        rescale = xp.exp(xp.clip(frame_shifts - end_shifts, max=0.0))
        carried = []
        for t in range(phi_q.shape[-3]):
            carried.append(xp.matmul(phi_q[..., t, :, :], state))
            increment = xp.matmul(xp.matrix_transpose(phi_k[..., t, :, :]), weighted_values[..., t, :, :])
            state = state * rescale[..., t, :, :] + increment
        out = seen * xp.stack(carried, axis=-3) + within
        shift = ends[..., -1, :, :]
        return (state, shift), _merge(xp, out)

    def empty_carry(self, phi_q, phi_k, keep, values):
        """Zero S (…, r, d_v + 1) and M = −∞ (…, 1, 1), the leading dims broadcast from the features,
        the values and the mask of a block."""
        xp = self.xp
        shapes = [tuple(a.shape[:-2]) for a in (phi_q, phi_k, values) + (() if keep is None else (keep,))]
        batch = np.broadcast_shapes(*shapes)
        dtype, dev = phi_q.dtype, device_of(phi_q)
        state = xp.zeros((*batch, phi_q.shape[-1], values.shape[-1]), dtype=dtype, device=dev)
        shift = xp.full((*batch, 1, 1), -math.inf, dtype=dtype, device=dev)
        return state, shift


def _split(xp, a, size):
    """(…, k·C, w) -> (…, k, C, w)."""
    return xp.reshape(a, (*a.shape[:-2], a.shape[-2] // size, size, a.shape[-1]))


def _merge(xp, a):
    """(…, k, C, w) -> (…, k·C, w)."""
    return xp.reshape(a, (*a.shape[:-3], a.shape[-3] * a.shape[-2], a.shape[-1]))


def _lower_triangle(xp, size, dev):
    """Boolean (size, size), True where column ≤ row."""
    index = xp.arange(size, device=dev)
    return index[:, None] >= index[None, :]


def _initial_state(step, sequences):
    """Zero S and M = −∞ before the first block (the carry ``lax.scan`` needs from the start),
    shaped from the first row's features."""
    queries, keys, keep, values = (None if a is None else a[..., :1, :] for a in sequences)
    phi_q, phi_k, _ = step.features(queries, keys, keep, None)
    return step.empty_carry(phi_q, phi_k, keep, values)


def _block_bounds(length, chunk, block):
    """(start, stop) of the blocks: ``block`` rows (a multiple of ``chunk``) while they last, then the
    whole chunks left as one block, then the remainder shorter than one chunk (a block of one chunk of
    its own size)."""
    bounds, start = [], 0
    while length - start >= chunk:
        stop = start + min(block, (length - start) // chunk * chunk)
        bounds.append((start, stop))
        start = stop
    if start < length:
        bounds.append((start, length))
    return bounds


def _block_rows(chunk):
    """Rows per block: ``BLOCK_ROWS`` rounded down to whole chunks (at least one chunk)."""
    return max(1, BLOCK_ROWS // chunk) * chunk


def _loop(featurizer, constants, sequences, chunk, length, compiled):
    xp = namespace(sequences[-1])
    step = _BlockStep(featurizer, constants, xp, chunk, device_of(sequences[-1]))
    call = step_function(_BlockStep.__call__, sequences[-1], compiled)
    carry = None
    outputs = []
    bounds = _block_bounds(length, chunk, _block_rows(chunk))
    for block in zip(*(pieces(a, bounds) for a in sequences), strict=True):
        carry, out = call(step, carry, block)
        outputs.append(out)
    return concat_rows(xp, outputs)


def _scan_jax(featurizer, constants, sequences, chunk, length):
    try:
        hash(featurizer)
    except TypeError:  # unhashable feature options: trace the scan on every call
        return _scan(featurizer, constants, sequences, chunk, length)
    return framework(sequences[0]).compiled(_scan, (0, 3, 4))(featurizer, constants, sequences, chunk, length)


def _scan(featurizer, constants, sequences, chunk, length):
    """``lax.scan`` over blocks (the end padded to whole blocks; padding is later than every real key)."""
    import jax
    import jax.numpy as jnp

    step = _BlockStep(featurizer, constants, jnp, chunk, None)
    carry = _initial_state(step, sequences)
    block = min(_block_rows(chunk), -(-length // chunk) * chunk)
    count = -(-length // block)
    blocked = tuple(None if a is None else to_chunks(jnp, a, block, count) for a in sequences)
    _, outputs = jax.lax.scan(step, carry, blocked)
    return from_chunks(jnp, outputs, length)


__all__ = ["prefix_sums"]
