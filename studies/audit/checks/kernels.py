"""Kernel checks: the mean, the exact zero-variance points and the MSE of K̂ = φ(x)ᵀφ(y).

Statistical checks standardize by the THEORETICAL variance of the claimed row (closed forms of
:mod:`estimators.theory` and :mod:`estimators.theory.fourth_moments`; never the sample SD, which is unreliable
for heavy-tailed exponential features), two-sided, per-cell α = 0.01/cells (Bonferroni), n planned
for the settings' power against the stated effect in every cell. Inputs keep ‖x + y‖² ≤ 1.21 (mean
cells) and ≤ 0.5 (squared-error cells, whose variance is an 8th moment), the regime where the
Gaussian approximation of a mean holds for exp features (their k-th moments grow like e^{k²t/2}).
"""

from __future__ import annotations

import math

import numpy as np

from estimators import hybrid_features, registry, theory
from estimators.theory import fourth_moments, hybrid
from estimators.theory.pairs import pair_stats
from studies.core import stats

from ..quadrature import iid_kurtosis
from . import draws
from .bias_diagnosis import bias_diagnosis, failing_random_cells
from .core import FAMILY_ALPHA, Settings, family_p_value, not_applicable, seeds_for, verdict
from .precision import UNIT_ROUNDOFF, exponent_scale, kernel_bound, working_precision
from .projection_law import claimed_law

PAIRS = {
    "aligned e1": ([0.6, 0.0, 0.0, 0.0], [0.4, 0.0, 0.0, 0.0]),
    "e1 ⊥ e2": ([0.6, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0]),
    "obtuse e3,e4": ([0.0, 0.0, 0.0, 0.7], [0.0, 0.0, 0.4, -0.3]),
    "generic": ([0.3, -0.2, 0.4, 0.1], [0.1, 0.35, -0.2, 0.3]),
    "diagonal": ([0.25, 0.25, 0.25, 0.25], [0.3, 0.3, 0.3, 0.3]),
}
SMALL_PAIRS = {
    "aligned e1": ([0.4, 0.0, 0.0, 0.0], [0.25, 0.0, 0.0, 0.0]),
    "e1 ⊥ e2": ([0.45, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0]),
    "generic": ([0.3, -0.2, 0.1, 0.1], [-0.1, 0.35, -0.2, 0.3]),
}
ZERO_VARIANCE_INPUTS = ([0.6, 0.0, 0.0, 0.0], [0.3, -0.2, 0.4, 0.1], [0.0, 0.0, 0.0, 0.9])
RELATIVE_BIAS = {"trig": 0.07, "positive": 0.07, "hyperbolic": 0.07, "generalized": 0.15}
MSE_EFFECT = 0.2


def _axis(d: int, value: float = 0.5) -> np.ndarray:
    x = np.zeros(d)
    x[0] = value
    return x


def random_pair(d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2026 + d)
    x, y = rng.standard_normal((2, d))
    return 0.5 * x / np.linalg.norm(x), 0.5 * y / np.linalg.norm(y)


def _ms(adapter, d: int, wanted) -> tuple[int, ...]:
    """The m of ``wanted`` the adapter builds; m = d alone for square-only adapters."""
    kept = tuple(m for m in wanted if adapter.accepts_projection(m, d))
    return kept or ((d,) if adapter.accepts_projection(d, d) else ())


def unbiased_cells(adapter) -> list[tuple[int, int, str, np.ndarray, np.ndarray]]:
    """(d, m, label, x, y): the five d = 4 pairs (axis-aligned, orthogonal axes, obtuse, generic,
    diagonal) at m ∈ {3, 6}; x = y = e₁/2 at d = 2, m ∈ {2, 3}; x = y = e₁/2 and a random pair of
    norms 1/2 at d = 8, m ∈ {8, 12} (m ≤ d is one partial or full block, m > d two blocks)."""
    cells = []
    for d, wanted, pairs in (
        (2, (2, 3), {"axis": (_axis(2), _axis(2))}),
        (4, (3, 6), {label: tuple(map(np.array, p)) for label, p in PAIRS.items()}),
        (8, (8, 12), {"axis": (_axis(8), _axis(8)), "random": random_pair(8)}),
    ):
        if not adapter.accepts_dim(d):
            continue
        cells += [(d, m, label, x, y) for m in _ms(adapter, d, wanted) for label, (x, y) in pairs.items()]
    return cells


