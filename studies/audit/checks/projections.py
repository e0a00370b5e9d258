"""Projection checks of the coordinates and directions of W: coordinate moments, uniform directions
(with the sign sub-check of a missing sign(diag R) correction), and the Gram of a block's directions
with the independence of rows that should be independent, on the draws of
:mod:`~studies.audit.checks.projection_law`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from studies.core import stats

from .core import FAMILY_ALPHA, Settings, bonferroni_verdict, family_p_value, verdict
from .precision import UNIT_ROUNDOFF, working_precision
from .projection_law import (
    DIRECTION_EFFECT,
    MEAN_EFFECT,
    SECOND_MOMENT_EFFECT,
    block_rows,
    cells_per_d,
    law_guard,
    planned_draws,
    projection_draws,
    projection_law,
    tested_dims,
)


def _second_moment_variance(norms: str, d: int) -> float:
    return 2.0 if norms == "chi" else 2 * (d - 1) / (d + 2)


def check_moments(adapter, settings: Settings):
    """Coordinate means and variances: E[W_ij] = 0 and E[W_ij²] = 1 for every entry of a block.

    Cells: the d × d entries of the first block, d ∈ {2, 4, 8}, for each of the two moments
    (168 cells); per-cell α = 0.01/168. Statistic z = (mean − null)/√(Var/n) with the exact
    variances of the module docstring. Stated effects: a mean shift of 0.1 or a change of 0.1 in
    E[W_ij²] (a per-coordinate variance 10% off) in any one cell.
    """
    name, title = "projection-moments", "Coordinate means 0 and variances 1 (rows marginally N(0, I))"
    guard = law_guard(adapter, name, title)
    if guard:
        return guard
    _, norms = projection_law(adapter)
    dims = tested_dims(adapter)
    alpha = stats.bonferroni(FAMILY_ALPHA, sum(cells_per_d("moments", d) for d in dims))
    critical = stats.critical_value(alpha)
    lines, z_all, p_all, diagnosis, effect, n = [], [], [], [], 0.0, 0
    for d in dims:
        W = projection_draws(adapter, settings, d)[:, :d]
        n = W.shape[0]
        means, second = W.mean(axis=0), (W**2).mean(axis=0)
        variance = _second_moment_variance(norms, d)
        mean_test = stats.z_test(means, 0.0, 1.0, n, alpha=alpha)
        second_test = stats.z_test(second, 1.0, variance, n, alpha=alpha)
        z_all += [np.abs(mean_test.z).ravel(), np.abs(second_test.z).ravel()]
        p_all += [np.ravel(mean_test.p_value), np.ravel(second_test.p_value)]
        i, j = np.unravel_index(np.argmax(np.abs(means)), (d, d))
        row, column = np.unravel_index(np.argmax(np.abs(second - 1)), (d, d))
        mean_half = stats.critical_value(0.05) / math.sqrt(n)
        second_half = stats.critical_value(0.05) * math.sqrt(variance / n)
        effect = max(effect, float(np.abs(means).max()), float(np.abs(second - 1).max()))
        mean_text = f"E[W_{i}{j}] = {means[i, j]:+.3f} ± {mean_half:.3f} (expected 0)"
        second_text = f"E[W_{row}{column}²] = {second[row, column]:.3f} ± {second_half:.3f} (expected 1)"
        lines.append(f"d={d}: n = {n}, largest {mean_text}; largest {second_text}")
        if np.any(np.abs(mean_test.z) > critical):
            diagnosis.append(f"coordinate means are not 0 at d={d}: {mean_text}")
        if np.any(np.abs(second_test.z) > critical):
            diagnosis.append(f"per-coordinate variances are not 1 at d={d}: {second_text}")
    return bonferroni_verdict(
        name,
        title,
        z_all,
        p_all,
        critical,
        effect,
        effect=f"largest |E[W_ij]| or |E[W_ij²] − 1| = {effect:.3f} (per-d values and 95% intervals below)",
        power=f"power {settings.power} against a mean shift {MEAN_EFFECT} or an E[W_ij²] change "
        f"{SECOND_MOMENT_EFFECT} in any cell (n = {n} draws per d)",
        diagnosis=diagnosis,
        details=lines,
    )


def check_directions(adapter, settings: Settings):
    """Uniform directions: every entry u_ij of u = w/‖w‖ has E u_ij = 0 and E u_ij² = 1/d.

    Cells: the d × d entries of the first block for both moments, d ∈ {2, 4, 8} (168 cells),
    per-cell α = 0.01/168, exact null variances (module docstring). Stated effects: an entry mean
    of ±0.05 (the QR without sign(diag R) gives about −0.29 … +0.22 at d = 8, theory.md §5.1) or
    E u_ij² off by 0.05. Sub-check (diagnosis only): a sign test of the diagonal entries,
    P(u_ii > 0) = 1/2 (binomial, α = 0.01 over the diagonal cells); a rejection says the law is not
    symmetric under w → −w, the signature of a missing sign(diag R) correction.
    """
    name, title = "projection-directions", "Row directions uniform on the sphere (Haar blocks)"
    guard = law_guard(adapter, name, title)
    if guard:
        return guard
    dims = tested_dims(adapter)
    alpha = stats.bonferroni(FAMILY_ALPHA, sum(cells_per_d("directions", d) for d in dims))
    critical = stats.critical_value(alpha)
    z_all, p_all, lines, worst = [], [], [], 0.0
    for d in dims:
        W = projection_draws(adapter, settings, d)[:, :d]
        u = W / np.linalg.norm(W, axis=-1, keepdims=True)
        n = u.shape[0]
        means, seconds = u.mean(axis=0), (u**2).mean(axis=0)
        second_variance = 2 * (d - 1) / (d * d * (d + 2))
        tests = (
            stats.z_test(means, 0.0, 1 / d, n, alpha=alpha),
            stats.z_test(seconds, 1 / d, second_variance, n, alpha=alpha),
        )
        z_all += [np.abs(t.z).ravel() for t in tests]
        p_all += [np.ravel(t.p_value) for t in tests]
        worst = max(worst, float(np.abs(means).max()), float(np.abs(seconds - 1 / d).max()))
        lines.append(
            f"d={d}: diagonal E u_ii = "
            + ", ".join(f"{v:+.3f}" for v in np.diag(means))
            + f" (± {stats.critical_value(0.05) / math.sqrt(d * n):.3f})"
        )
    return bonferroni_verdict(
        name,
        title,
        z_all,
        p_all,
        critical,
        worst,
        effect=f"largest |E u_ij| or |E u_ij² − 1/d| = {worst:.3f}",
        power=f"power {settings.power} against an entry mean or second-moment error of {DIRECTION_EFFECT}",
        diagnosis=sign_diagnosis(adapter, settings)
        if max(np.max(np.abs(z)) for z in z_all) > critical
        else [],
        details=lines,
    )


def sign_test(adapter, settings: Settings) -> tuple[bool, list[str]]:
    """(rejected, lines): binomial test of P(u_ii > 0) = 1/2 on the diagonal of the first block,
    d ∈ {2, 4, 8}, α = 0.01 over the diagonal cells (Bonferroni)."""
    dims = tested_dims(adapter)
    if projection_law(adapter) is None or not dims:
        return False, []
    alpha = stats.bonferroni(FAMILY_ALPHA, sum(dims))
    rejected, lines = False, []
    for d in dims:
        W = projection_draws(adapter, settings, d)
        positive = (np.diagonal(W[:, :d], axis1=-2, axis2=-1) > 0).sum(axis=0)
        n = W.shape[0]
        p_values = [sps.binomtest(int(k), n, 0.5).pvalue for k in positive]
        rejected = rejected or min(p_values) < alpha
        lines.append(
            f"d={d}: P(u_ii > 0) = "
            + ", ".join(f"{k / n:.3f}" for k in positive)
            + f" (expected 0.5, min p = {min(p_values):.1g})"
        )
    return rejected, lines


def sign_diagnosis(adapter, settings: Settings) -> list[str]:
    """The sign-test sub-check as diagnosis lines (empty when it does not reject)."""
    rejected, lines = sign_test(adapter, settings)
    if not rejected:
        return []
    if projection_law(adapter)[0] == "simplex":
        return [
            "directions are not symmetric under w → −w (sign test rejected): the rotation R of the "
            "simplex is not Haar (a Haar R has the law of −R)",
            *lines,
        ]
    return [
        "directions are not symmetric under w → −w (sign test rejected): "
        "orthogonal blocks without the sign(diag R) correction of QR give this",
        *lines,
    ]


def check_orthogonality(adapter, settings: Settings):
    """Within a block the directions' Gram is the claimed one, blocks are independent (block-orthogonal
    and simplex rows); rows are independent within a draw (iid rows).

    Within a block (deterministic up to round-off): max_{i≠j} |u_iᵀu_j − G_ij| ≤ bound, with G = I for
    block-orthogonal rows and the simplex Gram G_ij = −1/(d − 1) for simplex rows (theory.md claim 25).
    Orthogonal bound 2(d² + d + 2)·u: the orthogonality error of a Householder QR of a d × d block,
    of order d²u (Higham, §19.3), for each of the two rows, and a dot product of d terms in the
    working precision. Simplex bound 2(d² + 3d + 4)·u: that of the rotation R plus, for each of the
    two rows, a unit vertex s_i (a norm of d terms) and its product with R (d terms). Independence:
    for each pair (i, j) of rows that should be independent (i in block 1, j in block 2; or i < j
    within an iid draw), E (u_iᵀu_j)² = 1/d with Var = 2(d − 1)/(d²(d + 2)); cells over pairs and d,
    per-cell α = 0.01/cells. Stated effect: E (u_iᵀu_j)² off by 0.05 in any pair (a repeated block
    gives 1 − 1/d on d pairs). Needs m = 2d for blocks (n-a across blocks for m = d only adapters).
    """
    name, title = (
        "projection-orthogonality",
        "Block Gram as claimed (orthonormal or simplex), blocks independent",
    )
    guard = law_guard(adapter, name, title)
    if guard:
        return guard
    projection, _ = projection_law(adapter)
    dims = tested_dims(adapter)
    pairs = {d: _independent_pairs(projection, block_rows(adapter, d), d) for d in dims}
    cells = sum(len(p) for p in pairs.values())
    alpha = stats.bonferroni(FAMILY_ALPHA, max(cells, 1))
    critical = stats.critical_value(alpha)
    lines, z_max, p_all, within_ratio, worst = [], 0.0, [], 0.0, 0.0
    for d in dims:
        W = projection_draws(adapter, settings, d)
        u = W / np.linalg.norm(W, axis=-1, keepdims=True)
        gram = u @ np.swapaxes(u, -1, -2)
        if projection in BLOCK_GRAM:
            precision, how = working_precision(adapter, W)
            bound = _block_gram_bound(projection, d) * UNIT_ROUNDOFF[precision]
            off = float(np.abs(gram[:, :d, :d] - block_gram(projection, d)).max())
            within_ratio = max(within_ratio, off / bound)
            worst = max(worst, off)
            lines.append(
                f"d={d}: within a block max |u_iᵀu_j − G_ij| = {off:.1e} "
                f"(G the {BLOCK_GRAM[projection]} Gram; bound {bound:.1e}, {precision} {how})"
            )
        if pairs[d]:
            i, j = np.array(pairs[d]).T
            squared = gram[:, i, j] ** 2
            n = squared.shape[0]
            test = stats.z_test(squared.mean(axis=0), 1 / d, 2 * (d - 1) / (d * d * (d + 2)), n, alpha=alpha)
            z_max = max(z_max, float(np.abs(test.z).max()))
            p_all.append(np.ravel(test.p_value))
            worst = max(worst, float(np.abs(squared.mean(axis=0) - 1 / d).max()))
            lines.append(
                f"d={d}: independent pairs E(u_iᵀu_j)² from {squared.mean(axis=0).min():.3f} to "
                f"{squared.mean(axis=0).max():.3f} (expected {1 / d:.3f}), "
                f"max |z| = {np.abs(test.z).max():.2f}"
            )
    passed = within_ratio <= 1 and z_max <= critical
    smallest = min(dims)
    pair_variance = 2 * (smallest - 1) / (smallest * smallest * (smallest + 2))
    half = stats.critical_value(0.05) * math.sqrt(pair_variance / planned_draws(adapter, settings))
    notes = [] if cells else ["m = d only: one block per draw, independence across blocks not tested"]
    diagnosis = []
    if within_ratio > 1:
        diagnosis.append(
            f"the directions of a block do not have the {BLOCK_GRAM[projection]} Gram: "
            f"{within_ratio:.3g} times the round-off bound"
        )
    if z_max > critical:
        diagnosis.append(f"rows that should be independent are not: max |z| = {z_max:.2f}")
    return verdict(
        name,
        title,
        passed,
        worst,
        alpha=FAMILY_ALPHA,
        statistic=(
            f"within-block deviation / bound = {within_ratio:.3g}; " if projection in BLOCK_GRAM else ""
        )
        + f"max |z| = {z_max:.2f} over {cells} independent pairs (critical {critical:.2f})",
        p_value=family_p_value(np.concatenate(p_all)) if p_all else None,
        effect=f"largest deviation {worst:.3f} (95% CI half-width {half:.3f} for E(u_iᵀu_j)²)",
        tolerance=f"{_BOUND_TEXT.get(projection, 'no within-block bound (iid rows)')} within a block; "
        f"Bonferroni |z| ≤ {critical:.2f} across",
        power=f"power {settings.power} against E(u_iᵀu_j)² off by {DIRECTION_EFFECT}",
        diagnosis=diagnosis,
        details=notes + lines,
    )


BLOCK_GRAM = {"orthogonal": "orthonormal", "simplex": "simplex"}
_BOUND_TEXT = {"orthogonal": "2(d² + d + 2)·u", "simplex": "2(d² + 3d + 4)·u"}


def block_gram(projection: str, d: int) -> np.ndarray:
    """The Gram matrix (d, d) of the unit directions of one block: I for block-orthogonal rows,
    (d/(d − 1))I − (1/(d − 1))11ᵀ for simplex rows (theory.md claim 25)."""
    if projection == "simplex":
        return (d * np.eye(d) - np.ones((d, d))) / (d - 1)
    return np.eye(d)


def _block_gram_bound(projection: str, d: int) -> int:
    """The within-block round-off bound in units of u (docstring of :func:`check_orthogonality`)."""
    if projection == "simplex":
        return 2 * (d * d + 3 * d + 4)
    return 2 * (d * d + d + 2)


def _independent_pairs(projection: str, rows: int, d: int) -> list[tuple[int, int]]:
    if projection in BLOCK_GRAM:
        return [(i, j) for i in range(d) for j in range(d, rows)]
    return [(i, j) for i in range(rows) for j in range(i + 1, rows)][: d * d]
