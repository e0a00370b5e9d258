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

The expansion is first order: it keeps the 1/m terms of tr Cov(ô_i) and the (1/m)² square of the
first-order bias, and drops the other O(1/m²) terms (the curvature of the ratio N̂_i/D̂_i times the
second and third moments of the features). At small m those terms are visible as a gap between the
Monte Carlo points and the line (positive-iid falls below it). The iid rows therefore also run at larger
m (``delta_ms``), and a third panel plots Monte Carlo/delta against m with its 99% interval, so the
figure shows the gap closing; the caption states from which m every iid interval contains the
prediction (:func:`delta_claim`).

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

from .core import captions, plotting
from .core.cells import Study, group_records, stable_rng
from .core.montecarlo import (
    ELEMENT_BUDGET,
    error_moments,
    host,
    merge_moments,
    moment_summary,
    replicate_chunks,
)

ESTIMATORS = ("positive-iid", "positive-ort", "trig-iid", "trig-ort")
PRESETS = {
    "quick": {
        "d": 16,
        "L": 512,
        "queries": 32,
        "ms": (16, 32, 64, 128),
        "delta_ms": (256, 512, 1024),
        "draws": 3,
        "replicates": 24,
    },
    "paper": {
        "d": 16,
        "L": 4096,
        "queries": 128,
        "ms": (16, 32, 64, 128, 256, 512),
        "delta_ms": (1024, 2048),
        "draws": 15,
        "replicates": 200,
    },
}
"""``ms``: every estimator; ``delta_ms``: the iid rows only, to show where the delta method holds."""
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
    monte_carlo += [
        {**fixed, "kind": "monte_carlo", "regime": regime, "estimator": name, "m": m, "draw": draw}
        for regime in REGIMES
        for draw in range(config["draws"])
        for m in config.get("delta_ms", ())
        for name in ESTIMATORS
        if name in theory.DELTA_ROWS
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
                "mc_over_delta": float(summary["mse"]) / predicted,
                "mc_over_delta_ci99": float(summary["mse_ci"]) / predicted,
                "nonpositive_denominator_rate": failed,
            }
        )
    return rows


REGIME_TITLES = {
    "isotropic": "isotropic q, k ~ N(0, σ²I): qᵀk ≈ 0",
    "opposed": "opposed q ~ N(+μ, σ²I), k ~ N(−μ, σ²I): small logits",
}
FEATURES = ("positive", "trig")
RATIO_RANGE = (0.3, 2.0)
"""y range of the ratio panel; points outside it are marked at the edge with their value."""


def _chosen(rows, regime, name):
    return sorted((r for r in rows if r["regime"] == regime and r["estimator"] == name), key=lambda r: r["m"])


def _has_delta(row) -> bool:
    return bool(np.isfinite(row["delta_method_mse"]))


def delta_claim(rows) -> captions.Claim:
    """Where the first-order delta method lies inside the iid Monte Carlo 99% intervals.

    Test: per (regime, iid estimator, m), the prediction is inside MSE ± ci99 (two-sided, α = 0.01
    per point). ``m*`` is the smallest m from which every iid point agrees; below it the caption
    quotes, per estimator, the largest miss as Monte Carlo/delta with its 99% interval.
    """
    checked = [r for r in rows if _has_delta(r)]
    ms = sorted({r["m"] for r in checked})
    agrees = {id(r): captions.inside(r["delta_method_mse"], r["output_mse"], r["ci99"]) for r in checked}
    misses = [r for r in checked if not agrees[id(r)]]
    numbers = {"points": len(checked), "inside": len(checked) - len(misses)}
    test = "delta-method MSE inside the Monte Carlo 99% interval, per (regime, iid estimator, m)"
    if not misses:
        return captions.Claim(
            f"The first-order delta method (dashed) lies inside the 99% interval of every iid point "
            f"(m = {ms[0]} to {ms[-1]}).",
            test,
            numbers,
            holds=True,
        )
    m_star = m_agree(checked, agrees)
    worst = []
    for name in sorted({r["estimator"] for r in misses}):
        r = max((r for r in misses if r["estimator"] == name), key=lambda r: abs(r["mc_over_delta"] - 1))
        low, high = r["mc_over_delta"] - r["mc_over_delta_ci99"], r["mc_over_delta"] + r["mc_over_delta_ci99"]
        worst.append(f"{name} {r['mc_over_delta']:.2f} [{low:.2f}, {high:.2f}] ({r['regime']}, m = {r['m']})")
        numbers[f"{name}_worst_ratio"] = r["mc_over_delta"]
    numbers["m_star"] = m_star
    where = (
        f"from m = {m_star} on it lies inside the 99% interval of every iid point"
        if m_star is not None
        else "it misses some iid interval even at the largest m"
    )
    return captions.Claim(
        f"The first-order delta method (dashed) drops O(1/m²) terms and misses "
        f"{captions.count_phrase(len(misses), len(checked))} iid points at small m (largest misses, "
        f"Monte Carlo/delta with 99% CI: {'; '.join(worst)}); {where} (right panel).",
        test,
        numbers,
        holds=m_star is not None,
    )


