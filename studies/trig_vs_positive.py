"""Trigonometric vs positive random features: the utility r(φ, l) = MSE_trig/MSE_+ (Performers Fig. 2).

For ‖x‖ = ‖y‖ = l at angle φ, Lemma 2 gives (m cancels)

    r(φ, l) = e^{2l²} (1 − e^{−2l²(1−cos φ)})² / (2 e^{2l² cos φ} (e^{2l²(1+cos φ)} − 1)).

Three panels: log₁₀ r over (φ, l) ∈ [−π, π] × [−2, 2] (symmetrized around the origin as in the
paper, with the r = 1 contour); the slice l = 1 with Monte Carlo ratios (99% intervals, delta method
on two independent MSE estimates); and both MSEs (times m) at l = 1 against φ, which shows where the
kernel is small (φ → π) trig features blow up while positive features become exact.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from estimators import kernels, registry, theory

from .core import captions, plotting
from .core.cells import Study, chunk_cells, group_records
from .core.montecarlo import kernel_errors, merge_moments, moment_summary

ESTIMATORS = ("trig-iid", "positive-iid")
PRESETS = {
    "quick": {"d": 8, "m": 64, "replicates": 60_000, "chunk": 20_000},
    "paper": {"d": 8, "m": 64, "replicates": 1_000_000, "chunk": 50_000},
}
LENGTH = 1.0
ANGLES = (1.0, 1.5, 2.0, 2.5, 2.8, 3.0, 3.1)


def slice_pairs(d: int):
    """x = l·e₁, y = l(cos φ e₁ + sin φ e₂) for φ in :data:`ANGLES`: arrays (P, d)."""
    x = np.zeros((len(ANGLES), d))
    y = np.zeros((len(ANGLES), d))
    x[:, 0] = LENGTH
    y[:, 0] = LENGTH * np.cos(ANGLES)
    y[:, 1] = LENGTH * np.sin(ANGLES)
    return x, y


def cells(preset: str) -> list[dict]:
    config = PRESETS[preset]
    base = {"d": config["d"], "m": config["m"]}
    return [
        cell
        for name in ESTIMATORS
        for cell in chunk_cells({**base, "estimator": name}, config["replicates"], config["chunk"])
    ]


def compute(cell) -> dict:
    p = cell.kwargs
    x, y = slice_pairs(p["d"])
    row = registry.get(p["estimator"])
    return kernel_errors(cell, row, p["m"], x, y, kernels.softmax(x, y), p["replicates"], relative=False)


def summarize(records, context) -> list[dict]:
    groups = group_records(records, "estimator")
    trig = moment_summary(merge_moments(r["values"] for r in groups[("trig-iid",)]))
    positive = moment_summary(merge_moments(r["values"] for r in groups[("positive-iid",)]))
    params = groups[("trig-iid",)][0]["params"]
    m = params["m"]
    x, y = slice_pairs(params["d"])
    ratio = trig["mse"] / positive["mse"]
    ratio_ci = ratio * np.sqrt(
        (trig["mse_ci"] / trig["mse"]) ** 2 + (positive["mse_ci"] / positive["mse"]) ** 2
    )
    theory_r = theory.utility_ratio(np.asarray(ANGLES), LENGTH)
    theory_trig = registry.get("trig-iid").theory_mse(x, y, m)
    theory_positive = registry.get("positive-iid").theory_mse(x, y, m)
    return [
        {
            "length": LENGTH,
            "angle": angle,
            "d": params["d"],
            "m": m,
            "replicates": trig["n"],
            "m_mse_trig": m * float(trig["mse"][i]),
            "m_mse_trig_ci99": m * float(trig["mse_ci"][i]),
            "m_mse_positive": m * float(positive["mse"][i]),
            "m_mse_positive_ci99": m * float(positive["mse_ci"][i]),
            "ratio": float(ratio[i]),
            "ratio_ci99": float(ratio_ci[i]),
            "theory_ratio": float(theory_r[i]),
            "theory_m_mse_trig": m * float(theory_trig[i]),
            "theory_m_mse_positive": m * float(theory_positive[i]),
        }
        for i, angle in enumerate(ANGLES)
    ]


def _heat_map(ax, fig) -> None:
    phi = np.linspace(-math.pi, math.pi, 241)
    length = np.linspace(-2.0, 2.0, 201)
    length = length[length != 0]
    grid_phi, grid_l = np.meshgrid(phi, length)
    with np.errstate(divide="ignore"):
        log_r = np.log10(theory.utility_ratio(grid_phi, grid_l))
    log_r = np.clip(log_r, -6, 6)
    mesh = ax.pcolormesh(
        grid_phi, grid_l, log_r, cmap="RdBu_r", vmin=-6, vmax=6, shading="auto", rasterized=True
    )
    ax.contour(grid_phi, grid_l, log_r, levels=[0.0], colors="black", linewidths=1.0)
    fig.colorbar(mesh, ax=ax, label="log₁₀ r  (> 0: positive features more accurate)")
    ax.axhline(LENGTH, color="black", linestyle=":", linewidth=1)
    plotting.label(
        ax, "r(φ, l) = MSE_trig / MSE_+ (closed form; r = 1 contour)", "angle φ", "length l", legend=False
    )


def winner_claim(rows) -> captions.Claim:
    """Which feature wins at each angle: the 99% interval of r = MSE_trig/MSE_+ wholly below 1 (trig)
    or above 1 (positive)."""
    trig = [r["angle"] for r in rows if r["ratio"] + r["ratio_ci99"] < 1]
    positive = [r["angle"] for r in rows if r["ratio"] - r["ratio_ci99"] > 1]
    length = rows[0]["length"]

    def angles(values):
        return ", ".join(f"{a:g}" for a in values) if values else "no angle"

    return captions.Claim(
        f"At l = {length:g}, trig features win (r < 1) at φ = {angles(trig)} and positive features win "
        f"(r > 1) at φ = {angles(positive)}; the largest r measured is {max(r['ratio'] for r in rows):.3g}.",
        "99% interval of r wholly below or above 1, per angle",
        {"trig_wins": len(trig), "positive_wins": len(positive), "points": len(rows)},
    )


def claims(rows) -> list[captions.Claim]:
    return [
        captions.agreement(
            rows,
            "ratio",
            "ratio_ci99",
            "theory_ratio",
            "ratio r",
            lambda r: f"φ = {r['angle']:g}",
            shared_draws=True,
        ),
        winner_claim(rows),
    ]


def plot(rows, context, stem) -> None:
    fig, (ax_map, ax_slice, ax_mse) = plotting.figure(ncols=3, width=4.8, height=4.0)
    _heat_map(ax_map, fig)
    angles = [r["angle"] for r in rows]
    fine = np.linspace(0.3, math.pi - 1e-3, 300)
    ax_slice.set_yscale("log")
    plotting.curve(
        ax_slice, fine, theory.utility_ratio(fine, LENGTH), color="black", label="closed form r(φ, 1)"
    )
    plotting.points(
        ax_slice,
        angles,
        [r["ratio"] for r in rows],
        [r["ratio_ci99"] for r in rows],
        label="Monte Carlo, 99% CI",
    )
    ax_slice.axhline(1.0, color="gray", linewidth=0.8)
    plotting.label(ax_slice, f"slice l = {LENGTH:g}", "angle φ", "r = MSE_trig / MSE_+")

    fine_x = np.zeros((len(fine), rows[0]["d"]))
    fine_y = np.zeros_like(fine_x)
    fine_x[:, 0] = LENGTH
    fine_y[:, 0], fine_y[:, 1] = LENGTH * np.cos(fine), LENGTH * np.sin(fine)
    palette = plotting.colors(2)
    ax_mse.set_yscale("log")
    for color, name, key in zip(palette, ESTIMATORS, ("trig", "positive"), strict=True):
        plotting.curve(ax_mse, fine, registry.get(name).theory_mse(fine_x, fine_y, 1), color=color)
        plotting.points(
            ax_mse,
            angles,
            [r[f"m_mse_{key}"] for r in rows],
            [r[f"m_mse_{key}_ci99"] for r in rows],
            color=color,
            label=f"{name}, m·MSE",
        )
    plotting.curve(
        ax_mse, fine, kernels.softmax(fine_x, fine_y) ** 2, color="gray", linestyle=":", label="SM(x, y)²"
    )
    plotting.curve(ax_mse, [], [], color="black", label="closed form (Lemma 2)")
    plotting.label(
        ax_mse,
        f"both MSEs at l = {LENGTH:g} (m = {rows[0]['m']}, {rows[0]['replicates']:,} draws)",
        "angle φ",
        "m · MSE",
    )
    fig.suptitle("Fig. 2: trigonometric vs positive random features for the softmax kernel")
    plotting.save(fig, stem)
    captions.save_claims(stem, STUDY.title, claims(rows))


STUDY = Study(
    name="trig_vs_positive",
    title="Trig vs positive features (Fig. 2)",
    claim="The MSE ratio r(φ, l) = MSE_trig/MSE_+ of Lemma 2 over (φ, l), with Monte Carlo ratios at "
    "l = 1 against the closed form.",
    cells=cells,
    compute=compute,
    summarize=summarize,
    plot=plot,
)

if __name__ == "__main__":
    from .__main__ import main_for

    sys.exit(main_for(STUDY.name))
