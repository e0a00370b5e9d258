"""What CI's Tier 1 and the Tier 2 calibration run: the check set on favor-bench's registry rows
(every listed check must pass) and on the planted adapters (each defect rejected by the checks in
its ``caught_by``; the correct reduced-precision ones pass every check).

Tier 1 runs each pair once at :data:`CI_SEED`; the calibration reruns the same pairs over fresh
seeds and compares the measured false-positive rate with each check's α and the measured rejection
rate of each defect with the required power. Both use :data:`SETTINGS_MODE` (full: every statistical
check planned for power 0.99 against its stated effect).
"""

from __future__ import annotations

from .checks import CHECKS, Settings
from .planted import DEFECTS, PLANTED

CI_SEED = 20260101
QUICK = False
CORE_ROWS = (
    "trig-iid",
    "trig-ort",
    "positive-iid",
    "positive-ort",
    "hyperbolic-iid",
    "hyperbolic-ort",
    "positive-iid-fixed",
    "positive-ort-fixed",
    "relu-iid",
    "relu-ort",
)
PROJECTION = ("projection-moments", "projection-norms", "projection-directions", "projection-orthogonality")
SIMPLEX_ROW = "positive-simplex"
HYBRID_ROWS = ("hybrid-iid", "hybrid-notebook-iid")
"""HRF rows (theory.md §10.5): iid Gaussian W, so the projection checks apply; kernel mean and MSE."""
ATTENTION = ("same-projection", "dense-reference", "causal-future", "mask-semantics", "dtype-overflow")


def settings(seed: int = CI_SEED) -> Settings:
    """The settings of Tier 1 and of the calibration at ``seed``."""
    return Settings(quick=QUICK, seed=seed)


def _row_checks(row: str) -> tuple[str, ...]:
    checks = [*PROJECTION, "unbiased-kernel"]
    if not row.endswith("-fixed"):
        checks.append("norm-direction")
    if not row.startswith("relu"):
        checks.append("zero-variance")
    if row != "relu-ort":
        checks.append("mse-closed-form")
    if row in ("positive-iid", "positive-ort"):
        checks += ["head-independence", "redraw-independence", *ATTENTION]
    if row == "positive-iid":
        checks += ["attention-delta", "attention-convergence"]
    if row == "positive-ort":
        checks.append("convergence-exact")
    return tuple(checks)


def null_pairs() -> list[tuple[str, str]]:
    """(target, check) pairs that must pass: the registry rows (the simplex row on the projection
    checks only) and the correct planted adapters."""
    pairs = [(f"favor-bench:{row}", check) for row in CORE_ROWS for check in _row_checks(row)]
    pairs += [(f"favor-bench:{SIMPLEX_ROW}", check) for check in (*PROJECTION, "norm-direction")]
    hybrid_checks = (*PROJECTION, "norm-direction", "unbiased-kernel", "mse-closed-form")
    pairs += [(f"favor-bench:{row}", check) for row in HYBRID_ROWS for check in hybrid_checks]
    applicable = [
        check for check in CHECKS if check not in ("data-redraws", "attention-delta", "attention-convergence")
    ]
    pairs += [("planted:float32-float16", check) for check in applicable]
    pairs += [
        (f"favor-bench:positive-ort@{dtype}", check)
        for dtype in ("float32", "float16")
        for check in ("same-projection", "dense-reference", "causal-future", "mask-semantics")
    ]
    pairs.append(("planted:hashed-data-seed", "data-redraws"))
    pairs.append(("planted:causal-eps", "causal-future"))
    pairs += [
        ("planted:leak-below-float32", check)
        for check in ("causal-future", "dense-reference", "mask-semantics")
    ]
    return pairs


def defect_pairs() -> list[tuple[str, str]]:
    """(target, check) pairs that must fail: each planted defect on each check in its ``caught_by``."""
    return [(f"planted:{name}", check) for name in DEFECTS for check in PLANTED[name].caught_by]
