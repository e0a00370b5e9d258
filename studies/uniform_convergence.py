"""Uniform convergence of the attention-matrix estimate (Performers Theorem 4; theory.md §7, claim 28).

Theorem 4: for rows of Q and K in the ball of radius R, trigonometric features with block-orthogonal
projections achieve ‖Â − A‖_∞ ≤ ε with any constant probability once

    m = Θ((d/δ²) log(4 d^{3/4} R/δ)),   δ = ε/h*²,  h* = exp(l²/2),  l = R d^{-1/4},

where A = exp(QKᵀ/√d) is *un-normalized*, and m does not depend on L. For each (L, R, m) the study
draws W many times and reports the 90th percentile of the sup-norm error max_ij |Â_ij − A_ij| (the
ε reached with failure probability 0.1) with a distribution-free 99% interval (binomial order
statistics). Its upper end exists only from n = 51 draws on (0.9ⁿ ≤ 0.005), so the quick preset
draws W 64 times; with fewer draws the upper end is unbounded and drawn as an open triangle.

One draw of W with the largest m serves every m: its first m rows are a draw of m rows (Haar blocks,
the last truncated), and :meth:`estimators.registry.Estimator.gram_prefixes` accumulates Â over the
projections between consecutive m, so all m of a draw cost one Gram of m_max rows. The sup errors at
different m of one (L, R) are therefore correlated; each claim compares curves of different (L, R),
which never share draws, or fits one curve's slope (descriptive). The draws of one (L, R) are split
into cells of ``chunk`` draws (the paper preset: 8 cells of 25), so its L²·m_max work spreads over
the workers.

The theorem states a rate, Θ(·), with no constant, so no line on the figure is "the bound". Each
curve carries a rate guide ε ∝ m^{-1/2} (the theorem's rate in m without its log factor) anchored at
that curve's smallest m; it shows the shape, not a level. The captions are computed
(:func:`claims`): the fitted slopes, whether ε grows with L and with R (disjoint 99% intervals),
and how the growth in R compares with the factor h*² = exp(R²/√d) of the theorem. A sup over more
pairs approaches the sup over the ball, so ε may grow with L at fixed m without contradicting the
theorem, whose m bounds the sup over the whole ball.

Precision: Â is estimated in float32 unless the run names a dtype (``--dtype``); A is exact in
float64. The sup errors are ≳ 10⁻² and float32 rounding of an entry is ~10⁻⁶, and
tests/test_study_precision.py checks that the float32 and float64 quantiles of a cell differ by under
1% of their standard error.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
from scipy import stats as sps

from estimators import kernels, registry
from estimators.backends import to_host

from .core import captions, plotting
from .core.cells import Study, chunk_cells, group_records, nested_m_range, powers_of_two, stable_rng
from .core.montecarlo import replicate_chunks

ESTIMATOR = "trig-ort"
QUANTILE = 0.9
PRESETS = {
    "quick": {
        "d": 16,
        "ms": (16, 32, 64, 128, 256),
        "Ls": (64, 256, 1024),
        "Rs": (1.0, 2.0, 3.0),
        "draws": 64,
        "chunk": 64,
    },
    "paper": {
        "d": 16,
        "ms": (16, 32, 64, 128, 256, 512, 1024, 2048),
        "Ls": (64, 256, 1024, 4096),
        "Rs": (1.0, 1.5, 2.0, 2.5, 3.0),
        "draws": 200,
        "chunk": 25,
    },
}
R_FOR_L = 2.0
"""Radius of the L sweep."""


def ball_rows(rng, count: int, d: int, radius: float):
    """``count`` points uniform in the ball of radius R in R^d: direction uniform, radius R·U^{1/d}."""
    directions = rng.standard_normal((count, d))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    return directions * (radius * rng.random((count, 1)) ** (1 / d))


def inputs(seed: int, length: int, radius: float, d: int):
    """Host raw Q, K (L, d) in the ball of radius R, shared by every m of one (L, R)."""
    rng = stable_rng(seed, "uniform_convergence", length, radius, d)
    return ball_rows(rng, length, d, radius), ball_rows(rng, length, d, radius)


def cells(preset: str) -> list[dict]:
    config = PRESETS[preset]
    points = [(length, R_FOR_L) for length in config["Ls"]]
    points += [(256, radius) for radius in config["Rs"] if radius != R_FOR_L]
    m_range = nested_m_range(config["ms"], "uniform_convergence")
    return [
        cell
        for length, radius in points
        for cell in chunk_cells(
            {
                "d": config["d"],
                "L": length,
                "R": radius,
                **m_range,
                "draws": config["draws"],
            },
            config["draws"],
            config.get("chunk", config["draws"]),
        )
    ]


def compute(cell) -> dict:
    """Sup errors (one list per m, one entry per draw) of the first m rows of each draw of m_max rows."""
    p = cell.kwargs
    target = cell.context.target
    scaled = [a * p["d"] ** -0.25 for a in inputs(cell.context.seed, p["L"], p["R"], p["d"])]
    exact = kernels.exact_gram("softmax", *scaled)
    x, y = (target.asarray(a) for a in scaled)
    row = registry.get(ESTIMATOR)
    rng = cell.rng()
    ms = powers_of_two(p["m_min"], p["m_max"])
    errors = [[] for _ in ms]
    for n in replicate_chunks(p["replicates"], p["L"] * (2 * p["L"] + 4 * p["m_max"])):
        W = row.draw(p["m_max"], p["d"], batch_shape=(n,), seed=rng, like=x)
        buffer = np.empty((n, *exact.shape))
        for position, (_, estimate) in enumerate(row.gram_prefixes(x[None], y[None], W, ms)):
            errors[position].extend(sup_errors_of(estimate, exact, buffer).tolist())
    return {"ms": ms, "sup_errors": errors}


def sup_errors_of(estimate, exact, buffer) -> np.ndarray:
    """max_ij |Â_ij − A_ij| (n,) of Â (n, L, L) on any backend against the float64 host A (L, L).

    Computed in float64 in ``buffer`` (n, L, L), which every prefix reuses: the same values as
    converting Â to float64 first, without a new L² array per step.
    """
    np.subtract(to_host(estimate), exact, out=buffer, dtype=np.float64)
    np.abs(buffer, out=buffer)
    return np.max(buffer, axis=(-2, -1))


def quantile_interval(samples, quantile: float = QUANTILE, confidence: float = 0.99):
    """Empirical quantile with a distribution-free interval from binomial order statistics.

    An end that no order statistic reaches is ±inf: the upper end needs P(all n below) = quantileⁿ
    ≤ (1 − confidence)/2 (n ≥ 51 for the 90th percentile at 99%); clamping it to the sample maximum
    would cover only 1 − quantileⁿ (92% at n = 24).
    """
    ordered = np.sort(np.asarray(samples, dtype=float))
    n = len(ordered)
    tail = (1 - confidence) / 2
    low = int(sps.binom.ppf(tail, n, quantile))
    high = int(sps.binom.ppf(1 - tail, n, quantile))
    estimate = float(np.quantile(ordered, quantile))
    lower = float(ordered[low - 1]) if low >= 1 else -np.inf
    upper = float(ordered[high]) if high < n else np.inf
    return estimate, lower, upper


def sup_errors(group, position: int) -> list[float]:
    """The sup errors of the m at ``position`` of one (L, R), its chunks' draws in chunk order."""
    ordered = sorted(group, key=lambda record: record["params"]["chunk"])
    return [error for record in ordered for error in record["values"]["sup_errors"][position]]


