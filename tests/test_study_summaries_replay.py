"""The studies' CSVs replayed from their raw outputs.

Every W is captured as the study draws it, and K̂, FAVOR outputs and Gram estimates are computed from
the feature definitions written here (positive, hyperbolic and trig rows of the kernel studies and the
shoot-out, all four rows of attention_error, the sup-norm errors of uniform_convergence); the Monte
Carlo columns recomputed from them check the compute (which pair each value belongs to, how errors
are scaled, which denominators fail) along with the summary.
"""

from __future__ import annotations

import importlib
import math
from collections import defaultdict

import numpy as np
import pytest

from estimators import registry
from studies.core.cells import Context
from studies.core.loop import run_cell

from .summaries_support import (
    EPS,
    SEED,
    TINY,
    Z_PRINTED,
    Checker,
    Mean,
    half_width,
    interpolated_quantile,
    softmax_cf,
    sq,
)


def own_estimates(feature, x, y, W):
    """K̂(x_p, y_p) for each replicate of W (n, m, d), written here from the feature definitions:
    positive mean_r e^{ω_rᵀ(x+y) − (‖x‖²+‖y‖²)/2}, trig e^{(‖x‖²+‖y‖²)/2} mean_r cos ω_rᵀ(x − y),
    hyperbolic e^{−(‖x‖²+‖y‖²)/2} mean_r cosh ω_rᵀ(x + y). Returns (n, P) estimates and a round-off
    bound on each: (d + m + 8)(1 + max|argument|)·ε·mean_r |term|."""
    total = sq(x) + sq(y)
    if feature == "positive":
        argument = W @ (x + y).T
        terms = np.exp(argument - total / 2)
    elif feature == "trig":
        argument = W @ (x - y).T
        terms = np.exp(total / 2) * np.cos(argument)
    elif feature == "hyperbolic":
        argument = W @ (x + y).T
        terms = np.exp(-total / 2) * np.cosh(argument)
    else:
        raise KeyError(feature)
    m, d = W.shape[-2], W.shape[-1]
    bound = (d + m + 8) * (1 + np.abs(argument).max()) * EPS * np.abs(terms).mean(axis=1)
    return terms.mean(axis=1), bound


def raw_mean(samples, errors, z_tolerance=Z_PRINTED) -> Mean:
    """Mean and 99% half-width of raw samples (n, P) known to within ``errors`` each (two-pass SD).

    Bounds: the summation adds n·ε·mean|x| to the mean's own error mean(err); see the variance below.
    """
    n = samples.shape[0]
    mean = samples.mean(axis=0)
    var = samples.var(axis=0, ddof=1)
    mean_bound = errors.mean(axis=0) + n * EPS * np.abs(samples).mean(axis=0)
    # var(x + δ) − var(x) ≤ 2·mean(|x − mean|·|δ|) + mean(δ²), plus the cancellation of the moment form
    var_bound = (2 * (np.abs(samples - mean) * errors).mean(axis=0) + (errors**2).mean(axis=0)) * n / (
        n - 1
    ) + (n + 8) * EPS * ((samples**2).mean(axis=0) + mean**2)
    half, half_bound = half_width(var, var_bound, n, z_tolerance)
    return Mean(mean, mean_bound, half, half_bound)


REPLAYED = {
    "unbiasedness": ("positive-iid", "positive-ort", "positive-iid-fixed", "trig-iid", "hyperbolic-ort"),
    "mse_vs_features": ("positive-iid", "trig-ort", "hyperbolic-iid"),
    "trig_vs_positive": ("trig-iid", "positive-iid"),
    "orthogonal_gain": ("positive-iid", "positive-ort", "trig-iid", "trig-ort"),
    "smreg": ("positive-iid", "positive-iid-fixed", "positive-ort-fixed"),
    "attention_error": ("positive-iid", "positive-ort", "trig-iid", "trig-ort"),
    "uniform_convergence": ("trig-ort",),
    "estimator_shootout": ("positive-iid", "positive-ort", "hyperbolic-iid"),
}
"""Estimators whose draws the replay captures (feature maps written in :func:`own_estimates`)."""


