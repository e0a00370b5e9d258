"""The kernel studies' CSVs (unbiasedness, mse_vs_features, trig_vs_positive, orthogonal_gain, smreg),
every column recomputed a second way.

Statistics, intervals and ratios from the raw chunk sums of the records with plain numpy; theory
columns from float64 closed forms written in :mod:`tests.summaries_support` (Lemma 2, SMREG via
scipy's ₀F₁, the arc-cosine kernel) and here (Theorem 2's gap, the utility ratio r(φ, l)), or, for
orthogonal couplings and the GERF, coupled and discrete rows, from ``estimators.theory`` called directly on
the inputs; labels (norms, angles, t, d, m, replicate counts) from the geometry of the inputs and the cells.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from estimators import registry, theory

from .summaries_support import (
    CLOSED_KERNELS,
    EPS,
    OPS,
    Checker,
    Run,
    angle_between,
    bias_of,
    check_labels,
    check_replicates,
    exponent_size,
    group_by,
    iid_mse_cf,
    mean_of,
    mse_closed_or_theory,
    mse_of,
    ratio_of,
    softmax_cf,
    sq,
    theory_bound,
    tiny,
)


def check_unbiasedness(run: Run, check: Checker) -> None:
    module = run.module
    for (name,), group in group_by(run.records, "estimator").items():
        params = group[0]["params"]
        rows = [r for r in run.rows if r["estimator"] == name]
        _, x, y = module.input_pairs(params["d"])
        assert len(rows) == len(x)
        bias = bias_of(group)
        n = sum(r["values"]["n"] for r in group)
        known = name in registry.names()
        kernel = registry.get(name).kernel if known else None
        target = "arccos" if kernel == "arccos" else "softmax"
        if target == "arccos":
            scale = np.sqrt(sq(x) * sq(y)) / 2
        else:
            scale = softmax_cf(x, y)
        if known:
            expected = (CLOSED_KERNELS[kernel](x, y) - CLOSED_KERNELS[target](x, y)) / scale
            variance = mse_closed_or_theory(name, x, y, params["m"]) / scale**2
        else:
            expected = variance = np.full(len(x), np.nan)
        size = exponent_size(x, y)
        for index, row in enumerate(rows):
            check_labels(check, row, group[0], ("estimator", "d", "m"))
            check_replicates(check, row, group)
            norm = math.sqrt(sq(x[index]))
            check.value(row, "norm", norm, 4 * EPS * norm)
            assert math.isclose(math.sqrt(sq(y[index])), norm, rel_tol=4 * EPS)
            angle = float(angle_between(x[index], y[index]))
            check.value(row, "angle", angle, 8 * EPS * math.pi)
            aligned = bool(np.all(x[index][1:] == 0) and np.all(y[index][2:] == 0))
            check.value(row, "axis_aligned", aligned)
            if known:
                check.value(row, "kernel", kernel)
                if theory.ROW_THEORY[name].mean is not None:  # the kernel the closed-form mean equals
                    reference = CLOSED_KERNELS[kernel](x[index], y[index])
                    mean = theory.mean(name, x[index], y[index])
                    assert abs(mean - reference) <= theory_bound(reference, size) + OPS * EPS * scale[index]
            else:
                check.holds(row, "kernel", row["kernel"] not in CLOSED_KERNELS, "non-Haar: no known kernel")
            check.value(row, "relative_bias", bias.value[index], bias.value_bound[index])
            check.value(row, "ci99", bias.half[index], bias.half_bound[index])
            check.value(
                row,
                "theory_relative_bias",
                expected[index],
                theory_bound(1 + abs(expected[index]), size),
            )
            # NaN without a closed form and where the relative SD is below 1e-8 (exact up to rounding)
            z, z_bound = np.nan, 0.0
            if np.isfinite(variance[index]) and variance[index] > 1e-16:
                se = math.sqrt(variance[index] / n)
                z = (bias.value[index] - expected[index]) / se
                z_bound = (bias.value_bound[index] + theory_bound(1 + abs(expected[index]), size)) / se
                z_bound += abs(z) * theory_bound(1.0, size)
            check.value(row, "z_theory", z, z_bound)


def check_mse_vs_features(run: Run, check: Checker) -> None:
    """Each record holds the moments of every m from m_min to m_max (one draw of W serves them all):
    row (estimator, m) must be the merged moments at m's position."""
    for (name,), group in group_by(run.records, "estimator").items():
        params = group[0]["params"]
        ms = [2**k for k in range(int(math.log2(params["m_min"])), int(math.log2(params["m_max"])) + 1)]
        assert all(record["values"]["ms"] == ms for record in group)
        for position, m in enumerate(ms):
            _check_mse_at(run, check, name, m, group, position)


