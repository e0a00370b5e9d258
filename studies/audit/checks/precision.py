"""Working precision and the round-off tolerances of deterministic checks.

A deterministic check compares two computations that agree exactly in real arithmetic. Their
difference is round-off, bounded by the working precision's unit round-off u and the size of the
computation, never by a constant picked to pass. The bound used (first order in u; Higham,
*Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1, γ_n = nu/(1 − nu) ≈ nu for a sum
or dot product of n terms) follows FAVOR's stages for one output row o_i = Σ_j â_ij v_j / Σ_j â_ij:

* exponent of one feature, a dot product of length d plus the −‖x‖²/2 and stabilizer terms: absolute
  error ≤ (d + 2)·u·a with a = max over rows of Σ_k |w_lk x_ik| + ‖x_i‖²/2 + |shift| (measured on the
  inputs), which is the relative error of the feature after exp (plus u for exp itself);
* the sum over the r features of each weight â_ij and over the L keys: relative error ≤ (r + L)·u
  per weight when the terms are positive; otherwise times the condition κ_i = Σ_j |â_ij| / |Σ_j â_ij|
  measured on the float64 reference;
* a relative error ε on every weight moves the normalized output by at most 2ε·κ_i·max_j |v_j|.

So |Δo_i| ≤ 2·((d + 2)·a + r + L + 2)·u·κ_i·max|v| (:func:`attention_bound`). Two runs of the
same implementation differ by at most twice that. The working precision is declared by the adapter
(``precision``) or detected (:func:`detect_precision`): the coarsest floating-point grid every
output lies on.
"""

from __future__ import annotations

import numpy as np

UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "bfloat16": 2.0**-8, "float16": 2.0**-11}
DETECTION_VALUES = 8


def round_to(array, dtype: str) -> np.ndarray:
    """``array`` rounded to ``dtype`` and back to float64 (bfloat16 by clearing the low 16 bits of
    the round-to-nearest-even float32)."""
    array = np.asarray(array, dtype=np.float64)
    if dtype == "bfloat16":
        bits = array.astype(np.float32).view(np.uint32)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & np.uint32(0xFFFF0000)
        return rounded.view(np.float32).astype(np.float64)
    return array.astype(dtype).astype(np.float64)


def detect_precision(values) -> str:
    """The coarsest of bfloat16, float16, float32 whose grid holds every finite nonzero value of
    ``values`` (at least 8 of them), else float64. Values computed in float64 land on the float32
    grid with probability ~2^-29 each, so the detection is exact for practical purposes."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values) & (values != 0)]
    if values.size < DETECTION_VALUES:
        return "float64"
    for dtype in ("bfloat16", "float16", "float32"):
        with np.errstate(over="ignore"):
            if np.array_equal(round_to(values, dtype), values):
                return dtype
    return "float64"


def working_precision(adapter, values) -> tuple[str, str]:
    """(precision, how): the adapter's declared precision, or the one detected from ``values``."""
    if adapter.precision is not None:
        return adapter.precision, "declared"
    return detect_precision(values), "detected"


def exponent_scale(x, W) -> float:
    """a = max over rows and projections of Σ_k |w_lk x_ik| + ‖x_i‖²/2, doubled for a stabilizer
    shift of the same size: the magnitude of every term in a feature's exponent (x (…, L, d) scaled,
    W (m, d))."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
    W = np.asarray(W, dtype=np.float64)
    dots = np.abs(x) @ np.abs(W).T
    return float(2 * np.max(dots + 0.5 * np.sum(x * x, axis=-1, keepdims=True)))


def condition(weights) -> np.ndarray:
    """κ_i = Σ_j |â_ij| / |Σ_j â_ij| per output row of the weights (…, L, L) (1 for positive ones)."""
    weights = np.asarray(weights, dtype=np.float64)
    return np.sum(np.abs(weights), axis=-1) / np.abs(np.sum(weights, axis=-1))


def attention_bound(u: float, *, d: int, features: int, length: int, exponent: float, kappa, values):
    """Round-off bound 2·((d + 2)·a + r + L + 2)·u·κ_i·max|v| of one FAVOR output row (module
    docstring); returns an array over rows broadcast from ``kappa``."""
    scale = float(np.max(np.abs(values)))
    return 2 * ((d + 2) * exponent + features + length + 2) * u * np.asarray(kappa) * scale


def kernel_bound(u: float, *, d: int, features: int, exponent: float) -> float:
    """Relative round-off bound ((d + 2)·a + r + 2)·u of one kernel estimate φ(x)ᵀφ(y) with r
    features and exponent scale a (positive or zero-variance terms)."""
    return ((d + 2) * exponent + features + 2) * u
