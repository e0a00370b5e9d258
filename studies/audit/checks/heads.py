"""Heads and redraws: every head of a layer and every redraw gets a fresh, independent projection.

Three defects are tested separately: repeated matrices (a head or redraw that returns a matrix seen
before: a shared W, a redraw cycling through a few matrices, a data-derived seed that collides),
correlated errors (draws that differ but are not independent) and reused row norms (draws with new
directions but the same norms, which neither of the first two sees). Repeats are deterministic: two
independent draws of an (m, d) Gaussian-law matrix are at distance about √(2md); a pair closer
than 1e-3·√(md) has probability below 1e-100, so any such pair is a repeat. The two statistical
sub-tests share the check's family α = 0.01 by Bonferroni (α = 0.005 each, two-sided):

* error correlation: the errors e = K̂ − K of one fixed pair (d = 8, m = 8, norms 1/2) under two
  draws that should be independent have correlation 0; √n·r → N(0, 1) (variance 1/n under
  independence, E[e₁²e₂²] = E[e₁²]E[e₂²]); n is planned for the settings' power against |ρ| = 0.2;
* norm correlation (rows with χ(d) norms): the norms ‖w_i‖ of row i under the two draws, paired
  over the n draw pairs, have correlation 0. The test assumes nothing about the rows within a draw
  (a library whose row norms depend on each other, or differ in law from row to row, must not fail
  it for that): each row index is standardized over the draws by its own mean and spread, per draw
  pair r it takes s_r = mean_i of the standardized products, which are uncorrelated across r under
  independence (successive pairs share a draw, but their centred products are uncorrelated), and
  z = √n·mean(s)/sd(s) → N(0, 1) with sd(s) estimated from the s_r. The effect reported is r =
  mean(s). Stated effect |ρ| = 0.1 (power computed for independent rows, N = n·m). A row whose norm
  is the same in every draw (to 1e-6 relative: independent χ(d) norms never are) while the rows'
  norms differ is a deterministic reuse and fails at once; one norm for every row and draw (unit
  rows) is a norm law, left to the projection checks. Skipped for claimed √d norms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from estimators import registry, theory
from studies.core import stats

from .core import FAMILY_ALPHA, Settings, not_applicable, read_only, rng_for, seeds_for, verdict
from .kernels import random_pair

D = 8
M = 8
HEADS = 4
CORRELATION_EFFECT = 0.2
NORM_CORRELATION_EFFECT = 0.1
REPEAT_DISTANCE = 1e-3
SUBTEST_ALPHA = FAMILY_ALPHA / 2
CONSTANT_NORM = 1e-6
DATA_LENGTH = 16
DATA_SCALE_DECADES = 4


def _n(settings: Settings) -> int:
    return int(stats.required_samples(CORRELATION_EFFECT, SUBTEST_ALPHA, settings.power, 1.0))


def repeats(W) -> tuple[int, int]:
    """(distinct, repeated pairs) among draws W (n, m, d): pairs closer than 1e-3·√(md)."""
    close = _close_pairs(W)
    return len(W) - int(np.any(close, axis=0).sum()), int(close.sum())


def repeated_draws(W) -> np.ndarray:
    """(n,) bool: the draws of W (n, m, d) that have a repeat (another draw closer than 1e-3·√(md))."""
    close = _close_pairs(W)
    return np.any(close, axis=0) | np.any(close, axis=1)


def _close_pairs(W) -> np.ndarray:
    flat = np.asarray(W, dtype=np.float64).reshape(len(W), -1)
    squared = np.sum(flat * flat, axis=-1)
    distance = squared[:, None] + squared[None, :] - 2 * flat @ flat.T
    return np.triu(distance <= (REPEAT_DISTANCE**2) * flat.shape[1], k=1)


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


def _standardized_norms(first, second) -> tuple[np.ndarray, np.ndarray, int]:
    """Row norms (n, m) of both sequences, each row index standardized over the draws (its own mean
    and spread: rows need not share a law), keeping the rows whose norm varies; and how many rows
    keep their own norm in every draw of both sequences (to 1e-6 relative) while the rows' norms
    differ: a reused norm vector. One norm for every row and draw (unit or √d rows) is a fixed norm
    law, which the projection checks judge, not a dependence between draws."""
    a, b = (np.linalg.norm(draws_, axis=-1) for draws_ in (first, second))
    both = np.concatenate([a, b])
    tolerance = CONSTANT_NORM * np.abs(both).mean(axis=0)
    constant = np.ptp(both, axis=0) <= tolerance
    fixed_law = bool(np.all(constant)) and np.ptp(both) <= CONSTANT_NORM * np.abs(both).mean()
    keep = ~constant & (np.std(a, axis=0) > 0) & (np.std(b, axis=0) > 0)
    a, b = a[:, keep], b[:, keep]
    reused = 0 if fixed_law else int(constant.sum())
    return (a - a.mean(axis=0)) / a.std(axis=0), (b - b.mean(axis=0)) / b.std(axis=0), reused


def norm_correlation(first, second) -> float:
    """Correlation of the row norms ‖w_i‖ of two sequences of draws (n, m, d), row by row over the
    draws and averaged over the rows (module docstring); 1 when the norms are identical."""
    a, b, _ = _standardized_norms(first, second)
    return float(np.mean(a * b)) if a.size else 0.0


def norm_z(first, second) -> float:
    """z of the norm-correlation sub-test (module docstring) for two sequences of draws (n, m, d):
    √n·mean(s)/sd(s) over the per-draw-pair means s_r of the standardized products; ±∞ when every
    s_r is equal and nonzero, 0 when no row's norm varies."""
    a, b, _ = _standardized_norms(first, second)
    if not a.size:
        return 0.0
    s = np.mean(a * b, axis=-1)
    spread = np.std(s, ddof=1)
    if spread == 0:
        return math.copysign(math.inf, float(s[0])) if s[0] else 0.0
    return float(np.sqrt(len(s)) * np.mean(s) / spread)


