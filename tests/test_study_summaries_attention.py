"""The attention studies' CSVs (attention_error, uniform_convergence, causal_stability), every column
recomputed a second way.

Monte Carlo columns from the raw moments of the records; the delta-method prediction from
``estimators.theory.attention_delta`` called directly on the study's inputs; the 99% interval of the
90th percentile of the sup-norm errors from order statistics and binomial probabilities summed here;
Student-t intervals of the causal leak and bias from the per-draw samples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from estimators import theory
from studies import uniform_convergence
from studies.core.cells import Context

from .summaries_support import (
    EPS,
    OPS,
    TINY,
    Checker,
    Run,
    check_replicates,
    group_by,
    interpolated_quantile,
    mean_of,
    tiny,
)


def _delta_terms_direct(name, q, k, v):
    """Mean over query rows of ‖bias_i‖² and tr Cov(ô_i) at m = 1, in one call on all rows."""
    delta = theory.attention_delta(name, q, k, v, 1, scale_inputs=True)
    return float(np.mean(np.sum(delta.bias**2, axis=-1))), float(
        np.mean(np.trace(delta.covariance, axis1=-2, axis2=-1))
    )


def check_attention_error(run: Run, check: Checker) -> None:
    module = run.module
    delta = {}
    for record in run.records:
        p = record["params"]
        if p["kind"] != "delta_method":
            continue
        q, k, v = module.inputs(run.context.seed, p["regime"], p["draw"], p["L"], p["queries"], p["d"])
        bias_sq, trace = _delta_terms_direct(p["estimator"], q, k, v)
        terms = record["values"]
        assert abs(terms["bias_sq"] - bias_sq) <= OPS * p["L"] * EPS * bias_sq
        assert abs(terms["trace"] - trace) <= OPS * p["L"] * EPS * trace
        delta[(p["regime"], p["estimator"], p["draw"])] = terms
    monte_carlo = [r for r in run.records if r["params"]["kind"] == "monte_carlo"]
    groups = group_by(monte_carlo, "regime", "estimator")
    assert len(run.rows) == sum(len(group[0]["values"]["ms"]) for group in groups.values())
    for row in run.rows:
        group = groups[(row["regime"], row["estimator"])]
        position = group[0]["values"]["ms"].index(row["m"])
        check.value(row, "m", group[0]["values"]["ms"][position])
        for name in ("regime", "estimator", "d", "L", "queries"):
            check.value(row, name, group[0]["params"][name])
        check.value(row, "input_draws", len({r["params"]["draw"] for r in group}))
        assert len(group) == len({r["params"]["draw"] for r in group})
        check_replicates(check, row, group)
        n = sum(r["values"]["n"] for r in group)
        mse = mean_of(n, *([r["values"][key][position] for r in group] for key in ("s2", "s4")))
        check.value(row, "output_mse", float(mse.value), float(mse.value_bound))
        check.value(row, "ci99", float(mse.half), float(mse.half_bound))
        m = row["m"]
        terms = [delta.get((row["regime"], row["estimator"], r["params"]["draw"])) for r in group]
        predicted = np.nan
        if all(t is not None for t in terms):
            predicted = sum(t["bias_sq"] / m**2 + t["trace"] / m for t in terms) / len(terms)
        check.value(row, "delta_method_mse", predicted, 8 * len(terms) * EPS * abs(predicted))
        if "mc_over_delta" in row:
            ratio = float(mse.value) / predicted
            check.value(
                row,
                "mc_over_delta",
                ratio,
                abs(ratio) * (float(mse.value_bound) / float(mse.value) + 12 * EPS),
            )
            half = float(mse.half) / predicted
            check.value(
                row, "mc_over_delta_ci99", half, float(mse.half_bound) / abs(predicted) + 12 * EPS * abs(half)
            )
        failed = sum(r["values"]["failed_rows"][position] for r in group)
        total = sum(r["values"]["rows"] for r in group)
        assert total == sum(r["params"]["replicates"] * r["params"]["queries"] for r in group)
        check.value(row, "nonpositive_denominator_rate", failed / total, EPS * failed / total)


def _binomial_cdf(k, n, p):
    """P(B ≤ k) for B ~ Binomial(n, p) by direct summation (exact up to round-off, n ≤ a few hundred)."""
    return math.fsum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(0, k + 1))


def check_uniform_convergence(run: Run, check: Checker) -> None:
    """The 99% interval of the 90th percentile [X_(j), X_(k)] (order statistics, 1-based) must cover
    with P(j ≤ B < k) ≥ 0.99, B ~ Bin(n, 0.9) the count of draws below the true quantile, with at most
    0.5% in each tail, and be the tightest such equal-tailed pair; an end that no order statistic can
    reach is ±inf."""
    points = [
        (group, position, m)
        for group in group_by(run.records, "L", "R").values()
        for position, m in enumerate(group[0]["values"]["ms"])
    ]
    assert len(run.rows) == len(points)
    level, tail = 0.9, 0.005
    for row, (group, position, m) in zip(run.rows, points, strict=True):
        for name in ("L", "R", "d", "draws"):
            check.value(row, name, group[0]["params"][name])
        check.value(row, "m", m)
        chunks = sorted(group, key=lambda record: record["params"].get("chunk", 0))
        samples = [error for record in chunks for error in record["values"]["sup_errors"][position]]
        n = len(samples)
        assert n == group[0]["params"]["draws"]
        ordered = sorted(samples)
        assert len(set(ordered)) == n, "continuous errors: no ties, so ranks are unambiguous"
        estimate = interpolated_quantile(ordered, level)
        check.value(row, "sup_error_q90", estimate, 2 * EPS * estimate)
        check.value(row, "sup_error_median", interpolated_quantile(ordered, 0.5), 2 * EPS * ordered[-1])
        below = [_binomial_cdf(j, n, level) for j in range(n + 1)]
        # lower end X_(j): P(B < j) = P(B ≤ j − 1) ≤ tail, j as large as possible
        reachable = [j for j in range(1, n + 1) if below[j - 1] <= tail]
        check.value(row, "ci99_low", ordered[max(reachable) - 1] if reachable else -math.inf)
        # upper end X_(k): P(B ≥ k) = 1 − P(B ≤ k − 1) ≤ tail, k as small as possible
        reachable = [k for k in range(1, n + 1) if 1 - below[k - 1] <= tail]
        check.value(row, "ci99_high", ordered[min(reachable) - 1] if reachable else math.inf)


def check_causal_stability(run: Run, check: Checker) -> None:
    module = run.module
    groups = group_by(run.records, "excess")
    assert len(run.rows) == len(groups) * len(module.STABILIZERS) * len(module.EPSILONS)
    for row in run.rows:
        group = groups[(row["excess"],)]
        for name in ("excess", "d", "L", "m"):
            check.value(row, name, group[0]["params"][name])
        check.value(row, "draws", len({r["params"]["draw"] for r in group}))
        key = f"{row['stabilizer']}/{row['eps']!r}"
        named = all(key in r["values"] for r in group)
        check.holds(row, "stabilizer", named, "every draw recorded this stabilizer and ε")
        check.holds(row, "eps", named, "every draw recorded this stabilizer and ε")
        n = len(group)
        quantile = float(sps.t.isf(0.005, n - 1))
        for quantity in ("leak", "bias"):
            samples = np.array([r["values"][key][quantity] for r in group])
            mean = math.fsum(samples) / n
            sd = math.sqrt(math.fsum((samples - mean) ** 2) / (n - 1))
            scale = float(np.max(np.abs(samples)))
            check.value(row, quantity, mean, 2 * n * EPS * scale)
            half = quantile * sd / math.sqrt(n)
            check.value(row, f"{quantity}_ci99", half, 8 * n * EPS * quantile * scale / math.sqrt(n))
            check.value(row, f"{quantity}_max", float(samples.max()))
    pairs = {(r["stabilizer"], r["eps"]) for r in run.rows}
    recorded = {tuple(key.split("/")) for key in run.records[0]["values"]}
    assert {(s, repr(e)) for s, e in pairs} == recorded


CHECKS = {
    "attention_error": check_attention_error,
    "uniform_convergence": check_uniform_convergence,
    "causal_stability": check_causal_stability,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_summary_values_match_an_independent_computation(name):
    run = tiny(name)
    CHECKS[name](run, Checker())


@pytest.mark.parametrize(
    "draws",
    sorted(
        {
            2,
            5,
            TINY["uniform_convergence"]["draws"],
            *(p["draws"] for p in uniform_convergence.PRESETS.values()),
        }
    ),
)
def test_uniform_convergence_interval_covers_99_percent_at_every_draw_count(draws):
    """The order-statistic interval on hand-built records, at the presets' draw counts and two tiny
    ones (n = 2: even the lower end has no order statistic with ≤ 0.5% below it)."""
    module = uniform_convergence
    rng = np.random.default_rng(draws)
    params = {"d": 4, "L": 8, "R": 1.0, "m_min": 4, "m_max": 4, "draws": draws, "chunk": 0}
    records = [
        {"params": params, "values": {"ms": [4], "sup_errors": [rng.exponential(size=draws).tolist()]}}
    ]
    rows = module.summarize(records, Context())
    check_uniform_convergence(Run(module, Context(), records, rows, list(rows[0]), []), Checker())
