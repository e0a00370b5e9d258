"""Heads and redraws: every head of a layer and every redraw gets a fresh, independent projection.

Two defects are tested separately: repeated matrices (a head or redraw that returns a matrix seen
before: a shared W, a redraw cycling through a few matrices, a data-derived seed that collides) and
correlation (draws that differ but are not independent). Repeats are deterministic: two independent
draws of an (m, d) Gaussian-law matrix are at distance about √(2md); a pair closer than
1e-3·√(md) has probability below 1e-100, so any such pair is a repeat. Correlation: the errors
e = K̂ − K of one fixed pair (d = 8, m = 8, norms 1/2) under two draws that should be independent
have correlation 0; √n·r → N(0, 1) (variance 1/n under independence, E[e₁²e₂²] = E[e₁²]E[e₂²]),
two-sided, α = 0.01; n is planned for the settings' power against |ρ| = 0.2.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from estimators import theory
from studies import stats

from .core import FAMILY_ALPHA, Settings, not_applicable, read_only, rng_for, seeds_for, verdict
from .kernels import random_pair

D = 8
M = 8
HEADS = 4
CORRELATION_EFFECT = 0.2
REPEAT_DISTANCE = 1e-3


def _n(settings: Settings) -> int:
    return int(stats.required_samples(CORRELATION_EFFECT, FAMILY_ALPHA, settings.power, 1.0))


def repeats(W) -> tuple[int, int]:
    """(distinct, repeated pairs) among draws W (n, m, d): pairs closer than 1e-3·√(md)."""
    flat = np.asarray(W, dtype=np.float64).reshape(len(W), -1)
    squared = np.sum(flat * flat, axis=-1)
    distance = squared[:, None] + squared[None, :] - 2 * flat @ flat.T
    close = np.triu(distance <= (REPEAT_DISTANCE**2) * flat.shape[1], k=1)
    repeated = int(close.sum())
    distinct = len(W) - int(np.any(close, axis=0).sum())
    return distinct, repeated


def _errors(adapter, W) -> np.ndarray:
    x, y = random_pair(D)
    (x_read, y_read, W_read) = read_only(x, y, W)
    return stats.host(adapter.kernel_estimate(x_read, y_read, W_read)) - float(
        theory.mean(adapter.claims, x, y)
    )


def _correlation(first, second) -> float:
    """Pearson correlation; 1 (full dependence) when the sequences are identical or one is constant
    (one W reused on every draw), where the formula would give 0/0."""
    if np.array_equal(first, second) or np.std(first) == 0 or np.std(second) == 0:
        return 1.0
    return float(np.corrcoef(first, second)[0, 1])


def _verdict(name, title, settings, all_draws, first, second, adapter, what):
    distinct, repeated = repeats(all_draws)
    r = _correlation(_errors(adapter, first), _errors(adapter, second))
    n = first.shape[0]
    z = r * math.sqrt(n)
    critical = stats.critical_value(FAMILY_ALPHA)
    low, high = np.tanh(
        np.arctanh(np.clip(r, -0.999999, 0.999999))
        + np.array([-1, 1]) * stats.critical_value(0.05) / math.sqrt(n - 3)
    )
    diagnosis = []
    if repeated:
        diagnosis.append(
            f"repeated matrices: {distinct} distinct among {len(all_draws)} {what} "
            f"({repeated} repeated pairs)"
        )
    if abs(z) > critical:
        diagnosis.append(f"errors under two draws that should be independent correlate: r = {r:+.3f}")
    return verdict(
        name,
        title,
        repeated == 0 and abs(z) <= critical,
        max(abs(r), repeated / max(len(all_draws), 1)),
        alpha=FAMILY_ALPHA,
        statistic=f"{distinct} distinct of {len(all_draws)} {what}; z = √n·r = {z:.2f} "
        f"(critical {critical:.2f}, n = {n})",
        p_value=float(2 * sps.norm.sf(abs(z))),
        effect=f"error correlation r = {r:+.3f} (95% CI {low:+.3f} … {high:+.3f}); {repeated} repeated pairs",
        tolerance=f"no pair closer than {REPEAT_DISTANCE:g}·√(md); "
        f"|√n·r| ≤ {critical:.2f} (α {FAMILY_ALPHA})",
        power=f"power {settings.power} against |ρ| = {CORRELATION_EFFECT}; any repeat is detected",
        diagnosis=diagnosis,
    )


def _guard(adapter, name, title):
    if not adapter.accepts_projection(M, D):
        return not_applicable(name, title, f"the adapter does not build m = {M}, d = {D} projections")
    return None


def check_head_independence(adapter, settings: Settings):
    """Heads of one layer get distinct, independent projections: n layers of 4 heads; repeats
    among all heads of all layers, and the error correlation between heads 0 and 1 across layers."""
    name, title = "head-independence", "Distinct, independent projections across heads"
    guard = _guard(adapter, name, title)
    if guard:
        return guard
    n = _n(settings)
    layers = np.stack(
        [stats.host(adapter.head_projections(M, D, HEADS, s)) for s in seeds_for(settings, name, n)]
    )
    return _verdict(
        name, title, settings, layers.reshape(-1, M, D), layers[:, 0], layers[:, 1], adapter, "heads"
    )


def check_redraw_independence(adapter, settings: Settings):
    """Successive redraws give distinct, independent projections: one sequence of n + 1 redraws;
    repeats among all of them (a redraw cycling through a few matrices) and the lag-1 correlation."""
    name, title = "redraw-independence", "Distinct, independent projections across redraws"
    guard = _guard(adapter, name, title)
    if guard:
        return guard
    n = _n(settings)
    sequence = stats.host(adapter.redraw_projections(M, D, n + 1, seeds_for(settings, name, 1)[0]))
    return _verdict(name, title, settings, sequence, sequence[:-1], sequence[1:], adapter, "redraws")


def check_data_redraws(adapter, settings: Settings):
    """Redraws seeded from the data: n + 1 random input batches (L = 16, d = 8) give distinct,
    independent projections (repeats among all of them, lag-1 error correlation)."""
    name, title = "data-redraws", "Distinct, independent projections for redraws seeded from the data"
    guard = _guard(adapter, name, title)
    if guard:
        return guard
    n = _n(settings)
    (inputs,) = read_only(rng_for(settings, name).standard_normal((n + 1, 16, D)))
    sequence = stats.host(adapter.data_projections(M, D, inputs))
    return _verdict(name, title, settings, sequence, sequence[:-1], sequence[1:], adapter, "input batches")
