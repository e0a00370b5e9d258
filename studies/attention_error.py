"""Error of the normalized FAVOR output against the number of features (Performers Fig. 4).

Queries, keys and values have iid N(0, σ²) entries (σ = 0.35 for q and k, so ‖x_i + y_j‖² ≈ 1 after
the d^{-1/4} scaling, the regime where theory.md §7.1 says the delta method is accurate; the paper's
"appropriately normalized" inputs are unspecified; v ~ N(0, I)). For each input draw and m the
output MSE, mean over query rows of ‖ô_i − o_i‖², is estimated over independent draws of W (99%
intervals), for trig and positive features, iid and block-orthogonal. The iid curves carry the
delta-method prediction (:func:`estimators.theory.attention_delta`). A row whose FAVOR denominator
D̂_i is not positive (trigonometric features only, Performers §2.3) gets a zero output, which counts
in the MSE; the rate of such rows is reported.

    MSE_i ≈ ‖bias_i‖² + tr Cov(ô_i),   bias_i, Cov(ô_i) = O(1/m)   (theory.md §7.1).

Two input regimes: isotropic (qᵀk ≈ 0, where Lemma 2 favours trigonometric features) and opposed
(q and k centred at ±μ, small kernel values, where positive features win); the paper's claim
"positive < trig" is a statement about the second kind. The paper's setting (L = 4096 keys,
d = 16, 15 input draws) is the ``paper`` preset; ``quick`` uses fewer keys and draws. Query rows
are a fixed subset of the sequence (all L keys are attended).
"""

from __future__ import annotations

import sys

import numpy as np

from estimators import attention, registry, theory

from . import plotting
from .runner import (
    ELEMENT_BUDGET,
    Study,
    error_moments,
    group_records,
    host,
    merge_moments,
    moment_summary,
    replicate_chunks,
    stable_rng,
)

ESTIMATORS = ("positive-iid", "positive-ort", "trig-iid", "trig-ort")
PRESETS = {
    "quick": {"d": 16, "L": 512, "queries": 32, "ms": (16, 32, 64, 128), "draws": 3, "replicates": 24},
    "paper": {
        "d": 16,
        "L": 4096,
        "queries": 128,
        "ms": (16, 32, 64, 128, 256, 512),
        "draws": 15,
        "replicates": 200,
    },
}
INPUT_SCALE = 0.35
OFFSET = 1.0
REGIMES = ("isotropic", "opposed")


def inputs(seed: int, regime: str, draw: int, length: int, queries: int, d: int):
    """Host q (queries, d), k (L, d), v (L, d) for one input draw (shared by every cell of the draw).

    ``isotropic``: q, k ~ N(0, σ²I). ``opposed``: q ~ N(+μ, σ²I), k ~ N(−μ, σ²I) with μ = OFFSET·e₁, so
    every qᵀk is negative and the attention logits are small (the regime of Lemma 2 where positive
    features are nearly exact and trigonometric ones are not).
    """
    rng = stable_rng(seed, "attention_error", "inputs", regime, draw, length, queries, d)
    q = INPUT_SCALE * rng.standard_normal((queries, d))
    k = INPUT_SCALE * rng.standard_normal((length, d))
    v = rng.standard_normal((length, d))
    if regime == "opposed":
        q[:, 0] += OFFSET
        k[:, 0] -= OFFSET
    return q, k, v


def cells(preset: str) -> list[dict]:
    config = PRESETS[preset]
    fixed = {key: config[key] for key in ("d", "L", "queries", "replicates")}
    monte_carlo = [
        {**fixed, "kind": "monte_carlo", "regime": regime, "estimator": name, "m": m, "draw": draw}
        for regime in REGIMES
        for draw in range(config["draws"])
        for m in config["ms"]
        for name in ESTIMATORS
    ]
    delta_method = [
        {**fixed, "kind": "delta_method", "regime": regime, "estimator": name, "m": 1, "draw": draw}
        for regime in REGIMES
        for draw in range(config["draws"])
        for name in ESTIMATORS
        if name in theory.DELTA_ROWS
    ]
    return monte_carlo + delta_method


def compute(cell) -> dict:
    """Monte Carlo cells: moments of the per-replicate RMS output error; delta-method cells: the
    m = 1 terms of the prediction for the cell's input draw."""
    p = cell.kwargs
    if p["kind"] == "delta_method":
        q, k, v = inputs(cell.context.seed, p["regime"], p["draw"], p["L"], p["queries"], p["d"])
        bias_sq, trace = delta_method_terms(p["estimator"], q, k, v)
        return {"bias_sq": bias_sq, "trace": trace}
    target = cell.context.target
    q, k, v = (
        target.asarray(a)
        for a in inputs(cell.context.seed, p["regime"], p["draw"], p["L"], p["queries"], p["d"])
    )
    exact = host(attention.exact(q, k, v))
    row = registry.get(p["estimator"])
    rng = cell.rng()
    rms, failed = [], 0
    for n in replicate_chunks(p["replicates"], 4 * p["m"] * (p["L"] + p["queries"])):
        W = row.draw(p["m"], p["d"], batch_shape=(n,), seed=rng, like=q)
        estimate = host(attention.favor(q, k, v, W, feature=row.feature, denominator="zero"))
        rms.append(np.sqrt(np.mean(np.sum((estimate - exact) ** 2, axis=-1), axis=-1)))
        failed += int(np.sum(np.all(estimate == 0, axis=-1)))
    return {
        **error_moments(np.concatenate(rms)),
        "failed_rows": failed,
        "rows": p["replicates"] * p["queries"],
    }