def _replay(name, monkeypatch):
    """Run the study's tiny preset capturing every W the estimators draw; return the records and
    draws of the replayed estimators and the summary rows of the whole run."""
    module = importlib.import_module(f"studies.{name}")
    monkeypatch.setitem(module.PRESETS, "quick", {**module.PRESETS["quick"], **TINY[name]})
    draw = registry.Estimator.draw
    drawn = []

    def capture(self, m, d, **kwargs):
        W = draw(self, m, d, **kwargs)
        drawn.append(np.asarray(W, dtype=np.float64))
        return W

    monkeypatch.setattr(registry.Estimator, "draw", capture)
    context = Context(seed=SEED)
    records, replayed, draws = [], [], []
    for cell in module.STUDY.make_cells(context):
        drawn.clear()
        records.append(run_cell(cell))
        estimator = cell.kwargs.get("estimator", getattr(module, "ESTIMATOR", None))
        if estimator in REPLAYED[name] and cell.kwargs.get("kind") != "delta_method":
            replayed.append(records[-1])
            draws.append(np.concatenate(drawn))
            assert draws[-1].shape[0] == cell.kwargs.get("replicates", cell.kwargs.get("draws"))
    return module, replayed, draws, module.summarize(records, context)


def _replayed_groups(records, draws, names):
    groups = defaultdict(list)
    for record, W in zip(records, draws, strict=True):
        groups[tuple(record["params"][n] for n in names)].append((record["params"], W))
    return {key: (items[0][0], np.concatenate([W for _, W in items])) for key, items in groups.items()}


KERNEL_REPLAYS = [name for name in REPLAYED if name not in ("attention_error", "uniform_convergence")]
"""Studies whose Monte Carlo columns come from kernel estimates K̂(x, y) (the shoot-out's t and m kinds)."""


@pytest.mark.parametrize("name", KERNEL_REPLAYS)
def test_summary_statistics_are_those_of_the_raw_estimates(name, monkeypatch):
    """Every Monte Carlo column recomputed from the estimates K̂ themselves (W captured as the study
    draws it, K̂ from the feature definitions here, errors, means and SDs by numpy): checks the
    compute (relative or absolute errors, scaling, which pair is which) together with the summary."""
    module, records, draws, rows = _replay(name, monkeypatch)
    check = Checker()
    if name == "unbiasedness":
        for (estimator,), (params, W) in _replayed_groups(records, draws, ("estimator",)).items():
            _, x, y = module.input_pairs(params["d"])
            estimates, bound = own_estimates(registry.get(estimator).feature, x, y, W)
            scale = softmax_cf(x, y)
            stat = raw_mean((estimates - scale) / scale, bound / scale)
            for index, row in enumerate(r for r in rows if r["estimator"] == estimator):
                check.value(row, "relative_bias", stat.value[index], stat.value_bound[index])
                check.value(row, "ci99", stat.half[index], stat.half_bound[index])
    elif name == "mse_vs_features":
        # every m of an estimator comes from the first m rows of the same draws of W (m_max rows)
        for (estimator,), (params, W) in _replayed_groups(records, draws, ("estimator",)).items():
            x, y = module.input_pairs(params["d"])
            assert W.shape[1] == params["m_max"]
            for m in sorted({r["m"] for r in rows if r["estimator"] == estimator}):
                estimates, bound = own_estimates(registry.get(estimator).feature, x, y, W[:, :m])
                errors, error_bound = estimates / softmax_cf(x, y) - 1, bound / softmax_cf(x, y)
                stat = raw_mean(errors**2, 2 * (np.abs(errors) + error_bound) * error_bound)
                chosen = [r for r in rows if (r["estimator"], r["m"]) == (estimator, m)]
                for index, row in enumerate(chosen):
                    check.value(row, "relative_mse", stat.value[index], stat.value_bound[index])
                    check.value(row, "ci99", stat.half[index], stat.half_bound[index])
    elif name == "smreg":
        for (estimator,), (params, W) in _replayed_groups(records, draws, ("estimator",)).items():
            x, y = module.parallel_pairs(module.T_POINTS, params["d"])
            estimates, bound = own_estimates(registry.get(estimator).feature, x, y, W)
            errors, error_bound = estimates / softmax_cf(x, y) - 1, bound / softmax_cf(x, y)
            stat = raw_mean(errors, error_bound)
            for index, row in enumerate(r for r in rows if r["estimator"] == estimator):
                check.value(row, "mean_over_sm", 1 + stat.value[index], stat.value_bound[index] + EPS)
                check.value(row, "ci99", stat.half[index], stat.half_bound[index])
    elif name == "estimator_shootout":
        records, draws = _shootout_points(records, draws)
        for (kind, estimator, m), (params, W) in _replayed_groups(
            records, draws, ("kind", "estimator", "m")
        ).items():
            chosen = [r for r in rows if (r["kind"], r["estimator"], r["m"]) == (kind, estimator, m)]
            if kind == "attention":
                check_shootout_attention(check, module, params, W, chosen, records, estimator)
                continue
            x, y = module.pairs(module.T_GRID if kind == "t" else (module.T_FOR_M,), params["d"])
            estimates, bound = own_estimates(registry.get(estimator).feature, x, y, W)
            errors, error_bound = estimates / softmax_cf(x, y) - 1, bound / softmax_cf(x, y)
            bias = raw_mean(errors, error_bound)
            mse = raw_mean(errors**2, 2 * (np.abs(errors) + error_bound) * error_bound)
            for index, row in enumerate(chosen):
                check.value(row, "value", mse.value[index], mse.value_bound[index])
                check.value(row, "ci99", mse.half[index], mse.half_bound[index])
                check.value(row, "bias", bias.value[index], bias.value_bound[index])
                check.value(row, "bias_ci99", bias.half[index], bias.half_bound[index])
    elif name == "trig_vs_positive":
        for (estimator,), (params, W) in _replayed_groups(records, draws, ("estimator",)).items():
            x, y = module.slice_pairs(params["d"])
            estimates, bound = own_estimates(registry.get(estimator).feature, x, y, W)
            errors = estimates - softmax_cf(x, y)
            stat = raw_mean(errors**2, 2 * (np.abs(errors) + bound) * bound)
            key, m = estimator.split("-")[0], params["m"]
            for index, row in enumerate(rows):
                check.value(row, f"m_mse_{key}", m * stat.value[index], m * stat.value_bound[index])
                check.value(row, f"m_mse_{key}_ci99", m * stat.half[index], m * stat.half_bound[index])
    else:
        keys = ("panel", "estimator", "d", "m")
        for (panel, estimator, d, m), (params, W) in _replayed_groups(records, draws, keys).items():
            x, y = module.pairs_for(params)
            feature, projection = estimator.split("-")
            estimates, bound = own_estimates(feature, x, y, W)
            errors = estimates - softmax_cf(x, y)
            stat = raw_mean(errors**2, 2 * (np.abs(errors) + bound) * bound)
            chosen = [r for r in rows if (r["panel"], r["feature"], r["d"], r["m"]) == (panel, feature, d, m)]
            for index, row in enumerate(chosen):
                check.value(row, f"mse_{projection}", stat.value[index], stat.value_bound[index])
    assert check.seen, "the replay compared columns"


