"""Causal FAVOR stabilizers: the future leak and the ε bias (theory.md §8, §11 claims 16 and 18).

The public Performer code shifts key features by one maximum over the *whole* sequence and adds
ε = 10⁻⁶ … 10⁻⁴ to every feature. In causal attention that makes the output at position i depend on
keys j > i. favor-bench's ``stabilizer="auto"`` uses a running (prefix) maximum instead
(:mod:`estimators.causal`), so no output can see the future. For random q, k ~ N(0, I/4),
v ~ N(0, I) (d = 16, positive features) with one future key (j = 3L/4) replaced by an outlier
whose largest log-amplitude exceeds every other key's by Δ (it points along the longest row of W),
the study measures

* the leak: max over i ≤ L/2 of |o_i − o'_i| when only keys at positions > L/2 change
  (exactly 0 for ``"auto"``, shown on the floor of the log axis);
* the ε bias: mean |o_i(ε) − o_i(0)| over all positions for the same W, against ε.

Points are means over independent draws of the inputs and W with 99% Student-t intervals.
"""

from __future__ import annotations

import sys

import numpy as np

from estimators import attention, projections

from .core import captions, plotting, stats
from .core.cells import Study, group_records
from .core.montecarlo import host

PRESETS = {
    "quick": {"d": 16, "L": 256, "m": 64, "draws": 8},
    "paper": {"d": 16, "L": 1024, "m": 256, "draws": 40},
}
EXCESSES = (0.0, 2.0, 4.0, 6.0, 8.0)
"""Log-scale excess of the future outlier key over every other key."""
EPSILONS = (0.0, 1e-6, 1e-4, 1e-2)
STABILIZERS = ("global", "auto")
INPUT_SCALE = 0.5
FLOOR = 1e-19
"""Where exact zeros are drawn on the log axes."""


def cells(preset: str) -> list[dict]:
    config = PRESETS[preset]
    return [
        {"d": config["d"], "L": config["L"], "m": config["m"], "excess": excess, "draw": draw}
        for excess in EXCESSES
        for draw in range(config["draws"])
    ]


def key_log_scales(keys, W):
    """ρ_j = max_r(ω_rᵀx_j) − ‖x_j‖²/2 with x_j = k_j d^{-1/4}: each key's largest log-amplitude (L,)."""
    x = keys * keys.shape[-1] ** -0.25
    return np.max(x @ W.T, axis=-1) - np.sum(x * x, axis=-1) / 2


def outlier_key(keys, W, excess: float):
    """A raw key whose log-scale exceeds every other key's by ``excess``.

    It points along the longest row ω* of W with scaled norm c solving c‖ω*‖ − c²/2 = ρ (the smaller
    root), so its log-amplitude is ρ = max_j ρ_j + excess (needs ρ ≤ ‖ω*‖²/2).
    """
    d = keys.shape[-1]
    norms = np.linalg.norm(W, axis=-1)
    longest = int(np.argmax(norms))
    wanted = np.max(key_log_scales(keys, W)) + excess
    if wanted > norms[longest] ** 2 / 2:
        raise ValueError(
            f"excess {excess} is out of reach for this W (max log-scale {norms[longest] ** 2 / 2:.1f})"
        )
    c = norms[longest] - np.sqrt(norms[longest] ** 2 - 2 * wanted)
    return W[longest] / norms[longest] * c * d**0.25


