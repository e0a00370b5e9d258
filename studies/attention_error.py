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
prediction (:func:`studies.figures.attention_error.delta_claim`).

Two input regimes: isotropic (qᵀk ≈ 0, where Lemma 2 favours trigonometric features) and opposed
(q and k centred at ±μ, small kernel values, where positive features win); the paper's claim
"positive < trig" is a statement about the second kind. The paper's setting (L = 4096 keys,
d = 16, 15 input draws) is the ``paper`` preset; ``quick`` uses fewer keys and draws. Query rows
are a fixed subset of the sequence (all L keys are attended).

One draw of W with the largest m serves every m of an estimator: its first m rows are a draw of m
rows (iid rows; Haar blocks, the last truncated), and :func:`estimators.favor_prefixes.favor_prefixes`
gives the FAVOR output of every prefix from one feature computation (equal to ``attention.favor`` on
the truncated W up to rounding). The MSEs at different m of one estimator are therefore correlated;
the claims compare estimators (which never share draws) or one m with its prediction.

Precision: the Monte Carlo runs in float32 unless the run names a dtype (``--dtype``); the exact
output and the delta-method terms are float64. The output errors are at least ~10⁻² here, float32
rounding moves them by ~10⁻⁷ relative, and tests/test_study_precision.py checks that a cell's float32
and float64 estimates differ by under 1% of their standard error (a 3.3× faster paper preset).
"""

from __future__ import annotations

import sys

import numpy as np

from estimators import attention, registry, theory
from estimators.favor_prefixes import favor_prefixes

from .core.cells import Study, group_records, nested_m_range, powers_of_two, stable_rng
from .core.montecarlo import (
    error_moments,
    host,
    merge_moments,
    moment_summary,
    replicate_chunks,
)
from .figures import attention_error as figures

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
        {
            **fixed,
            "kind": "monte_carlo",
            "regime": regime,
            "estimator": name,
            "draw": draw,
            **m_range(config, name),
        }
        for regime in REGIMES
        for draw in range(config["draws"])
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


def m_range(config: dict, name: str) -> dict:
    """``{"m_min", "m_max"}`` of estimator ``name``: ``ms``, and ``delta_ms`` for the iid rows."""
    ms = [*config["ms"], *(config.get("delta_ms", ()) if name in theory.DELTA_ROWS else ())]
    return nested_m_range(ms, "attention_error")


def compute(cell) -> dict:
    """Monte Carlo cells: per m, moments of the per-replicate RMS output error (the first m rows of
    each draw of m_max rows); delta-method cells: the m = 1 terms of the prediction for the cell's
    input draw."""
    p = cell.kwargs
    if p["kind"] == "delta_method":
        q, k, v = inputs(cell.context.seed, p["regime"], p["draw"], p["L"], p["queries"], p["d"])
        bias_sq, trace = delta_method_terms(p["estimator"], q, k, v)
        return {"bias_sq": bias_sq, "trace": trace}
    target = cell.context.target
    host_inputs = inputs(cell.context.seed, p["regime"], p["draw"], p["L"], p["queries"], p["d"])
    exact = host(attention.exact(*host_inputs))
    q, k, v = (target.asarray(a) for a in host_inputs)
    row = registry.get(p["estimator"])
    rng = cell.rng()
    ms = powers_of_two(p["m_min"], p["m_max"])
    rms, failed = [[] for _ in ms], [0 for _ in ms]
    for n in replicate_chunks(p["replicates"], 4 * p["m_max"] * (p["L"] + p["queries"])):
        W = row.draw(p["m_max"], p["d"], batch_shape=(n,), seed=rng, like=q)
        outputs = favor_prefixes(q, k, v, W, ms, row.feature, denominator="zero")
        for position, (_, output) in enumerate(outputs):
            estimate = host(output)
            rms[position].append(np.sqrt(np.mean(np.sum((estimate - exact) ** 2, axis=-1), axis=-1)))
            failed[position] += int(np.sum(np.all(estimate == 0, axis=-1)))
    moments = [error_moments(np.concatenate(errors)) for errors in rms]
    return {
        "ms": ms,
        "n": p["replicates"],
        **{key: [m[key] for m in moments] for key in ("s1", "s2", "s4")},
        "failed_rows": failed,
        "rows": p["replicates"] * p["queries"],
    }


def delta_method_terms(name: str, q, k, v) -> tuple[float, float]:
    """Mean over query rows of ‖bias_i‖² and tr Cov(ô_i) at m = 1 (theory.md §7.1,
    :func:`estimators.theory.attention_delta_trace`).

    With m projections the delta-method MSE is ``bias_sq / m² + trace / m``.
    """
    delta = theory.attention_delta_trace(name, q, k, v, 1, scale_inputs=True)
    return float(np.mean(delta.bias_sq)), float(np.mean(delta.trace))


def summarize(records, context) -> list[dict]:
    delta = {
        (r["params"]["regime"], r["params"]["estimator"], r["params"]["draw"]): r["values"]
        for r in records
        if r["params"]["kind"] == "delta_method"
    }
    monte_carlo = [r for r in records if r["params"]["kind"] == "monte_carlo"]
    rows = {}
    for (regime, name), group in group_records(monte_carlo, "regime", "estimator").items():
        merged = merge_moments(r["values"] for r in group)
        p = group[0]["params"]
        for position, m in enumerate(group[0]["values"]["ms"]):
            at_m = {"n": merged["n"], **{key: merged[key][position] for key in ("s1", "s2", "s4")}}
            summary = moment_summary(at_m)
            failed = sum(r["values"]["failed_rows"][position] for r in group)
            terms = [delta.get((regime, name, r["params"]["draw"])) for r in group]
            predicted = np.nan
            if all(terms):
                predicted = float(np.mean([t["bias_sq"] / m**2 + t["trace"] / m for t in terms]))
            rows[(regime, m, name)] = {
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
                "nonpositive_denominator_rate": failed / sum(r["values"]["rows"] for r in group),
            }
    order = {name: index for index, name in enumerate(ESTIMATORS)}
    keys = sorted(rows, key=lambda key: (REGIMES.index(key[0]), key[1], order[key[2]]))
    return [rows[key] for key in keys]


def plot(rows, context, stem) -> None:
    """The figure and its claims caption (:func:`studies.figures.attention_error.plot`)."""
    figures.plot(rows, stem, title=STUDY.title)


STUDY = Study(
    name="attention_error",
    title="Attention output error vs m (Fig. 4)",
    claim="The normalized FAVOR output MSE against m, for trig and positive features, iid and orthogonal, "
    "in two input regimes, over the first-order delta-method prediction.",
    cells=cells,
    compute=compute,
    summarize=summarize,
    plot=plot,
    dtype="float32",
)

if __name__ == "__main__":
    from .__main__ import main_for

    sys.exit(main_for(STUDY.name))
