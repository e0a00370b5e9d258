"""The gain of orthogonal random features: MSE_ort / MSE_iid (Performers Theorem 2, theory.md §5).

Three panels, each Monte Carlo ratio with a 99% interval (delta method on two independent MSE
estimates) over the exact block-orthogonal closed form of theory.md §5.2:

* against m at d = 8 for positive, hyperbolic and trig features: below 1 for m ≤ d, and constant
  over full blocks m = k·d (the gain 1 + (d − 1)·Cov_ort/V1 does not grow with m);
* against d at m = d for positive features, with the camera-ready Theorem 2 bound
  MSE_ort ≤ MSE_iid − 2(m − 1)/(m(d + 2))·(SM − Λ)², Λ = exp(−(‖x‖² + ‖y‖²)/2) (Eq. 10;
  :func:`estimators.theory.theorem2_bound`);
* trig features at x = −y against s = ‖x − y‖² (d = m = 4): orthogonal is better for small s and
  slightly *worse* beyond s ≈ 9.5 (theory.md §5.3, claim 11).
"""

from __future__ import annotations

import math
import sys

import numpy as np

from estimators import kernels, registry, theory

from .core import captions, plotting
from .core.cells import Study, chunk_cells, group_records
from .core.montecarlo import kernel_errors, merge_moments, moment_summary

