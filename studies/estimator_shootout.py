"""Shoot-out of every softmax-kernel estimator in the registry (theory.md §4, §5, §10; claims 19–25).

Three questions, four figures (``estimator_shootout`` MSE vs t, ``_m`` MSE vs m, ``_attention``,
``_sorf``):

1. **Relative MSE vs t = ‖x + y‖²** at m = d: pairs with ‖x‖ = ‖y‖ = l (l² = 0.9) at angles giving
   t ∈ {0.25 … 3}, in a fixed generic plane (not axis-aligned: SORF, QMC and the discrete maps are not
   rotation invariant). Monte Carlo E[(K̂ − SM)²]/SM² with 99% intervals over the closed forms of
   :mod:`estimators.theory` (the bias² of the fixed-norm rows included; SORF and QMC have none).
2. **Relative MSE vs m** at t = 1, same conventions (m counts projections; trig, hyperbolic and
   gerf-trig have 2m features). A row that nests (:attr:`estimators.registry.Estimator.nests`: iid
   rows, Haar blocks, uniforms) draws W of ``m_max`` rows once per cell and records every power of
   two from ``m_min`` from its first m rows (:meth:`~estimators.registry.Estimator.estimate_prefixes`):
   each m's estimate has the distribution of its own draw; the points of one row at different m are
   positively correlated, which leaves each point's interval, and so each closed-form check, as it
   is. The coupled samplers and the hybrid maps draw each m on its own.
3. **Attention-output error at fixed m** on realistic inputs: q, k, v are linear images of shared
   "hidden states" h ~ N(μ, I) (a common mean direction, as the token embeddings of trained models
   have), q = h W_q, k = h W_k, v = h W_v with random W_q, W_k, and q, k rescaled so that the mean over
   all pairs of ‖x_i + y_j‖² (x = q d^{-1/4}, y = k d^{-1/4}) is ρ = 1.5, the regime where random
   features are usable (for peaked heads, ρ ≳ 10, every estimator's relative MSE is e^ρ-large; theory.md
   §7.1). Error: ‖Ô − O‖_F / ‖O‖_F against exact softmax attention,
   mean over draws of W and input draws with 99% intervals. Data-dependent parameters use the
   attention rules of :func:`estimators.features.data_options` (OPRF's homogeneity A*, FAVOR#'s Ψ*),
   applied per side through :func:`estimators.attention.favor_from_features`.

The SORF panel shows the relative bias E[K̂]/SM − 1 of SORF with fixed √d norms (as published) and
with re-randomized χ(d) norms, next to block-orthogonal √d rows, whose mean is SMREG (closed form).

Claims the papers make are scored in the CSV (``kind = claim``; :mod:`studies.core.shootout_claims`)
and the computed caption (``estimator_shootout_claims.md``); contradicted ones are also printed on the
figure they concern: the theory verdict from closed forms, the Monte Carlo verdict from the 99%
intervals ("holds" when the intervals separate in the claimed direction, "consistent" when the point
estimates are ordered but the intervals overlap, "contradicted" otherwise;
:mod:`studies.figures.estimator_shootout` says how to read a contradicted verdict). The ReLU rows are
left out: they estimate the arc-cosine kernel, not softmax. QMC points are drawn by scipy on the host
(with ``--rng native`` from the cell's host stream).

Precision: the kernel-MSE points (t and m) are checked against closed forms and compute in float64
whatever the run's dtype, and so do the discretely-induced rows
(:attr:`estimators.registry.Estimator.counts`: rounding U can move a count). The other
attention-output errors compute in float32 unless the run names a dtype (``--dtype``): they are
≳ 10⁻² here and float32 rounding moves them by ~10⁻⁶ relative; tests/test_study_precision.py checks
that a cell's float32 and float64 mean errors differ by under 1% of their standard error.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from estimators import attention, attention_metrics, features, kernels, projections, registry, theory
from estimators.backends import namespace

from .core import shootout_claims
from .core.cells import Study, chunk_cells, group_records, nested_m_range, powers_of_two, stable_rng
from .core.montecarlo import (
    ELEMENT_BUDGET,
    host,
    kernel_errors,
    merge_moments,
    moment_summary,
    replicate_chunks,
)
from .figures import estimator_shootout as figures


def estimators() -> tuple[str, ...]:
    """Every registry row of a softmax-type kernel (all but the arc-cosine rows), in table order."""
    return tuple(row.name for row in registry.rows() if row.kernel != "arccos")


PRESETS = {
    "quick": {
        "d": 8,
        "ms": (2, 4, 8, 16, 32, 64),
        "replicates": 1500,
        "chunk": 1500,
        "attention": {"d": 16, "L": 128, "m": 64, "draws": 3, "replicates": 32},
    },
    "paper": {
        "d": 16,
        "ms": (2, 4, 8, 16, 32, 64, 128, 256),
        "replicates": 40_000,
        "chunk": 10_000,
        "attention": {"d": 64, "L": 1024, "m": 256, "draws": 15, "replicates": 64},
    },
}
SQ_NORM = 0.9
T_GRID = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
T_FOR_M = 1.0
HIDDEN = 64
RHO = 1.5
MEAN_SHIFT = 1.0


def pair_at(t: float, d: int):
    """x, y (d,) with ‖x‖² = ‖y‖² = 0.9 and ‖x + y‖² = t, in a fixed random plane of R^d."""
    cos_angle = t / (2 * SQ_NORM) - 1
    plane = projections.haar_rows(stable_rng(0, "estimator_shootout", "plane", d).standard_normal((d, d)))[:2]
    length = math.sqrt(SQ_NORM)
    x = length * plane[0]
    y = length * (cos_angle * plane[0] + math.sqrt(max(1 - cos_angle**2, 0.0)) * plane[1])
    return x, y


def pairs(ts, d: int):
    """Stacked pairs (P, d), (P, d) for the values ``ts`` of ‖x + y‖²."""
    xs, ys = zip(*(pair_at(t, d) for t in ts), strict=True)
    return np.array(xs), np.array(ys)


def attention_inputs(seed: int, draw: int, length: int, d: int):
    """Host q, k, v (L, d) of one input draw: images of shared hidden states with a common mean."""
    rng = stable_rng(seed, "estimator_shootout", "attention", draw, length, d)
    hidden = rng.standard_normal((length, HIDDEN)) + MEAN_SHIFT * rng.standard_normal(HIDDEN) / math.sqrt(
        HIDDEN
    )
    w_q, w_k, w_v = rng.standard_normal((3, HIDDEN, d)) / math.sqrt(HIDDEN)
    q, k, v = hidden @ w_q, hidden @ w_k, hidden @ w_v
    rho = features.homogeneity_rho(q * d**-0.25, k * d**-0.25)[0, 0]
    scale = math.sqrt(RHO / rho)
    return q * scale, k * scale, v


def cells(preset: str) -> list[dict]:
    config = PRESETS[preset]
    d = config["d"]
    base = [
        cell
        for name in estimators()
        for cell in chunk_cells(
            {"kind": "t", "estimator": name, "d": d, "m": d}, config["replicates"], config["chunk"]
        )
    ]
    base += [
        cell
        for name in estimators()
        for sweep in m_sweeps(name, config["ms"])
        for cell in chunk_cells(
            {"kind": "m", "estimator": name, "d": d, **sweep}, config["replicates"], config["chunk"]
        )
    ]
    att = config["attention"]
    base += [
        {
            "kind": "attention",
            "estimator": name,
            **{k: att[k] for k in ("d", "L", "m", "replicates")},
            "draw": draw,
        }
        for name in estimators()
        for draw in range(att["draws"])
    ]
    return base


def m_sweeps(name, ms) -> list[dict]:
    """The m parameters of the cells of one estimator's m sweep: one ``{"m_min", "m_max"}`` for a row
    that nests (every m from one draw), else one ``{"m"}`` per m."""
    if registry.get(name).nests:
        return [nested_m_range(ms, "estimator_shootout")]
    return [{"m": m} for m in ms]


def point_records(records) -> list[dict]:
    """The records with one m each: a nested m-sweep record (values ``ms`` and moment sums (len(ms), 1))
    becomes one record per m holding its moment sums; the others pass unchanged."""
    points = []
    for record in records:
        values = record["values"]
        if "ms" not in values:
            points.append(record)
            continue
        params = {key: value for key, value in record["params"].items() if key not in ("m_min", "m_max")}
        for position, m in enumerate(values["ms"]):
            moments = {"n": values["n"], **{key: values[key][position] for key in ("s1", "s2", "s4")}}
            points.append({**record, "params": {**params, "m": m}, "values": moments})
    return points


THEORY_DTYPE = "float64"
"""Precision of the kernel-MSE points (kinds t and m): theory checks, whatever the run's dtype."""


