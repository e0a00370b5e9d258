"""Uniform convergence of the attention-matrix estimate (Performers Theorem 4; theory.md §7, claim 28).

Theorem 4: for rows of Q and K in the ball of radius R, trigonometric features with block-orthogonal
projections achieve ‖Â − A‖_∞ ≤ ε with any constant probability once

    m = Θ((d/δ²) log(4 d^{3/4} R/δ)),   δ = ε/h*²,  h* = exp(l²/2),  l = R d^{-1/4},

where A = exp(QKᵀ/√d) is *un-normalized*, and m does not depend on L. For each (L, R, m) the study
draws W many times and reports the 90th percentile of the sup-norm error max_ij |Â_ij − A_ij| (the
ε reached with failure probability 0.1) with a distribution-free 99% interval (binomial order
statistics). Overlays: the fitted log-log slope per curve (≈ −1/2 up to log factors) and the
theorem's ε(m) from :func:`estimators.theory.theorem4_features` inverted in ε, with its unknown
constant C fitted once (R = 2, largest m, largest L) and reused for every R.
"""

from __future__ import annotations

import sys

import numpy as np
from scipy import optimize
from scipy import stats as sps

from estimators import kernels, registry, theory

from . import plotting
from .runner import Study, host, replicate_chunks, stable_rng

