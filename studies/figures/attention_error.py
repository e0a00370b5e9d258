"""Figure and computed caption of the attention_error study (:mod:`studies.attention_error`).

From the study's CSV rows: one output-MSE panel per input regime (Monte Carlo points with 99%
intervals, the first-order delta method dashed for the iid rows), a panel of Monte Carlo/delta against
m, and the claims caption (``<stem>_claims.md``): where the delta method holds, the log-log slopes, and
the orderings ORF < iid and positive < trig. Regimes and estimators are those of the rows, in the
study's order.
"""

from __future__ import annotations

import numpy as np

from ..core import captions, plotting

REGIME_TITLES = {
    "isotropic": "isotropic q, k ~ N(0, σ²I): qᵀk ≈ 0",
    "opposed": "opposed q ~ N(+μ, σ²I), k ~ N(−μ, σ²I): small logits",
}
FEATURES = ("positive", "trig")
"""Feature kinds of the estimators (``<feature>-<coupling>``), one colour each."""
RATIO_RANGE = (0.3, 2.0)
"""y range of the ratio panel; points outside it are marked at the edge with their value."""


def _present(rows, key) -> tuple:
    """The values of ``key`` in ``rows``, in order of first appearance (the study's order)."""
    return tuple(dict.fromkeys(r[key] for r in rows))


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
    for regime in _present(rows, "regime"):
        for name in _present(rows, "estimator"):
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
        for regime in _present(rows, "regime"):
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
    for regime in _present(rows, "regime"):
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
    for name in _present(rows, "estimator"):
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
        for regime in _present(rows, "regime"):
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
    ax.text(0.97, 0.97, verdict, transform=ax.transAxes, ha="right", va="top", fontsize="small")
    plotting.label(
        ax,
        "Monte Carlo / first-order delta method (iid rows)",
        "number of random projections m" + _off_scale_note(off_scale),
        "output MSE ratio  Monte Carlo / delta method",
        legend_kw={"loc": "lower right", "ncols": 2},
    )


def _off_scale_note(off_scale) -> str:
    """The values of the off-scale points, one line per (estimator, regime), for under the x label
    (inside the panel the text would cross their error bars)."""
    groups = {}
    for r in off_scale:
        groups.setdefault((r["estimator"], r["regime"]), []).append(f"m = {r['m']}: {r['mc_over_delta']:.2f}")
    return "".join(
        f"\noff scale (open triangles), {name}, {regime}:\n" + ",\n".join(_rows_of(values, 3))
        for (name, regime), values in groups.items()
    )


def _rows_of(values, per_row):
    return [", ".join(values[start : start + per_row]) for start in range(0, len(values), per_row)]


def plot(rows, stem, *, title) -> None:
    """The figure ``stem`` (two regime panels and the Monte Carlo/delta panel) and the claims caption
    ``stem_claims.md`` headed ``title``."""
    fig, axes = plotting.figure(ncols=3, width=5.0, height=4.6)
    palette = dict(zip(FEATURES, plotting.colors(2), strict=True))
    for ax, regime in zip(axes[:2], _present(rows, "regime"), strict=True):
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
    captions.save_claims(stem, title, claims(rows))
