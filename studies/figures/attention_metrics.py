"""Computed caption and figure of the ``attention_metrics`` study, from its CSV rows alone
(:mod:`studies.core.attention_ranking` builds the rows).

Figure: per input family, the rank of every estimator on each metric at the middle m (a heat map,
estimators sorted by their kernel-MSE rank; a box marks an estimator that takes part in a
significantly discordant pair on that metric) and, below, Kendall's τ between the kernel-MSE ranking
and each attention-level ranking against m with 99% bootstrap intervals.
"""

from __future__ import annotations

import numpy as np

from ..core import captions, plotting, rank_tests
from ..core.attention_ranking import ATTENTION_METRICS, FAMILY_ALPHA, METRICS

LABELS = {
    "kernel_mse": "kernel MSE",
    "output_error": "output error",
    "kl": "KL(P‖P̂)",
    "tv": "total variation",
    "entropy_error": "|entropy error|",
    "top_k_miss": "top-k miss",
}
FAMILY_TITLES = {"isotropic": "isotropic inputs", "anisotropic": "anisotropic inputs"}
FAMILY_DETAILS = {
    "isotropic": "q, k ~ N(0, I)",
    "anisotropic": "low rank + noise, log-normal norms",
}
EFFECT = 0.8
"""P(a < b) against which the power of each pairwise test is stated."""


def _kind(rows, kind, family=None):
    return [r for r in rows if r["kind"] == kind and (family is None or r["family"] == family)]


def _families(rows):
    return [f for f in FAMILY_TITLES if any(r["family"] == f for r in rows)]


def agreement_claim(rows, family) -> captions.Claim:
    """Whether the kernel-MSE ranking predicts each attention-level ranking on ``family`` inputs.

    Predicts: no significantly discordant pair at any m (Holm, α = 0.01 per (family, metric), two
    tests per pair) and the 99% bootstrap interval of Kendall's τ above 0 at every m.
    """
    agreement = _kind(rows, "agreement", family)
    parts, predicted, numbers = [], [], {}
    for metric in ATTENTION_METRICS:
        chosen = [r for r in agreement if r["metric"] == metric]
        taus = [r["tau"] for r in chosen]
        lowest = min(chosen, key=lambda r: r["tau_low"])
        discordant = sum(r["discordant"] for r in chosen)
        jointly = discordant + sum(r["concordant"] for r in chosen)
        numbers[f"{metric}_tau_min"] = min(taus)
        numbers[f"{metric}_discordant"] = discordant
        if discordant == 0 and lowest["tau_low"] > 0:
            predicted.append(LABELS[metric])
        parts.append(
            f"{LABELS[metric]} τ {min(taus):.2f} to {max(taus):.2f} (lowest 99% bound "
            f"{lowest['tau_low']:.2f} at m = {lowest['m']}), {discordant} of {jointly} pairs ordered by "
            "both reversed"
        )
    missed = [LABELS[m] for m in ATTENTION_METRICS if LABELS[m] not in predicted]
    verdict = (
        "predicts every attention-level ranking"
        if not missed
        else f"predicts {captions.listing(predicted)} but not {captions.listing(missed)}"
    )
    return captions.Claim(
        f"{FAMILY_TITLES[family].capitalize()}: the kernel-MSE ranking {verdict} "
        f"(Kendall τ between the rankings over m = 16 to 256: {'; '.join(parts)}).",
        "Kendall τ with 99% stratified bootstrap interval; pairwise van Elteren tests, Holm at family-wise "
        f"α = {FAMILY_ALPHA} per (input family, metric); 'predicts' = no discordant pair and every τ "
        "interval above 0",
        numbers,
        holds=not missed,
    )


def discordance_claim(rows, family, shown=3) -> captions.Claim:
    """The strongest discordant pairs of ``family`` (largest smaller |z| of the two tests)."""
    found = sorted(_kind(rows, "discordant", family), key=lambda r: -min(abs(r["z_mse"]), abs(r["z_metric"])))
    if not found:
        return captions.Claim(
            f"{FAMILY_TITLES[family].capitalize()}: no pair is ordered significantly in opposite directions.",
            "van Elteren tests on kernel MSE and each metric, Holm α = 0.01 per (family, metric)",
            {"discordant": 0},
        )
    examples = [
        f"{r['estimator']} beats {r['versus']} on kernel MSE (z = {r['z_mse']:.1f}) but loses on "
        f"{LABELS[r['metric']]} (z = {r['z_metric']:.1f}) at m = {r['m']}"
        for r in found[:shown]
    ]
    return captions.Claim(
        f"{FAMILY_TITLES[family].capitalize()}: {len(found)} discordant (pair, m, metric) cases, strongest: "
        f"{'; '.join(examples)}.",
        "van Elteren z (> 0: the first estimator smaller), each significant under Holm α = 0.01 per "
        "(family, metric)",
        {"discordant": len(found)},
    )


def invalid_claim(rows) -> captions.Claim:
    estimates = [r for r in _kind(rows, "estimate") if r["metric"] == "kernel_mse"]
    invalid = [r for r in estimates if r["invalid_rate"] > 0]
    names = sorted({r["estimator"] for r in invalid})
    worst = max(invalid, key=lambda r: r["invalid_rate"], default=None)
    sentence = "Every FAVOR row was a distribution."
    if worst is not None:
        sentence = (
            "Rows that are not distributions (a negative weight or D̂_i ≤ 0) occur for "
            f"{captions.listing(names)}, up to {worst['invalid_rate']:.1%} of rows ({worst['estimator']}, "
            f"{worst['family']}, m = {worst['m']}); these estimators are not ranked on KL, total variation "
            "and entropy where it happens."
        )
    return captions.Claim(
        sentence, "share of rows with a negative or non-finite weight or D̂_i ≤ 0", {"estimators": len(names)}
    )