def _check_mse_at(run, check, name, m, group, position):
    """Rows of (name, m) against the moments at ``position`` of each record's ms."""
    module = run.module
    x, y = module.input_pairs(group[0]["params"]["d"])
    rows = [r for r in run.rows if r["estimator"] == name and r["m"] == m]
    assert len(rows) == len(x)
    n = sum(record["values"]["n"] for record in group)
    mse = mean_of(n, *([record["values"][key][position] for record in group] for key in ("s2", "s4")))
    sm = softmax_cf(x, y)
    expected = mse_closed_or_theory(name, x, y, m) / sm**2
    size = exponent_size(x, y)
    for index, row in enumerate(rows):
        check_labels(check, row, group[0], ("estimator", "d"))
        check.value(row, "m", m)
        check_replicates(check, row, group)
        norm = math.sqrt(sq(x[index]))
        check.value(row, "norm", norm, 4 * EPS * norm)
        assert math.isclose(math.sqrt(sq(y[index])), norm, rel_tol=4 * EPS)
        check.value(row, "angle", float(angle_between(x[index], y[index])), 8 * EPS * math.pi)
        check.value(row, "relative_mse", mse.value[index], mse.value_bound[index])
        check.value(row, "ci99", mse.half[index], mse.half_bound[index])
        check.value(row, "theory_relative_mse", expected[index], theory_bound(expected[index], size))


def check_trig_vs_positive(run: Run, check: Checker) -> None:
    module = run.module
    groups = group_by(run.records, "estimator")
    trig, positive = mse_of(groups[("trig-iid",)]), mse_of(groups[("positive-iid",)])
    params = groups[("trig-iid",)][0]["params"]
    assert params["m"] == groups[("positive-iid",)][0]["params"]["m"]
    m, d = params["m"], params["d"]
    x, y = module.slice_pairs(d)
    assert len(run.rows) == len(x)
    size = exponent_size(x, y)
    theory_trig = iid_mse_cf("trig", x, y, m)
    theory_positive = iid_mse_cf("positive", x, y, m)
    for index, row in enumerate(run.rows):
        length = math.sqrt(sq(x[index]))
        assert math.isclose(math.sqrt(sq(y[index])), length, rel_tol=4 * EPS)
        check.value(row, "length", length, 4 * EPS * length)
        phi = float(angle_between(x[index], y[index]))
        check.value(row, "angle", phi, 8 * EPS * math.pi)
        check.value(row, "d", d)
        check.value(row, "m", m)
        check_replicates(check, row, groups[("trig-iid",)])
        assert row["replicates"] == sum(r["params"]["replicates"] for r in groups[("positive-iid",)])
        for key, mse in (("trig", trig), ("positive", positive)):
            value, bound = m * mse.value[index], m * mse.value_bound[index]
            check.value(row, f"m_mse_{key}", value, bound + EPS * value)
            check.value(row, f"m_mse_{key}_ci99", m * mse.half[index], m * mse.half_bound[index])
        ratio, ratio_bound, half, half_bound = ratio_of(trig, positive, index)
        check.value(row, "ratio", ratio, ratio_bound)
        check.value(row, "ratio_ci99", half, half_bound)
        # r(φ, l) = e^{2l²}(1 − e^{−2l²(1 − cos φ)})² / (2 e^{2l² cos φ}(e^{2l²(1 + cos φ)} − 1)) (Lemma 2)
        c, l2 = math.cos(phi), length**2
        r = (
            math.exp(2 * l2 * (1 - c))
            * math.expm1(-2 * l2 * (1 - c)) ** 2
            / (2 * math.expm1(2 * l2 * (1 + c)))
        )
        assert abs(r - theory_trig[index] / theory_positive[index]) <= theory_bound(r, size)
        check.value(row, "theory_ratio", r, theory_bound(r, size))
        check.value(
            row, "theory_m_mse_trig", m * theory_trig[index], theory_bound(m * theory_trig[index], size)
        )
        check.value(
            row,
            "theory_m_mse_positive",
            m * theory_positive[index],
            theory_bound(m * theory_positive[index], size),
        )


def theorem2_ratio_bound_cf(x, y, m, d):
    """Theorem 2: MSE_ort ≤ MSE_iid − 2(m − 1)/(m(d + 2))·(SM − Λ)², as a bound on the ratio."""
    lam = np.exp(-(sq(x) + sq(y)) / 2)
    gap = 2 * (m - 1) / (m * (d + 2)) * (lam * np.expm1(sq(x + y) / 2)) ** 2
    iid = iid_mse_cf("positive", x, y, m)
    return (iid - gap) / iid


