"""Argument checks shared by every estimator: each error names the argument and what was expected."""

from __future__ import annotations

import math
import numbers

from .backends import backend_of, dtype_name, is_tracer, namespace

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
LOW_PRECISION = ("float16", "bfloat16")


def check_array(x, name: str, *, min_ndim: int = 1, ndim: int | None = None, finite: bool = True):
    """Check that ``x`` is a floating numpy/torch/jax array of the right rank with finite values."""
    try:
        backend_of(x)
    except TypeError:
        raise TypeError(f"{name} must be a numpy, torch or jax array, got {type(x).__name__}") from None
    if dtype_name(x) not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have a floating dtype {FLOAT_DTYPES}, got {dtype_name(x)}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {tuple(x.shape)}")
    if finite:
        check_finite(x, name)
    return x


def check_finite(x, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or Inf (skipped inside ``jax.jit``)."""
    if is_tracer(x):
        return
    xp = namespace(x)
    finite = xp.all(xp.isfinite(x))
    if is_tracer(finite):  # a concrete array closed over inside jit: its check is traced too
        return
    if not bool(finite):
        raise ValueError(f"{name} contains NaN or Inf values")


def check_positive_int(value, name: str) -> int:
    """Return ``value`` as an int, raising ``ValueError`` unless it is an integer >= 1."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an integer >= 1, got {value!r}")
    value = int(value)
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value}")
    return value


def check_eps(eps) -> float:
    """``eps`` as a float, raising ``ValueError`` unless it is a finite number >= 0."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


def check_choice(value, name: str, choices) -> str:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_prefix_sizes(ms, m: int) -> list[int]:
    """``ms`` as a list of ints, ascending and in [1, m]: the prefixes W[..., :m', :] of a W of m rows."""
    sizes = list(ms)
    whole = all(isinstance(size, numbers.Integral) and 1 <= size <= m for size in sizes)
    if sizes != sorted(sizes) or not whole:
        raise ValueError(f"ms must be ascending integers in [1, {m}] (the rows of W), got {sizes}")
    return sizes


def check_same_d(x, W, x_name: str = "x", w_name: str = "W") -> int:
    """The shared last dimension d of inputs ``x`` (…, L, d) and projection ``W`` (…, m, d)."""
    if x.shape[-1] != W.shape[-1]:
        raise ValueError(
            f"{x_name} has d={x.shape[-1]} but {w_name} has d={W.shape[-1]} "
            f"(shapes {tuple(x.shape)} and {tuple(W.shape)}); they must match"
        )
    return int(x.shape[-1])


def check_same_backend(arrays: dict) -> None:
    """All arrays in ``{name: array}`` must come from one backend (and one device)."""
    names = list(arrays)
    first = backend_of(arrays[names[0]])
    for name in names[1:]:
        other = backend_of(arrays[name])
        if other != first:
            raise TypeError(
                f"{name} is a {other} array but {names[0]} is a {first} array; pass arrays from one backend"
            )