def _inputs(cell):
    """q, k (L, d) with rows ~ N(0, I/4), v ~ N(0, I), keys k' with one future outlier, W (m, d)."""
    p = cell.kwargs
    rng = cell.host_rng()
    length, d = p["L"], p["d"]
    q, k = (INPUT_SCALE * rng.standard_normal((length, d)) for _ in range(2))
    v = rng.standard_normal((length, d))
    W = projections.orthogonal(p["m"], d, seed=rng)
    changed = k.copy()
    changed[3 * length // 4] = outlier_key(np.delete(k, 3 * length // 4, axis=0), W, p["excess"])
    target = cell.context.target
    return [target.asarray(a) for a in (q, k, v, changed)], target.asarray(W)


def compute(cell) -> dict:
    (q, k, v, changed), W = _inputs(cell)
    half = cell.kwargs["L"] // 2

    def output(keys, stabilizer, eps):
        return host(attention.favor(q, keys, v, W, causal=True, stabilizer=stabilizer, eps=eps))

    values = {}
    for stabilizer in STABILIZERS:
        unbiased = output(changed, stabilizer, 0.0)
        for eps in EPSILONS:
            before, after = output(k, stabilizer, eps), output(changed, stabilizer, eps)
            values[f"{stabilizer}/{eps!r}"] = {
                "leak": float(np.max(np.abs(before[: half + 1] - after[: half + 1]))),
                "bias": float(np.mean(np.abs(after - unbiased))),
            }
    return values


def summarize(records, context) -> list[dict]:
    rows = []
    for (excess,), group in group_records(records, "excess").items():
        params = group[0]["params"]
        for stabilizer in STABILIZERS:
            for eps in EPSILONS:
                key = f"{stabilizer}/{eps!r}"
                row = {
                    "stabilizer": stabilizer,
                    "eps": eps,
                    "excess": excess,
                    "d": params["d"],
                    "L": params["L"],
                    "m": params["m"],
                    "draws": len(group),
                }
                for quantity in ("leak", "bias"):
                    samples = np.array([r["values"][key][quantity] for r in group])
                    interval = stats.mean_ci(samples, confidence=0.99)
                    row[quantity] = float(interval.estimate)
                    row[f"{quantity}_ci99"] = float(interval.high - interval.estimate)
                    row[f"{quantity}_max"] = float(samples.max())
                rows.append(row)
    return rows


def _floor(values):
    return np.maximum(np.asarray(values, dtype=float), FLOOR)


def leak_claim(rows) -> captions.Claim:
    """Future leak per stabilizer: exact zeros for the running maximum (every ``leak_max`` = 0) and,
    for the global one, the rows with ε > 0 and an outlier (excess > 0) whose leak exceeds its 99%
    interval (mean − ci99 > 0)."""
    auto = [r for r in rows if r["stabilizer"] == "auto"]
    exact = all(r["leak_max"] == 0 for r in auto)
    exposed = [r for r in rows if r["stabilizer"] == "global" and r["eps"] > 0 and r["excess"] > 0]
    leaking = [r for r in exposed if r["leak"] - r["leak_ci99"] > 0]
    largest = max((r["leak_max"] for r in rows if r["stabilizer"] == "global"), default=0.0)
    auto_part = (
        "the running-max stabilizer leaks exactly 0 in every draw"
        if exact
        else "the running-max stabilizer leaks in some draw"
    )
    return captions.Claim(
        f"With ε > 0 and a future outlier key the global stabilizer leaks significantly in "
        f"{captions.count_phrase(len(leaking), len(exposed))} settings (largest |o_i − o'_i| = "
        f"{largest:.2g}); {auto_part}.",
        "global: mean leak − ci99 > 0 per (ε, outlier excess); running max: largest leak over draws = 0",
        {"exposed": len(exposed), "leaking": len(leaking), "auto_exact_zero": exact, "largest": largest},
        holds=exact and bool(leaking),
    )


def bias_claim(rows) -> captions.Claim:
    """ε bias: mean − ci99 > 0 for every ε > 0 and both stabilizers, and exactly 0 at ε = 0."""
    positive = [r for r in rows if r["eps"] > 0]
    biased = sum(r["bias"] - r["bias_ci99"] > 0 for r in positive)
    zero = all(r["bias_max"] == 0 for r in rows if r["eps"] == 0)
    return captions.Claim(
        f"ε > 0 biases the output for both stabilizers (significant at "
        f"{captions.count_phrase(biased, len(positive))} (stabilizer, ε, excess) settings); ε = 0 gives "
        f"{'no bias' if zero else 'a bias'}.",
        "mean |o(ε) − o(0)| − ci99 > 0 per setting; largest bias over draws at ε = 0",
        {"settings": len(positive), "biased": biased, "eps0_exact": zero},
    )


def claims(rows) -> list[captions.Claim]:
    return [leak_claim(rows), bias_claim(rows)]


def plot(rows, context, stem) -> None:
    fig, (ax_leak, ax_bias) = plotting.figure(ncols=2, width=5.4, height=4.3)
    palette = plotting.colors(len(EPSILONS))
    for ax in (ax_leak, ax_bias):
        ax.set_yscale("log")
    for index, eps in enumerate(EPSILONS):
        for stabilizer, marker, line in (("global", "o", "-"), ("auto", "s", ":")):
            chosen = [r for r in rows if r["eps"] == eps and r["stabilizer"] == stabilizer]
            excesses = [r["excess"] for r in chosen]
            leak = _floor([r["leak"] for r in chosen])
            plotting.points(
                ax_leak,
                excesses,
                leak,
                np.minimum([r["leak_ci99"] for r in chosen], leak * 0.999),
                color=palette[index],
                marker=marker,
                label=f"{stabilizer}, ε = {eps:g}",
            )
            ax_leak.plot(excesses, leak, linestyle=line, color=palette[index], linewidth=0.8)
    ax_leak.axhline(FLOOR, color="black", linewidth=0.8)
    ax_leak.text(
        np.mean(EXCESSES), FLOOR * 4, 'exactly 0: causal-safe "auto", every ε', fontsize="small", ha="center"
    )
    first = rows[0]
    plotting.label(
        ax_leak,
        f"future leak at i ≤ L/2 (L = {first['L']}, m = {first['m']})",
        "log-scale excess Δ of one future key (j = 3L/4)",
        r"$\max_{i \leq L/2}\, |o_i - o'_i|$  (k → k' at j > L/2)",
        legend_kw={"ncol": 2, "fontsize": "x-small", "loc": "center right"},
    )

    for stabilizer, marker, line in (("global", "o", "-"), ("auto", "s", ":")):
        for excess_index, excess in enumerate((min(EXCESSES), max(EXCESSES))):
            chosen = [
                r for r in rows if r["stabilizer"] == stabilizer and r["excess"] == excess and r["eps"] > 0
            ]
            eps = [r["eps"] for r in chosen]
            bias = _floor([r["bias"] for r in chosen])
            color = plotting.colors(4)[2 * excess_index + (stabilizer == "auto")]
            plotting.points(
                ax_bias,
                eps,
                bias,
                np.minimum([r["bias_ci99"] for r in chosen], bias * 0.999),
                color=color,
                marker=marker,
                label=f"{stabilizer}, outlier Δ = {excess:g}",
            )
            ax_bias.plot(eps, bias, linestyle=line, color=color, linewidth=0.8)
    ax_bias.set_xscale("log")
    plotting.label(
        ax_bias,
        "ε bias of the output (same W)",
        "ε added to every feature",
        r"$\mathrm{mean}_i\, |o_i(\varepsilon) - o_i(0)|$",
        legend_kw={"fontsize": "x-small"},
    )
    verdict = (
        "global key max + ε leaks the future; the running max does not"
        if leak_claim(rows).holds
        else "future leak and ε bias of two stabilizers"
    )
    fig.suptitle(f"Causal FAVOR stabilizers: {verdict} ({first['draws']} draws, 99% CI)")
    plotting.save(fig, stem)
    captions.save_claims(stem, STUDY.title, claims(rows))


STUDY = Study(
    name="causal_stability",
    title="Causal stabilizers: future leak and ε bias",
    claim="The future leak and the ε bias of causal FAVOR with the common global-max stabilizer and with "
    "favor-bench's running-max stabilizer, against the outlier size and ε.",
    cells=cells,
    compute=compute,
    summarize=summarize,
    plot=plot,
    batch_size=4,
)

if __name__ == "__main__":
    from .__main__ import main_for

    sys.exit(main_for(STUDY.name))