def _has_theory(row: str) -> bool:
    try:
        theory.mse(row, np.full(4, 0.1), np.full(4, 0.1), 2)
    except (NotImplementedError, ValueError, KeyError):
        return False
    return True


def check_unbiased(adapter, settings: Settings):
    """E[K̂(x, y)] = K(x, y) (the claimed row's kernel: SM, SMREG for √d norms, arc-cosine) on a grid
    of d, m and inputs that includes axis-aligned ones (theory.md §11, claims 1, 13, 14, 27).

    Cells: :func:`unbiased_cells` (16 when every m is built). One replicate is K̂ from a fresh W, its
    variance theory.mse(row, x, y, m); z = (mean − K)/√(MSE/n). n per (d, m) = max over its pairs of
    required_samples(δ·K, α, power, MSE), δ = 7% (15% for ReLU, whose relative variance is 4-9×
    larger): a relative bias δ in any cell is detected with the settings' power. A cell with zero
    theoretical variance (trig at x = y, claim 5) is exact: every draw must give K to the round-off
    bound of :func:`~studies.audit.checks.precision.kernel_bound`.

    Diagnosis (sub-checks, :func:`~studies.audit.checks.bias_diagnosis.bias_diagnosis`): the sign
    test of the projection directions (a candidate only for feature maps that are not even in w:
    positive, ReLU) and the norm-direction check; each candidate that rejects is repaired on the
    library's own draws of the failing cells and named when the repair moves E[K̂] significantly in
    one of them.
    """
    name, title = "unbiased-kernel", "Unbiased kernel estimate (grid incl. axis-aligned inputs, small d)"
    row = registry.get(adapter.claims)
    if not _has_theory(adapter.claims):
        return not_applicable(
            name, title, f"no closed-form mean and MSE for the claimed row {adapter.claims!r}"
        )
    cells = unbiased_cells(adapter)
    if not cells:
        return not_applicable(name, title, "the adapter builds none of the grid's (m, d)")
    alpha = stats.bonferroni(FAMILY_ALPHA, len(cells))
    critical = stats.critical_value(alpha)
    effect_share = RELATIVE_BIAS.get(row.feature, 0.07)
    groups: dict = {}
    for cell in cells:
        groups.setdefault(cell[:2], []).append(cell)
    rows, z_values, p_values, exact_ratio, tested = [], [], [], 0.0, []
    for (d, m), members in groups.items():
        truths = [float(theory.mean(adapter.claims, x, y)) for *_, x, y in members]
        variances = [float(theory.mse(adapter.claims, x, y, m)) for *_, x, y in members]
        needs = [
            stats.required_samples(effect_share * abs(t), alpha, settings.power, v)
            for t, v in zip(truths, variances, strict=True)
            if v > 0
        ]
        n = int(max(needs, default=64))
        W = draws.projections(adapter, m, d, n, seeds_for(settings, f"{name}/d={d}/m={m}", 1)[0])
        for (_, _, label, x, y), truth, variance in zip(members, truths, variances, strict=True):
            estimates = draws.kernel_estimates(adapter, x, y, W)
            if variance == 0:
                precision, _ = working_precision(adapter, estimates)
                bound = kernel_bound(
                    UNIT_ROUNDOFF[precision], d=d, features=2 * m, exponent=exponent_scale(x[None], W[0])
                )
                ratio = float(np.max(np.abs(estimates / truth - 1))) / bound
                exact_ratio = max(exact_ratio, ratio)
                z, p_value, detectable = (0.0 if ratio <= 1 else math.inf), (1.0 if ratio <= 1 else 0.0), 0.0
            else:
                test = stats.z_test(estimates.mean(), truth, variance, n, alpha=alpha)
                z, p_value = float(test.z), float(test.p_value)
                detectable = float(stats.detectable_effect(n, alpha, settings.power, variance)) / abs(truth)
            z_values.append(z)
            p_values.append(p_value)
            tested.append((d, m, label, x, y, W, truth, variance))
            standard_error = math.sqrt(variance / n) / abs(truth)
            rows.append((d, m, label, float(estimates.mean()) / truth, z, detectable, standard_error, n))
    worst = int(np.argmax(np.abs(z_values)))
    d, m, label, ratio, _, _, standard_error, _ = rows[worst]
    largest = max(abs(z) for z in z_values)
    failed = largest > critical
    diagnosis = []
    if failed:
        diagnosis = bias_diagnosis(
            adapter, settings, failing_random_cells(tested, z_values, critical), critical
        )
    return verdict(
        name,
        title,
        not failed,
        abs(ratio - 1),
        alpha=FAMILY_ALPHA,
        statistic=f"max |z| = {largest:.2f} over {len(cells)} cells (critical {critical:.2f})",
        p_value=family_p_value(p_values),
        effect=f"E[K̂]/K = {ratio:.4f} ± {stats.critical_value(0.05) * standard_error:.4f} "
        f"at d={d}, m={m}, {label}",
        tolerance=f"Bonferroni critical |z| {critical:.2f} (family α {FAMILY_ALPHA}); zero-variance cells: "
        f"round-off bound (largest deviation/bound {exact_ratio:.2f})",
        power=f"power {settings.power} against a relative bias of {effect_share:.0%} in every cell",
        diagnosis=diagnosis,
        details=[
            f"d={d} m={m:<2} {label:<13} n={n:<5} E[K̂]/K = {r:.4f}  z = {z:+7.2f}  detectable bias {b:.1%}"
            for d, m, label, r, z, b, _, n in rows
        ],
        data={
            "cells": [f"d={d} m={m} {label}" for d, m, label, *_ in rows],
            "z": [z if math.isfinite(z) else 99.0 for z in z_values],
            "critical": critical,
        },
    )


