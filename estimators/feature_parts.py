"""The representation every feature map computes before assembly, its assembly and shifts, and its
parameter checks.

:class:`FeatureParts` is ``φ = scale · factor · exp(log_amplitude − shift)`` (the log-space form of
``estimators.features``); the families in :mod:`estimators.gerf` and
:mod:`estimators.discrete_features` build it, :func:`assemble` turns it into φ.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .backends import framework, is_tracer, namespace
from .validation import LOW_PRECISION


class FeatureParts(NamedTuple):
    """A feature map before assembly: ``φ = scale · factor · exp(log_amplitude − row_offset − shift)``.

    ``log_amplitude`` is (…, L, r) or (…, L, 1) (``None`` when the map has no exponential part);
    ``factor`` is (…, L, r) or ``None`` (meaning 1); ``dtype`` is the caller's dtype name;
    ``row_offset`` is (…, L, 1) or ``None`` (meaning 0): a per-row term of the log-amplitude kept
    apart (``‖x‖²/2`` of the positive and hyperbolic maps when asked to defer it), so that it joins
    the shift in one subtraction, or cancels against a per-row shift without being applied.
    """

    log_amplitude: object
    factor: object
    scale: float
    dtype: str
    row_offset: object = None


PARAMETER_FLOOR = 1e-12


def as_parameter(value, name, like, low, high):
    """``value`` (float or array) as a parameter of ``like``'s backend and dtype, checked in (low, high)."""
    xp = namespace(like)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
        inside = low < value < high  # in Python: under jax.jit, jnp comparisons of constants are traced
    elif hasattr(value, "shape"):
        value = xp.astype(xp.asarray(value), like.dtype)
        inside = is_tracer(value) or bool(xp.all((value > low) & (value < high)))
    else:
        raise TypeError(f"{name} must be a float or an array, got {type(value).__name__}")
    if not inside:
        raise ValueError(f"{name} must lie in ({low}, {high}), got {value}")
    return value


def row_shift(parts: FeatureParts):
    """Per-row stabilizer (…, L, 1): the row's largest log-amplitude (cancels for queries)."""
    xp = namespace(parts.log_amplitude)
    largest = xp.max(parts.log_amplitude, axis=-1, keepdims=True)
    return largest if parts.row_offset is None else largest - parts.row_offset


def row_stabilized(parts: FeatureParts):
    """(parts, shift): ``parts`` at the shift of their row maxima (…, L, 1), the shift not
    differentiated (None where nothing is left to shift). A deferred row offset cancels against a
    per-row shift, so it is dropped rather than applied: the shift is the largest projection itself.
    A log-amplitude of one value per row (…, L, 1) (the trigonometric map's ‖x‖²/2) is its own row
    maximum, so it cancels whole: the stabilized features are ``scale · factor``."""
    bare = parts._replace(row_offset=None)
    if is_row_constant(bare):
        return bare._replace(log_amplitude=None), None
    shift = row_shift(bare)
    return bare, framework(shift).stop_gradient(shift)


def is_row_constant(parts: FeatureParts) -> bool:
    """Whether ``parts`` are ``factor`` times one exponential per row (log-amplitude (…, L, 1))."""
    return parts.factor is not None and parts.log_amplitude is not None and parts.log_amplitude.shape[-1] == 1


def global_shift(parts: FeatureParts):
    """One stabilizer (…, 1, 1) per leading index: the largest log-amplitude over rows and features."""
    return namespace(parts.log_amplitude).max(row_shift(parts), axis=-2, keepdims=True)


def assemble(parts: FeatureParts, shift=None, eps=0.0, *, keep_float32=False, overwrite=False):
    """Features (…, L, r) from ``parts``, with log-space ``shift`` (array or None) and ``eps`` added.

    The result is in the caller's dtype unless ``keep_float32`` (used by attention to accumulate
    half-precision work in float32). The scale enters the exponent, ``exp((a − shift) + log s)``
    (the shift subtracted first, so a large shift costs no precision). With ``overwrite``, the caller
    gives up ``parts.log_amplitude``: it becomes the features' buffer where the framework writes in
    place and the shift does not widen it, so an (…, L, r) map costs no new array (fresh pages cost
    more than the arithmetic on a CPU).
    """
    if parts.log_amplitude is None:
        values = parts.factor
        xp = namespace(values)
        if shift is not None:
            values = values * xp.exp(-shift)
        if parts.scale != 1.0:
            values = values * parts.scale
    else:
        xp = namespace(parts.log_amplitude)
        if parts.row_offset is not None:
            shift = parts.row_offset if shift is None else parts.row_offset + shift
        logs = _exponent(parts.log_amplitude, shift, math.log(parts.scale), overwrite)
        values = framework(logs).exp_of_temporary(logs)
        if parts.factor is not None:
            values = values * parts.factor
    if eps:
        values = values + eps * parts.scale
    if parts.dtype in LOW_PRECISION and not keep_float32:
        values = xp.astype(values, getattr(xp, parts.dtype))
    return values


def _exponent(log_amplitude, shift, log_scale, overwrite):
    """``(log_amplitude − shift) + log_scale``: in place of ``log_amplitude`` when ``overwrite`` and the
    shift broadcasts into its shape, else a new array; ``log_scale = 0`` adds nothing."""
    shape = tuple(log_amplitude.shape)
    in_place = overwrite and (shift is None or np.broadcast_shapes(shape, tuple(shift.shape)) == shape)
    if shift is None:
        if not in_place:
            return log_amplitude + log_scale
    elif in_place:
        log_amplitude -= shift
    else:
        log_amplitude = log_amplitude - shift
    if log_scale:
        log_amplitude += log_scale
    return log_amplitude


__all__ = [
    "PARAMETER_FLOOR",
    "FeatureParts",
    "as_parameter",
    "assemble",
    "global_shift",
    "is_row_constant",
    "row_shift",
    "row_stabilized",
]
