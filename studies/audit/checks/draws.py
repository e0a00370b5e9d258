"""Projection draws and kernel estimates through an adapter (host float64, read-only inputs).

Draws of one (adapter, m, d, count, seed) are cached for the run, so the projection checks share
one set of draws (each check still controls its own family α; sharing only makes them dependent).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from studies.core import stats

from .core import Settings, read_only, seeds_for


def projections(adapter, m: int, d: int, count: int, seed: int) -> np.ndarray:
    """(count, m, d) independent draws of the library's sampler rooted at ``seed`` (read-only)."""
    return _cached(adapter, int(m), int(d), int(count), int(seed))


@lru_cache(maxsize=16)
def _cached(adapter, m, d, count, seed):
    if adapter.sample_projections is not None:
        W = stats.host(adapter.sample_projections(m, d, count, seed))
    else:
        seeds = seeds_for(Settings(seed=seed), "draws", count)
        W = np.stack([stats.host(adapter.sample_projection(m, d, s)) for s in seeds])
    if W.shape != (count, m, d):
        raise ValueError(f"the sampler must return ({count}, {m}, {d}) draws, got {W.shape}")
    (W,) = read_only(W)
    return W


def kernel_estimates(adapter, x, y, W) -> np.ndarray:
    """K̂(x, y) for one pair x, y (d,) and every draw of W (n, m, d): (n,) float64."""
    x, y = read_only(x, y)
    estimates = stats.host(adapter.kernel_estimate(x, y, W))
    if estimates.shape != (W.shape[0],):
        raise ValueError(
            f"kernel_estimate must return one value per draw ({W.shape[0]},), got {estimates.shape}"
        )
    return estimates


def clear() -> None:
    """Forget cached draws (between audits of different adapters in one process)."""
    _cached.cache_clear()