def _verdict(name, title, settings, all_draws, first, second, adapter, what):
    distinct, repeated = repeats(all_draws)
    r = _correlation(_errors(adapter, first), _errors(adapter, second))
    n = first.shape[0]
    z = r * math.sqrt(n)
    critical = stats.critical_value(SUBTEST_ALPHA)
    low, high = np.tanh(
        np.arctanh(np.clip(r, -0.999999, 0.999999))
        + np.array([-1, 1]) * stats.critical_value(0.05) / math.sqrt(n - 3)
    )
    norms = _norm_subtest(adapter, first, second, critical)
    diagnosis = []
    if repeated:
        diagnosis.append(
            f"repeated matrices: {distinct} distinct among {len(all_draws)} {what} "
            f"({repeated} repeated pairs)"
        )
    if abs(z) > critical:
        diagnosis.append(f"errors under two draws that should be independent correlate: r = {r:+.3f}")
    if norms.rejected:
        how = "reuse the row norms" if norms.r > 0 else "have anti-correlated row norms"
        diagnosis.append(f"{what} {how}: r = {norms.r:+.3f} over N = {norms.pairs} row pairs")
    p_values = [2 * sps.norm.sf(abs(z))] + ([norms.p] if norms.p is not None else [])
    return verdict(
        name,
        title,
        repeated == 0 and abs(z) <= critical and not norms.rejected,
        max(abs(r), repeated / max(len(all_draws), 1), abs(norms.r or 0.0)),
        alpha=FAMILY_ALPHA,
        statistic=f"{distinct} distinct of {len(all_draws)} {what}; errors z = √n·r = {z:.2f} "
        f"(n = {n}); {norms.statistic} (critical {critical:.2f} each)",
        p_value=float(min(1.0, len(p_values) * min(p_values))),
        effect=f"error correlation r = {r:+.3f} (95% CI {low:+.3f} … {high:+.3f}); {norms.text}; "
        f"{repeated} repeated pairs",
        tolerance=f"no pair closer than {REPEAT_DISTANCE:g}·√(md); |√n·r| and |√N·r_norm| ≤ {critical:.2f} "
        f"(α {SUBTEST_ALPHA:g} each, family α {FAMILY_ALPHA} by Bonferroni)",
        power=f"power {settings.power} against error |ρ| = {CORRELATION_EFFECT}; {norms.power}; "
        "any repeat is detected",
        diagnosis=diagnosis,
    )


@dataclass(frozen=True)
class NormSubtest:
    """Outcome of the norm-correlation sub-test (module docstring): r over ``pairs`` row pairs, its
    p-value, whether it rejects, and the texts of the verdict (r and p None when skipped)."""

    r: float | None
    p: float | None
    pairs: int
    rejected: bool
    statistic: str
    text: str
    power: str


def _norm_subtest(adapter, first, second, critical) -> NormSubtest:
    """The norm-correlation sub-test of two sequences of draws (n, m, d); skipped for √d norms."""
    if registry.get(adapter.claims).norms == "fixed":
        skipped = "norm correlation not tested (√d norms are constant by design)"
        return NormSubtest(None, None, 0, False, skipped, skipped, skipped)
    pairs = first.shape[0] * first.shape[1]
    constant = _standardized_norms(first, second)[2]
    if constant:
        rows = f"{constant} of {first.shape[1]} rows keep one norm in every draw"
        return NormSubtest(1.0, 0.0, pairs, True, f"norms: {rows}", f"row norms reused: {rows}", "any reuse")
    r = norm_correlation(first, second)
    z = norm_z(first, second)
    power = float(stats.power(NORM_CORRELATION_EFFECT, pairs, SUBTEST_ALPHA, 1.0))
    return NormSubtest(
        r,
        float(2 * sps.norm.sf(abs(z))),
        pairs,
        abs(z) > critical,
        f"norms z = √n·mean(s)/sd(s) = {z:.2f} (n = {first.shape[0]} draw pairs, N = {pairs} row pairs)",
        f"row-norm correlation r = {r:+.3f} ± {stats.critical_value(0.05) / math.sqrt(pairs):.3f}",
        f"power {power:.3f} against norm |ρ| = {NORM_CORRELATION_EFFECT} (N = {pairs})",
    )