def summarize(records, context) -> list[dict]:
    rows = []
    for group in group_records(records, "L", "R").values():
        p = group[0]["params"]
        for position, m in enumerate(group[0]["values"]["ms"]):
            errors = sup_errors(group, position)
            if len(errors) != p["draws"]:
                raise ValueError(
                    f"uniform_convergence (L={p['L']}, R={p['R']}, m={m}): "
                    f"{len(errors)} sup errors recorded, {p['draws']} draws expected"
                )
            estimate, low, high = quantile_interval(errors)
            rows.append(
                {
                    "L": p["L"],
                    "R": p["R"],
                    "d": p["d"],
                    "m": m,
                    "draws": p["draws"],
                    "sup_error_q90": estimate,
                    "ci99_low": low,
                    "ci99_high": high,
                    "sup_error_median": float(np.median(errors)),
                }
            )
    return rows


def fitted_slope(ms, values) -> float:
    """Least-squares slope of log(value) against log(m)."""
    return float(np.polyfit(np.log(ms), np.log(values), 1)[0])


def _curves(rows, key):
    """``{level: rows sorted by m}`` of the L sweep (``key = 'L'``, R = R_FOR_L) or the R sweep (L = 256)."""
    other = "R" if key == "L" else "L"
    fixed = R_FOR_L if key == "L" else 256
    chosen = [r for r in rows if r[other] == fixed]
    levels = sorted({r[key] for r in chosen})
    return {level: sorted((r for r in chosen if r[key] == level), key=lambda r: r["m"]) for level in levels}