def check_zero_variance(adapter, settings: Settings):
    """Claim 5 (exact): positive and hyperbolic features give K̂(x, −x) = e^{−‖x‖²} and trig features
    K̂(x, x) = e^{‖x‖²} on every draw. Three inputs at d = 4, 64 draws of m = 6 (m = 4 for square-only
    adapters); pass when every relative deviation is within the round-off bound ((d + 2)·a + 2m + 2)·u
    of the working precision (:func:`~studies.audit.checks.precision.kernel_bound`)."""
    name, title = "zero-variance", "Exact at the zero-variance points (claim 5)"
    row = registry.get(adapter.claims)
    if row.feature not in ("positive", "hyperbolic", "trig"):
        return not_applicable(name, title, f"{row.feature} features have no zero-variance point")
    ms = _ms(adapter, 4, (6,))
    if not adapter.accepts_dim(4) or not ms:
        return not_applicable(name, title, "the adapter does not build projections with d = 4")
    m = ms[0]
    W = draws.projections(adapter, m, 4, 64, seeds_for(settings, name, 1)[0])
    worst, lines, deviations = 0.0, [], []
    for x in map(np.array, ZERO_VARIANCE_INPUTS):
        y = x if row.feature == "trig" else -x
        estimates = draws.kernel_estimates(adapter, x, y, W)
        precision, how = working_precision(adapter, estimates)
        bound = kernel_bound(
            UNIT_ROUNDOFF[precision], d=4, features=2 * m, exponent=exponent_scale(x[None], W[0])
        )
        deviation = float(np.max(np.abs(estimates / np.exp(x @ y) - 1)))
        worst = max(worst, deviation / bound)
        deviations.append(deviation)
        lines.append(
            f"x = {x.tolist()}: max |K̂/K − 1| = {deviation:.2e} (bound {bound:.1e}, {precision} {how})"
        )
    return verdict(
        name,
        title,
        worst <= 1,
        max(deviations),
        statistic=f"largest deviation / round-off bound = {worst:.2f}",
        effect=f"largest relative deviation {max(deviations):.2e}",
        tolerance="((d + 2)·a + 2m + 2)·u relative: round-off of the exponent and the feature sum",
        details=lines,
    )


def _mse_moments(adapter, x, y, d: int, m: int) -> tuple[float, float]:
    """(MSE, Var of the squared error) of the claimed row: closed form, or quadrature for iid ReLU."""
    row = registry.get(adapter.claims)
    if row.feature in hybrid_features.ORIENTATION and claimed_law(adapter):
        orientation = hybrid_features.ORIENTATION[row.feature]
        mse, variance = hybrid.squared_error_moments(pair_stats(x, y), m, orientation)
        return float(mse), float(variance)
    if row.feature in fourth_moments.FEATURES and claimed_law(adapter):
        mse, variance = fourth_moments.squared_error_moments(
            row.feature, row.norms, x, y, d, m, orthogonal=row.projection == "orthogonal"
        )
        return float(mse), float(variance)
    mse = float(theory.mse(adapter.claims, x, y, m))
    return mse, (iid_kurtosis(adapter.claims, x, y, m) - 1) * mse**2


