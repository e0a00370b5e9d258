"""The Tier 2 calibration's figure: the false-positive rate of every check pooled over its targets
against its α, and the rejection rate and established power of every planted defect.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import stats as sps

from .calibration_summary import REQUIRED_POWER


def plot(summary: list[dict], path) -> None:
    """Two panels: false-positive rate per check against its α; for each defect, the rejection rate
    and the power its seeds establish (one-sided 99% lower bound) next to the required 0.99."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    null = _merge_null(summary)
    defects = sorted(
        (row for row in summary if row["kind"] == "defect"), key=lambda r: (r["check"], r["target"])
    )
    fig, (left, right) = plt.subplots(
        1,
        2,
        figsize=(14, max(4.5, 0.26 * max(len(defects), len(null)) + 1.8)),
        gridspec_kw={"width_ratios": [1, 1.2]},
    )
    y = np.arange(len(null))
    rate = np.array([row["rate"] for row in null])
    left.errorbar(
        rate,
        y,
        xerr=np.array([[r["rate"] - r["ci_low"], r["ci_high"] - r["rate"]] for r in null]).T,
        fmt="none",
        ecolor="0.4",
        capsize=3,
    )
    left.scatter(rate, y, c=["C0" if row["passes"] else "C3" for row in null], zorder=3)
    for i, row in enumerate(null):
        left.plot([row["family_alpha"]] * 2, [i - 0.35, i + 0.35], color="C3", lw=2)
    left.set_yticks(y, [row["label"] for row in null], fontsize=7)
    left.invert_yaxis()
    left.grid(axis="x", alpha=0.3)
    left.set_xlabel("false-positive rate (99% Clopper–Pearson interval)")
    left.set_title(
        "Pairs that must pass, pooled per check\n"
        "(red tick: stated family α; → an interval's upper end off the axis)"
    )
    limit = max(0.06, 3 * max(row["family_alpha"] for row in null))
    left.set_xlim(-0.005, limit)
    for i, row in enumerate(null):
        if row["ci_high"] > limit:
            left.annotate(
                f"→ {row['ci_high']:.2f}",
                (limit, i),
                xytext=(-2, 0),
                textcoords="offset points",
                ha="right",
                va="center",
                fontsize=7,
                color="0.3",
            )
    y = np.arange(len(defects))
    for i, row in enumerate(defects):
        color = "C0" if row["passes"] else "C1"
        right.plot([row["established_power"], row["rate"]], [i, i], color=color, lw=2)
        right.scatter([row["rate"]], [i], color=color, zorder=3)
        right.plot([row["established_power"]] * 2, [i - 0.3, i + 0.3], color=color, lw=2)
    right.axvline(REQUIRED_POWER, color="C3", lw=1, ls="--", label=f"required power {REQUIRED_POWER}")
    right.plot([], [], color="C0", lw=2, label="established ≥ required")
    right.plot([], [], color="C1", lw=2, label="established < required")
    right.legend(loc="lower left", fontsize=7)
    right.set_yticks(y, [f"{row['check']} ← {row['target'].split(':', 1)[1]}" for row in defects], fontsize=7)
    right.set_ylim(len(defects) + 2.5, -0.8)
    right.grid(axis="x", alpha=0.3)
    lowest = min([row["established_power"] for row in defects] + [0.95])
    right.set_xlim(lowest - 0.01, 1.003)
    right.set_xlabel("rejection rate (dot); tick: power established (one-sided 99% bound)")
    counts = sorted({row["seeds"] for row in defects})
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    right.set_title(f"Planted defects ({seeds} seeds each):\nthe power the seeds establish")
    fig.tight_layout()
    buffer = Path(path).with_suffix(".tmp.png")
    fig.savefig(buffer, dpi=130)
    plt.close(fig)
    os.replace(buffer, path)


def _merge_null(summary) -> list[dict]:
    """Null rows pooled per check (every target's runs of it), with pooled interval and verdict."""
    pooled: dict = {}
    for row in summary:
        if row["kind"] == "null":
            pooled.setdefault(row["check"], []).append(row)
    merged = []
    for check, rows in pooled.items():
        seeds = sum(r["seeds"] for r in rows)
        k = sum(r["rejections"] for r in rows)
        low = float(sps.beta.ppf(0.005, k, seeds - k + 1)) if k else 0.0
        high = float(sps.beta.isf(0.005, k + 1, seeds - k)) if k < seeds else 1.0
        merged.append(
            {
                "label": f"{check} ({len(rows)} target{'s' if len(rows) > 1 else ''} × "
                f"{min(r['seeds'] for r in rows)} seeds)",
                "rate": k / seeds,
                "ci_low": low,
                "ci_high": high,
                "family_alpha": max(r["family_alpha"] for r in rows),
                "passes": all(r["passes"] for r in rows),
            }
        )
    return merged