def power_claim(rows) -> captions.Claim:
    estimates = _kind(rows, "estimate")
    draws = int(estimates[0]["draws"])
    tests = sum(1 for r in estimates if r["metric"] == "kernel_mse" and r["rank"] != "")
    pairs = tests * (tests // len({(r["family"], r["m"]) for r in estimates}) - 1) // 2 // 2
    alpha = FAMILY_ALPHA / max(pairs, 1)
    power = rank_tests.mann_whitney_power(EFFECT, draws, alpha)
    return captions.Claim(
        f"Each pairwise test compares {draws} draws per estimator; against P(a < b) = {EFFECT} its power "
        f"is {power:.2f} even at Holm's strictest level α/{pairs} = {alpha:.1e}.",
        "normal approximation of the Mann–Whitney statistic (Noether 1987)",
        {"draws": draws, "tests_per_family": pairs, "power": power},
    )


def claims(rows) -> list[captions.Claim]:
    found = []
    for family in _families(rows):
        found += [agreement_claim(rows, family), discordance_claim(rows, family)]
    return [*found, invalid_claim(rows), power_claim(rows)]


def _heatmap(ax, rows, family, m):
    estimates = [r for r in _kind(rows, "estimate", family) if r["m"] == m]
    mse = {r["estimator"]: r["rank"] for r in estimates if r["metric"] == "kernel_mse"}
    names = sorted(mse, key=lambda n: (mse[n] == "", mse[n] if mse[n] != "" else 0))
    grid = np.full((len(names), len(METRICS)), np.nan)
    for r in estimates:
        if r["rank"] != "":
            grid[names.index(r["estimator"]), METRICS.index(r["metric"])] = r["rank"]
    ax.imshow(grid, cmap="viridis_r", aspect="auto", vmin=1, vmax=len(names))
    boxed = {(r["estimator"], r["metric"]) for r in _kind(rows, "discordant", family) if r["m"] == m}
    boxed |= {(r["versus"], r["metric"]) for r in _kind(rows, "discordant", family) if r["m"] == m}
    for i, name in enumerate(names):
        for j, metric in enumerate(METRICS):
            text = "–" if np.isnan(grid[i, j]) else str(int(grid[i, j]))
            color = "white" if grid[i, j] > len(names) / 2 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize="x-small", color=color)
            if (name, metric) in boxed:
                ax.add_patch(_box(i, j))
    ax.set_xticks(
        range(len(METRICS)), [LABELS[m] for m in METRICS], rotation=30, ha="right", fontsize="small"
    )
    ax.set_yticks(range(len(names)), names, fontsize="small")
    ax.grid(False)
    ax.set_title(f"{FAMILY_TITLES[family]} ({FAMILY_DETAILS[family]})\nrank at m = {m} (1 = best)")
    ax.set_xlabel("–: not ranked (some row not a distribution)", fontsize="small")


def _box(i, j):
    from matplotlib.patches import Rectangle

    return Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, edgecolor="red", linewidth=1.4)


def _tau_panel(ax, rows, family, palette):
    ax.set_xscale("log", base=2)
    agreement = _kind(rows, "agreement", family)
    ms = sorted({r["m"] for r in agreement})
    for index, metric in enumerate(ATTENTION_METRICS):
        chosen = sorted((r for r in agreement if r["metric"] == metric), key=lambda r: r["m"])
        shift = 1.035 ** (index - 2)
        xs = np.array([r["m"] for r in chosen]) * shift
        taus = np.array([r["tau"] for r in chosen])
        ax.errorbar(
            xs,
            taus,
            yerr=[taus - [r["tau_low"] for r in chosen], [r["tau_high"] for r in chosen] - taus],
            marker=plotting.MARKERS[index],
            color=palette[index],
            capsize=2.5,
            label=LABELS[metric],
        )
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xticks(ms, [str(m) for m in ms])
    ax.set_ylim(-1.05, 1.05)
    plotting.label(
        ax,
        f"{FAMILY_TITLES[family]}: each ranking against the kernel-MSE ranking",
        "number of random projections m",
        "Kendall τ (99% bootstrap CI)",
        legend_kw={"loc": "lower right", "ncols": 2, "fontsize": "x-small"},
    )


def plot(rows, stem, *, title: str) -> None:
    """The figure (``stem``.png/.svg: rank heat maps at the middle m over τ against m, per family) and
    its computed caption (``stem``_claims.md, headed ``title``)."""
    families = _families(rows)
    ms = sorted({r["m"] for r in _kind(rows, "estimate")})
    middle = ms[len(ms) // 2]
    fig, axes = plotting.figure(
        ncols=len(families), nrows=2, width=6.4, height=5.0, gridspec_kw={"height_ratios": [1.8, 1]}
    )
    palette = plotting.colors(len(ATTENTION_METRICS))
    for column, family in enumerate(families):
        _heatmap(axes[column], rows, family, middle)
        _tau_panel(axes[len(families) + column], rows, family, palette)
    fig.suptitle(
        "Estimator rankings: kernel MSE vs attention-level errors (red box: in a pair that the two "
        "rankings order significantly in opposite directions)"
    )
    plotting.save(fig, stem)
    captions.save_claims(stem, title, claims(rows))


__all__ = ["claims", "plot"]