def slope_claim(rows) -> captions.Claim:
    """Least-squares log-log slopes of ε(m) per curve (descriptive; the theorem's rate is −1/2 up to
    a log factor)."""
    slopes = [
        fitted_slope([r["m"] for r in chosen], [r["sup_error_q90"] for r in chosen])
        for key in ("L", "R")
        for chosen in _curves(rows, key).values()
        if len(chosen) > 1
    ]
    low, high = min(slopes), max(slopes)
    return captions.Claim(
        f"The 90th-percentile sup-norm error falls as m^s with fitted slopes s from {low:.2f} to "
        f"{high:.2f} (Theorem 4's rate is s = −1/2 up to a log factor; dashed guides, no constant).",
        "least-squares slope of log ε on log m per curve; descriptive",
        {"slope_min": low, "slope_max": high},
    )


def growth(chosen_low, chosen_high) -> tuple[int, int, list[float]]:
    """(m's where ε(high) > ε(low) with disjoint 99% intervals, m's compared, ratios ε(high)/ε(low))."""
    low_at = {r["m"]: r for r in chosen_low}
    pairs = [(low_at[r["m"]], r) for r in chosen_high if r["m"] in low_at]
    disjoint = sum(high["ci99_low"] > low["ci99_high"] for low, high in pairs)
    ratios = [high["sup_error_q90"] / low["sup_error_q90"] for low, high in pairs]
    return disjoint, len(pairs), ratios


def length_claim(rows) -> captions.Claim:
    """Does ε grow from the smallest to the largest L? Test: disjoint 99% order-statistic intervals
    (ε(L_max) interval above ε(L_min) interval) at each m; two disjoint 99% intervals reject equality
    at a level below 0.01 per m."""
    curves = _curves(rows, "L")
    smallest, largest = min(curves), max(curves)
    disjoint, total, ratios = growth(curves[smallest], curves[largest])
    numbers = {"disjoint": disjoint, "compared": total, "ratio_min": min(ratios), "ratio_max": max(ratios)}
    test = f"99% order-statistic intervals of ε(L = {largest}) above those of ε(L = {smallest}), per m"
    if disjoint:
        return captions.Claim(
            f"ε grows with L: from L = {smallest} to {largest} it is ×{min(ratios):.2f}–{max(ratios):.2f} "
            f"larger, significantly at {captions.count_phrase(disjoint, total)} m's. This does not "
            "contradict Theorem 4: it bounds the sup over the whole ball with an m free of L, and a "
            "sup over more pairs of the ball can only grow towards it.",
            test,
            numbers,
            holds=False,
        )
    return captions.Claim(
        f"ε does not grow detectably with L from L = {smallest} to {largest} (ratios "
        f"{min(ratios):.2f}–{max(ratios):.2f}, no m with disjoint 99% intervals), as Theorem 4's "
        "L-free m suggests.",
        test,
        numbers,
        holds=True,
    )


def radius_claim(rows) -> captions.Claim:
    """ε grows with R: disjoint 99% intervals between consecutive radii at each m; the growth from the
    smallest to the largest R at the largest m against the theorem's factor h*² = exp(R²/√d)."""
    curves = _curves(rows, "R")
    radii = sorted(curves)
    disjoint = total = 0
    for low, high in itertools.pairwise(radii):
        found, compared, _ = growth(curves[low], curves[high])
        disjoint, total = disjoint + found, total + compared
    _, _, ratios = growth(curves[radii[0]], curves[radii[-1]])
    d = rows[0]["d"]
    factor = float(np.exp((radii[-1] ** 2 - radii[0] ** 2) / np.sqrt(d)))
    numbers = {"disjoint": disjoint, "compared": total, "ratio_at_largest_m": ratios[-1], "h_star_sq": factor}
    return captions.Claim(
        f"ε grows with R (consecutive radii significantly apart at {captions.count_phrase(disjoint, total)} "
        f"(R, m) pairs); from R = {radii[0]:g} to {radii[-1]:g} it grows ×{ratios[-1]:.1f} at the "
        f"largest m, against ×{factor:.1f} for the factor h*² = exp(R²/√d) of Theorem 4's upper bound.",
        "consecutive radii: 99% order-statistic intervals disjoint, per m; ratio of ε at the largest m",
        numbers,
        holds=disjoint == total,
    )


