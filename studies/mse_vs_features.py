"""MSE of the softmax-kernel estimators against the number of projections m (Performers Lemma 2).

For two input pairs with equal norms l (angle π/4, where trigonometric features do well, and 3π/4,
where the kernel is small and positive features win), the relative MSE E[(K̂ − SM)²]/SM² of
trig, positive and hyperbolic features, iid and block-orthogonal, is estimated by Monte Carlo
(99% intervals) and drawn over the closed forms of theory.md §4 (iid: Lemma 2, Eq. 8) and §5.2
(block-orthogonal: V1/m + (P/m²)·Cov_ort). Both axes are logarithmic; iid curves have slope −1.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from estimators import kernels, registry

from . import plotting
from .runner import Study, chunk_cells, group_records, kernel_errors, merge_moments, moment_summary

ESTIMATORS = ("trig-iid", "trig-ort", "positive-iid", "positive-ort", "hyperbolic-iid", "hyperbolic-ort")
PRESETS = {
    "quick": {"d": 16, "ms": (4, 8, 16, 32, 64, 128), "replicates": 6_000, "chunk": 6_000},
    "paper": {"d": 16, "ms": (2, 4, 8, 16, 32, 64, 128, 256, 512), "replicates": 100_000, "chunk": 20_000},
}
NORM = 0.7
ANGLES = (math.pi / 4, 3 * math.pi / 4)


def input_pairs(d: int):
    """x = l·e₁, y = l(cos φ e₁ + sin φ e₂) for each angle φ: arrays (P, d)."""
    x = np.zeros((len(ANGLES), d))
    y = np.zeros((len(ANGLES), d))
    x[:, 0] = NORM
    y[:, 0] = NORM * np.cos(ANGLES)
    y[:, 1] = NORM * np.sin(ANGLES)
    return x, y


def cells(preset: str) -> list[dict]:
    config = PRESETS[preset]
    return [
        cell
        for name in ESTIMATORS
        for m in config["ms"]
        for cell in chunk_cells(
            {"estimator": name, "d": config["d"], "m": m}, config["replicates"], config["chunk"]
        )
    ]


def compute(cell) -> dict:
    p = cell.kwargs
    x, y = input_pairs(p["d"])
    return kernel_errors(
        cell, registry.get(p["estimator"]), p["m"], x, y, kernels.softmax(x, y), p["replicates"]
    )


def summarize(records, context) -> list[dict]:
    rows = []
    for (name, m), group in group_records(records, "estimator", "m").items():
        d = group[0]["params"]["d"]
        x, y = input_pairs(d)
        summary = moment_summary(merge_moments(r["values"] for r in group))
        theory = registry.get(name).theory_mse(x, y, m) / kernels.softmax(x, y) ** 2
        for index, angle in enumerate(ANGLES):
            rows.append(
                {
                    "estimator": name,
                    "d": d,
                    "m": m,
                    "norm": NORM,
                    "angle": angle,
                    "replicates": summary["n"],
                    "relative_mse": float(summary["mse"][index]),
                    "ci99": float(summary["mse_ci"][index]),
                    "theory_relative_mse": float(theory[index]),
                }
            )
    return rows


def plot(rows, context, stem) -> None:
    fig, axes = plotting.figure(ncols=len(ANGLES), width=5.2, height=4.2)
    features = ("trig", "positive", "hyperbolic")
    palette = dict(zip(features, plotting.colors(len(features)), strict=True))
    for ax, angle in zip(axes, ANGLES, strict=True):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        for name in ESTIMATORS:
            chosen = [r for r in rows if r["estimator"] == name and r["angle"] == angle]
            feature, projection = name.split("-")
            ms = [r["m"] for r in chosen]
            style = {"color": palette[feature]}
            plotting.curve(
                ax,
                ms,
                [r["theory_relative_mse"] for r in chosen],
                linestyle="-" if projection == "iid" else "--",
                **style,
            )
            plotting.points(
                ax,
                ms,
                [r["relative_mse"] for r in chosen],
                [r["ci99"] for r in chosen],
                marker="o" if projection == "iid" else "s",
                label=name,
                **style,
            )
        first = next(r for r in rows if r["angle"] == angle)
        plotting.label(
            ax,
            f"‖x‖ = ‖y‖ = {NORM}, angle {angle / math.pi:.2f}π (d = {first['d']})",
            "number of projections m",
            "relative MSE  E[(K̂ − SM)²] / SM²",
            legend=False,
        )
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(plotting.curve(axes[0], [], [], color="black")[0])
    labels.append("closed form\n(iid —, ORF - -)")
    fig.legend(handles, labels, loc="outside right center", fontsize="small")
    fig.suptitle("Lemma 2: MSE of trigonometric vs positive random features (99% CI over closed forms)")
    plotting.save(fig, stem)


STUDY = Study(
    name="mse_vs_features",
    title="MSE vs number of features (Lemma 2)",
    claim="The MSE of trig, positive and hyperbolic features (iid and orthogonal) falls as the closed forms "
    "of Lemma 2 and §5.2 predict; positive features win where the softmax kernel is small.",
    cells=cells,
    compute=compute,
    summarize=summarize,
    plot=plot,
)

if __name__ == "__main__":
    from .__main__ import main_for

    sys.exit(main_for(STUDY.name))
