"""Projection checks of the row norms: their law (χ(d) or exactly √d) and their independence of the
row directions, on the draws of :mod:`~studies.audit.checks.projection_law`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from studies.core import stats

from .core import FAMILY_ALPHA, Settings, family_p_value, not_applicable, verdict
from .precision import UNIT_ROUNDOFF, working_precision
from .projection_law import (
    CORRELATION_EFFECT,
    law_guard,
    planned_draws,
    projection_draws,
    projection_law,
    tested_dims,
)

NORM_EFFECT = 0.1


def check_norms(adapter, settings: Settings):
    """Row norms follow the claimed law: χ(d) (Kolmogorov–Smirnov against ``scipy.stats.chi(d)``
    and a z-test of E‖w‖² = d, Var 2d) or exactly √d (deterministic, round-off tolerance).

    χ(d): one row per draw (independent across draws), d ∈ {2, 4, 8}, two tests per d, family
    α = 0.01 split over them. Power: the z-test detects E‖w‖² off by 10% of d with the planned
    power; the KS test rejects any law at sup-distance δ from χ(d) with probability at least
    K(√n·δ − c_α) (K the Kolmogorov limit law, c_α its critical value), reported as the δ detected
    with power 0.9. √d: max |‖w‖/√d − 1| ≤ (d² + d + 2)·u of the working precision: the rows of a
    block come from a QR by d Householder reflections of length ≤ d (first-order error of order d²u,
    Higham, *Accuracy and Stability of Numerical Algorithms*, §19.3), then a norm of d terms.
    """
    name, title = "projection-norms", "Row norms follow the claimed law (χ(d) or √d)"
    guard = law_guard(adapter, name, title)
    if guard:
        return guard
    _, norms = projection_law(adapter)
    dims = tested_dims(adapter)
    if norms == "fixed":
        return _fixed_norms(adapter, settings, name, title, dims)
    alpha = stats.bonferroni(FAMILY_ALPHA, 2 * len(dims))
    critical = stats.critical_value(alpha)
    ks_critical = float(sps.kstwobign.isf(alpha))
    lines, p_values, failed, diagnosis, worst = [], [], False, [], 0.0
    for d in dims:
        rho = np.linalg.norm(projection_draws(adapter, settings, d)[:, 0], axis=-1)
        n = rho.size
        squared = float(np.mean(rho**2))
        z = (squared - d) / math.sqrt(2 * d / n)
        ks = sps.kstest(rho, sps.chi(d).cdf)
        detectable = (ks_critical + float(sps.kstwobign.ppf(0.9))) / math.sqrt(n)
        p_values += [2 * sps.norm.sf(abs(z)), ks.pvalue]
        rejected = abs(z) > critical or ks.pvalue < alpha
        failed = failed or rejected
        worst = max(worst, abs(squared / d - 1), float(ks.statistic))
        half = stats.critical_value(0.05) * math.sqrt(2 * d / n)
        lines.append(
            f"d={d}: E‖w‖² = {squared:.3f} ± {half:.3f} (expected {d}), z = {z:+.2f}; "
            f"KS D = {ks.statistic:.4f}, p = {ks.pvalue:.2g} (detects δ ≥ {detectable:.3f} with power 0.9)"
        )
        if rejected:
            diagnosis.append(f"row norms are not χ({d}): " + lines[-1].split(": ", 1)[1])
    return verdict(
        name,
        title,
        not failed,
        worst,
        alpha=FAMILY_ALPHA,
        statistic=f"{2 * len(dims)} tests (z on E‖w‖², KS against χ(d)), min p = {min(p_values):.2g}",
        p_value=family_p_value(p_values),
        effect=f"largest |E‖w‖²/d − 1| or KS distance {worst:.3f}",
        tolerance=f"per-test α {alpha:.1e} (family α {FAMILY_ALPHA}): |z| ≤ {critical:.2f}, "
        f"√n·D ≤ {ks_critical:.2f}",
        power=f"power {settings.power} against E‖w‖² off by {NORM_EFFECT:.0%}; KS as listed",
        diagnosis=diagnosis,
        details=lines,
    )


def _fixed_norms(adapter, settings, name, title, dims):
    worst, lines, tolerance = 0.0, [], 0.0
    for d in dims:
        W = projection_draws(adapter, settings, d)
        precision, how = working_precision(adapter, W)
        bound = (d * d + d + 2) * UNIT_ROUNDOFF[precision]
        off = float(np.max(np.abs(np.linalg.norm(W, axis=-1) / math.sqrt(d) - 1)))
        worst, tolerance = max(worst, off / bound), max(tolerance, bound)
        lines.append(f"d={d}: max |‖w‖/√d − 1| = {off:.2e} (bound {bound:.1e}, {precision} {how})")
    return verdict(
        name,
        title,
        worst <= 1,
        worst * tolerance,
        statistic=f"largest deviation / bound = {worst:.2f}",
        effect=lines[-1].split(": ", 1)[1],
        tolerance="(d² + d + 2)·u: round-off of a Householder QR block and a norm of d terms",
        details=lines,
    )


def _correlation_or_zero(first, second) -> float:
    """Pearson correlation; 0 when either sequence is constant (a constant is independent of
    anything), where the formula would give 0/0."""
    if np.std(first) == 0 or np.std(second) == 0:
        return 0.0
    return float(np.corrcoef(first, second)[0, 1])


def check_norm_direction(adapter, settings: Settings):
    """Norms independent of directions: Corr(‖w‖², d·u_j²) = 0 for every coordinate j.

    One row per draw (row 0), cells j = 1 … d for d ∈ {2, 4, 8} (14 cells), statistic √n·r, which
    is N(0, 1) under independence (finite 4th moments); per-cell α = 0.01/14; a coordinate whose u_j²
    is constant over the draws counts as r = 0 (independent). Stated effect: |ρ| = 0.1. n-a for √d
    norms (constant, nothing to correlate).
    """
    name, title = "norm-direction", "Row norms independent of directions"
    guard = law_guard(adapter, name, title)
    if guard:
        return guard
    if projection_law(adapter)[1] == "fixed":
        return not_applicable(
            name, title, "the claimed row has √d norms: constant, independent by construction"
        )
    dims = tested_dims(adapter)
    alpha = stats.bonferroni(FAMILY_ALPHA, sum(dims))
    critical = stats.critical_value(alpha)
    z_max, worst, lines, p_all = 0.0, 0.0, [], []
    for d in dims:
        w = projection_draws(adapter, settings, d)[:, 0]
        squared_norm = np.sum(w * w, axis=-1)
        u2 = w**2 / squared_norm[:, None]
        r = np.array([_correlation_or_zero(squared_norm, u2[:, j]) for j in range(d)])
        z = r * math.sqrt(w.shape[0])
        z_max, worst = max(z_max, float(np.abs(z).max())), max(worst, float(np.abs(r).max()))
        p_all.append(2 * sps.norm.sf(np.abs(z)))
        lines.append(f"d={d}: Corr(‖w‖², u_j²) = " + ", ".join(f"{v:+.3f}" for v in r))
    n = planned_draws(adapter, settings)
    return verdict(
        name,
        title,
        z_max <= critical,
        worst,
        alpha=FAMILY_ALPHA,
        statistic=f"max |√n·r| = {z_max:.2f} over {sum(dims)} cells (critical {critical:.2f})",
        p_value=family_p_value(np.concatenate(p_all)),
        effect=f"largest |r| = {worst:.3f} ± {stats.critical_value(0.05) / math.sqrt(n):.3f}",
        tolerance=f"Bonferroni critical {critical:.2f} (family α {FAMILY_ALPHA})",
        power=f"power {float(stats.power(CORRELATION_EFFECT, n, alpha, 1.0)):.3f} "
        f"against |ρ| = {CORRELATION_EFFECT}",
        details=lines,
    )
