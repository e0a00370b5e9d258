"""The Tier 2 calibration's verdicts on its runs: per (target, check), the rejection rate with its
99% Clopper–Pearson interval, against the 99% binomial bound of the check's family α for a pair
that must pass, or, for a planted defect, the power its seeds establish against the required 0.99.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from . import suite

CONFIDENCE = 0.99
REQUIRED_POWER = 0.99


def established_power(rejections: int, trials: int) -> float:
    """One-sided 99% Clopper–Pearson lower bound of a rejection rate: Beta_{0.01}(k, n − k + 1)."""
    if rejections == 0:
        return 0.0
    return float(sps.beta.ppf(1 - CONFIDENCE, rejections, trials - rejections + 1))


def summarize(records: list[dict]) -> list[dict]:
    """One row per (target, check): rejection rate, its 99% interval, and the verdict."""
    defects = set(suite.defect_pairs())
    groups: dict = {}
    for record in records:
        groups.setdefault((record["target"], record["check"]), []).append(record)
    rows = []
    for (target, check), runs in groups.items():
        seeds = len(runs)
        rejections = sum(run["status"] in ("fail", "error") for run in runs)
        errors = sum(run["status"] == "error" for run in runs)
        rate = rejections / seeds
        low = (
            float(sps.beta.ppf((1 - CONFIDENCE) / 2, rejections, seeds - rejections + 1))
            if rejections
            else 0.0
        )
        high = (
            float(sps.beta.isf((1 - CONFIDENCE) / 2, rejections + 1, seeds - rejections))
            if rejections < seeds
            else 1.0
        )
        is_null = (target, check) not in defects
        alpha = max(float(run["alpha"]) for run in runs)
        allowed = int(sps.binom.ppf(CONFIDENCE, seeds, alpha)) if is_null else ""
        power = "" if is_null else established_power(rejections, seeds)
        passes = rejections <= allowed if is_null else power >= REQUIRED_POWER
        rows.append(
            {
                "check": check,
                "target": target,
                "kind": "null" if is_null else "defect",
                "seeds": seeds,
                "rejections": rejections,
                "errors": errors,
                "rate": rate,
                "ci_low": low,
                "ci_high": high,
                "family_alpha": alpha,
                "allowed_rejections": allowed,
                "established_power": power,
                "passes": bool(passes),
                "seconds_per_run": float(np.mean([float(run["seconds"]) for run in runs])),
            }
        )
    rows.sort(key=lambda row: (row["kind"] != "null", row["check"], row["target"]))
    return rows


def failures(summary: list[dict]) -> list[str]:
    """Human-readable lines for every row that misses its criterion."""
    lines = []
    for row in summary:
        if row["passes"]:
            continue
        if row["kind"] == "null":
            lines.append(
                f"{row['check']} on {row['target']}: {row['rejections']}/{row['seeds']} false positives "
                f"> {row['allowed_rejections']} allowed at α = {row['family_alpha']}"
            )
        else:
            lines.append(
                f"{row['check']} vs {row['target']}: {row['rejections']}/{row['seeds']} rejected, power "
                f"established ≥ {row['established_power']:.3f} (99% one-sided), required {REQUIRED_POWER}"
            )
    return lines