def _guard(adapter, name, title):
    if not adapter.accepts_projection(M, D):
        return not_applicable(name, title, f"the adapter does not build m = {M}, d = {D} projections")
    return None


def check_head_independence(adapter, settings: Settings):
    """Heads of one layer get distinct, independent projections: n layers of 4 heads; repeats
    among all heads of all layers, and the error and row-norm correlations between heads 0 and 1
    across layers."""
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
    repeats among all of them (a redraw cycling through a few matrices) and the lag-1 error and
    row-norm correlations (a redraw that keeps its norms)."""
    name, title = "redraw-independence", "Distinct, independent projections across redraws"
    guard = _guard(adapter, name, title)
    if guard:
        return guard
    n = _n(settings)
    sequence = stats.host(adapter.redraw_projections(M, D, n + 1, seeds_for(settings, name, 1)[0]))
    return _verdict(name, title, settings, sequence, sequence[:-1], sequence[1:], adapter, "redraws")


def check_data_redraws(adapter, settings: Settings):
    """Redraws seeded from the data: n + 1 random input batches (L = 16, d = 8) give distinct,
    independent projections (repeats among all of them, lag-1 error and row-norm correlations).

    Batch b is s_b·Z_b, Z_b standard normal (L, d) and its scale s_b log-uniform over
    10^-4 … 10^4 (:data:`DATA_SCALE_DECADES`), so the batch sums |Σ x| spread from about 1e-3 to 1e5
    (√(Ld)·s_b). A model's activations span that range: small-initialized or down-scaled layers at
    one end, unnormalized activations and long sequences at the other (4 × 256 tokens × 4 heads × 64
    unit entries already sum to about ±500, and a mean of 0.1 over 4096 × 64 entries to 2.6e4). A
    seed derived from the data that collapses for large or small data (saturates, rounds to a few
    values) maps every batch beyond its threshold to a few seeds; with about n/8 batches per decade,
    a threshold anywhere inside the range leaves at least two batches on the collapsed side, which
    the repeat count detects. Sub-check (diagnosis only, :func:`repeats_by_batch_sum`): the |Σx| of
    the batches whose matrix repeats against the others, which names a collapse for large or small
    data when the two ranges do not overlap.
    """
    name, title = "data-redraws", "Distinct, independent projections for redraws seeded from the data"
    guard = _guard(adapter, name, title)
    if guard:
        return guard
    (inputs,) = read_only(data_batches(settings, _n(settings) + 1))
    sequence = stats.host(adapter.data_projections(M, D, inputs))
    result = _verdict(name, title, settings, sequence, sequence[:-1], sequence[1:], adapter, "input batches")
    result.diagnosis += repeats_by_batch_sum(sequence, inputs)
    return result


def repeats_by_batch_sum(sequence, inputs) -> list[str]:
    """Sub-check (diagnosis only) of where repeats fall: the range of |Σx| of the batches whose
    matrix repeats and of the others; when the two ranges do not overlap the seed derivation
    collapses beyond a threshold of the batch sum, and the line says on which side."""
    repeated = repeated_draws(sequence)
    if not repeated.any():
        return []
    sums = np.abs(np.sum(inputs, axis=(-2, -1)))
    hit, others = sums[repeated], sums[~repeated]
    line = f"batches whose matrix repeats: {hit.size} with |Σx| from {hit.min():.3g} to {hit.max():.3g}"
    if not others.size:
        return [line]
    lines = [line + f"; the {others.size} others from {others.min():.3g} to {others.max():.3g}"]
    if hit.min() > others.max():
        lines.append(
            f"the data-derived seed collapses for large data: every batch with |Σx| ≥ {hit.min():.3g} "
            "shares a matrix with another, none below"
        )
    elif hit.max() < others.min():
        lines.append(
            f"the data-derived seed collapses for small data: every batch with |Σx| ≤ {hit.max():.3g} "
            "shares a matrix with another, none above"
        )
    return lines


def data_batches(settings: Settings, count: int) -> np.ndarray:
    """``count`` input batches (count, 16, d) of the data-redraws check: standard normal entries, each
    batch scaled by 10^U, U uniform on ±:data:`DATA_SCALE_DECADES` (docstring of
    :func:`check_data_redraws`)."""
    rng = rng_for(settings, "data-redraws")
    scales = 10.0 ** rng.uniform(-DATA_SCALE_DECADES, DATA_SCALE_DECADES, size=(count, 1, 1))
    return scales * rng.standard_normal((count, DATA_LENGTH, D))