def _shootout_points(records, draws):
    """Shoot-out records and draws with one m each: a nested m-sweep record (values ``ms``) becomes one
    record per m with the first m rows of its W."""
    points, prefixes = [], []
    for record, W in zip(records, draws, strict=True):
        for m in record["values"].get("ms", [None]):
            if m is None:
                points.append(record)
                prefixes.append(W)
            else:
                points.append({**record, "params": {**record["params"], "m": m}})
                prefixes.append(W[:, :m])
    return points, prefixes


def own_attention(feature, x, y, v, W):
    """FAVOR written here: ô_i = Σ_j K̂_ij v_j / D̂_i, D̂_i = Σ_j K̂_ij, zero where D̂_i ≤ 0, with
    K̂_ij = e^{−(‖x_i‖² + ‖y_j‖²)/2} mean_r e^{ω_rᵀ(x_i + y_j)} (positive; cosh for hyperbolic) or
    e^{(‖x_i‖² + ‖y_j‖²)/2} mean_r cos ω_rᵀ(x_i − y_j) (trig), for each replicate of W (n, m, d).

    Returns (output (n, Q, d_v), D̂ (n, Q), bound on each output entry, bound on D̂). Each K̂_ij is
    within e_ij = (m + d + 8)(1 + largest argument)·ε·mean_r|term|; a sum over L keys adds L·ε of its
    absolute terms; ô_i = N_i/D̂_i moves by at most (δN_i + |ô_i|·δD_i)/(|D̂_i| − δD_i).
    """
    m, d = W.shape[-2], W.shape[-1]
    norms = (sq(x)[:, None] + sq(y)[None, :]).reshape(-1)
    if feature in ("positive", "hyperbolic"):
        argument = W @ (x[:, None, :] + y[None, :, :]).reshape(-1, d).T  # (n, m, Q·L)
        terms = np.exp(-norms / 2) * (np.exp(argument) if feature == "positive" else np.cosh(argument))
    elif feature == "trig":
        argument = W @ (x[:, None, :] - y[None, :, :]).reshape(-1, d).T
        terms = np.exp(norms / 2) * np.cos(argument)
    else:
        raise KeyError(feature)
    shape = (W.shape[0], x.shape[0], y.shape[0])
    kernel = terms.mean(axis=1).reshape(shape)
    kernel_bound = ((m + d + 8) * (1 + np.abs(argument).max()) * EPS * np.abs(terms).mean(axis=1)).reshape(
        shape
    )
    numerator, total = kernel @ v, kernel.sum(axis=-1)
    largest = np.abs(v).max()
    numerator_bound = (kernel_bound + y.shape[0] * EPS * np.abs(kernel)).sum(axis=-1) * largest
    total_bound = (kernel_bound + y.shape[0] * EPS * np.abs(kernel)).sum(axis=-1)
    valid = total > 0
    output = np.where(valid[..., None], numerator / np.where(valid, total, 1.0)[..., None], 0.0)
    with np.errstate(divide="ignore"):
        output_bound = np.where(
            valid,
            (numerator_bound + np.abs(output).max(axis=-1) * total_bound) / (np.abs(total) - total_bound),
            0.0,
        )
    return output, total, output_bound, total_bound


