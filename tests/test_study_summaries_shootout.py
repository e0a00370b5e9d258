"""The estimator_shootout CSV, every column recomputed a second way.

Point rows (the t grid, the fixed-t m sweep, the attention output error) from the raw moments of the
records and the closed forms of :mod:`tests.summaries_support`; claim rows' verdicts recomputed from
the points their ``source`` names (99% intervals separated in the claimed direction, or only the
points ordered, or reversed; the theory verdict from the closed forms where they exist).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from estimators import registry, theory

from .summaries_support import (
    CLOSED_KERNELS,
    EPS,
    Checker,
    Run,
    bias_of,
    check_replicates,
    exponent_size,
    group_by,
    mean_of,
    mse_closed_or_theory,
    mse_of,
    softmax_cf,
    sq,
    theory_bound,
    tiny,
)


def _ordered_verdict(better, worse):
    """Verdict that ``better`` < ``worse`` per point: "holds" where the 99% intervals separate in the
    claimed direction, "consistent" where only the points are ordered, "contradicted" where they are
    reversed; mixed outcomes list the t of each."""
    if not better or not worse:
        return "not run"
    outcome = {}
    for b, w in zip(better, worse, strict=True):
        if b["value"] + b["ci99"] < w["value"] - w["ci99"]:
            status = "holds"
        elif b["value"] < w["value"]:
            status = "consistent"
        else:
            status = "contradicted"
        outcome.setdefault(status, []).append(b["t"])
    if len(outcome) == 1:
        return next(iter(outcome))
    return "; ".join(f"{status} at t = {', '.join(str(t) for t in ts)}" for status, ts in outcome.items())


def _points(records):
    """Records with one m each: a nested m-sweep record (params ``m_min``, ``m_max``; values ``ms`` and
    moment sums with one entry per m) becomes one record per m with that m's sums."""
    points = []
    for record in records:
        values = record["values"]
        for position, m in enumerate(values.get("ms", [])):
            sums = {key: values[key][position] for key in ("s1", "s2", "s4")}
            assert record["params"]["m_min"] <= m <= record["params"]["m_max"]
            points.append({"params": {**record["params"], "m": m}, "values": {"n": values["n"], **sums}})
        if "ms" not in values:
            points.append(record)
    return points


