"""The sampler causes of a failed unbiased-kernel check: the sign test of the directions and the
norm-direction check name the candidates, and repairs of the library's own draws of the failing
cells say which of them move E[K̂] (theory.md §5.1, §5.2).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from estimators import registry
from studies.core import stats

from . import draws
from .core import FAMILY_ALPHA, Settings, seeds_for
from .projection_law import claimed_law
from .projection_norms import check_norm_direction
from .projections import sign_test

EVEN_FEATURES = ("trig", "hyperbolic")


def _is_even(adapter) -> bool:
    if adapter.even_features is not None:
        return adapter.even_features
    return registry.get(adapter.claims).feature in EVEN_FEATURES


def failing_random_cells(tested, z_values, critical) -> list:
    """The tested cells (d, m, label, x, y, W, K, MSE) whose |z| exceeds ``critical`` and whose
    variance is not 0 (an exact cell's K̂ does not depend on W)."""
    return [cell for cell, z in zip(tested, z_values, strict=True) if cell[7] > 0 and abs(z) > critical]


def bias_diagnosis(adapter, settings: Settings, cells, critical) -> list[str]:
    """Causes of a failed unbiased-kernel check, each from its sub-checks (theory.md §5.1, §5.2).

    Candidates: the sign test of the directions (a missing sign(diag R) correction; a candidate
    only for maps that are not even in w) and the norm-direction check (norms tied to directions).
    Each candidate's repair is applied to the library's own draws of every failing cell:
    independent random row signs, or independent χ(d) norms on the library's directions. A
    candidate contributes when, with every other candidate repaired, repairing it too moves E[K̂]
    in some cell by more than the Bonferroni critical value (α = 0.01 over candidates × cells) of
    Var(K̂_a − K̂_b)/n ≤ 4·MSE/n (Cauchy–Schwarz; MSE the claimed row's). With all of them repaired,
    E[K̂] is tested against K in every failing cell at the check's own critical value.
    """
    if not (adapter.has("sample_projection") and claimed_law(adapter)):
        return []
    if not cells:
        return ["only cells with zero variance fail: no sampler cause can act there"]
    lines, candidates = [], {}
    rejected, sign_lines = sign_test(adapter, settings)
    if rejected and _is_even(adapter):
        lines.append(
            "the projection directions fail the sign test, but the claimed feature map is even in w, "
            "so the sign cannot cause this bias"
        )
    elif rejected:
        candidates["sign"] = (
            "the directions fail the sign test (orthogonal blocks without the sign(diag R) correction)",
            sign_lines,
        )
    coupling = check_norm_direction(adapter, settings)
    if coupling.status == "fail":
        candidates["norms"] = (
            f"row norms depend on the directions (norm-direction check: {coupling.effect})",
            coupling.details,
        )
    if not candidates:
        return [*lines, "neither the sign test nor the norm-direction check rejects: cause not established"]
    return lines + _repair_lines(adapter, settings, cells, candidates, critical)


def _repair_lines(adapter, settings, cells, candidates, critical) -> list[str]:
    """Each candidate's contribution from repairs of the library's draws, then the bias left when
    every candidate is repaired (see :func:`bias_diagnosis`)."""
    means = [_repaired_means(adapter, settings, cell, candidates) for cell in cells]
    step_critical = stats.critical_value(FAMILY_ALPHA / (len(candidates) * len(cells)))
    lines = []
    for name, (text, evidence) in candidates.items():
        shifts = [
            (abs(z), z, cell, before, after)
            for cell, repaired in zip(cells, means, strict=True)
            for z, before, after in [_repair_shift(cell, repaired, name, candidates)]
        ]
        _, z, cell, before, after = max(shifts, key=lambda shift: shift[0])
        contributes = abs(z) > step_critical
        where = f"d={cell[0]}, m={cell[1]}, {cell[2]}"
        others = " (the other candidates repaired)" if len(candidates) > 1 else ""
        lines.append(
            f"{text}: repairing it on the library's draws{others} moves E[K̂]/K at {where} from "
            f"{before:.3f} to {after:.3f} (z = {z:+.1f}, critical {step_critical:.2f} over "
            f"{len(cells)} failing cells): " + ("a contributing cause" if contributes else "not a cause")
        )
        lines += list(evidence) if contributes else []
    everything = frozenset(candidates)
    z_left = [
        (repaired[everything] - 1) / _ratio_se(cell) for cell, repaired in zip(cells, means, strict=True)
    ]
    worst = int(np.argmax(np.abs(z_left)))
    d, m, label = cells[worst][:3]
    left = f"E[K̂]/K = {means[worst][everything]:.3f} at d={d}, m={m}, {label}, z = {z_left[worst]:+.1f}"
    if abs(z_left[worst]) <= critical:
        lines.append(
            f"with every candidate repaired no failing cell keeps a bias (largest: {left}; critical "
            f"{critical:.2f}): the contributing causes above account for it"
        )
    else:
        lines.append(
            f"with every candidate repaired a bias remains ({left}; critical {critical:.2f}): "
            "a further cause, not established"
        )
    return lines


def _ratio_se(cell) -> float:
    """Standard error of mean(K̂)/K over the cell's n draws: √(MSE/n)/K."""
    _, _, _, _, _, W, truth, variance = cell
    return math.sqrt(variance / W.shape[0]) / abs(truth)


def _repair_shift(cell, repaired, name, candidates) -> tuple[float, float, float]:
    """(z, E[K̂]/K before, after) of repairing ``name`` with the other candidates repaired; the
    difference of two means over the same draws has standard error ≤ 2√(MSE/n)/K."""
    everything = frozenset(candidates)
    before, after = repaired[everything - {name}], repaired[everything]
    return (before - after) / (2 * _ratio_se(cell)), before, after


def _repaired_means(adapter, settings, cell, candidates) -> dict[frozenset, float]:
    """E[K̂]/K on the cell's draws for every subset of the candidates repaired (the empty subset is
    the library's own draws)."""
    d, m, label, x, y, W, truth, _ = cell
    n = W.shape[0]
    rng = np.random.default_rng(seeds_for(settings, f"unbiased-kernel/repairs/d={d}/m={m}/{label}", 1)[0])
    signs = rng.choice((-1.0, 1.0), size=(n, m, 1))
    norms = np.sqrt(rng.chisquare(d, size=(n, m, 1)))
    directions = W / np.linalg.norm(W, axis=-1, keepdims=True)
    means = {}
    for size in range(len(candidates) + 1):
        for subset in itertools.combinations(candidates, size):
            repaired = (norms * directions if "norms" in subset else W) * (signs if "sign" in subset else 1.0)
            means[frozenset(subset)] = float(np.mean(draws.kernel_estimates(adapter, x, y, repaired))) / truth
    return means
