"""What the chunked FAVOR sums (:mod:`estimators.causal`, :mod:`estimators.bidirectional`) share:
rows of a sequence cut into chunks, as pieces for a Python loop or as padded stacks for
``lax.scan``, the values with a column of ones (one product gives numerators and denominators),
the finite reading of a running-maximum shift, and a step compiled on request.

Rows are the second-to-last axis: a sequence is an array (…, L, w).
"""

from __future__ import annotations

import math

from array_api_compat import device as device_of

from .backends import framework


def chunk_bounds(length, chunk):
    """(start, stop) of consecutive chunks of ``chunk`` rows covering ``length`` (the last may be short)."""
    return [(start, min(start + chunk, length)) for start in range(0, length, chunk)]


def pieces(a, bounds):
    """``a[..., start:stop, :]`` for each (start, stop) of ``bounds`` (contiguous, covering the rows);
    ``None`` pieces for ``a = None``."""
    if a is None:
        return [None] * len(bounds)
    return framework(a).split_rows(a, [stop - start for start, stop in bounds])


def to_chunks(jnp, a, chunk, count):
    """(…, L, w) -> (count, …, chunk, w), padding the end with zeros (False for masks)."""
    padding = count * chunk - a.shape[-2]
    if padding:
        a = jnp.concat([a, jnp.zeros((*a.shape[:-2], padding, a.shape[-1]), dtype=a.dtype)], axis=-2)
    a = jnp.reshape(a, (*a.shape[:-2], count, chunk, a.shape[-1]))
    return jnp.moveaxis(a, -3, 0)


def from_chunks(jnp, stacked, length):
    """(count, …, chunk, w) -> (…, L, w)."""
    a = jnp.moveaxis(stacked, 0, -3)
    a = jnp.reshape(a, (*a.shape[:-3], a.shape[-3] * a.shape[-2], a.shape[-1]))
    return a[..., :length, :]


def with_ones(xp, v):
    """``[v | 1]`` (…, M, d_v + 1): the values with a column of ones, so that ``φᵀ[v | 1]`` holds the
    numerator sums and, in its last column, the denominator sums."""
    return xp.concat([v, xp.ones((*v.shape[:-1], 1), dtype=v.dtype, device=device_of(v))], axis=-1)


def numerators_and_denominators(out):
    """(…, L, d_v + 1) products with ``[v | 1]`` -> numerators (…, L, d_v) and denominators (…, L)."""
    return out[..., :-1], out[..., -1]


def concat_rows(xp, outputs):
    """The row pieces ``outputs`` joined along axis −2 (a single piece as it is, without a copy)."""
    return outputs[0] if len(outputs) == 1 else xp.concat(outputs, axis=-2)


def step_function(function, like, compiled):
    """``function`` (a chunk or block step) compiled for ``like``'s framework when ``compiled``
    (``framework(like).compiled_step``), else as it is."""
    return framework(like).compiled_step(function) if compiled else function


def finite_or_zero(xp, shift):
    """A running-maximum shift with −∞ (no kept key yet) read as 0, for differences of shifts."""
    return xp.where(shift > -math.inf, shift, 0.0)


__all__ = [
    "chunk_bounds",
    "concat_rows",
    "finite_or_zero",
    "from_chunks",
    "numerators_and_denominators",
    "pieces",
    "step_function",
    "to_chunks",
    "with_ones",
]
