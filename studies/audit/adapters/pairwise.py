"""Kernel estimates for many (x, y, W) triples through a library's feature map, chunk by chunk.

The audit asks for K̂(x, y) = φ_W(x)ᵀφ_W(y) (Performers Eq. 4) with a different projection W per
pair; libraries map a batch of rows with ONE W. :func:`estimate` broadcasts the pairs against the
projections and hands each chunk to an adapter's ``feature_rows(rows, W)`` that returns every row's
features under its own W (however the library is best asked for that).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CHUNK = 64


def estimate(feature_rows: Callable, x, y, W, chunk: int = CHUNK) -> np.ndarray:
    """K̂(x, y) for pairs x, y (…, d) and projections W (…, m, d), broadcasting → (…).

    ``feature_rows(rows, W)`` takes rows (C, d) and projections (C, m, d) and returns (C, r): row c
    mapped with W[c].
    """
    x, y, W = (np.asarray(a, dtype=np.float64) for a in (x, y, W))
    if W.ndim < 2 or x.shape[-1] != W.shape[-1] or y.shape[-1] != W.shape[-1]:
        raise ValueError(
            f"x, y must be (…, d) and W (…, m, d) with one d, got {x.shape}, {y.shape}, {W.shape}"
        )
    batch = np.broadcast_shapes(x.shape[:-1], y.shape[:-1], W.shape[:-2])
    m, d = W.shape[-2:]
    x, y = (np.broadcast_to(a, (*batch, d)).reshape(-1, d) for a in (x, y))
    W = np.broadcast_to(W, (*batch, m, d)).reshape(-1, m, d)
    estimates = np.empty(W.shape[0])
    for start in range(0, W.shape[0], chunk):
        rows = slice(start, start + chunk)
        phi_x, phi_y = (np.asarray(feature_rows(a[rows], W[rows]), dtype=np.float64) for a in (x, y))
        estimates[rows] = np.sum(phi_x * phi_y, axis=-1)
    return estimates.reshape(batch)


def diagonal_blocks(features: np.ndarray, count: int, m: int) -> np.ndarray:
    """From features (C, C·m) of C rows under C stacked projections, each row's own block → (C, m)."""
    return features.reshape(count, count, m)[np.arange(count), np.arange(count)]
