"""Size before work: how many cells a run has and about how long it will take.

The estimate is a model, stated as such. A cell's work is taken to be

    w(cell) = n · m · d · L,

with n its Monte Carlo replicates (``replicates`` or ``draws``), m features (``m_max`` for a cell
that computes every m from one draw), d dimensions and L keys (1 for kernel studies); each cost
O(n·m·d) per pair or O(n·L·m·d) per attention call. A cell also costs a fixed amount (draws of W,
feature set-up, the record), which dominates the small cells of a quick preset. The time of a
batch of cells is therefore modelled as

    t(batch) = a · cells + b · Σ w,

with a, b ≥ 0 fitted by non-negative least squares to the timed batches of the run that computed
the study's recorded results (``meta.json``'s ``computed_by.cost_model``), so

    T̂(preset) = a · #cells + b · Σ_cells w(cell),   wall ≈ T̂ / workers.

A rate b alone, fitted to small cells, charges their fixed cost to their work and overestimates a
large preset many times over.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from .cells import DEFAULT_OUT, PAPER_RUN_OUT, Context, Study, study_dir
from .records import read_meta

WORK_FACTORS = (("replicates", "draws"), ("m", "m_max"), ("d",), ("L",))
"""Parameter names multiplied into a cell's work (the first one present of each group)."""


def work(params: dict) -> float:
    """w(cell) = n · m · d · L from a cell's parameters (a missing factor counts 1)."""
    total = 1.0
    for names in WORK_FACTORS:
        value = next((params[name] for name in names if name in params), 1)
        total *= float(value)
    return total


def fit_cost(batches) -> dict | None:
    """``{"s_per_cell": a, "s_per_work": b}`` minimizing Σ (t − a·cells − b·w)² with a, b ≥ 0 over
    ``batches`` of (cells, work, seconds); None without a batch. Columns are scaled to unit maximum
    before the fit (work spans many orders of magnitude)."""
    if not batches:
        return None
    design = np.array([(cells, total_work) for cells, total_work, _ in batches], dtype=float)
    seconds = np.array([t for _, _, t in batches], dtype=float)
    scale = design.max(axis=0)
    scale[scale == 0] = 1.0
    coefficients, _ = nnls(design / scale, seconds)
    per_cell, per_work = coefficients / scale
    return {"s_per_cell": float(per_cell), "s_per_work": float(per_work)}


def cost_model(meta: dict | None, backend: str) -> dict | None:
    """The fitted cost model of the run that computed ``meta``'s records on ``backend``, or None."""
    if not meta or meta.get("backend") != backend:
        return None
    return (meta.get("computed_by") or {}).get("cost_model")


def estimate(study: Study, context: Context, out: Path | str) -> tuple[int, float | None]:
    """``(cells, estimated compute seconds or None)`` of ``study`` at ``context``'s preset.

    The model is that of the study's run in ``out``, or else in the committed runs
    (:data:`~studies.core.cells.DEFAULT_OUT`, :data:`~studies.core.cells.PAPER_RUN_OUT`), on the same
    backend; a run of the same preset comes first, since a model fitted to one preset's cells is
    only an extrapolation for another's.
    """
    cells = study.cells(context.preset)
    model = _model(study, context, dict.fromkeys(map(str, (out, DEFAULT_OUT, PAPER_RUN_OUT))))
    if model is None:
        return len(cells), None
    return len(cells), model["s_per_cell"] * len(cells) + model["s_per_work"] * sum(work(c) for c in cells)


def _model(study: Study, context: Context, outs) -> dict | None:
    metas = [read_meta(study_dir(out, study) / "meta.json") for out in outs]
    fitted = [(meta.get("preset"), cost_model(meta, context.backend)) for meta in metas if meta]
    fitted = [(preset, model) for preset, model in fitted if model is not None]
    same_preset = [model for preset, model in fitted if preset == context.preset]
    return (same_preset or [model for _, model in fitted] or [None])[0]


def describe(seconds: float | None) -> str:
    """``"~3 min"``-style text for an estimate (``"unknown"`` without a measured run)."""
    if seconds is None or not math.isfinite(seconds):
        return "unknown (no measured run of this study on this backend)"
    if seconds < 90:
        return f"~{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"~{round(seconds / 60)} min"
    return f"~{seconds / 3600:.1f} h"


LONG_RUN_S = 60.0
"""A run estimated above this many seconds (or not estimated) is described study by study."""


def plan(studies: list[Study], context: Context, out: Path | str, workers: int) -> list[str]:
    """Lines describing a run before it starts: the total, preceded by one line per study when the run
    is estimated above :data:`LONG_RUN_S` or cannot be estimated."""
    lines, total_cells, total_seconds, known = [], 0, 0.0, True
    for study in studies:
        cells, seconds = estimate(study, context, out)
        total_cells += cells
        known = known and seconds is not None
        total_seconds += seconds or 0.0
        lines.append(f"  {study.name}: {cells} cells, compute {describe(seconds)}")
    wall = describe(total_seconds / workers) if known else "unknown for some studies"
    lines.append(
        f"{total_cells} cells ({context.preset} preset); estimated wall time {wall} on {workers} "
        f"worker(s) (model: a fixed time per cell plus one per unit of replicates·m·d·L, fitted to "
        f"each study's last run)"
    )
    if known and total_seconds / workers <= LONG_RUN_S:
        return lines[-1:]
    return lines
