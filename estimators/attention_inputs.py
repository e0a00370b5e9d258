"""Argument checks of the attention entry points: shapes, backends, dtypes, masks and projections.

Each error names the argument and what was expected. Finiteness of q, k, v is checked here only
where the caller asks (:func:`check_inputs` with ``finite=True``, :func:`check_finite_inputs`).
"""

from __future__ import annotations

import numpy as np

from .backends import backend_of, dtype_name
from .validation import check_array, check_finite, check_same_backend, check_same_d


def check_inputs(q, k, v, mask, causal, names=("q", "k", "v"), *, finite=True):
    """Shapes (…, L, d), (…, M, d), (…, M, d_v), one backend and dtype, an optional (…, M) bool mask;
    finite values unless ``finite=False`` (the caller then checks them)."""
    for array, name in zip((q, k, v), names, strict=True):
        check_array(array, name, min_ndim=2, finite=finite)
    check_same_backend(dict(zip(names, (q, k, v), strict=True)))
    check_same_d(q, k, *names[:2])
    for array, name in zip((q, k, v), names, strict=True):
        if 0 in array.shape[-2:]:
            raise ValueError(
                f"{name} must have at least one row and one column, got shape {tuple(array.shape)}"
            )
    dtypes = {dtype_name(a) for a in (q, k, v)}
    if len(dtypes) > 1:
        raise TypeError(f"{', '.join(names)} must share one dtype, got {[dtype_name(a) for a in (q, k, v)]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"{names[1]} and {names[2]} must have the same length M, got shapes "
            f"{tuple(k.shape)} and {tuple(v.shape)}"
        )
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {causal!r}")
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"causal attention needs as many queries as keys (L == M), got L={q.shape[-2]}, M={k.shape[-2]}"
        )
    _check_broadcast({name: tuple(a.shape[:-2]) for name, a in zip(names, (q, k, v), strict=True)})
    if mask is not None:
        _check_mask(mask, k, q, names[1])
        _check_mask_batch(mask, q, k, v, names)


def _check_mask_batch(mask, q, k, v, names):
    """A key mask's leading dims must broadcast *into* the batch of q, k, v, never enlarge it."""
    batch = np.broadcast_shapes(*(tuple(a.shape[:-2]) for a in (q, k, v)))
    lead = tuple(mask.shape[:-1])
    grown = np.broadcast_shapes(lead, batch)
    if grown != batch:
        raise ValueError(
            f"key_padding_mask has leading dims {lead} that would grow the batch {batch} of "
            f"{', '.join(names)} to {grown}: a key mask is (..., M), one flag per key, with leading dims "
            f"broadcasting into that batch. A per-query (L, M) mask (PyTorch's attn_mask) is not "
            "supported; causal=True gives the lower-triangular one"
        )


def _check_mask(mask, k, q, key_name):
    try:
        backend = backend_of(mask)
    except TypeError:
        raise TypeError(f"key_padding_mask must be a boolean array, got {type(mask).__name__}") from None
    if backend != backend_of(k):
        raise TypeError(f"key_padding_mask is a {backend} array but {key_name} is a {backend_of(k)} array")
    if dtype_name(mask) != "bool":
        raise TypeError(f"key_padding_mask must have dtype bool (True = keep), got {dtype_name(mask)}")
    if mask.ndim < 1 or mask.shape[-1] != k.shape[-2]:
        raise ValueError(
            f"key_padding_mask must have shape (..., M) with M={k.shape[-2]}, got {tuple(mask.shape)}"
        )
    _check_broadcast({"key_padding_mask": tuple(mask.shape[:-1]), "q": tuple(q.shape[:-2])})


def check_projection(W, q, k):
    if W is None:
        return
    check_array(W, "W", min_ndim=2)
    check_same_backend({"q": q, "W": W})
    check_same_d(q, W, "q", "W")
    if W.shape[-2] < 1:
        raise ValueError(f"W must have at least one projection row (m >= 1), got shape {tuple(W.shape)}")
    _check_broadcast({"W": tuple(W.shape[:-2]), "q": tuple(q.shape[:-2]), "k": tuple(k.shape[:-2])})


def _check_broadcast(shapes):
    try:
        np.broadcast_shapes(*shapes.values())
    except ValueError:
        described = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"leading (batch/head) dimensions must broadcast, got {described}") from None


def check_finite_inputs(q, k, v):
    """``ValueError`` naming the first of q, k, v that holds NaN or Inf.

    With ``denominator="raise"`` this runs only after a row came out bad: the check on the output
    rows (one reduction, one host read, which the denominator check makes anyway) replaces three
    passes over the inputs on the hot path, and a non-finite input always makes its rows bad."""
    for array, name in ((q, "q"), (k, "k"), (v, "v")):
        check_finite(array, name)


__all__ = ["check_finite_inputs", "check_inputs", "check_projection"]