def compute(cell) -> dict:
    p = cell.kwargs
    if p["kind"] == "attention":
        return attention_errors(cell)
    cell = cell.in_dtype(THEORY_DTYPE)
    x, y = pairs(T_GRID if p["kind"] == "t" else (T_FOR_M,), p["d"])
    row = registry.get(p["estimator"])
    if "m_max" in p:
        ms = powers_of_two(p["m_min"], p["m_max"])
        reference = kernels.softmax(x, y)
        return {"ms": ms, **kernel_errors(cell, row, p["m_max"], x, y, reference, p["replicates"], ms=ms)}
    draw = None
    if _needs_host_draws(cell, row):
        seed = cell.host_rng(1)

        def draw(m, d, n, rng, like):
            return row.draw(m, d, batch_shape=(n,), seed=seed, like=like)

    return kernel_errors(cell, row, p["m"], x, y, kernels.softmax(x, y), p["replicates"], draw=draw)


def _needs_host_draws(cell, row) -> bool:
    """QMC points come from scipy on the host: with ``--rng native`` they use the cell's host stream."""
    return cell.context.rng == "native" and row.projection.startswith("qmc")


def attention_errors(cell) -> dict:
    """Relative output errors ‖Ô − O‖_F/‖O‖_F over ``replicates`` draws of W for one input draw.

    W is drawn for every replicate at once (one stream) and used a chunk of replicates at a time,
    within :data:`~studies.core.montecarlo.ELEMENT_BUDGET`. A row whose features for one replicate
    exceed the budget (the hybrid maps: 4k(n + 1) wide) estimates Â (L, L) directly and normalizes it.
    """
    p = cell.kwargs
    row = registry.get(p["estimator"])
    cell = cell.for_estimator(row)
    target = cell.context.target
    q, k, v = (target.asarray(a) for a in attention_inputs(cell.context.seed, p["draw"], p["L"], p["d"]))
    exact = host(attention.exact(q, k, v))
    scale = p["d"] ** -0.25
    q_options, k_options = features.data_options(row.feature, q * scale, k * scale)
    seed = cell.host_rng(1) if _needs_host_draws(cell, row) else cell.rng()
    W = row.draw(p["m"], p["d"], batch_shape=(p["replicates"],), seed=seed, like=q)
    feature_elements = (q.shape[-2] + k.shape[-2]) * row.feature_width(p["m"])
    direct = feature_elements > ELEMENT_BUDGET
    per_replicate = q.shape[-2] * k.shape[-2] if direct else feature_elements
    xp = namespace(q)
    errors, start = [], 0
    for n in replicate_chunks(p["replicates"], per_replicate):
        chunk = W[start : start + n]
        start += n
        if direct:
            gram = row.estimate_gram(q * scale, k * scale, chunk)
            with np.errstate(divide="ignore", invalid="ignore"):
                estimate = host(xp.matmul(gram, v) / xp.sum(gram, axis=-1, keepdims=True))
        else:
            phi_q = row.features(q * scale, chunk, **q_options)
            phi_k = row.features(k * scale, chunk, **k_options)
            estimate = host(attention.favor_from_features(phi_q, phi_k, v, denominator="raw"))
        errors.append(host(attention_metrics.relative_output_error(estimate, exact)))
    errors = np.concatenate(errors)
    errors = np.where(np.isfinite(errors), errors, np.nan)
    finite = errors[np.isfinite(errors)]
    return {
        "n": int(finite.size),
        "failed": int(errors.size - finite.size),
        "s1": float(finite.sum()),
        "s2": float((finite**2).sum()),
    }