def claims(rows) -> list[captions.Claim]:
    return [slope_claim(rows), length_claim(rows), radius_claim(rows)]


def _curve(ax, chosen, color, label, marker, shift=1.0):
    """Points with their order-statistic intervals; an unbounded upper end (too few draws for a 99%
    upper limit) is drawn as an open up-triangle instead of a bar. ``shift`` multiplies the m
    positions so that the curves' bars do not cover each other."""
    ms = np.array([r["m"] for r in chosen])
    values = np.array([r["sup_error_q90"] for r in chosen])
    high = np.array([r["ci99_high"] for r in chosen])
    low = np.array([r["ci99_low"] for r in chosen])
    bounded = np.isfinite(high)
    slope = fitted_slope(ms, values)
    ax.errorbar(
        ms * shift,
        values,
        yerr=np.vstack(
            [values - np.where(np.isfinite(low), low, 0.0), np.where(bounded, high - values, 0.0)]
        ),
        linestyle="none",
        marker=marker,
        markersize=4.5,
        capsize=2.5,
        color=color,
        label=f"{label} (slope {slope:+.2f})",
    )
    ax.plot(
        ms[~bounded] * shift, values[~bounded] * 1.15, "^", markerfacecolor="none", color=color, markersize=5
    )
    fine = np.geomspace(ms[0], ms[-1], 30)
    ax.plot(fine, values[0] * np.sqrt(ms[0] / fine), color=color, linestyle="--", linewidth=1.0)


def plot(rows, context, stem) -> None:
    fig, (ax_l, ax_r) = plotting.figure(ncols=2, width=5.4, height=4.6)
    d = rows[0]["d"]
    found = claims(rows)
    for ax, key in ((ax_l, "L"), (ax_r, "R")):
        curves = _curves(rows, key)
        for index, (color, (level, chosen)) in enumerate(
            zip(plotting.colors(len(curves)), curves.items(), strict=True)
        ):
            shift = 1.05 ** (index - (len(curves) - 1) / 2)
            _curve(ax, chosen, color, f"{key} = {level:g}", plotting.MARKERS[index], shift)
        ax.plot(
            [],
            [],
            color="grey",
            linestyle="--",
            label=r"rate guide $\propto m^{-1/2}$, anchored at each curve's first m"
            "\n(Theorem 4 states no constant)",
        )
        if any(not np.isfinite(r["ci99_high"]) for chosen in curves.values() for r in chosen):
            ax.plot(
                [],
                [],
                "^",
                markerfacecolor="none",
                color="grey",
                label="upper 99% end unbounded (too few draws)",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
    ylabel = r"90th percentile of $\|\hat A - A\|_\infty$"
    grows_l = "grows" if found[1].holds is False else "does not grow detectably"
    below = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.16), "ncols": 2}
    plotting.label(
        ax_l, f"{grows_l} with L (R = {R_FOR_L:g})", "number of random projections m", ylabel, legend_kw=below
    )
    grows_r = "grows" if found[2].numbers["disjoint"] else "does not grow detectably"
    plotting.label(
        ax_r, f"{grows_r} with R (L = 256)", "number of random projections m", ylabel, legend_kw=below
    )
    fig.suptitle(
        f"Theorem 4: uniform convergence of trig + ORF attention (d = {d}, {rows[0]['draws']} draws of W, "
        "99% order-statistic CI)"
    )
    plotting.save(fig, stem)
    captions.save_claims(stem, STUDY.title, found)


STUDY = Study(
    name="uniform_convergence",
    title="Uniform convergence of Â (Theorem 4)",
    claim="The sup-norm error of the un-normalized trig + ORF attention matrix against m, sequence "
    "length L and input radius R, with Theorem 4's rate in m as a guide.",
    cells=cells,
    compute=compute,
    summarize=summarize,
    plot=plot,
    dtype="float32",
)

if __name__ == "__main__":
    from .__main__ import main_for

    sys.exit(main_for(STUDY.name))
