"""The exponential feature maps' range check: overflow to ±Inf, or rows that underflow to all zeros.

Without a stabilizer, ``e^{±‖x‖²/2}`` leaves a dtype's exponent range at moderate norms; the maps of
:mod:`estimators.features` therefore check their result (``check="warn"``, ``"raise"`` or ``"off"``)
and report the largest input norm, the dtype and the remedies (see that module's docstring).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .backends import is_tracer, namespace
from .validation import LOW_PRECISION

RANGE_CHECKS = ("warn", "raise", "off")


class FeatureRangeWarning(UserWarning):
    """Features overflowed (a non-finite value) or a row underflowed (all features below the dtype's
    smallest positive number) at the given input norms and dtype."""


class FeatureRangeError(FloatingPointError):
    """As :class:`FeatureRangeWarning`, raised with ``check="raise"``."""


LOG_RANGE = {
    "float16": (math.log(65504.0), -24 * math.log(2)),
    "bfloat16": (math.log(2 - 2**-7) + 127 * math.log(2), -133 * math.log(2)),
    "float32": (math.log(float(np.finfo(np.float32).max)), -149 * math.log(2)),
    "float64": (math.log(float(np.finfo(np.float64).max)), -1074 * math.log(2)),
}
"""(ln of the largest finite number, ln of the smallest positive subnormal) of each result dtype."""


def check_range(name, parts, shift, values, x, scale_inputs, stabilizer, check):
    """Warn or raise if a row of ``values`` is non-finite or all its exponentials underflow.

    A row underflows when ``scale · e^{max_r (a_r − shift)}`` is below the smallest positive number of
    the result's dtype: every feature of the row is then 0 (or one subnormal step), whatever its factor.
    """
    if is_tracer(values):
        return
    xp = namespace(values)
    top = xp.max(parts.log_amplitude, axis=-1)
    if shift is not None:
        top = top - shift[..., 0]
    underflow = top + math.log(parts.scale) < LOG_RANGE[parts.dtype][1]
    overflow = ~(xp.max(xp.abs(values), axis=-1) < math.inf)  # NaN propagates through max
    n_bad = int(xp.sum(xp.astype(underflow | overflow, xp.int32)))
    if n_bad == 0:
        return
    message = range_message(
        name, x, scale_inputs, stabilizer, parts.dtype, int(xp.sum(xp.astype(overflow, xp.int32))), n_bad
    )
    if check == "raise":
        raise FeatureRangeError(message)
    warnings.warn(message, FeatureRangeWarning, stacklevel=4)


def range_message(name, x, scale_inputs, stabilizer, dtype, n_overflow, n_bad):
    """The range check's report: what failed, at which input norm and dtype, and the remedies."""
    xp = namespace(x)
    norms = xp.linalg.vector_norm(xp.astype(x, xp.float32) if dtype in LOW_PRECISION else x, axis=-1)
    largest = float(xp.max(norms))
    scaled = f" ({largest * x.shape[-1] ** -0.25:.3g} after the d^(-1/4) scaling)" if scale_inputs else ""
    compute = "float32" if dtype in LOW_PRECISION else dtype
    exponent_range = LOG_RANGE[dtype][0]
    failures = []
    if n_overflow:
        failures.append(f"{n_overflow} row(s) have non-finite features (overflow)")
    if n_bad > n_overflow:
        failures.append(f"{n_bad - n_overflow} row(s) underflow to all-zero features")
    remedy = (
        "pass stabilizer='row' (or 'global' for keys; a shift cancels in normalized attention, as "
        "estimators.attention.favor applies it, but not in a kernel estimate φ(x)ᵀφ(y))"
        if stabilizer is None
        else f"stabilizer={stabilizer!r} is already applied"
    )
    wider = "" if dtype == "float64" else "compute in float64 (range e^(±709.8)); "
    return (
        f"feature {name!r} in {dtype} (computed in {compute}): {' and '.join(failures)} at the largest "
        f"input norm ‖x‖ = {largest:.3g}{scaled}; e^(±‖x‖²/2) must stay within e^(±{exponent_range:.1f}) "
        f"for a {dtype} result. Remedies: {remedy}; {wider}rescale the inputs to a smaller norm"
    )


__all__ = [
    "LOG_RANGE",
    "RANGE_CHECKS",
    "FeatureRangeError",
    "FeatureRangeWarning",
    "check_range",
    "range_message",
]