def delta_method_terms(name: str, q, k, v) -> tuple[float, float]:
    """Mean over query rows of ‖bias_i‖² and tr Cov(ô_i) at m = 1 (theory.md §7.1).

    With m projections the delta-method MSE is ``bias_sq / m² + trace / m``.
    """
    bias_sq = trace = 0.0
    rows = max(1, ELEMENT_BUDGET // k.shape[0] ** 2)
    for start in range(0, q.shape[0], rows):
        delta = theory.attention_delta(name, q[start : start + rows], k, v, 1, scale_inputs=True)
        bias_sq += float(np.sum(delta.bias**2))
        trace += float(np.sum(np.trace(delta.covariance, axis1=-2, axis2=-1)))
    return bias_sq / q.shape[0], trace / q.shape[0]


def summarize(records, context) -> list[dict]:
    delta = {
        (r["params"]["regime"], r["params"]["estimator"], r["params"]["draw"]): r["values"]
        for r in records
        if r["params"]["kind"] == "delta_method"
    }
    monte_carlo = [r for r in records if r["params"]["kind"] == "monte_carlo"]
    rows = []
    for (regime, name, m), group in group_records(monte_carlo, "regime", "estimator", "m").items():
        summary = moment_summary(merge_moments(r["values"] for r in group))
        failed = sum(r["values"]["failed_rows"] for r in group) / sum(r["values"]["rows"] for r in group)
        p = group[0]["params"]
        terms = [delta.get((regime, name, r["params"]["draw"])) for r in group]
        predicted = np.nan
        if all(terms):
            predicted = float(np.mean([t["bias_sq"] / m**2 + t["trace"] / m for t in terms]))
        rows.append(
            {
                "regime": regime,
                "estimator": name,
                "m": m,
                "d": p["d"],
                "L": p["L"],
                "queries": p["queries"],
                "input_draws": len(group),
                "replicates": summary["n"],
                "output_mse": float(summary["mse"]),
                "ci99": float(summary["mse_ci"]),
                "delta_method_mse": predicted,
                "nonpositive_denominator_rate": failed,
            }
        )
    return rows


REGIME_TITLES = {
    "isotropic": "isotropic q, k ~ N(0, σ²I): qᵀk ≈ 0",
    "opposed": "opposed q ~ N(+μ, σ²I), k ~ N(−μ, σ²I): small logits",
}


def plot(rows, context, stem) -> None:
    fig, axes = plotting.figure(ncols=len(REGIMES), width=5.6, height=4.6)
    palette = dict(zip(("positive", "trig"), plotting.colors(2), strict=True))
    for ax, regime in zip(axes, REGIMES, strict=True):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        for name in ESTIMATORS:
            feature, projection = name.split("-")
            chosen = [r for r in rows if r["estimator"] == name and r["regime"] == regime]
            ms = np.array([r["m"] for r in chosen])
            plotting.points(
                ax,
                ms * (1.04 if projection == "ort" else 1 / 1.04),
                [r["output_mse"] for r in chosen],
                [r["ci99"] for r in chosen],
                color=palette[feature],
                marker="o" if projection == "iid" else "s",
                label=f"{name} ({'ORF' if projection == 'ort' else 'IID'})",
            )
            if projection == "iid":
                plotting.curve(
                    ax,
                    ms,
                    [r["delta_method_mse"] for r in chosen],
                    color=palette[feature],
                    linestyle="--",
                    label=f"{feature}-iid, delta method (§7.1)",
                )
        plotting.label(
            ax,
            REGIME_TITLES[regime],
            "number of random projections m",
            r"output MSE  $\mathrm{mean}_i \|\hat o_i - o_i\|^2$",
            legend=False,
        )
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize="small")
    first = rows[0]
    per_draw = first["replicates"] // first["input_draws"]
    fig.suptitle(
        f"Fig. 4: FAVOR output MSE vs m (L = {first['L']} keys, d = {first['d']}, "
        f"{first['input_draws']} input draws × {per_draw} draws of W, 99% CI)"
    )
    plotting.save(fig, stem)


STUDY = Study(
    name="attention_error",
    title="Attention output error vs m (Fig. 4)",
    claim="The normalized FAVOR output MSE falls as 1/m along the delta-method prediction and orthogonal "
    "features beat iid; positive beats trig (whose denominators can fail) only when the logits are small.",
    cells=cells,
    compute=compute,
    summarize=summarize,
    plot=plot,
)

if __name__ == "__main__":
    from .__main__ import main_for

    sys.exit(main_for(STUDY.name))
