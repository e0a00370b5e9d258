"""Random feature maps φ with φ(x)ᵀφ(y) ≈ K(x, y) (Performers, Eq. 5 and Lemma 1; theory.md §3).

Every map takes inputs ``x`` of shape (…, L, d) and a projection ``W`` of shape (m, d) or
(…, m, d) (leading dims broadcast against x's) and returns features of shape (…, L, r):

============  ==========================================================  =====  ===========
name          φ(x)                                                        r      E[φ(x)ᵀφ(y)]
============  ==========================================================  =====  ===========
trig          e^{‖x‖²/2} m^{-1/2} [cos(Wx), sin(Wx)]                      2m     exp(xᵀy)
positive      e^{−‖x‖²/2} m^{-1/2} exp(Wx)                                m      exp(xᵀy)
hyperbolic    e^{−‖x‖²/2} (2m)^{-1/2} [exp(Wx), exp(−Wx)]                 2m     exp(xᵀy)
generalized   m^{-1/2} f(Wx) (with W) or f(x) (``W=None``)                m / d  E f(ωᵀx)f(ωᵀy)
============  ==========================================================  =====  ===========

With ``W`` having χ(d)-normed rows the three softmax maps are unbiased; with √d-normed rows the
positive map estimates SMREG (theory.md §6). ``generalized`` with ReLU and a Gaussian W estimates
the order-1 arc-cosine kernel (‖x‖‖y‖/2π)(sin θ + (π − θ) cos θ), not softmax.

Inputs are used as given; ``scale_inputs=True`` first multiplies them by d^{-1/4}, so that
φ(q)ᵀφ(k) estimates exp(qᵀk/√d) as in attention.

Numerics: the exponential maps are computed in log space, ``φ = c · factor · exp(log_amplitude −
shift)``. A *stabilizer* picks the shift: ``"row"`` subtracts each row's largest log-amplitude (for
queries), ``"global"`` one constant per leading index over all rows and features (for keys in
bidirectional attention). Both cancel exactly in normalized attention (theory.md §8) but change
φ(x)ᵀφ(y), so kernel estimates use ``stabilizer=None``. ``eps`` adds a constant to every positive
feature as the public code does; it biases every estimate and defaults to 0.
Half-precision inputs are computed in float32 and returned in their own dtype.
"""

from __future__ import annotations

from typing import NamedTuple

from .backends import dtype_name, namespace
from .validation import LOW_PRECISION, check_array, check_choice, check_same_d

FEATURES = ("trig", "positive", "hyperbolic", "generalized")
STABILIZERS = (None, "row", "global")


class FeatureParts(NamedTuple):
    """A feature map before assembly: ``φ = scale · factor · exp(log_amplitude − shift)``.

    ``log_amplitude`` is (…, L, r) or (…, L, 1) (``None`` when the map has no exponential part);
    ``factor`` is (…, L, r) or ``None`` (meaning 1); ``dtype`` is the caller's dtype name.
    """

    log_amplitude: object
    factor: object
    scale: float
    dtype: str


def relu(u):
    """ReLU, max(u, 0), on any backend."""
    xp = namespace(u)
    return xp.where(u > 0, u, xp.zeros_like(u))


def features_per_projection(name: str) -> int:
    """r/m: 2 for trig and hyperbolic (two functions of each projection), else 1."""
    check_choice(name, "feature", FEATURES)
    return 2 if name in ("trig", "hyperbolic") else 1


def feature_parts(name, x, W, *, scale_inputs=False, f=relu, validate=True) -> FeatureParts:
    """Compute the parts of feature map ``name`` for ``x`` (…, L, d) and ``W`` (…, m, d).

    ``W`` may be ``None`` only for ``generalized`` (deterministic features f(x)).
    """
    check_choice(name, "feature", FEATURES)
    if validate:
        check_array(x, "x", min_ndim=2)
        if W is not None:
            check_array(W, "W", min_ndim=2)
            check_same_d(x, W)
    if W is None and name != "generalized":
        raise ValueError(f"W must be a projection (m, d) array for feature {name!r}, got None")
    xp = namespace(x)
    dtype = dtype_name(x)
    if dtype in LOW_PRECISION:
        x = xp.astype(x, xp.float32)
    if scale_inputs:
        x = x * x.shape[-1] ** -0.25
    if W is None:
        return FeatureParts(None, f(x), 1.0, dtype)
    W = xp.astype(W, x.dtype)
    m = W.shape[-2]
    projected = xp.matmul(x, xp.matrix_transpose(W))
    half_sq_norm = xp.sum(x * x, axis=-1, keepdims=True) / 2
    if name == "positive":
        return FeatureParts(projected - half_sq_norm, None, m**-0.5, dtype)
    if name == "hyperbolic":
        both = xp.concat([projected, -projected], axis=-1)
        return FeatureParts(both - half_sq_norm, None, (2 * m) ** -0.5, dtype)
    if name == "trig":
        trig = xp.concat([xp.cos(projected), xp.sin(projected)], axis=-1)
        return FeatureParts(half_sq_norm, trig, m**-0.5, dtype)
    return FeatureParts(None, f(projected), m**-0.5, dtype)