def check_shootout_attention(check, module, params, W, chosen, records, estimator):
    """Shoot-out attention rows: mean over every draw of W and input draw of ‖Ô − O‖_F/‖O‖_F, FAVOR
    written here (positive and hyperbolic features have no data-dependent options)."""
    (row,) = chosen
    draws = [
        r for r in records if r["params"]["kind"] == "attention" and r["params"]["estimator"] == estimator
    ]
    errors, bounds = [], []
    for draw, W_draw in zip(draws, np.split(W, len(draws)), strict=True):
        p = draw["params"]
        q, k, v = module.attention_inputs(SEED, p["draw"], p["L"], p["d"])
        x, y = q * p["d"] ** -0.25, k * p["d"] ** -0.25
        logits = x @ y.T
        weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
        exact = weights @ v / weights.sum(axis=-1, keepdims=True)
        output, total, output_bound, _ = own_attention(registry.get(estimator).feature, x, y, v, W_draw)
        assert np.all(total > 0)
        norm = np.linalg.norm(exact)
        relative = np.linalg.norm(output - exact, axis=(-2, -1)) / norm
        # ‖Ô − O‖_F moves by at most √(entries)·(largest entry bound + exact's round-off)
        exact_bound = (p["L"] + p["d"] + 8) * (1 + np.abs(logits).max()) * EPS * np.abs(v).max()
        entry = output_bound.max(axis=-1) + exact_bound
        bounds.append(math.sqrt(v.size) * entry / norm * (1 + relative) + 4 * EPS * relative)
        errors.append(relative)
    stat = raw_mean(np.concatenate(errors)[:, None], np.concatenate(bounds)[:, None])
    check.value(row, "value", stat.value[0], stat.value_bound[0])
    check.value(row, "ci99", stat.half[0], stat.half_bound[0])