def m_agree(checked, agrees) -> int | None:
    """Smallest m from which every checked point agrees (``None`` if the largest m does not)."""
    ms = sorted({r["m"] for r in checked})
    return next((m for m in ms if all(agrees[id(r)] for r in checked if r["m"] >= m)), None)


def slope_claim(rows) -> captions.Claim:
    """Least-squares log-log slope of the MSE in m per (regime, estimator); the caption gives the range."""
    slopes = []
    for regime in REGIMES:
        for name in ESTIMATORS:
            chosen = _chosen(rows, regime, name)
            if len(chosen) > 1:
                ms = np.log([r["m"] for r in chosen])
                slopes.append(float(np.polyfit(ms, np.log([r["output_mse"] for r in chosen]), 1)[0]))
    low, high = min(slopes), max(slopes)
    return captions.Claim(
        f"The MSE falls as m^s with fitted log-log slopes s from {low:.2f} to {high:.2f} (1/m is s = −1).",
        "least-squares slope of log MSE on log m per (regime, estimator); descriptive",
        {"slope_min": low, "slope_max": high},
    )


def _ordered(rows, better, worse):
    """(significant, total) over the m's both rows share: one-sided z-test better < worse, α = 0.01."""
    worse_at = {(r["regime"], r["m"]): r for r in rows if r["estimator"] == worse}
    pairs = [
        (r, worse_at[(r["regime"], r["m"])])
        for r in rows
        if r["estimator"] == better and (r["regime"], r["m"]) in worse_at
    ]
    wins = sum(captions.lower(b["output_mse"], b["ci99"], w["output_mse"], w["ci99"]) for b, w in pairs)
    return wins, len(pairs)


def orthogonal_claim(rows) -> captions.Claim:
    """ORF vs iid per (regime, feature, m): one-sided z-test MSE_ort < MSE_iid at α = 0.01."""
    wins = total = 0
    for feature in FEATURES:
        for regime in REGIMES:
            chosen = [r for r in rows if r["regime"] == regime]
            won, n = _ordered(chosen, f"{feature}-ort", f"{feature}-iid")
            wins, total = wins + won, total + n
    return captions.Claim(
        f"Orthogonal features have a significantly lower MSE than iid in "
        f"{captions.count_phrase(wins, total)} (regime, feature, m) cells.",
        "one-sided z-test MSE_ort < MSE_iid per cell, α = 0.01 each, normal 99% intervals",
        {"significant": wins, "cells": total},
        holds=wins == total,
    )


def feature_claim(rows) -> captions.Claim:
    """Positive vs trig per regime and coupling: one-sided z-tests both ways at α = 0.01 per cell."""
    parts, numbers = [], {}
    holds = True
    for regime in REGIMES:
        chosen = [r for r in rows if r["regime"] == regime]
        positive = trig = total = 0
        for coupling in ("iid", "ort"):
            won, n = _ordered(chosen, f"positive-{coupling}", f"trig-{coupling}")
            lost, _ = _ordered(chosen, f"trig-{coupling}", f"positive-{coupling}")
            positive, trig, total = positive + won, trig + lost, total + n
        numbers[f"{regime}_positive_lower"] = positive
        numbers[f"{regime}_trig_lower"] = trig
        numbers[f"{regime}_cells"] = total
        parts.append(
            f"{regime}: positive lower in {captions.count_phrase(positive, total)}, "
            f"trig lower in {captions.count_phrase(trig, total)}"
        )
        if regime == "opposed":
            holds = positive == total
    verdict = "" if holds else ' Fig. 4\'s "positive beats trig" does not hold in every opposed cell.'
    return captions.Claim(
        f"Positive vs trigonometric features (same coupling and m, significant at α = 0.01): "
        f"{'; '.join(parts)}.{verdict}",
        "one-sided z-tests both ways per (regime, coupling, m), α = 0.01 each",
        numbers,
        holds=holds,
    )


def failure_claim(rows) -> captions.Claim:
    rates = {(r["estimator"], r["regime"]): r["nonpositive_denominator_rate"] for r in rows}
    failing = sorted({name for (name, _), rate in rates.items() if rate > 0})
    worst = max(rates.values())
    sentence = (
        f"Non-positive FAVOR denominators occur only for {', '.join(failing)} (up to {worst:.2%} of rows)."
        if failing
        else "No FAVOR denominator was non-positive."
    )
    return captions.Claim(sentence, "count of query rows with D̂_i ≤ 0", {"max_rate": worst})