def check_estimator_shootout(run: Run, check: Checker) -> None:
    module = run.module
    groups = group_by(_points(run.records), "kind", "estimator", "m")
    own = {}
    for (kind, name, m), group in groups.items():
        d = group[0]["params"]["d"]
        rows = [r for r in run.rows if (r["kind"], r["estimator"], r["m"]) == (kind, name, m)]
        if kind == "attention":
            assert len(rows) == 1
            row = rows[0]
            n = sum(r["values"]["n"] for r in group)
            failed = sum(r["values"]["failed"] for r in group)
            assert n + failed == sum(r["params"]["replicates"] for r in group)
            mean = mean_of(n, [[r["values"]["s1"]] for r in group], [[r["values"]["s2"]] for r in group])
            check.value(row, "d", d)
            check.value(row, "value", float(mean.value[0]), float(mean.value_bound[0]))
            check.value(row, "ci99", float(mean.half[0]), float(mean.half_bound[0]))
            check.value(row, "replicates", n)
            check.value(row, "claim", f"failed={failed}")
            for column in ("t", "theory", "bias", "bias_ci99", "theory_bias", "source", "theory_verdict"):
                check.value(row, column, "")
            check.value(row, "empirical_verdict", "")
            own[(kind, name)] = [{"value": row["value"], "ci99": row["ci99"], "t": ""}]
            continue
        ts = module.T_GRID if kind == "t" else (module.T_FOR_M,)
        x, y = module.pairs(ts, d)
        assert len(rows) == len(ts)
        sm = softmax_cf(x, y)
        mse, bias = mse_of(group), bias_of(group)
        own_mean = np.full(len(ts), np.nan)
        try:
            theory.mean(name, x, y)
            own_mean = CLOSED_KERNELS[registry.get(name).kernel](x, y)
        except NotImplementedError:
            pass
        expected_mse = (mse_closed_or_theory(name, x, y, m) + (own_mean - sm) ** 2) / sm**2
        expected_bias = own_mean / sm - 1
        size = exponent_size(x, y)
        points = []
        for index, row in enumerate(rows):
            check.value(row, "d", d)
            check.value(row, "t", float(sq(x[index] + y[index])), 16 * EPS * ts[index])
            assert math.isclose(sq(x[index]), module.SQ_NORM, rel_tol=8 * EPS)
            assert math.isclose(sq(y[index]), module.SQ_NORM, rel_tol=8 * EPS)
            check.value(row, "value", mse.value[index], mse.value_bound[index])
            check.value(row, "ci99", mse.half[index], mse.half_bound[index])
            check.value(row, "bias", bias.value[index], bias.value_bound[index])
            check.value(row, "bias_ci99", bias.half[index], bias.half_bound[index])
            check.value(row, "theory", expected_mse[index], theory_bound(expected_mse[index], size))
            check.value(row, "theory_bias", expected_bias[index], theory_bound(1.0, size))
            check_replicates(check, row, group)
            for column in ("claim", "source", "theory_verdict", "empirical_verdict"):
                check.value(row, column, "")
            points.append(
                {
                    "value": mse.value[index],
                    "ci99": mse.half[index],
                    "t": ts[index],
                    "theory": expected_mse[index],
                    "bias": bias.value[index],
                    "bias_ci99": bias.half[index],
                }
            )
        own[(kind, name)] = points
    softmax_rows = [n for n in registry.names() if registry.get(n).kernel != "arccos"]
    for row in run.rows:
        if row["kind"] != "claim":
            key = (row["kind"], row["estimator"], row["m"])
            check.holds(row, "kind", key in groups, "a point of the records")
            check.holds(row, "estimator", row["estimator"] in softmax_rows, "a softmax-kernel estimator")
            check.value(row, "m", groups[key][0]["params"]["m"])
            continue
        tail = run.rows[run.rows.index(row) :]
        check.holds(row, "kind", all(r["kind"] == "claim" for r in tail), "claims follow every point")
        compared = row["estimator"].split(" < ")
        check.holds(row, "estimator", set(compared) <= set(softmax_rows), "estimators of the shoot-out")
        for column in ("d", "m", "t", "value", "ci99", "theory", "bias", "bias_ci99", "theory_bias"):
            check.value(row, column, "")
        check.value(row, "replicates", "")
        check.holds(row, "claim", bool(row["claim"]), "a claim row states its claim")
        _check_claim(check, row, own)


def _check_claim(check, row, own):
    """Recompute a claim row's verdicts from the points its ``source`` names."""
    source = row["source"]
    if " < " not in row["estimator"]:
        points = [p for p in own[("t", row["estimator"])] if p["t"] >= 1.0]
        biased = bool(points) and all(abs(p["bias"]) > p["bias_ci99"] for p in points)
        check.value(row, "empirical_verdict", "holds" if biased else "not resolved at this sample size")
        check.value(row, "source", "t-grid, m = d")
        with pytest.raises(NotImplementedError):
            theory.mean(row["estimator"], np.full(4, 0.3), np.full(4, 0.2))
        check.holds(
            row, "theory_verdict", row["theory_verdict"] not in ("holds", "fails"), "no closed form to decide"
        )
        return
    better, worse = row["estimator"].split(" < ")
    if source.startswith("attention"):
        check.value(row, "source", "attention output, fixed m")
        first, second = own.get(("attention", better)), own.get(("attention", worse))
        check.value(
            row, "empirical_verdict", _ordered_verdict(first, second) if first and second else "not run"
        )
        check.value(row, "theory_verdict", "no closed form")
        return
    if source == "t-grid, m = d":
        first, second = own[("t", better)], own[("t", worse)]
    else:
        t = float(source.removeprefix("t = ").removesuffix(", m = d"))
        check.value(row, "source", f"t = {t}, m = d")
        first = [p for p in own[("t", better)] if p["t"] == t]
        second = [p for p in own[("t", worse)] if p["t"] == t]
    check.value(row, "source", source)
    check.value(row, "empirical_verdict", _ordered_verdict(first, second))
    pairs = [(b["theory"], w["theory"]) for b, w in zip(first, second, strict=True)]
    if any(math.isnan(v) for pair in pairs for v in pair):
        verdict = "no closed form"
    else:
        verdict = "holds" if all(b < w for b, w in pairs) else "fails"
    check.value(row, "theory_verdict", verdict)


CHECKS = {"estimator_shootout": check_estimator_shootout}


@pytest.mark.parametrize("name", list(CHECKS))
def test_summary_values_match_an_independent_computation(name):
    run = tiny(name)
    CHECKS[name](run, Checker())