ESTIMATOR = "trig-ort"
QUANTILE = 0.9
PRESETS = {
    "quick": {
        "d": 16,
        "ms": (16, 32, 64, 128, 256),
        "Ls": (64, 256, 1024),
        "Rs": (1.0, 2.0, 3.0),
        "draws": 24,
    },
    "paper": {
        "d": 16,
        "ms": (16, 32, 64, 128, 256, 512, 1024, 2048),
        "Ls": (64, 256, 1024, 4096),
        "Rs": (1.0, 1.5, 2.0, 2.5, 3.0),
        "draws": 200,
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
    return [
        {"d": config["d"], "L": length, "R": radius, "m": m, "draws": config["draws"]}
        for length, radius in points
        for m in config["ms"]
    ]


def compute(cell) -> dict:
    p = cell.kwargs
    target = cell.context.target
    q, k = inputs(cell.context.seed, p["L"], p["R"], p["d"])
    x, y = (target.asarray(a * p["d"] ** -0.25) for a in (q, k))
    exact = host(kernels.exact_gram("softmax", x, y))
    row = registry.get(ESTIMATOR)
    rng = cell.rng()
    errors = []
    for n in replicate_chunks(p["draws"], p["L"] * (p["L"] + 4 * p["m"])):
        W = row.draw(p["m"], p["d"], batch_shape=(n,), seed=rng, like=x)
        estimate = host(row.estimate_gram(x[None], y[None], W))
        errors.extend(np.max(np.abs(estimate - exact), axis=(-2, -1)).tolist())
    return {"sup_errors": errors}


def quantile_interval(samples, quantile: float = QUANTILE, confidence: float = 0.99):
    """Empirical quantile with a distribution-free interval from binomial order statistics."""
    ordered = np.sort(np.asarray(samples, dtype=float))
    n = len(ordered)
    tail = (1 - confidence) / 2
    low = int(sps.binom.ppf(tail, n, quantile))
    high = int(sps.binom.ppf(1 - tail, n, quantile))
    estimate = float(np.quantile(ordered, quantile))
    return estimate, float(ordered[max(low - 1, 0)]), float(ordered[min(high, n - 1)])


def theorem4_epsilon(m, radius: float, d: int, constant: float) -> float:
    """ε with theorem4_features(R, d, ε, C) = m (the count decreases in ε; the log term needs
    δ = ε e^{−l²} < 4 d^{3/4} R, which bounds the bracket)."""

    def gap(log_eps):
        return np.log(theory.theorem4_features(radius, d, np.exp(log_eps), constant)) - np.log(m)

    largest = np.log(4 * d**0.75 * radius) + radius**2 / np.sqrt(d)
    return float(np.exp(optimize.brentq(gap, -40.0, largest - 1e-6)))


def summarize(records, context) -> list[dict]:
    rows = []
    for record in records:
        p = record["params"]
        estimate, low, high = quantile_interval(record["values"]["sup_errors"])
        rows.append(
            {
                "L": p["L"],
                "R": p["R"],
                "d": p["d"],
                "m": p["m"],
                "draws": p["draws"],
                "sup_error_q90": estimate,
                "ci99_low": low,
                "ci99_high": high,
                "sup_error_median": float(np.median(record["values"]["sup_errors"])),
            }
        )
    return rows


def fitted_slope(ms, values) -> float:
    """Least-squares slope of log(value) against log(m)."""
    return float(np.polyfit(np.log(ms), np.log(values), 1)[0])


def fit_constant(rows) -> float:
    """C such that the theorem's ε(m) equals the measured ε at R = 2, largest m, largest L."""
    anchor = max((r for r in rows if r["R"] == R_FOR_L), key=lambda r: (r["L"], r["m"]))
    count = theory.theorem4_features(anchor["R"], anchor["d"], anchor["sup_error_q90"], 1.0)
    return float(anchor["m"] / count)


def _curve(ax, chosen, color, label, marker):
    ms = np.array([r["m"] for r in chosen])
    values = np.array([r["sup_error_q90"] for r in chosen])
    slope = fitted_slope(ms, values)
    ax.errorbar(
        ms,
        values,
        yerr=np.vstack([values - [r["ci99_low"] for r in chosen], [r["ci99_high"] for r in chosen] - values]),
        linestyle="none",
        marker=marker,
        markersize=4.5,
        capsize=2.5,
        color=color,
        label=f"{label} (slope {slope:+.2f})",
    )


def plot(rows, context, stem) -> None:
    fig, (ax_l, ax_r) = plotting.figure(ncols=2, width=5.4, height=4.4)
    constant = fit_constant(rows)
    d = rows[0]["d"]
    ms_all = sorted({r["m"] for r in rows})
    fine = np.geomspace(min(ms_all), max(ms_all), 60)
    lengths = sorted({r["L"] for r in rows if r["R"] == R_FOR_L})
    for index, (color, length) in enumerate(zip(plotting.colors(len(lengths)), lengths, strict=True)):
        chosen = sorted((r for r in rows if r["R"] == R_FOR_L and r["L"] == length), key=lambda r: r["m"])
        _curve(ax_l, chosen, color, f"L = {length}", plotting.MARKERS[index])
    ax_l.plot(
        fine,
        [theorem4_epsilon(m, R_FOR_L, d, constant) for m in fine],
        color="black",
        linestyle="--",
        label=f"Theorem 4, C = {constant:.2g} (fitted)",
    )
    radii = sorted({r["R"] for r in rows if r["L"] == 256})
    for index, (color, radius) in enumerate(zip(plotting.colors(len(radii)), radii, strict=True)):
        chosen = sorted((r for r in rows if r["L"] == 256 and r["R"] == radius), key=lambda r: r["m"])
        _curve(ax_r, chosen, color, f"R = {radius:g}", plotting.MARKERS[index])
        ax_r.plot(fine, [theorem4_epsilon(m, radius, d, constant) for m in fine], color=color, linestyle="--")
    ax_r.plot([], [], color="black", linestyle="--", label="Theorem 4 (same C)")
    for ax in (ax_l, ax_r):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
    ylabel = r"90th percentile of $\|\hat A - A\|_\infty$"
    plotting.label(ax_l, f"flat in L (R = {R_FOR_L:g})", "number of random projections m", ylabel)
    plotting.label(ax_r, "grows with R (L = 256)", "number of random projections m", ylabel)
    fig.suptitle(
        f"Theorem 4: uniform convergence of trig + ORF attention (d = {d}, {rows[0]['draws']} draws of W, "
        "99% order-statistic CI)"
    )
    plotting.save(fig, stem)


STUDY = Study(
    name="uniform_convergence",
    title="Uniform convergence of Â (Theorem 4)",
    claim="The sup-norm error of the un-normalized trig + ORF attention matrix decays ≈ m^{-1/2}, "
    "does not grow with L and grows with the radius R, as Theorem 4 states.",
    cells=cells,
    compute=compute,
    summarize=summarize,
    plot=plot,
)

if __name__ == "__main__":
    from .__main__ import main_for

    sys.exit(main_for(STUDY.name))
