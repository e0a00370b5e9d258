"""The representation every feature map computes before assembly, and its parameter checks.

:class:`FeatureParts` is ``φ = scale · factor · exp(log_amplitude − shift)`` (the log-space form of
``estimators.features``); the families in :mod:`estimators.gerf` and
:mod:`estimators.discrete_features` build it, :func:`estimators.features.assemble` turns it into φ.
"""

from __future__ import annotations

from typing import NamedTuple

from .backends import is_tracer, namespace


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


__all__ = ["PARAMETER_FLOOR", "FeatureParts", "as_parameter"]
