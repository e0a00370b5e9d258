"""Monte Carlo helpers: replicates in memory-bounded chunks, reduced to mergeable moment sums.

:func:`replicate_chunks` splits replicates into chunks, :func:`error_moments` reduces one chunk to
sums of e, e², e⁴, :func:`merge_moments` adds chunks and cells, :func:`moment_summary` gives the
bias and MSE with intervals, and :func:`kernel_errors` runs the whole loop for a kernel estimator.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from estimators.backends import host_float64

from .cells import Cell

ELEMENT_BUDGET = 1 << 22


"""Default number of array elements one Monte Carlo chunk may hold (32 MiB in float64)."""


def jsonable(value):
    """Nested numpy/torch/jax arrays and scalars as plain Python lists, floats, ints and strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return host(value).tolist()


def host(x) -> np.ndarray:
    """Any backend's array as a float64 numpy array on the host."""
    return host_float64(x)


def replicate_chunks(total: int, per_replicate: int, budget: int = ELEMENT_BUDGET) -> list[int]:
    """Split ``total`` replicates into chunk sizes whose arrays hold at most ``budget`` elements.

    ``per_replicate`` is the number of elements one replicate needs (e.g. m·d for a projection).
    Chunks are drawn one after another from the cell's stream, so the split is part of what a seed
    reproduces: a different budget gives different (equally distributed) draws.
    """
    size = max(1, min(total, budget // max(1, per_replicate)))
    return [min(size, total - start) for start in range(0, total, size)]


def pair_groups(pairs: int, per_group: int) -> list[slice]:
    """Consecutive slices of ``pairs`` with at most ``per_group`` pairs each (at least one).

    Unlike :func:`replicate_chunks` the grouping draws nothing: it only bounds memory.
    """
    size = max(1, per_group)
    return [slice(start, min(start + size, pairs)) for start in range(0, pairs, size)]


def pairs_per_group(row, n: int, m: int, budget: int = ELEMENT_BUDGET) -> int:
    """How many pairs one batched estimate of ``n`` replicates takes: as many as keep the features of
    both sides, n·2r elements per pair, within ``budget``; one for rows on uniform variates (the
    discrete maps), whose counts follow each pair's own parameter (one table search per pair, where
    several parameters at once would take a pass per count level)."""
    if row.projection == "uniform":
        return 1
    return budget // (n * 2 * row.feature_width(m))


def error_moments(errors) -> dict:
    """Sums over replicates (axis 0) of e, e², e⁴ and their count, as float64 host lists.

    ``errors`` is (n, …) on any backend; the sums merge across chunks and cells with
    :func:`merge_moments`, and give the mean error (bias) and the MSE with confidence intervals.
    """
    e = host(errors)
    squared = e * e
    return {
        "n": int(e.shape[0]),
        "s1": e.sum(axis=0).tolist(),
        "s2": squared.sum(axis=0).tolist(),
        "s4": (squared * squared).sum(axis=0).tolist(),
    }


def merge_moments(parts: Iterable[dict]) -> dict:
    """Add moment sums from :func:`error_moments` (chunks of one cell, or cells of one point)."""
    parts = list(parts)
    if not parts:
        raise ValueError("parts must hold at least one moment dict")
    merged = {"n": sum(p["n"] for p in parts)}
    for name in ("s1", "s2", "s4"):
        merged[name] = np.sum([np.asarray(p[name], dtype=np.float64) for p in parts], axis=0)
    return merged


def moment_summary(moments: dict, z: float = 2.576) -> dict:
    """Mean error and MSE with normal-approximation ``z`` confidence half-widths (default 99%).

    bias = s1/n ± z·sd(e)/√n; MSE = s2/n ± z·sd(e²)/√n. Exponential features are heavy-tailed, so
    these sample-based intervals are for display; hypothesis tests use the theoretical variance.
    """
    n = moments["n"]
    mean = np.asarray(moments["s1"]) / n
    mse = np.asarray(moments["s2"]) / n
    var_e = np.maximum(mse - mean**2, 0.0) * n / max(n - 1, 1)
    var_sq = np.maximum(np.asarray(moments["s4"]) / n - mse**2, 0.0) * n / max(n - 1, 1)
    return {
        "n": n,
        "bias": mean,
        "bias_ci": z * np.sqrt(var_e / n),
        "mse": mse,
        "mse_ci": z * np.sqrt(var_sq / n),
    }


def kernel_errors(
    cell: Cell, row, m: int, x, y, reference, replicates: int, *, relative=True, draw=None, ms=None
) -> dict:
    """Moment sums of K̂(x_p, y_p) − reference over ``replicates`` independent draws of W.

    ``row`` is a registry :class:`~estimators.registry.Estimator`; ``x``, ``y`` are host (P, d) pairs
    and ``reference`` (P,) the value each estimate is compared with (errors are K̂/reference − 1
    when ``relative``). W (n, m, d) is drawn ``n`` replicates at a time on the run's backend and
    device (``draw(m, d, n, rng, like)`` overrides ``row.draw``); the P pairs of one replicate share
    W and each pair is estimated on its own: a group of pairs (:func:`pairs_per_group`, within the
    element budget) goes through one ``row.estimate(x_g, y_g, W[:, None])`` → (n, G), in which
    data-dependent parameters are per pair and every operation acts on each pair alone, so the values
    equal those of one call per pair bit for bit. Returns :func:`merge_moments` of the (n, P) errors.
    With ``ms`` (m' ≤ m, a row that :attr:`~estimators.registry.Estimator.nests`), each draw of m
    rows also gives the estimates of its first m' rows
    (:meth:`~estimators.registry.Estimator.estimate_prefixes`): errors (n, len(ms), P).
    """
    target = cell.context.target
    xs, ys = target.asarray(np.asarray(x)), target.asarray(np.asarray(y))
    d = xs.shape[-1]
    rng = cell.rng()
    reference = np.asarray(reference, dtype=np.float64)
    parts = []
    for n in replicate_chunks(replicates, m * (d + 4)):
        if draw is None:
            W = row.draw(m, d, batch_shape=(n,), seed=rng, like=xs)
        else:
            W = draw(m, d, n, rng, xs)
        shared = W[:, None, ...]
        groups = pair_groups(xs.shape[0], pairs_per_group(row, n, m))
        if ms is None:
            per_group = [row.estimate(xs[g], ys[g], shared) for g in groups]
        else:
            per_group = [row.estimate_prefixes(xs[g], ys[g], shared, ms) for g in groups]
        estimates = np.concatenate([host(estimate) for estimate in per_group], axis=1)
        if ms is not None:
            estimates = np.moveaxis(estimates, 1, -1)
        errors = estimates / reference - 1 if relative else estimates - reference
        parts.append(error_moments(errors))
    return merge_moments(parts)
