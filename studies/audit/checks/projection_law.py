"""The law of W that the claimed registry row states, and the draws of W every projection check tests.

For rows with iid, block-orthogonal (theory.md §5) or simplex-coupled (theory.md §10.4, claim 25)
projections every row w of W is ρ·u with a direction u uniform on S^{d−1} independent of its norm
ρ, ρ ~ χ(d) (``chi``: w is N(0, I_d)) or ρ = √d (``fixed``; iid and block-orthogonal rows only).
Block-orthogonal rows are orthonormal within a block of d rows; simplex rows w_i = ρ_i·R·s_i have
directions R·s_i whose Gram matrix within a block is the simplex Gram (d/(d − 1))I − (1/(d − 1))11ᵀ
(s_i the unit vertices of a regular simplex, R Haar, ρ_i iid χ(d) independent of R); blocks are
independent across, and iid rows are independent. So the moment, norm, direction and norm-direction
checks apply unchanged to simplex rows (each row is marginally N(0, I_d)), and the orthogonality
check compares a simplex block's Gram with the simplex Gram. The projection checks
(:mod:`~studies.audit.checks.projections`, :mod:`~studies.audit.checks.projection_norms`) test each
part on the same n draws of W per d ∈ {2, 4, 8} with m = 2d (two blocks; m = d when the adapter
builds square projections only), each with its own family α = 0.01 split over its cells by
Bonferroni, and n planned for the settings' power (0.9 quick, 0.99 full) against each check's
stated effect.

Null variances are exact: W_ij ~ N(0, 1) (Var W_ij = 1, Var W_ij² = 2) for χ(d) norms,
W_ij = √d·u_ij for fixed norms (Var W_ij² = 2(d − 1)/(d + 2)); Var u_ij = 1/d and
Var u_ij² = 2(d − 1)/(d²(d + 2)) (u_ij² ~ Beta(1/2, (d − 1)/2)); (u_iᵀu_j)² for independent
uniform directions has the same Beta law; ‖w‖² ~ χ²_d has variance 2d.
"""

from __future__ import annotations

import numpy as np

from estimators import registry
from studies.core import stats

from . import draws
from .core import FAMILY_ALPHA, Settings, not_applicable, seeds_for

DIMS = (2, 4, 8)
MEAN_EFFECT = 0.1
SECOND_MOMENT_EFFECT = 0.1
DIRECTION_EFFECT = 0.05
CORRELATION_EFFECT = 0.1
BLOCK_LAWS = (("iid", "chi"), ("iid", "fixed"), ("orthogonal", "chi"), ("orthogonal", "fixed"))
LAWS = (*BLOCK_LAWS, ("simplex", "chi"))


def claimed_law(adapter) -> tuple[str, str] | None:
    """(projection, norms) of the claimed row when it is an iid or block-orthogonal law (the laws
    whose kernel moments the kernel checks have in closed form)."""
    law = projection_law(adapter)
    return law if law in BLOCK_LAWS else None


def projection_law(adapter) -> tuple[str, str] | None:
    """(projection, norms) of the claimed row when it is one of the laws these checks cover
    (:data:`LAWS`: iid, block-orthogonal or simplex rows)."""
    row = registry.get(adapter.claims)
    law = (row.projection, row.norms)
    return law if law in LAWS else None


def tested_dims(adapter) -> list[int]:
    """The head dimensions of :data:`DIMS` the adapter accepts."""
    return [d for d in DIMS if adapter.accepts_dim(d)]


def block_rows(adapter, d: int) -> int:
    """Rows m of a tested draw: 2d (two blocks), or d when the adapter builds square projections only."""
    return 2 * d if adapter.accepts_projection(2 * d, d) else d


def cells_per_d(kind: str, d: int) -> int:
    """Cells per d of the moment or direction check: both moments of the d × d entries of a block."""
    return {"moments": 2 * d * d, "directions": 2 * d * d}[kind]


def planned_draws(adapter, settings: Settings) -> int:
    """n draws per d: the largest n that any projection check needs for its power."""
    dims = tested_dims(adapter)
    alpha = stats.bonferroni(FAMILY_ALPHA, sum(cells_per_d("moments", d) for d in dims))
    needs = [
        stats.required_samples(MEAN_EFFECT, alpha, settings.power, 1.0),
        stats.required_samples(SECOND_MOMENT_EFFECT, alpha, settings.power, 2.0),
        stats.required_samples(DIRECTION_EFFECT, alpha, settings.power, 1 / min(dims)),
        stats.required_samples(CORRELATION_EFFECT, alpha, settings.power, 1.0),
    ]
    return int(max(needs))


def projection_draws(adapter, settings: Settings, d: int) -> np.ndarray:
    """The :func:`planned_draws` draws (n, m, d) of W at head dimension d that every projection check
    tests."""
    n = planned_draws(adapter, settings)
    seed = seeds_for(settings, f"projections/d={d}", 1)[0]
    return draws.projections(adapter, block_rows(adapter, d), d, n, seed)


def law_guard(adapter, name, title):
    """The n-a verdict of a projection check whose claimed law or head dimensions it does not cover,
    else None."""
    if projection_law(adapter) is None:
        row = registry.get(adapter.claims)
        return not_applicable(
            name,
            title,
            f"the claimed row {adapter.claims!r} has {row.projection} projections with {row.norms} norms; "
            "these checks cover iid and block-orthogonal rows with χ(d) or √d norms and simplex rows "
            "with χ(d) norms",
        )
    if not tested_dims(adapter):
        return not_applicable(name, title, f"the adapter accepts none of the head dimensions {DIMS}")
    return None
