"""Input handling shared by the closed forms of :mod:`estimators.theory` (float64 numpy on the host).

Most closed forms are functions of the squared norms ‖x‖², ‖y‖², the inner product xᵀy and d
(theory.md §1); the data-dependent rules of §10 (SADERF's Ψ*, the discrete rates) also need the
coordinates. :func:`pair_stats` computes all of it once, in float64, broadcasting x (…, d) against
y (…, d).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import backends


class PairStats(NamedTuple):
    """Summary of input pairs: float64 arrays of the broadcast leading shape (…), and the pairs.

    ``t = ‖x + y‖²`` and ``s = ‖x − y‖²`` are computed from the coordinates (not from the norms),
    so they keep full relative accuracy when x ≈ −y or x ≈ y. ``angle`` θ ∈ [0, π] between x and y is
    2·atan2(‖x̂ − ŷ‖, ‖x̂ + ŷ‖) on the unit vectors and ``supplement`` π − θ = 2·atan2(‖x̂ + ŷ‖, ‖x̂ − ŷ‖),
    each accurate where it is small (both π/2 if x or y is 0). ``x`` and ``y`` are the broadcast
    float64 pairs (…, d).
    """

    sq_x: np.ndarray
    sq_y: np.ndarray
    inner: np.ndarray
    t: np.ndarray
    s: np.ndarray
    angle: np.ndarray
    supplement: np.ndarray
    d: int
    x: np.ndarray
    y: np.ndarray


def host_float64(a, name: str) -> np.ndarray:
    """``a`` (numpy, torch, jax array or array-like) as a finite float64 numpy array
    (:func:`estimators.backends.host_float64`, checked)."""
    try:
        host = backends.host_float64(a)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real array of numbers, got {type(a).__name__}") from None
    if not np.all(np.isfinite(host)):
        raise ValueError(f"{name} contains NaN or Inf values")
    return host


def pair_stats(x, y) -> PairStats:
    """Float64 norms, inner product, t = ‖x+y‖², s = ‖x−y‖² of pairs x (…, d), y (…, d)."""
    x = host_float64(x, "x")
    y = host_float64(y, "y")
    if x.ndim < 1 or y.ndim < 1:
        raise ValueError(f"x and y must have shape (..., d), got shapes {x.shape} and {y.shape}")
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x has d={x.shape[-1]} but y has d={y.shape[-1]}; they must match")
    if x.shape[-1] < 1:
        raise ValueError("x and y must have d >= 1 coordinates")
    try:
        x, y = np.broadcast_arrays(x, y)
    except ValueError:
        raise ValueError(f"x {x.shape} and y {y.shape} do not broadcast over leading dims") from None
    return PairStats(
        sq_x=np.sum(x * x, axis=-1),
        sq_y=np.sum(y * y, axis=-1),
        inner=np.sum(x * y, axis=-1),
        t=np.sum((x + y) ** 2, axis=-1),
        s=np.sum((x - y) ** 2, axis=-1),
        angle=_angle(x, y),
        supplement=_angle(x, -y),
        d=int(x.shape[-1]),
        x=x,
        y=y,
    )


def _angle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    norm_x = np.linalg.norm(x, axis=-1, keepdims=True)
    norm_y = np.linalg.norm(y, axis=-1, keepdims=True)
    unit_x = x / np.where(norm_x > 0, norm_x, 1.0)
    unit_y = y / np.where(norm_y > 0, norm_y, 1.0)
    angle = 2 * np.arctan2(np.linalg.norm(unit_x - unit_y, axis=-1), np.linalg.norm(unit_x + unit_y, axis=-1))
    degenerate = (norm_x[..., 0] == 0) | (norm_y[..., 0] == 0)
    return np.where(degenerate, np.pi / 2, angle)


def as_output(values: np.ndarray):
    """Arrays stay arrays; 0-d results become numpy float64 scalars."""
    values = np.asarray(values, dtype=np.float64)
    return values[()] if values.ndim == 0 else values


def check_dimension(d, name: str = "d") -> int:
    """``d`` as an int >= 1 (``ValueError`` / ``TypeError`` naming the argument otherwise)."""
    if isinstance(d, bool) or not hasattr(d, "__index__"):
        raise TypeError(f"{name} must be an integer >= 1, got {d!r}")
    if int(d) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {d}")
    return int(d)
