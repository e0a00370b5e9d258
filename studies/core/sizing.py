"""Size before work: how many cells a run has and about how long it will take.

The estimate is a model, stated as such. A cell's work is taken to be proportional to

    w(cell) = n · m · d · L,

with n its Monte Carlo replicates (``replicates`` or ``draws``), m features (``m_max`` for a cell
that computes every m from one draw), d dimensions and L keys
(1 for kernel studies); each cost O(n·m·d) per pair or O(n·L·m·d) per attention call. The time per
unit of work comes from the run that computed the study's recorded results (``meta.json``'s
``computed_by``: its compute time over the work of its cells, when it computed every cell of its
preset on the same backend), so

    T̂(preset) = Σ_cells w(cell) · compute_time_s / Σ_computed w,   wall ≈ T̂ / workers.
"""

from __future__ import annotations

import math
from pathlib import Path

from .cells import Context, Study
from .loop import study_dir
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


def seconds_per_work(meta: dict | None, study: Study, backend: str) -> float | None:
    """Seconds per unit of work measured by the run that computed ``meta``'s records, or None.

    None unless that run computed every cell of its preset on ``backend`` in a measurable time.
    """
    if not meta:
        return None
    measured = meta.get("computed_by") or {}
    if meta.get("backend") != backend or not measured.get("compute_time_s"):
        return None
    cells = study.cells(meta.get("preset", "quick"))
    if measured.get("cells") != len(cells):
        return None
    return measured["compute_time_s"] / sum(work(cell) for cell in cells)


def estimate(study: Study, context: Context, out: Path | str) -> tuple[int, float | None]:
    """``(cells, estimated compute seconds or None)`` of ``study`` at ``context``'s preset."""
    cells = study.cells(context.preset)
    rate = seconds_per_work(read_meta(study_dir(out, study) / "meta.json"), study, context.backend)
    return len(cells), None if rate is None else rate * sum(work(cell) for cell in cells)


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
        f"worker(s) (model: time per unit of replicates·m·d·L from each study's last run)"
    )
    if known and total_seconds / workers <= LONG_RUN_S:
        return lines[-1:]
    return lines