PRESETS = {
    "quick": {
        "ms": (2, 4, 6, 8, 12, 16, 24, 32),
        "ds": (2, 4, 8, 16, 32),
        "replicates": 20_000,
        "trig_replicates": 400_000,
        "chunk": 20_000,
        "trig_chunk": 100_000,
    },
    "paper": {
        "ms": (2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24, 32, 48, 64),
        "ds": (2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
        "replicates": 200_000,
        "trig_replicates": 4_000_000,
        "chunk": 50_000,
        "trig_chunk": 200_000,
    },
}
M_PANEL_D = 8
FEATURES = ("positive", "hyperbolic", "trig")
NORM, ANGLE = 0.6, math.pi / 3
TRIG_D = 4
TRIG_S = (1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 15.0)


def moderate_pair(d: int):
    """x = 0.6·e₁, y = 0.6(cos(π/3) e₁ + sin(π/3) e₂) as (1, d) arrays (‖x + y‖² = 1.08)."""
    x = np.zeros((1, d))
    y = np.zeros((1, d))
    x[0, 0] = NORM
    y[0, :2] = NORM * math.cos(ANGLE), NORM * math.sin(ANGLE)
    return x, y


def antipodal_pairs(d: int):
    """x = (√s/2)·e₁, y = −x for each s in :data:`TRIG_S`: ‖x − y‖² = s, x + y = 0."""
    x = np.zeros((len(TRIG_S), d))
    x[:, 0] = np.sqrt(TRIG_S) / 2
    return x, -x


def pairs_for(params: dict):
    return antipodal_pairs(params["d"]) if params["panel"] == "trig_s" else moderate_pair(params["d"])


def cells(preset: str) -> list[dict]:
    config = PRESETS[preset]
    points = [("m", f, M_PANEL_D, m) for f in FEATURES for m in config["ms"]]
    points += [("d", "positive", d, d) for d in config["ds"]]
    points += [("trig_s", "trig", TRIG_D, TRIG_D)]
    out = []
    for panel, feature, d, m in points:
        trig = panel == "trig_s"
        total = config["trig_replicates" if trig else "replicates"]
        chunk = config["trig_chunk" if trig else "chunk"]
        for projection in ("iid", "ort"):
            base = {"panel": panel, "estimator": f"{feature}-{projection}", "d": d, "m": m}
            out += chunk_cells(base, total, chunk)
    return out


def compute(cell) -> dict:
    p = cell.kwargs
    x, y = pairs_for(p)
    return kernel_errors(
        cell,
        registry.get(p["estimator"]),
        p["m"],
        x,
        y,
        kernels.softmax(x, y),
        p["replicates"],
        relative=False,
    )


def summarize(records, context) -> list[dict]:
    groups = group_records(records, "panel", "estimator", "d", "m")
    rows = []
    for (panel, name, d, m), group in groups.items():
        feature, projection = name.split("-")
        if projection != "ort":
            continue
        ort = moment_summary(merge_moments(r["values"] for r in group))
        iid = moment_summary(merge_moments(r["values"] for r in groups[(panel, f"{feature}-iid", d, m)]))
        x, y = pairs_for(group[0]["params"])
        theory_iid = registry.get(f"{feature}-iid").theory_mse(x, y, m)
        theory_ort = registry.get(name).theory_mse(x, y, m)
        ratio = ort["mse"] / iid["mse"]
        ratio_ci = ratio * np.sqrt((ort["mse_ci"] / ort["mse"]) ** 2 + (iid["mse_ci"] / iid["mse"]) ** 2)
        bound = np.full(len(ratio), np.nan)
        if feature == "positive" and m <= d:
            bound = theory.theorem2_bound(x, y, m) / theory_iid
        for index in range(len(ratio)):
            rows.append(
                {
                    "panel": panel,
                    "feature": feature,
                    "d": d,
                    "m": m,
                    "sq_sum_norm": float(np.sum((x[index] + y[index]) ** 2)),
                    "sq_diff_norm": float(np.sum((x[index] - y[index]) ** 2)),
                    "replicates": ort["n"],
                    "mse_iid": float(iid["mse"][index]),
                    "mse_ort": float(ort["mse"][index]),
                    "ratio": float(ratio[index]),
                    "ci99": float(ratio_ci[index]),
                    "theory_ratio": float(theory_ort[index] / theory_iid[index]),
                    "theorem2_ratio_bound": float(bound[index]),
                }
            )
    return rows


def _theory_over_m(feature: str, d: int, ms):
    x, y = moderate_pair(d)
    return [
        float(
            registry.get(f"{feature}-ort").theory_mse(x, y, m)[0]
            / registry.get(f"{feature}-iid").theory_mse(x, y, m)[0]
        )
        for m in ms
    ]


def _theorem2_ratio(d: int) -> float:
    """Theorem 2's bound on MSE_ort / MSE_iid at m = d for the moderate pair."""
    x, y = moderate_pair(d)
    return float(theory.theorem2_bound(x, y, d)[0] / registry.get("positive-iid").theory_mse(x, y, d)[0])


def _theory_trig_over_s(s_grid):
    x = np.zeros((len(s_grid), TRIG_D))
    x[:, 0] = np.sqrt(s_grid) / 2
    return registry.get("trig-ort").theory_mse(x, -x, TRIG_D) / registry.get("trig-iid").theory_mse(
        x, -x, TRIG_D
    )


def bound_claim(rows) -> captions.Claim:
    """Theorem 2's bound: the closed-form ratio ≤ the bound, and the Monte Carlo ratio's 99% interval
    reaches below it (a point is against the bound only if its whole interval lies above)."""
    chosen = [r for r in rows if math.isfinite(r["theorem2_ratio_bound"])]
    exact = sum(r["theory_ratio"] <= r["theorem2_ratio_bound"] for r in chosen)
    against = sum(r["ratio"] - r["ci99"] > r["theorem2_ratio_bound"] for r in chosen)
    return captions.Claim(
        f"Theorem 2's bound holds for the exact ratio at {captions.count_phrase(exact, len(chosen))} "
        "points; the Monte Carlo interval lies wholly above it at "
        f"{captions.count_phrase(against, len(chosen))}.",
        "closed-form ratio ≤ bound; Monte Carlo ratio − ci99 > bound counts as against",
        {"points": len(chosen), "exact_within": exact, "mc_above": against},
        holds=exact == len(chosen) and against == 0,
    )


def trig_loss_claim(rows) -> captions.Claim:
    """Trig ORFs worse than iid at large s: ratio − ci99 > 1 (one-sided-ish, α ≤ 0.005 per point)."""
    chosen = [r for r in rows if r["panel"] == "trig_s"]
    worse = [r for r in chosen if r["ratio"] - r["ci99"] > 1]
    where = ", ".join(f"{r['sq_diff_norm']:.3g}" for r in worse)
    sentence = (
        f"Trig ORFs are significantly worse than iid at s = ‖x − y‖² = {where}."
        if worse
        else "No trig point shows ORFs significantly worse than iid."
    )
    return captions.Claim(
        sentence,
        "lower end of the 99% interval of MSE_ort/MSE_iid above 1, per s",
        {"points": len(chosen), "worse": len(worse)},
        holds=bool(worse),
    )


def claims(rows) -> list[captions.Claim]:
    return [
        captions.agreement(
            rows,
            "ratio",
            "ci99",
            "theory_ratio",
            "ratio MSE_ort/MSE_iid",
            lambda r: f"{r['feature']} d = {r['d']}, m = {r['m']}",
            shared_draws=True,
        ),
        bound_claim(rows),
        trig_loss_claim(rows),
    ]


def plot(rows, context, stem) -> None:
    fig, (ax_m, ax_d, ax_s) = plotting.figure(ncols=3, width=4.6, height=4.0)
    palette = dict(zip(FEATURES, plotting.colors(len(FEATURES)), strict=True))
    by_m = [r for r in rows if r["panel"] == "m"]
    for index, feature in enumerate(FEATURES):
        chosen = [r for r in by_m if r["feature"] == feature]
        ms = [r["m"] for r in chosen]
        grid = np.arange(1, max(ms) + 1)
        plotting.curve(ax_m, grid, _theory_over_m(feature, M_PANEL_D, grid), color=palette[feature])
        plotting.points(
            ax_m,
            ms,
            [r["ratio"] for r in chosen],
            [r["ci99"] for r in chosen],
            color=palette[feature],
            marker=plotting.MARKERS[index],
            label=feature,
        )
    ax_m.axvline(M_PANEL_D, color="gray", linestyle=":", linewidth=1)
    ax_m.axhline(1.0, color="black", linewidth=0.8)
    plotting.curve(ax_m, [], [], color="black", label="closed form (§5.2)")
    plotting.label(
        ax_m, f"vs m (d = {M_PANEL_D}; blocks of d rows)", "number of projections m", "MSE_ort / MSE_iid"
    )

    by_d = [r for r in rows if r["panel"] == "d"]
    ds = [r["d"] for r in by_d]
    grid = np.unique(np.geomspace(2, max(ds), 40).astype(int))
    plotting.curve(
        ax_d,
        grid,
        [_theory_over_m("positive", d, [d])[0] for d in grid],
        color=palette["positive"],
        label="closed form (§5.2)",
    )
    bound = [_theorem2_ratio(d) for d in grid]
    plotting.curve(ax_d, grid, bound, color="black", linestyle=":", label="Theorem 2 bound")
    plotting.points(
        ax_d,
        ds,
        [r["ratio"] for r in by_d],
        [r["ci99"] for r in by_d],
        color=palette["positive"],
        label="positive, Monte Carlo",
    )
    ax_d.set_xscale("log", base=2)
    ax_d.axhline(1.0, color="black", linewidth=0.8)
    plotting.label(ax_d, "vs d (positive, m = d)", "dimension d", "MSE_ort / MSE_iid")

    by_s = [r for r in rows if r["panel"] == "trig_s"]
    s_grid = np.linspace(0.5, max(TRIG_S), 120)
    plotting.curve(
        ax_s, s_grid, _theory_trig_over_s(s_grid), color=palette["trig"], label="closed form (§5.2)"
    )
    plotting.points(
        ax_s,
        [r["sq_diff_norm"] for r in by_s],
        [r["ratio"] for r in by_s],
        [r["ci99"] for r in by_s],
        color=palette["trig"],
        marker=plotting.MARKERS[2],
        label="trig, Monte Carlo",
    )
    ax_s.axhline(1.0, color="black", linewidth=0.8)
    plotting.label(
        ax_s,
        f"trig at x = −y (d = m = {TRIG_D})" + (": ORF can lose" if trig_loss_claim(rows).holds else ""),
        "s = ‖x − y‖²",
        "MSE_ort / MSE_iid",
    )
    first = by_m[0]
    fig.suptitle(
        f"Orthogonal random features: MSE ratio with 99% CI ({first['replicates']:,} draws per point; "
        f"trig panel {by_s[0]['replicates']:,})"
    )
    plotting.save(fig, stem)
    captions.save_claims(stem, STUDY.title, claims(rows))


STUDY = Study(
    name="orthogonal_gain",
    title="Orthogonal vs iid random features (Theorem 2)",
    claim="The MSE ratio of block-orthogonal to iid features against m, d and ‖x − y‖², over the exact "
    "§5.2 factor and Theorem 2's bound.",
    cells=cells,
    compute=compute,
    summarize=summarize,
    plot=plot,
)

if __name__ == "__main__":
    from .__main__ import main_for

    sys.exit(main_for(STUDY.name))
