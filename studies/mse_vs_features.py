"""MSE of the softmax-kernel estimators against the number of projections m (Performers Lemma 2).

For two input pairs with equal norms l (angle π/4, where trigonometric features do well, and 3π/4,
where the kernel is small and positive features win), the relative MSE E[(K̂ − SM)²]/SM² of
trig, positive and hyperbolic features, iid and block-orthogonal, is estimated by Monte Carlo
(99% intervals) and drawn over the closed forms of theory.md §4 (iid: Lemma 2, Eq. 8) and §5.2
(block-orthogonal: V1/m + (P/m²)·Cov_ort). Both axes are logarithmic; iid curves have slope −1.

One draw of W with the largest m serves every m: its first m rows are a draw of m rows (iid rows,
and Haar blocks with the last one truncated; :attr:`estimators.registry.Estimator.nests`), so a cell
draws ``replicates`` W of ``m_max`` rows and records the errors at every power of two from ``m_min``
(:meth:`estimators.registry.Estimator.estimate_prefixes`). Each m's estimate is unbiased with the
same variance as from its own draws; estimates at different m (and the two angles) of one estimator
are positively correlated, so the closed-form agreement is judged by a Bonferroni verdict valid under
any dependence (:func:`studies.core.captions.agreement` with ``shared_draws``), and the positive-vs-trig
comparisons pit estimators that never share draws.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from estimators import kernels, registry

from .core import captions, plotting
from .core.cells import Study, chunk_cells, group_records, nested_m_range, powers_of_two
from .core.montecarlo import kernel_errors, merge_moments, moment_summary

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
    base = {"d": config["d"], **nested_m_range(config["ms"], "mse_vs_features")}
    return [
        cell
        for name in ESTIMATORS
        for cell in chunk_cells({**base, "estimator": name}, config["replicates"], config["chunk"])
    ]


def compute(cell) -> dict:
    p = cell.kwargs
    x, y = input_pairs(p["d"])
    ms = powers_of_two(p["m_min"], p["m_max"])
    row = registry.get(p["estimator"])
    moments = kernel_errors(cell, row, p["m_max"], x, y, kernels.softmax(x, y), p["replicates"], ms=ms)
    return {"ms": ms, **moments}


def summarize(records, context) -> list[dict]:
    rows = []
    for (name,), group in group_records(records, "estimator").items():
        d = group[0]["params"]["d"]
        x, y = input_pairs(d)
        summary = moment_summary(merge_moments(r["values"] for r in group))
        for position, m in enumerate(group[0]["values"]["ms"]):
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
                        "relative_mse": float(summary["mse"][position][index]),
                        "ci99": float(summary["mse_ci"][position][index]),
                        "theory_relative_mse": float(theory[index]),
                    }
                )
    return rows


def winner_claim(rows) -> captions.Claim:
    """Positive vs trig at each angle and m (same coupling): one-sided z-tests both ways, α = 0.01 each."""
    parts, numbers = [], {}
    for angle in ANGLES:
        positive = trig = total = 0
        for coupling in ("iid", "ort"):
            at = {
                (r["estimator"], r["m"]): r
                for r in rows
                if r["angle"] == angle and r["estimator"] in (f"positive-{coupling}", f"trig-{coupling}")
            }
            for m in sorted({m for _, m in at}):
                p, t = at.get((f"positive-{coupling}", m)), at.get((f"trig-{coupling}", m))
                if p is None or t is None:
                    continue
                positive += captions.lower(p["relative_mse"], p["ci99"], t["relative_mse"], t["ci99"])
                trig += captions.lower(t["relative_mse"], t["ci99"], p["relative_mse"], p["ci99"])
                total += 1
        numbers[f"positive_lower_{angle:.3f}"] = positive
        numbers[f"trig_lower_{angle:.3f}"] = trig
        parts.append(
            f"at angle {angle / math.pi:.2f}π (SM = {math.exp(NORM**2 * math.cos(angle)):.2f}) positive is "
            f"lower in {captions.count_phrase(positive, total)} and trig in "
            f"{captions.count_phrase(trig, total)} (coupling, m) cells"
        )
    return captions.Claim(
        "Positive vs trigonometric features, significant at α = 0.01: " + "; ".join(parts) + ".",
        "one-sided z-tests both ways per (angle, coupling, m), α = 0.01 each",
        numbers,
    )


def claims(rows) -> list[captions.Claim]:
    return [
        captions.agreement(
            rows,
            "relative_mse",
            "ci99",
            "theory_relative_mse",
            "relative MSE",
            lambda r: f"{r['estimator']} m = {r['m']} at {r['angle'] / math.pi:.2f}π",
            shared_draws=True,
        ),
        winner_claim(rows),
    ]


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
    captions.save_claims(stem, STUDY.title, claims(rows))


STUDY = Study(
    name="mse_vs_features",
    title="MSE vs number of features (Lemma 2)",
    claim="The relative MSE of trig, positive and hyperbolic features (iid and orthogonal) against m at "
    "two angles, over the closed forms of Lemma 2 and §5.2.",
    cells=cells,
    compute=compute,
    summarize=summarize,
    plot=plot,
)

if __name__ == "__main__":
    from .__main__ import main_for

    sys.exit(main_for(STUDY.name))