def test_attention_output_mse_is_that_of_the_raw_favor_outputs(monkeypatch):
    """FAVOR written here (:func:`own_attention`) on the captured W, x = q d^{−1/4}, y = k d^{−1/4},
    against exact attention softmax(x yᵀ) v: per replicate the mean over query rows of ‖ô_i − o_i‖²,
    and the rate of rows with D̂_i ≤ 0 (none is within round-off of 0, so each decision is certain)."""
    module, records, draws, rows = _replay("attention_error", monkeypatch)
    check = Checker()
    samples = defaultdict(list)
    for record, W in zip(records, draws, strict=True):
        p = record["params"]
        q, k, v = module.inputs(SEED, p["regime"], p["draw"], p["L"], p["queries"], p["d"])
        x, y = q * p["d"] ** -0.25, k * p["d"] ** -0.25
        logits = x @ y.T
        weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
        exact = weights @ v / weights.sum(axis=-1, keepdims=True)
        exact_bound = (p["L"] + p["d"] + 8) * (1 + np.abs(logits).max()) * EPS * np.abs(v).max()
        feature = registry.get(p["estimator"]).feature
        assert W.shape[1] == p["m_max"]
        for position, m in enumerate(record["values"]["ms"]):  # the first m rows of each draw
            output, total, output_bound, total_bound = own_attention(feature, x, y, v, W[:, :m])
            assert np.all(np.abs(total) > total_bound), "no denominator within round-off of 0"
            failed = int(np.sum(total <= 0))
            assert record["values"]["failed_rows"][position] == failed
            # ‖ô_i − o_i‖² moves by at most 2‖ô_i − o_i‖·√d_v·δ + d_v·δ², δ the bound on one entry
            distance = np.sqrt(np.sum((output - exact) ** 2, axis=-1))
            entry = output_bound + exact_bound
            squared = np.mean(distance**2, axis=-1)
            error = np.mean(2 * distance * math.sqrt(v.shape[1]) * entry + v.shape[1] * entry**2, axis=-1)
            samples[(p["regime"], p["estimator"], m)].append((squared, error, failed, output.shape[1]))
    for key, parts in samples.items():
        squared = np.concatenate([s for s, *_ in parts])[:, None]
        error = np.concatenate([e for _, e, *_ in parts])[:, None]
        stat = raw_mean(squared, error)
        (row,) = [r for r in rows if (r["regime"], r["estimator"], r["m"]) == key]
        check.value(row, "output_mse", stat.value[0], stat.value_bound[0])
        check.value(row, "ci99", stat.half[0], stat.half_bound[0])
        failed = sum(f for *_, f, _ in parts)
        rows_total = sum(len(s) * queries for s, _, _, queries in parts)
        check.value(row, "nonpositive_denominator_rate", failed / rows_total, EPS * failed / rows_total)
    assert check.seen == {"output_mse", "ci99", "nonpositive_denominator_rate"}
    assert any(row["nonpositive_denominator_rate"] > 0 for row in rows), "the tiny run has failing rows"


def test_sup_norm_errors_are_those_of_the_raw_gram_estimates(monkeypatch):
    """Trig features written here on the captured W: Â_ij = e^{(‖x_i‖² + ‖y_j‖²)/2} mean_r cos ω_rᵀ(x_i −
    y_j) against A_ij = exp(x_iᵀy_j), x = q d^{−1/4}; each draw's max_ij |Â_ij − A_ij| against the
    record, and the CSV's quantiles against those of the raw sup-norm errors."""
    module, records, draws, rows = _replay("uniform_convergence", monkeypatch)
    check = Checker()
    points = defaultdict(list)
    for record, W in zip(records, draws, strict=True):
        p = record["params"]
        q, k = module.inputs(SEED, p["L"], p["R"], p["d"])
        x, y = q * p["d"] ** -0.25, k * p["d"] ** -0.25
        difference = x[:, None, :] - y[None, :, :]  # (L, L, d)
        scale = np.exp((sq(x)[:, None] + sq(y)[None, :]) / 2)
        exact = np.exp(x @ y.T)
        assert W.shape[1] == p["m_max"]
        for position, m in enumerate(record["values"]["ms"]):
            sup, largest = [], 0.0
            for draw in W[:, :m]:  # the first m rows of each draw: (L, L, m) arguments
                argument = difference @ draw.T
                sup.append(np.abs(scale * np.cos(argument).mean(axis=-1) - exact).max())
                largest = max(largest, np.abs(argument).max())
            bound = (p["d"] + p["m_max"] + 8) * (1 + largest) * EPS * 2 * scale.max()
            recorded = np.asarray(record["values"]["sup_errors"][position])
            assert np.all(np.abs(recorded - sup) <= bound)
            points[(p["L"], p["R"], m)].append((p["chunk"], sup, bound))
    assert max(len(chunks) for chunks in points.values()) > 1, "the tiny run splits a point into chunks"
    for row, chunks in zip(rows, points.values(), strict=True):
        ordered = np.sort([error for _, sup, _ in sorted(chunks, key=lambda c: c[0]) for error in sup])
        bound = max(b for _, _, b in chunks)
        assert len(ordered) == row["draws"]
        check.value(row, "sup_error_q90", interpolated_quantile(ordered, 0.9), 2 * bound)
        check.value(row, "sup_error_median", interpolated_quantile(ordered, 0.5), 2 * bound)
    assert check.seen == {"sup_error_q90", "sup_error_median"}