def _mse_applies(adapter) -> str:
    row = registry.get(adapter.claims)
    known = (*fourth_moments.FEATURES, *hybrid_features.ORIENTATION)
    if row.feature in known and claimed_law(adapter):
        return ""
    if row.feature == "generalized" and row.projection == "iid" and row.norms == "chi":
        return ""
    return f"no 4th moment of K̂ for the claimed row {adapter.claims!r}"


def check_mse(adapter, settings: Settings):
    """MSE of K̂ equals the closed form of the claimed row, in both directions (theory.md §4, §5.2;
    claims 2, 3, 4, 7, 9, 10, 13): a larger MSE (a bias, iid rows sold as orthogonal, a wrong map)
    and a smaller one (a different estimator) are both rejected.

    Cells: three pairs at d = 4 (axis-aligned, orthogonal axes, generic; ‖x + y‖² ≤ 0.5) × m ∈ {3, 6}
    (m ≤ d and m > d). A replicate is (K̂ − μ)² from a fresh W, μ = theory.mean; its variance
    E(K̂ − μ)⁴ − MSE² is the closed form of :func:`estimators.theory.fourth_moments.squared_error_moments`
    (trig, positive, hyperbolic; iid and block-orthogonal; χ(d) and √d norms), of
    :func:`estimators.theory.hybrid.squared_error_moments` (the hybrid rows, theory.md §10.5), or for
    iid ReLU the quadrature 4th moment of :mod:`studies.audit.quadrature`. Two-sided z, per-cell
    α = 0.01/cells; n per m = max over pairs of required_samples(0.2·MSE, α, power, Var): a 20% MSE
    error in either direction in any cell is detected with the settings' power.
    """
    name, title = "mse-closed-form", f"MSE equals the closed form of {adapter.claims}"
    reason = _mse_applies(adapter)
    if reason:
        return not_applicable(name, title, reason)
    if not adapter.accepts_dim(4):
        return not_applicable(name, title, "the adapter does not accept d = 4")
    ms = _ms(adapter, 4, (3, 6))
    pairs = {label: tuple(map(np.array, p)) for label, p in SMALL_PAIRS.items()}
    cells = [(m, label) for m in ms for label in pairs]
    alpha = stats.bonferroni(FAMILY_ALPHA, len(cells))
    critical = stats.critical_value(alpha)
    rows, z_values, p_values = [], [], []
    for m in ms:
        plans = {label: _mse_moments(adapter, x, y, 4, m) for label, (x, y) in pairs.items()}
        n = int(
            max(
                stats.required_samples(MSE_EFFECT * mse, alpha, settings.power, var)
                for mse, var in plans.values()
            )
        )
        W = draws.projections(adapter, m, 4, n, seeds_for(settings, f"{name}/m={m}", 1)[0])
        for label, (x, y) in pairs.items():
            mse, variance = plans[label]
            errors = draws.kernel_estimates(adapter, x, y, W) - float(theory.mean(adapter.claims, x, y))
            test = stats.z_test(np.mean(errors**2), mse, variance, n, alpha=alpha)
            half = stats.critical_value(0.05) * math.sqrt(variance / n) / mse
            detectable = float(stats.detectable_effect(n, alpha, settings.power, variance)) / mse
            rows.append((m, label, float(np.mean(errors**2)) / mse, half, float(test.z), detectable, n))
            z_values.append(float(test.z))
            p_values.append(float(test.p_value))
    worst = int(np.argmax(np.abs(z_values)))
    m, label, ratio, half, *_ = rows[worst]
    largest = max(abs(z) for z in z_values)
    return verdict(
        name,
        title,
        largest <= critical,
        abs(ratio - 1),
        alpha=FAMILY_ALPHA,
        statistic=f"max |z| = {largest:.2f} over {len(cells)} cells (critical {critical:.2f})",
        p_value=family_p_value(p_values),
        effect=f"MSE/theory = {ratio:.3f} ± {half:.3f} at d=4, m={m}, {label}",
        tolerance=f"Bonferroni critical |z| {critical:.2f} (family α {FAMILY_ALPHA}), two-sided",
        power=f"power {settings.power} against an MSE {MSE_EFFECT:.0%} too high or too low in every cell",
        details=[
            f"d=4 m={m} {label:<11} n={n:<5} MSE/theory = {r:.3f} ± {h:.3f}  z = {z:+6.2f}  "
            f"detectable {e:.0%}"
            for m, label, r, h, z, e, n in rows
        ],
        data={
            "cells": [f"m={m} {label}" for m, label, *_ in rows],
            "ratio": [r[2] for r in rows],
            "half": [r[3] for r in rows],
        },
    )
