"""Unbiasedness of every registry estimator (theory.md §11 claims 1, 13, 14).

For a grid of input pairs (two norms; angles 0, π/2, 3π/4, π with axis-aligned x = a·e₁, and the
same pairs turned by a fixed rotation) the relative bias E[K̂]/K − 1 is estimated with a 99%
interval. K is the softmax kernel exp(xᵀy) for every softmax-family row (so the √d-norm rows, which
estimate SMREG, show their bias SMREG/SM − 1, theory.md §6) and the arc-cosine kernel for the ReLU
rows (whose bias is divided by ‖x‖‖y‖/2, the kernel at θ = 0, since the kernel vanishes at θ = π).
A study-local variant, block-orthogonal positive features *without* the QR sign fix, shows the
Haar pitfall of theory.md §5.1: its directions are not Haar, so it is biased at axis-aligned inputs
(and at any fixed direction; the bias only averages out over isotropic random inputs).

The CSV also gives ``z_theory``, the bias standardized by the closed-form variance of
:func:`estimators.theory.mse` (not by the sample SD, which heavy tails make unreliable), for every
row with a closed form: |z| well beyond 3 flags an estimator that disagrees with its theory.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from estimators import kernels, projections, registry, theory

from .core import captions, plotting
from .core.cells import Study, chunk_cells, group_records
from .core.montecarlo import kernel_errors, merge_moments, moment_summary

NO_SIGN_FIX = "positive-ort-nosignfix"
PRESETS = {
    "quick": {"d": 8, "m": 8, "replicates": 20_000, "chunk": 5_000},
    "paper": {"d": 16, "m": 16, "replicates": 400_000, "chunk": 20_000},
}
NORMS = (0.5, 0.8)
EXACT = 1e-8
"""Relative standard deviation below which an estimate counts as exact (rounding only)."""
ANGLES = (0.0, math.pi / 2, 3 * math.pi / 4, math.pi)


def estimator_names() -> list[str]:
    """Every registry row and the unfixed-QR variant."""
    return [*registry.names(), NO_SIGN_FIX]


def input_pairs(d: int):
    """Pairs (labels, x (P, d), y (P, d)): x = a·e₁, y = a(cos θ e₁ + sin θ e₂), then rotated copies."""
    labels, xs, ys = [], [], []
    rotation = projections.haar_rows(np.random.default_rng(2009).standard_normal((d, d)))
    for turned in (False, True):
        for norm in NORMS:
            for angle in ANGLES:
                x = np.zeros(d)
                y = np.zeros(d)
                x[0] = norm
                y[0], y[1] = norm * math.cos(angle), norm * math.sin(angle)
                if turned:
                    x, y = rotation @ x, rotation @ y
                labels.append({"norm": norm, "angle": angle, "axis_aligned": not turned})
                xs.append(x)
                ys.append(y)
    return labels, np.array(xs), np.array(ys)


def row_for(name: str):
    """The registry row behind an estimator name (the unfixed variant reuses positive-ort)."""
    return registry.get("positive-ort" if name == NO_SIGN_FIX else name)


def _draw_without_sign_fix(m, d, n, rng, like):
    return projections.orthogonal(m, d, sign_fix=False, batch_shape=(n,), seed=rng, like=like)


def target_kernel(name: str) -> str:
    """The kernel the relative bias is measured against: arc-cosine for ReLU rows, softmax otherwise."""
    return "arccos" if row_for(name).kernel == "arccos" else "softmax"


def bias_scale(name: str, x, y):
    """Denominator of the relative bias: K(x, y), or ‖x‖‖y‖/2 = K at θ = 0 for the arc-cosine kernel
    (which vanishes at θ = π)."""
    if target_kernel(name) == "arccos":
        return np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1) / 2
    return kernels.exact("softmax", x, y)


def scaled_moments(moments: dict, scale) -> dict:
    """Moment sums of e/scale from those of e."""
    scale = np.asarray(scale, dtype=np.float64)
    return {
        "n": moments["n"],
        "s1": moments["s1"] / scale,
        "s2": moments["s2"] / scale**2,
        "s4": moments["s4"] / scale**4,
    }


def cells(preset: str) -> list[dict]:
    config = PRESETS[preset]
    base = {"d": config["d"], "m": config["m"]}
    return [
        cell
        for name in estimator_names()
        for cell in chunk_cells({**base, "estimator": name}, config["replicates"], config["chunk"])
    ]


def compute(cell) -> dict:
    p = cell.kwargs
    _, x, y = input_pairs(p["d"])
    name = p["estimator"]
    scale = bias_scale(name, x, y)
    draw = _draw_without_sign_fix if name == NO_SIGN_FIX else None
    moments = kernel_errors(
        cell,
        row_for(name),
        p["m"],
        x,
        y,
        kernels.exact(target_kernel(name), x, y),
        p["replicates"],
        relative=False,
        draw=draw,
    )
    return scaled_moments(moments, scale)


def theory_z(name, x, y, m, summary, expected, scale):
    """z = (mean error − expected) / sqrt(Var/n) with the closed-form variance of ``estimators.theory``.

    NaN where the row has no closed form (or is the unfixed-QR variant) and where the relative standard
    deviation is below :data:`EXACT` (the estimate is exact up to rounding there: trig at x = y,
    positive features at x = −y).
    """
    if name == NO_SIGN_FIX:
        return np.full(len(expected), np.nan)
    try:
        variance = theory.mse(name, x, y, m) / scale**2
    except NotImplementedError:
        return np.full(len(expected), np.nan)
    standard_error = np.sqrt(np.where(variance > EXACT**2, variance, np.nan) / summary["n"])
    return (summary["bias"] - expected) / standard_error


def summarize(records, context) -> list[dict]:
    rows = []
    for (name,), group in group_records(records, "estimator").items():
        params = group[0]["params"]
        labels, x, y = input_pairs(params["d"])
        summary = moment_summary(merge_moments(r["values"] for r in group))
        row = row_for(name)
        target = kernels.exact(target_kernel(name), x, y)
        scale = bias_scale(name, x, y)
        expected = (row.exact(x, y) - target) / scale
        if name == NO_SIGN_FIX:
            expected = np.full(len(labels), np.nan)
        z = theory_z(name, x, y, params["m"], summary, expected, scale)
        for index, label in enumerate(labels):
            rows.append(
                {
                    "estimator": name,
                    "kernel": "unknown (not Haar)" if name == NO_SIGN_FIX else row.kernel,
                    "d": params["d"],
                    "m": params["m"],
                    "norm": label["norm"],
                    "angle": label["angle"],
                    "axis_aligned": label["axis_aligned"],
                    "replicates": summary["n"],
                    "relative_bias": float(summary["bias"][index]),
                    "ci99": float(summary["bias_ci"][index]),
                    "theory_relative_bias": float(expected[index]),
                    "z_theory": float(z[index]),
                }
            )
    return rows


def theory_claim(rows) -> captions.Claim:
    """Mean against closed form: |z_theory| ≤ Bonferroni critical value over every row with a finite z
    (family α = 0.01; z uses the closed-form variance, see :func:`theory_z`)."""
    tested = [r for r in rows if math.isfinite(r["z_theory"])]
    critical = captions.bonferroni_z(len(tested))
    failing = [r for r in tested if abs(r["z_theory"]) > critical]
    names = sorted({r["estimator"] for r in failing})
    sentence = (
        f"Every estimator with a closed form matches it (|z| ≤ {critical:.2f} at all {len(tested)} points; "
        "zero bias for the softmax rows, SMREG/SM − 1 for the √d-norm rows)."
        if not failing
        else f"The mean misses its closed form at {len(failing)} of {len(tested)} points "
        f"(|z| > {critical:.2f}): {', '.join(names)}."
    )
    return captions.Claim(
        sentence,
        "z = bias / closed-form standard error per point, two-sided, Bonferroni over the points, "
        "family α = 0.01",
        {"points": len(tested), "critical_z": critical, "failing": len(failing)},
        holds=not failing,
    )


def biased_claim(rows) -> captions.Claim:
    """Rows whose closed form is biased (√d norms): bias significant (|bias| > ci99) at how many points."""
    chosen = [r for r in rows if math.isfinite(r["theory_relative_bias"]) and r["theory_relative_bias"] != 0]
    seen = [r for r in chosen if abs(r["relative_bias"]) > r["ci99"]]
    names = sorted({r["estimator"] for r in chosen})
    return captions.Claim(
        f"The rows with a closed-form bias ({captions.listing(names)}: SMREG, not softmax) show a "
        f"significant bias at {captions.count_phrase(len(seen), len(chosen))} points.",
        "|bias| > its 99% half-width, per point with a nonzero closed-form bias",
        {"points": len(chosen), "significant": len(seen)},
    )


def sign_fix_claim(rows) -> captions.Claim:
    """QR without the sign fix: significant bias (|bias| > ci99) at axis-aligned vs rotated points."""
    chosen = [r for r in rows if r["estimator"] == NO_SIGN_FIX]
    counts = {}
    for aligned in (True, False):
        group = [r for r in chosen if r["axis_aligned"] == aligned]
        counts[aligned] = (sum(abs(r["relative_bias"]) > r["ci99"] for r in group), len(group))
    (hit, total), (hit_r, total_r) = counts[True], counts[False]
    return captions.Claim(
        f"QR without the sign fix ({NO_SIGN_FIX}) is significantly biased at "
        f"{captions.count_phrase(hit, total)} axis-aligned points and "
        f"{captions.count_phrase(hit_r, total_r)} rotated ones.",
        "|bias| > its 99% half-width, per point (α = 0.01 each)",
        {"aligned_biased": hit, "aligned": total, "rotated_biased": hit_r, "rotated": total_r},
        holds=hit > 0,
    )


def claims(rows) -> list[captions.Claim]:
    return [theory_claim(rows), biased_claim(rows), sign_fix_claim(rows)]


def plot(rows, context, stem) -> None:
    names = list(dict.fromkeys(r["estimator"] for r in rows))
    fig, (ax,) = plotting.figure(width=14.0, height=4.8)
    variants = list(dict.fromkeys((r["axis_aligned"], r["norm"]) for r in rows))
    palette = plotting.colors(len(variants))
    offsets = np.linspace(-0.3, 0.3, len(variants) * len(ANGLES))
    for v, (aligned, norm) in enumerate(variants):
        for a, angle in enumerate(ANGLES):
            chosen = [r for r in rows if (r["axis_aligned"], r["norm"], r["angle"]) == (aligned, norm, angle)]
            xpos = np.array([names.index(r["estimator"]) for r in chosen]) + offsets[v * len(ANGLES) + a]
            label = f"{'axis-aligned' if aligned else 'rotated'}, ‖x‖=‖y‖={norm}" if a == 0 else None
            plotting.points(
                ax,
                xpos,
                [r["relative_bias"] for r in chosen],
                [r["ci99"] for r in chosen],
                color=palette[v],
                marker=plotting.MARKERS[a],
                label=label,
            )
            theory = [r["theory_relative_bias"] for r in chosen]
            ax.plot(xpos, theory, linestyle="none", marker="_", markersize=9, color="black")
    ax.plot([], [], linestyle="none", marker="_", color="black", label="closed form E[K̂]/K − 1")
    for a, angle in enumerate(ANGLES):
        ax.plot([], [], linestyle="none", marker=plotting.MARKERS[a], color="gray", label=f"θ = {angle:.2f}")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    first = rows[0]
    plotting.label(
        ax,
        f"Unbiasedness: relative bias E[K̂]/K − 1 with 99% CI (d={first['d']}, m={first['m']}, "
        f"{first['replicates']:,} draws of W per point)",
        None,
        "relative bias  E[K̂]/K − 1",
        legend=False,
    )
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", fontsize="small")
    plotting.save(fig, stem)
    captions.save_claims(stem, STUDY.title, claims(rows))


STUDY = Study(
    name="unbiasedness",
    title="Unbiasedness of every estimator",
    claim="The relative bias of every estimator at axis-aligned and rotated input pairs against its closed "
    "form (zero for softmax, SMREG/SM − 1 for √d norms), and QR without the sign fix.",
    cells=cells,
    compute=compute,
    summarize=summarize,
    plot=plot,
)

if __name__ == "__main__":
    from .__main__ import main_for

    sys.exit(main_for(STUDY.name))