def check_orthogonal_gain(run: Run, check: Checker) -> None:
    module = run.module
    groups = group_by(run.records, "panel", "estimator", "d", "m")
    points = sorted({k for k in groups if k[1].endswith("-ort")}, key=str)
    assert len(run.rows) == sum(len(module.TRIG_S) if panel == "trig_s" else 1 for panel, *_ in points), (
        "one row per pair of every (panel, feature, d, m)"
    )
    for panel, name, d, m in points:
        feature = name.removesuffix("-ort")
        ort, iid = mse_of(groups[(panel, name, d, m)]), mse_of(groups[(panel, f"{feature}-iid", d, m)])
        rows = [r for r in run.rows if (r["panel"], r["feature"], r["d"], r["m"]) == (panel, feature, d, m)]
        if panel == "trig_s":
            s = np.asarray(module.TRIG_S, dtype=np.float64)
            x = np.zeros((len(s), d))
            x[:, 0] = np.sqrt(s) / 2
            y = -x
        else:
            x = np.zeros((1, d))
            y = np.zeros((1, d))
            x[0, 0] = module.NORM
            y[0, :2] = module.NORM * math.cos(module.ANGLE), module.NORM * math.sin(module.ANGLE)
        assert len(rows) == len(x)
        size = exponent_size(x, y)
        theory_ratio = theory.mse(name, x, y, m) / iid_mse_cf(feature, x, y, m)
        bound = theorem2_ratio_bound_cf(x, y, m, d) if feature == "positive" and m <= d else None
        for index, row in enumerate(rows):
            check.value(row, "panel", panel)
            check.value(row, "feature", feature)
            check.value(row, "d", d)
            check.value(row, "m", m)
            if panel == "trig_s":
                check.value(row, "sq_sum_norm", 0.0)
                check.value(row, "sq_diff_norm", module.TRIG_S[index], 4 * EPS * module.TRIG_S[index])
            else:
                l2, c = module.NORM**2, math.cos(module.ANGLE)
                check.value(row, "sq_sum_norm", 2 * l2 * (1 + c), 8 * EPS * 4 * l2)
                check.value(row, "sq_diff_norm", 2 * l2 * (1 - c), 8 * EPS * 4 * l2)
            check_replicates(check, row, groups[(panel, name, d, m)])
            assert row["replicates"] == sum(
                r["params"]["replicates"] for r in groups[(panel, f"{feature}-iid", d, m)]
            )
            check.value(row, "mse_iid", iid.value[index], iid.value_bound[index])
            check.value(row, "mse_ort", ort.value[index], ort.value_bound[index])
            ratio, ratio_bound, half, half_bound = ratio_of(ort, iid, index)
            check.value(row, "ratio", ratio, ratio_bound)
            check.value(row, "ci99", half, half_bound)
            check.value(row, "theory_ratio", theory_ratio[index], theory_bound(theory_ratio[index], size))
            expected = np.nan if bound is None else bound[index]
            check.value(row, "theorem2_ratio_bound", expected, theory_bound(1.0, size))


def check_smreg(run: Run, check: Checker) -> None:
    for (name,), group in group_by(run.records, "estimator").items():
        params = group[0]["params"]
        d = params["d"]
        rows = [r for r in run.rows if r["estimator"] == name]
        bias = bias_of(group)
        assert len(rows) == len(bias.value)
        pairs_x, pairs_y = run.module.parallel_pairs(run.module.T_POINTS, d)
        kernel = registry.get(name).kernel
        for index, row in enumerate(rows):
            check_labels(check, row, group[0], ("estimator", "d", "m"))
            check_replicates(check, row, group)
            t = float(sq(pairs_x[index] + pairs_y[index]))
            check.value(row, "sq_sum_norm", t, 8 * EPS * t)
            # the theory from t alone: a pair x = y = (√t/2)e₁, and SMREG/SM = e^{−t/2}·₀F₁(; d/2; dt/4)
            x = np.zeros((1, d))
            x[0, 0] = math.sqrt(t) / 2
            expected = CLOSED_KERNELS[kernel](x, x)[0] / softmax_cf(x, x)[0]
            ratio = math.exp(-t / 2) * special.hyp0f1(d / 2, d * t / 4)
            assert kernel == "softmax" or abs(expected - ratio) <= theory_bound(ratio, t)
            check.value(row, "mean_over_sm", 1 + bias.value[index], bias.value_bound[index] + EPS)
            check.value(row, "ci99", bias.half[index], bias.half_bound[index])
            check.value(row, "theory_mean_over_sm", expected, theory_bound(expected, t))


CHECKS = {
    "unbiasedness": check_unbiasedness,
    "mse_vs_features": check_mse_vs_features,
    "trig_vs_positive": check_trig_vs_positive,
    "orthogonal_gain": check_orthogonal_gain,
    "smreg": check_smreg,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_summary_values_match_an_independent_computation(name):
    run = tiny(name)
    CHECKS[name](run, Checker())