def claims(rows) -> list[captions.Claim]:
    return [
        delta_claim(rows),
        slope_claim(rows),
        orthogonal_claim(rows),
        feature_claim(rows),
        failure_claim(rows),
    ]


def _mse_panel(ax, rows, regime, palette) -> None:
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    for name in ESTIMATORS:
        feature, projection = name.split("-")
        chosen = _chosen(rows, regime, name)
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
        if chosen and _has_delta(chosen[0]):
            plotting.curve(
                ax,
                ms,
                [r["delta_method_mse"] for r in chosen],
                color=palette[feature],
                linestyle="--",
                label=f"{feature}-iid, first-order delta method",
            )
    plotting.label(
        ax,
        REGIME_TITLES[regime],
        "number of random projections m",
        r"output MSE  $\mathrm{mean}_i \|\hat o_i - o_i\|^2$",
        legend=False,
    )


def _ratio_panel(ax, rows, palette) -> None:
    ax.set_xscale("log", base=2)
    ax.axhline(1.0, color="black", linewidth=1.0, label="first-order delta method")
    shift = {"isotropic": 1 / 1.05, "opposed": 1.05}
    for feature in FEATURES:
        for regime in REGIMES:
            chosen = [r for r in _chosen(rows, regime, f"{feature}-iid") if _has_delta(r)]
            if not chosen:
                continue
            plotting.points(
                ax,
                np.array([r["m"] for r in chosen]) * shift[regime],
                [r["mc_over_delta"] for r in chosen],
                [r["mc_over_delta_ci99"] for r in chosen],
                color=palette[feature],
                marker="o" if regime == "isotropic" else "^",
                label=f"{feature}-iid, {regime}",
            )
    low, high = RATIO_RANGE
    off_scale = [r for r in rows if _has_delta(r) and not low <= r["mc_over_delta"] <= high]
    for r in off_scale:
        above = r["mc_over_delta"] > high
        ax.plot(
            r["m"] * shift[r["regime"]],
            high - 0.02 if above else low + 0.02,
            marker="^" if above else "v",
            markerfacecolor="none",
            color=palette[r["estimator"].split("-")[0]],
            linestyle="none",
        )
    ax.set_ylim(low, high)
    checked = [r for r in rows if _has_delta(r)]
    agrees = {id(r): captions.inside(r["delta_method_mse"], r["output_mse"], r["ci99"]) for r in checked}
    m_star = m_agree(checked, agrees)
    verdict = (
        f"inside every 99% CI from m = {m_star};\nbelow it, the O(1/m²) terms\nthe first-order method drops"
        if m_star is not None
        else "outside some 99% CI at every m"
    )
    verdict += "".join(
        f"\noff scale (open triangle): {r['estimator']}, {r['regime']}, "
        f"m = {r['m']}: {r['mc_over_delta']:.2f}"
        for r in off_scale
    )
    ax.text(0.97, 0.97, verdict, transform=ax.transAxes, ha="right", va="top", fontsize="small")
    plotting.label(
        ax,
        "Monte Carlo / first-order delta method (iid rows)",
        "number of random projections m",
        "output MSE ratio  Monte Carlo / delta method",
        legend_kw={"loc": "lower right", "ncols": 2},
    )


def plot(rows, context, stem) -> None:
    fig, axes = plotting.figure(ncols=3, width=5.0, height=4.6)
    palette = dict(zip(FEATURES, plotting.colors(2), strict=True))
    for ax, regime in zip(axes[:2], REGIMES, strict=True):
        _mse_panel(ax, rows, regime, palette)
    _ratio_panel(axes[2], rows, palette)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize="small")
    first = rows[0]
    per_draw = first["replicates"] // first["input_draws"]
    fig.suptitle(
        f"Fig. 4: FAVOR output MSE vs m (L = {first['L']} keys, d = {first['d']}, "
        f"{first['input_draws']} input draws × {per_draw} draws of W, 99% CI)"
    )
    plotting.save(fig, stem)
    captions.save_claims(stem, STUDY.title, claims(rows))


STUDY = Study(
    name="attention_error",
    title="Attention output error vs m (Fig. 4)",
    claim="The normalized FAVOR output MSE against m, for trig and positive features, iid and orthogonal, "
    "in two input regimes, over the first-order delta-method prediction.",
    cells=cells,
    compute=compute,
    summarize=summarize,
    plot=plot,
)

if __name__ == "__main__":
    from .__main__ import main_for

    sys.exit(main_for(STUDY.name))