# ---------------------------------------------------------------- summary


def _theory_mse(name, x, y, m):
    """Closed-form relative MSE against softmax (bias² included), or NaN where there is none."""
    try:
        return theory.mse(name, x, y, m, target="softmax") / kernels.softmax(x, y) ** 2
    except NotImplementedError:
        return np.full(x.shape[0], np.nan)


def _theory_bias(name, x, y):
    try:
        return theory.mean(name, x, y) / kernels.softmax(x, y) - 1
    except NotImplementedError:
        return np.full(x.shape[0], np.nan)


def summarize(records, context) -> list[dict]:
    rows = []
    for (kind, name, m), group in group_records(point_records(records), "kind", "estimator", "m").items():
        d = group[0]["params"]["d"]
        if kind == "attention":
            n = sum(r["values"]["n"] for r in group)
            s1 = sum(r["values"]["s1"] for r in group)
            s2 = sum(r["values"]["s2"] for r in group)
            mean = s1 / n
            half = 2.576 * math.sqrt(max(s2 / n - mean**2, 0.0) / max(n - 1, 1))
            failed = sum(r["values"]["failed"] for r in group)
            rows.append(
                shootout_claims.row(
                    kind, name, d=d, m=m, value=mean, ci99=half, replicates=n, claim=f"failed={failed}"
                )
            )
            continue
        ts = T_GRID if kind == "t" else (T_FOR_M,)
        x, y = pairs(ts, d)
        summary = moment_summary(merge_moments(r["values"] for r in group))
        theory_mse = _theory_mse(name, x, y, m)
        theory_bias = _theory_bias(name, x, y)
        for index, t in enumerate(ts):
            rows.append(
                shootout_claims.row(
                    kind,
                    name,
                    d=d,
                    m=m,
                    t=t,
                    value=float(summary["mse"][index]),
                    ci99=float(summary["mse_ci"][index]),
                    theory=float(theory_mse[index]),
                    bias=float(summary["bias"][index]),
                    bias_ci99=float(summary["bias_ci"][index]),
                    theory_bias=float(theory_bias[index]),
                    replicates=summary["n"],
                )
            )
    return rows + shootout_claims.claims(rows, T_GRID[0])


def plot(rows, context, stem) -> None:
    """The four figures and the claims caption (:func:`studies.figures.estimator_shootout.plot`)."""
    figures.plot(rows, stem, title=STUDY.title, estimators=estimators(), sq_norm=SQ_NORM, pairs=pairs)


STUDY = Study(
    name="estimator_shootout",
    title="Estimator shoot-out: FAVOR+, FAVOR++, FAVOR#, SimRF, SORF, QMC, DIRFs",
    claim="Every softmax-kernel estimator's MSE in t and m over its closed form, the orderings the papers "
    "report scored against the Monte Carlo, the SORF bias and the attention-output error at fixed m.",
    cells=cells,
    compute=compute,
    summarize=summarize,
    plot=plot,
    dtype="float32",
)

if __name__ == "__main__":
    from .__main__ import main_for

    sys.exit(main_for(STUDY.name))