def row_shift(parts: FeatureParts):
    """Per-row stabilizer (…, L, 1): the row's largest log-amplitude (cancels for queries)."""
    xp = namespace(parts.log_amplitude)
    return xp.max(parts.log_amplitude, axis=-1, keepdims=True)


def global_shift(parts: FeatureParts):
    """One stabilizer (…, 1, 1) per leading index: the largest log-amplitude over rows and features."""
    return namespace(parts.log_amplitude).max(row_shift(parts), axis=-2, keepdims=True)


def assemble(parts: FeatureParts, shift=None, eps=0.0, *, keep_float32=False):
    """Features (…, L, r) from ``parts``, with log-space ``shift`` (array or None) and ``eps`` added.

    The result is in the caller's dtype unless ``keep_float32`` (used by attention to accumulate
    half-precision work in float32).
    """
    if parts.log_amplitude is None:
        values = parts.factor
        xp = namespace(values)
        if shift is not None:
            values = values * xp.exp(-shift)
    else:
        xp = namespace(parts.log_amplitude)
        logs = parts.log_amplitude if shift is None else parts.log_amplitude - shift
        values = xp.exp(logs)
        if parts.factor is not None:
            values = values * parts.factor
    values = values * parts.scale
    if eps:
        values = values + eps * parts.scale
    if parts.dtype in LOW_PRECISION and not keep_float32:
        values = xp.astype(values, getattr(xp, parts.dtype))
    return values


def _shift_for(parts: FeatureParts, stabilizer):
    check_choice(stabilizer, "stabilizer", STABILIZERS)
    if stabilizer is None or parts.log_amplitude is None:
        return None
    return row_shift(parts) if stabilizer == "row" else global_shift(parts)


def _exponential_features(name, x, W, scale_inputs, stabilizer, eps=0.0):
    parts = feature_parts(name, x, W, scale_inputs=scale_inputs)
    return assemble(parts, _shift_for(parts, stabilizer), eps)


def trig(x, W, *, scale_inputs=False, stabilizer=None):
    """Trigonometric softmax features, (…, L, 2m): e^{‖x‖²/2} m^{-1/2} [cos(Wx), sin(Wx)].

    Unbiased for exp(xᵀy) with Gaussian rows (Performers §2.3); values can be negative.
    """
    return _exponential_features("trig", x, W, scale_inputs, stabilizer)


def positive(x, W, *, scale_inputs=False, stabilizer=None, eps=0.0):
    """Positive random features (PRF, FAVOR+), (…, L, m): e^{−‖x‖²/2} m^{-1/2} exp(Wx).

    Unbiased for exp(xᵀy) with Gaussian rows (Performers, Lemma 1). ``eps`` > 0 biases.
    """
    return _exponential_features("positive", x, W, scale_inputs, stabilizer, eps)


def hyperbolic(x, W, *, scale_inputs=False, stabilizer=None, eps=0.0):
    """Hyperbolic positive features, (…, L, 2m): e^{−‖x‖²/2} (2m)^{-1/2} [exp(Wx), exp(−Wx)].

    φ(x)ᵀφ(y) = Λ·(1/m)Σ cosh(ω_iᵀ(x+y)), unbiased for exp(xᵀy) (Performers, Lemma 1).
    """
    return _exponential_features("hyperbolic", x, W, scale_inputs, stabilizer, eps)


def generalized(x, W=None, *, f=relu, eps=0.0, scale_inputs=False):
    """Generalized features (Performers §2.3, App. A.4): m^{-1/2} f(Wx) (…, L, m), or f(x) (…, L, d).

    With ``f = relu`` and Gaussian W, φ(x)ᵀφ(y) is unbiased for the arc-cosine kernel of order 1.
    Without W (the official Performer-ReLU default) the features are deterministic.
    """
    parts = feature_parts("generalized", x, W, scale_inputs=scale_inputs, f=f)
    return assemble(parts, None, eps)


def feature_map(name):
    """The public feature function for ``name`` (one of :data:`FEATURES`)."""
    check_choice(name, "feature", FEATURES)
    return {"trig": trig, "positive": positive, "hyperbolic": hyperbolic}.get(name, generalized)


__all__ = [
    "FEATURES",
    "FeatureParts",
    "assemble",
    "feature_map",
    "feature_parts",
    "features_per_projection",
    "generalized",
    "global_shift",
    "hyperbolic",
    "positive",
    "relu",
    "row_shift",
    "trig",
]
