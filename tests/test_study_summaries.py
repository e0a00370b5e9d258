"""Every number a study writes to its CSV, recomputed a second way.

Each study runs its own ``compute`` on a tiny preset (chunked, so merging is exercised), then its
``summarize``; the test recomputes every column independently:

* statistics, intervals, ratios and rates from the raw record values with plain numpy (sums, means,
  sample variances, the scipy normal / Student-t / binomial quantiles), not the runner's helpers;
* theory columns from float64 closed forms written here (Lemma 2, SMREG via scipy's ₀F₁, the
  arc-cosine kernel, Theorem 2's gap, the utility ratio r(φ, l)) or, where no short closed form
  exists (orthogonal couplings, follow-up rows, the delta method), from ``estimators.theory`` called
  directly on the inputs;
* labels (norms, angles, t, d, m, replicate counts) from the geometry of the inputs and the cells.

A column counts as covered only when a comparison ran on it (:class:`Checker`), and
``test_every_csv_column_has_an_independent_check`` fails for a column without one, so a new column
cannot slip in untested. Studies are also replayed from their raw outputs: every W is captured as
the study draws it and K̂, FAVOR outputs and Gram estimates are computed from the feature definitions
written here (positive, hyperbolic and trig rows of the kernel studies and the shoot-out, all four
rows of attention_error, the sup-norm errors of uniform_convergence), which checks the compute (which
pair each value belongs to, how errors are scaled, which denominators fail) along with the summary.
``test_planted_errors_in_the_rows_are_caught`` and ``test_planted_errors_in_summarize_are_caught`` show
that an inverted ratio, a flipped theory sign, a wrong quantile or a z standardized by the sample SD
are rejected.

Tolerances come from float64 round-off: a value from k chunk sums and a few operations differs by
at most (k + c)·ε·(sum of the magnitudes that were added), and a closed form evaluated two ways by
at most (operations + size of the exponents)·ε relatively (:func:`theory_bound`). The runner prints
the 99% normal quantile as 2.576, at most 5·10⁻⁴ from z₀.₉₉₅ (:data:`Z_PRINTED`), which is the only
allowance beyond round-off.

The replicate arithmetic of ``studies.core`` (``replicate_chunks``, ``chunk_cells``,
``error_moments``, ``merge_moments``, ``moment_summary``, ``kernel_errors``) is checked against
direct computation on raw samples at the end of the file.
"""

from __future__ import annotations

import csv
import importlib
import itertools
import math
from collections import defaultdict
from typing import NamedTuple

import numpy as np
import pytest
from scipy import special
from scipy import stats as sps

import studies
from estimators import registry, theory
from studies import uniform_convergence
from studies.core import montecarlo
from studies.core.cells import Cell, Context, chunk_cells
from studies.core.loop import run_cell
from studies.core.records import write_csv

EPS = float(np.finfo(np.float64).eps)
Z99 = float(sps.norm.isf(0.005))
Z_PRINTED = 5e-4 / Z99
"""Relative error of the printed quantile 2.576 (three decimals, at most 5·10⁻⁴ from z₀.₉₉₅)."""
OPS = 64
"""Float64 operations in the longer of two evaluation paths of one closed form (exp, log, powers,
products, the library ₀F₁ and the follow-up series counted as a few operations each)."""
SEED = 11

TINY = {
    "unbiasedness": {"d": 4, "m": 4, "replicates": 300, "chunk": 120},
    "mse_vs_features": {"d": 4, "ms": (2, 4, 6), "replicates": 300, "chunk": 120},
    "trig_vs_positive": {"d": 4, "m": 4, "replicates": 300, "chunk": 120},
    "orthogonal_gain": {
        "ms": (2, 4, 6, 12),
        "ds": (2, 4),
        "replicates": 300,
        "trig_replicates": 300,
        "chunk": 120,
        "trig_chunk": 120,
    },
    "smreg": {"d": 4, "m": 4, "replicates": 300, "chunk": 120},
    "attention_error": {
        "d": 4,
        "L": 16,
        "queries": 4,
        "ms": (4, 8),
        "delta_ms": (16,),
        "draws": 2,
        "replicates": 3,
    },
    "uniform_convergence": {"d": 4, "ms": (4, 8), "Ls": (8, 16), "Rs": (1.0, 2.0), "draws": 60},
    "causal_stability": {"d": 16, "L": 16, "m": 16, "draws": 3},
    "estimator_shootout": {
        "d": 4,
        "ms": (2, 4),
        "replicates": 60,
        "chunk": 25,
        "attention": {"d": 4, "L": 8, "m": 4, "draws": 2, "replicates": 3},
    },
}
"""Each study's quick preset with these entries replaced (keys the study does not use are ignored)."""


class Run(NamedTuple):
    module: object
    context: Context
    records: list
    rows: list
    header: list
    written: list


def _run_tiny(name: str, folder) -> Run:
    module = importlib.import_module(f"studies.{name}")
    context = Context(seed=SEED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(module.PRESETS, "quick", {**module.PRESETS["quick"], **TINY[name]})
        records = [run_cell(cell) for cell in module.STUDY.make_cells(context)]
        rows = module.STUDY.summarize(records, context)
    path = folder / f"{name}.csv"
    write_csv(path, rows)
    with path.open() as stream:
        reader = csv.DictReader(stream)
        written = list(reader)
    return Run(module, context, records, rows, list(reader.fieldnames), written)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``tiny(name)``: the study's tiny run (records, summary rows, CSV header), computed once."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _run_tiny(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


# ---------------------------------------------------------------- comparison


class Checker:
    """Compares CSV columns with independent values and remembers which columns were compared."""

    def __init__(self):
        self.seen: set[str] = set()

    def holds(self, row, column, condition, what):
        """A label column satisfies ``condition`` (a property of the inputs, stated in ``what``)."""
        self.seen.add(column)
        assert condition, f"{column} = {row[column]!r}: {what}"

    def value(self, row, column, expected, bound=0.0):
        """``row[column]`` equals ``expected`` within ``bound`` (NaN only where NaN is expected)."""
        self.seen.add(column)
        actual = row[column]
        if isinstance(expected, str) or isinstance(actual, str) or isinstance(expected, bool):
            assert actual == expected, f"{column}: {actual!r} != {expected!r} in {row}"
            return
        actual, expected = float(actual), float(expected)
        if math.isnan(expected) or math.isnan(actual):
            assert math.isnan(expected) and math.isnan(actual), f"{column}: {actual} != {expected} in {row}"
            return
        if math.isinf(expected) or math.isinf(actual):
            assert actual == expected, f"{column}: {actual} != {expected} in {row}"
            return
        assert abs(actual - expected) <= bound, (
            f"{column}: {actual!r} != {expected!r} (|diff| {abs(actual - expected):.3g} > bound {bound:.3g})"
            f" in {row}"
        )


def theory_bound(value, exponent=0.0, ops=OPS):
    """Round-off of a closed form: (ops + 2·|largest exponent|)·ε·|value| (exp turns an absolute
    error δ of its argument into a relative error δ)."""
    return (ops + 2 * abs(float(exponent))) * EPS * abs(float(value))


def group_by(records, *names):
    groups = defaultdict(list)
    for record in records:
        groups[tuple(record["params"][n] for n in names)].append(record)
    return dict(groups)


class Mean(NamedTuple):
    """A Monte Carlo mean with its 99% normal half-width and round-off bounds on both."""

    value: np.ndarray
    value_bound: np.ndarray
    half: np.ndarray
    half_bound: np.ndarray


def _half_width(var, var_bound, n, z_tolerance):
    """z₀.₉₉₅·√(var/n) and its bound: relative var_bound/(2·var) (the square root halves it), or
    z₀.₉₉₅·√(var_bound/n) absolute where the variance is 0 or not above its own round-off."""
    half = Z99 * np.sqrt(var / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(var > 0, var_bound / (2 * var), np.inf)
    swamped = relative >= 1
    relative = np.where(swamped, 0.0, relative)
    return half, np.where(
        swamped, Z99 * np.sqrt(var_bound / n) + half, half * (z_tolerance + relative + 4 * EPS)
    )


def mean_of(n, first_parts, second_parts, z_tolerance=Z_PRINTED) -> Mean:
    """Mean of a quantity X from chunk sums of X and X² over n replicates, with a 99% half-width.

    mean = ΣX/n; the sample variance (ddof 1) is (ΣX² − n·mean²)/(n − 1); half = z₀.₉₉₅·√(var/n).
    Bounds: k chunk sums add (k + 2)·ε·Σ|parts| to each sum; the variance loses (k + 8)·ε·(ΣX²/n +
    mean²) to cancellation, which the square root halves relative to var.
    """
    first = np.array([np.asarray(p, dtype=np.float64) for p in first_parts])
    second = np.array([np.asarray(p, dtype=np.float64) for p in second_parts])
    k = len(first)
    mean = first.sum(axis=0) / n
    square = second.sum(axis=0) / n
    mean_bound = (k + 2) * EPS * np.abs(first).sum(axis=0) / n
    var = np.maximum(square - mean**2, 0.0) * n / (n - 1)
    var_bound = ((k + 8) * EPS * (square + mean**2) + 2 * np.abs(mean) * mean_bound) * n / (n - 1)
    half, half_bound = _half_width(var, var_bound, n, z_tolerance)
    return Mean(mean, mean_bound, half, half_bound)


def moments_of(group):
    """Replicate count and per-chunk moment sums of a group of kernel_errors records."""
    n = sum(record["values"]["n"] for record in group)
    parts = {key: [record["values"][key] for record in group] for key in ("s1", "s2", "s4")}
    return n, parts


def bias_of(group) -> Mean:
    n, parts = moments_of(group)
    return mean_of(n, parts["s1"], parts["s2"])


def mse_of(group) -> Mean:
    n, parts = moments_of(group)
    return mean_of(n, parts["s2"], parts["s4"])


def ratio_of(top: Mean, bottom: Mean, index):
    """a/b with the delta-method 99% half-width of a ratio of independent estimates,
    (a/b)·√((h_a/a)² + (h_b/b)²), and round-off bounds on both.

    Relative errors add through products and quotients; the root of a sum of squares has at most the
    larger relative error of its terms, bounded here by their sum.
    """
    a, b = top.value[index], bottom.value[index]
    ha, hb = top.half[index], bottom.half[index]
    relative = top.value_bound[index] / a + bottom.value_bound[index] / b
    spread = math.hypot(ha / a, hb / b)
    spread_relative = relative + sum(
        bound / h for bound, h in ((top.half_bound[index], ha), (bottom.half_bound[index], hb)) if h > 0
    )
    ratio = a / b
    half = ratio * spread
    return ratio, ratio * (relative + 2 * EPS), half, half * (2 * relative + spread_relative + 6 * EPS)


# ---------------------------------------------------------------- closed forms (float64, written here)


def sq(a):
    return np.sum(np.asarray(a, dtype=np.float64) ** 2, axis=-1)


def softmax_cf(x, y):
    return np.exp(np.sum(x * y, axis=-1))


def smreg_cf(x, y):
    """SMREG = Λ·₀F₁(; d/2; d‖x + y‖²/4), Λ = exp(−(‖x‖² + ‖y‖²)/2)."""
    d = x.shape[-1]
    return np.exp(-(sq(x) + sq(y)) / 2) * special.hyp0f1(d / 2, d * sq(x + y) / 4)


def arccos_cf(x, y):
    """Arc-cosine kernel of order 1: ‖x‖‖y‖/(2π)·(sin θ + (π − θ) cos θ), θ = 2·atan2(|x̂ − ŷ|, |x̂ + ŷ|)."""
    nx, ny = np.sqrt(sq(x)), np.sqrt(sq(y))
    ux, uy = x / nx[..., None], y / ny[..., None]
    angle = 2 * np.arctan2(np.sqrt(sq(ux - uy)), np.sqrt(sq(ux + uy)))
    return nx * ny / (2 * np.pi) * (np.sin(angle) + (np.pi - angle) * np.cos(angle))


CLOSED_KERNELS = {"softmax": softmax_cf, "smreg": smreg_cf, "arccos": arccos_cf}


def iid_mse_cf(feature, x, y, m):
    """Lemma 2 (Eq. 8): MSE of m iid projections (trig and hyperbolic have 2m features).

    positive: SM²(e^t − 1)/m; trig: e^{‖x‖²+‖y‖²}(1 − e^{−s})²/(2m); hyperbolic:
    e^{−(‖x‖²+‖y‖²)}(e^t − 1)²/(2m), with t = ‖x + y‖², s = ‖x − y‖².
    """
    t, s, total = sq(x + y), sq(x - y), sq(x) + sq(y)
    if feature == "positive":
        return softmax_cf(x, y) ** 2 * np.expm1(t) / m
    if feature == "trig":
        return np.exp(total) * np.expm1(-s) ** 2 / (2 * m)
    if feature == "hyperbolic":
        return np.exp(-total) * np.expm1(t) ** 2 / (2 * m)
    raise KeyError(feature)


IID_CLOSED = {"positive-iid": "positive", "trig-iid": "trig", "hyperbolic-iid": "hyperbolic"}


def mse_closed_or_theory(name, x, y, m):
    """MSE around the estimator's own mean: Lemma 2 written here for the iid softmax rows, else
    ``estimators.theory.mse`` (NaN where it has no closed form)."""
    if name in IID_CLOSED:
        return iid_mse_cf(IID_CLOSED[name], x, y, m)
    try:
        return theory.mse(name, x, y, m)
    except NotImplementedError:
        return np.full(x.shape[0], np.nan)


def exponent_size(x, y):
    """Largest exponent of the closed forms at (x, y): 2(‖x‖² + ‖y‖² + ‖x + y‖²) bounds them all."""
    return float(np.max(2 * (sq(x) + sq(y) + sq(x + y))))


def angle_between(x, y):
    ux, uy = x / np.sqrt(sq(x))[..., None], y / np.sqrt(sq(y))[..., None]
    return 2 * np.arctan2(np.sqrt(sq(ux - uy)), np.sqrt(sq(ux + uy)))


def check_labels(check, row, record, names):
    for name in names:
        check.value(row, name, record["params"][name])


def check_replicates(check, row, group):
    total = sum(record["params"]["replicates"] for record in group)
    assert total == sum(record["values"]["n"] for record in group)
    check.value(row, "replicates", total)


# ---------------------------------------------------------------- the studies


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
                if name in theory.ROW_THEORY:  # the label is the kernel the closed-form mean equals
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
    module = run.module
    for (name, m), group in group_by(run.records, "estimator", "m").items():
        params = group[0]["params"]
        x, y = module.input_pairs(params["d"])
        rows = [r for r in run.rows if r["estimator"] == name and r["m"] == m]
        assert len(rows) == len(x)
        mse = mse_of(group)
        sm = softmax_cf(x, y)
        expected = mse_closed_or_theory(name, x, y, m) / sm**2
        size = exponent_size(x, y)
        for index, row in enumerate(rows):
            check_labels(check, row, group[0], ("estimator", "d", "m"))
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
    groups = group_by(monte_carlo, "regime", "estimator", "m")
    assert len(run.rows) == len(groups)
    for row in run.rows:
        group = groups[(row["regime"], row["estimator"], row["m"])]
        for name in ("regime", "estimator", "m", "d", "L", "queries"):
            check.value(row, name, group[0]["params"][name])
        check.value(row, "input_draws", len({r["params"]["draw"] for r in group}))
        assert len(group) == len({r["params"]["draw"] for r in group})
        check_replicates(check, row, group)
        n, parts = moments_of(group)
        mse = mean_of(n, parts["s2"], parts["s4"])
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
        failed = sum(r["values"]["failed_rows"] for r in group)
        total = sum(r["values"]["rows"] for r in group)
        assert total == sum(r["params"]["replicates"] * r["params"]["queries"] for r in group)
        check.value(row, "nonpositive_denominator_rate", failed / total, EPS * failed / total)


def _interpolated_quantile(ordered, level):
    """numpy's default (linear) sample quantile: ordered[h] with h = (n − 1)·level interpolated."""
    position = (len(ordered) - 1) * level
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def _binomial_cdf(k, n, p):
    """P(B ≤ k) for B ~ Binomial(n, p) by direct summation (exact up to round-off, n ≤ a few hundred)."""
    return math.fsum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(0, k + 1))


def check_uniform_convergence(run: Run, check: Checker) -> None:
    """The 99% interval of the 90th percentile [X_(j), X_(k)] (order statistics, 1-based) must cover
    with P(j ≤ B < k) ≥ 0.99, B ~ Bin(n, 0.9) the count of draws below the true quantile, with at most
    0.5% in each tail, and be the tightest such equal-tailed pair; an end that no order statistic can
    reach is ±inf."""
    assert len(run.rows) == len(run.records)
    level, tail = 0.9, 0.005
    for row, record in zip(run.rows, run.records, strict=True):
        for name in ("L", "R", "d", "m", "draws"):
            check.value(row, name, record["params"][name])
        samples = record["values"]["sup_errors"]
        n = len(samples)
        assert n == record["params"]["draws"]
        ordered = sorted(samples)
        assert len(set(ordered)) == n, "continuous errors: no ties, so ranks are unambiguous"
        estimate = _interpolated_quantile(ordered, level)
        check.value(row, "sup_error_q90", estimate, 2 * EPS * estimate)
        check.value(row, "sup_error_median", _interpolated_quantile(ordered, 0.5), 2 * EPS * ordered[-1])
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


def check_estimator_shootout(run: Run, check: Checker) -> None:
    module = run.module
    groups = group_by(run.records, "kind", "estimator", "m")
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


CHECKS = {
    "unbiasedness": check_unbiasedness,
    "mse_vs_features": check_mse_vs_features,
    "trig_vs_positive": check_trig_vs_positive,
    "orthogonal_gain": check_orthogonal_gain,
    "smreg": check_smreg,
    "attention_error": check_attention_error,
    "uniform_convergence": check_uniform_convergence,
    "causal_stability": check_causal_stability,
    "estimator_shootout": check_estimator_shootout,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_summary_values_match_an_independent_computation(name, tiny):
    run = tiny(name)
    CHECKS[name](run, Checker())


def test_every_csv_column_has_an_independent_check(tiny):
    assert set(studies.discover()) <= set(CHECKS), "every study needs a summary check"
    uncovered = {}
    for name, check_study in CHECKS.items():
        run = tiny(name)
        check = Checker()
        check_study(run, check)
        missing = [column for column in run.header if column not in check.seen]
        if missing:
            uncovered[name] = missing
    assert not uncovered, f"CSV columns without an independent check: {uncovered}"


def test_csv_holds_exactly_the_summary_rows(tiny):
    """What the CSV says is what was checked: every value reads back to the summary's value."""
    for name in CHECKS:
        run = tiny(name)
        assert run.header == list(run.rows[0])
        assert len(run.written) == len(run.rows)
        for written, row in zip(run.written, run.rows, strict=True):
            for column, value in row.items():
                if isinstance(value, (float, np.floating)) and not isinstance(value, bool):
                    read = float(written[column])
                    assert read == value or (math.isnan(read) and math.isnan(value)), (name, column)
                else:
                    assert written[column] == str(value), (name, column)


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
    params = {"d": 4, "L": 8, "R": 1.0, "m": 4, "draws": draws}
    records = [{"params": params, "values": {"sup_errors": rng.exponential(size=draws).tolist()}}]
    rows = module.summarize(records, Context())
    check_uniform_convergence(Run(module, Context(), records, rows, list(rows[0]), []), Checker())


def _differs(a, b) -> bool:
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return a != b and not both_nan


def _edit(column, change):
    def edit(row):
        return {**row, column: change(row[column])}

    return edit


def _z_from_the_sample_sd(name, x, y, m, summary, expected, scale):
    """A planted error: z standardized by the sample SD (the half-width / 2.576) instead of theory."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (summary["bias"] - expected) / (summary["bias_ci"] / 2.576)


PLANTED_ROWS = {
    "inverted ratio": ("trig_vs_positive", _edit("ratio", lambda v: 1 / v)),
    "inverted theory ratio": ("orthogonal_gain", _edit("theory_ratio", lambda v: 1 / v)),
    "theory bias with the wrong sign": ("unbiasedness", _edit("theory_relative_bias", lambda v: -v)),
    "sign of the SMREG shortfall": ("smreg", _edit("theory_mean_over_sm", lambda v: 2 - v)),
    "MSE interval from the SD, not the SE": ("mse_vs_features", _edit("ci99", lambda v: v * 10)),
    "95% instead of 99%": ("causal_stability", _edit("bias_ci99", lambda v: v * 1.96 / 2.576)),
    "median for the 90th percentile": (
        "uniform_convergence",
        lambda row: {**row, "sup_error_q90": row["sup_error_median"]},
    ),
}


@pytest.mark.parametrize("planted", list(PLANTED_ROWS))
def test_planted_errors_in_the_rows_are_caught(planted, tiny):
    name, edit = PLANTED_ROWS[planted]
    run = tiny(name)
    changed = {
        column for row in run.rows for column, value in edit(row).items() if _differs(value, row[column])
    }
    assert len(changed) == 1, "the planted error changes one column"
    with pytest.raises(AssertionError, match=f"^{changed.pop()}: "):
        CHECKS[name](run._replace(rows=[edit(row) for row in run.rows]), Checker())


@pytest.mark.parametrize(
    ("name", "attribute", "planted", "column"),
    [
        ("unbiasedness", "theory_z", _z_from_the_sample_sd, "z_theory"),
        (
            "mse_vs_features",
            "moment_summary",
            lambda moments: montecarlo.moment_summary(moments, z=1.96),
            "ci99",
        ),
        ("smreg", "moment_summary", lambda m: montecarlo.moment_summary(m, z=2 * 2.576), "ci99"),
    ],
)
def test_planted_errors_in_summarize_are_caught(name, attribute, planted, column, tiny, monkeypatch):
    """The study's own summarize, with one of its helpers replaced by a wrong one, is rejected."""
    run = tiny(name)
    monkeypatch.setattr(run.module, attribute, planted)
    rows = run.module.summarize(run.records, run.context)
    with pytest.raises(AssertionError, match=f"^{column}: "):
        CHECKS[name](run._replace(rows=rows), Checker())


# ---------------------------------------------------------------- the runner's replicate arithmetic


@pytest.mark.parametrize(
    ("total", "per_replicate", "budget"),
    [(1000, 300, 3000), (7, 5, 4), (10, 1, 100), (1, 10**9, 10), (12_345, 64, 4096), (5, 2, 10)],
)
def test_replicate_chunks_split_the_total_into_the_largest_chunks_the_budget_allows(
    total, per_replicate, budget
):
    sizes = montecarlo.replicate_chunks(total, per_replicate, budget)
    assert sum(sizes) == total and all(size >= 1 for size in sizes)
    first = sizes[0]
    assert all(size == first for size in sizes[:-1]) and sizes[-1] <= first
    # the largest chunk that fits (one replicate when even one does not), never more than the total
    fits = [n for n in range(1, total + 1) if n * per_replicate <= budget]
    assert first == (max(fits) if fits else 1)
    assert len(sizes) == -(-total // first)


@pytest.mark.parametrize(("replicates", "chunk"), [(300, 120), (300, 300), (300, 1000), (7, 1), (10, 3)])
def test_chunk_cells_add_up_to_the_replicates(replicates, chunk):
    base = {"estimator": "positive-iid", "d": 4}
    cells = chunk_cells(base, replicates, chunk)
    assert sum(cell["replicates"] for cell in cells) == replicates
    assert [cell["chunk"] for cell in cells] == list(range(len(cells)))
    assert all({k: v for k, v in cell.items() if k not in ("chunk", "replicates")} == base for cell in cells)
    assert all(cell["replicates"] == chunk for cell in cells[:-1]) and 1 <= cells[-1]["replicates"] <= chunk


def _raw_errors(shape, seed=3):
    """Heavy-tailed errors like K̂/K − 1 of exponential features: lognormal − 1 (mean 0 at σ² = 2·0.5)."""
    rng = np.random.default_rng(seed)
    return np.exp(rng.normal(-0.5, 1.0, size=shape)) - 1


def _direct_sums(errors):
    e = np.asarray(errors, dtype=np.float64)
    return e.shape[0], e.sum(axis=0), (e**2).sum(axis=0), (e**4).sum(axis=0)


@pytest.mark.parametrize("shape", [(257,), (300, 3)])
def test_error_and_merged_moments_are_the_sums_over_replicates(shape):
    errors = _raw_errors(shape)
    n, s1, s2, s4 = _direct_sums(errors)
    cuts = [0, 1, 100, 101, shape[0]]
    parts = [montecarlo.error_moments(errors[a:b]) for a, b in itertools.pairwise(cuts)]
    assert [p["n"] for p in parts] == [b - a for a, b in itertools.pairwise(cuts)]
    merged = montecarlo.merge_moments(parts)
    assert merged["n"] == n
    # each sum of n terms: at most n·ε·Σ|terms| apart whatever the order of addition
    for key, direct, terms in (("s1", s1, errors), ("s2", s2, errors**2), ("s4", s4, errors**4)):
        bound = n * EPS * np.abs(terms).sum(axis=0)
        assert np.all(np.abs(np.asarray(merged[key]) - direct) <= bound), key
        single = montecarlo.error_moments(errors)[key]
        assert np.all(np.abs(np.asarray(single) - direct) <= bound), key


def test_moment_summary_gives_the_sample_statistics_of_the_raw_errors():
    """bias = mean(e), bias_ci = z₀.₉₉₅·sd(e)/√n, mse = mean(e²), mse_ci = z₀.₉₉₅·sd(e²)/√n (ddof 1)."""
    errors = _raw_errors((400, 3))
    parts = [montecarlo.error_moments(errors[:150]), montecarlo.error_moments(errors[150:])]
    summary = montecarlo.moment_summary(montecarlo.merge_moments(parts))
    n = errors.shape[0]
    assert summary["n"] == n
    for key, samples, interval in (("bias", errors, "bias_ci"), ("mse", errors**2, "mse_ci")):
        mean = samples.mean(axis=0)
        sd = samples.std(axis=0, ddof=1)
        # the moment form var = (Σx² − n·mean²)/(n − 1) cancels: its error is ~n·ε·Σx²/n relative to var
        cancellation = n * EPS * (samples**2).mean(axis=0) / sd**2
        assert np.all(np.abs(summary[key] - mean) <= n * EPS * np.abs(samples).mean(axis=0)), key
        half = Z99 * sd / math.sqrt(n)
        assert np.all(np.abs(summary[interval] - half) <= half * (Z_PRINTED + cancellation)), interval


def test_kernel_errors_are_the_moments_of_the_estimates_a_direct_computation_gives(monkeypatch):
    """kernel_errors on positive features with W drawn here, in chunks of at most 7 replicates, against
    K̂ = mean_r exp(ω_rᵀ(x + y) − (‖x‖² + ‖y‖²)/2) computed from the same W."""
    rng = np.random.default_rng(5)
    x, y = 0.4 * rng.standard_normal((3, 4)), 0.4 * rng.standard_normal((3, 4))
    m, replicates = 6, 40
    split = montecarlo.replicate_chunks
    monkeypatch.setattr(montecarlo, "replicate_chunks", lambda total, per: split(total, per, budget=7 * per))
    drawn = []

    def draw(m, d, n, generator, like):
        W = generator.standard_normal((n, m, d))
        drawn.append(W)
        return W

    cell = Cell.build("tests.test_study_summaries", "kernel_errors", {}, Context(seed=SEED))
    reference = softmax_cf(x, y)
    row = registry.get("positive-iid")
    results = {
        relative: montecarlo.kernel_errors(
            cell, row, m, x, y, reference, replicates, relative=relative, draw=draw
        )
        for relative in (True, False)
    }
    assert len(drawn) == 2 * math.ceil(replicates / 7) and all(W.shape[0] <= 7 for W in drawn)
    half = len(drawn) // 2
    for relative, W in ((True, np.concatenate(drawn[:half])), (False, np.concatenate(drawn[half:]))):
        assert W.shape == (replicates, m, 4)
        exponent = W @ (x + y).T - (sq(x) + sq(y)) / 2  # (n, m, P)
        estimates = np.exp(exponent).mean(axis=1)
        errors = estimates / reference - 1 if relative else estimates - reference
        n, s1, s2, s4 = _direct_sums(errors)
        moments = results[relative]
        assert moments["n"] == n
        # each estimate: m exponentials of an argument of size |a| (relative error ≤ (|a| + m + 4)·ε)
        size = np.abs(exponent).max() + m + 4
        for key, direct, power in (("s1", s1, 1), ("s2", s2, 2), ("s4", s4, 4)):
            terms = np.abs(estimates / reference if relative else estimates) ** power
            bound = (n + power * size) * EPS * terms.sum(axis=0) * 2**power
            assert np.all(np.abs(np.asarray(moments[key]) - direct) <= bound), (relative, key)


# ---------------------------------------------------------------- replay: the CSV from the raw estimates


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
    half, half_bound = _half_width(var, var_bound, n, z_tolerance)
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
    elif name in ("mse_vs_features", "smreg"):
        keys = ("estimator", "m") if name == "mse_vs_features" else ("estimator",)
        for key, (params, W) in _replayed_groups(records, draws, keys).items():
            pairs = module.input_pairs(params["d"]) if name == "mse_vs_features" else None
            x, y = pairs or module.parallel_pairs(module.T_POINTS, params["d"])
            estimates, bound = own_estimates(registry.get(key[0]).feature, x, y, W)
            errors = estimates / softmax_cf(x, y) - 1
            error_bound = bound / softmax_cf(x, y)
            chosen = [r for r in rows if tuple(r[k] for k in keys) == key]
            if name == "smreg":
                stat = raw_mean(errors, error_bound)
                for index, row in enumerate(chosen):
                    check.value(row, "mean_over_sm", 1 + stat.value[index], stat.value_bound[index] + EPS)
                    check.value(row, "ci99", stat.half[index], stat.half_bound[index])
            else:
                stat = raw_mean(errors**2, 2 * (np.abs(errors) + error_bound) * error_bound)
                for index, row in enumerate(chosen):
                    check.value(row, "relative_mse", stat.value[index], stat.value_bound[index])
                    check.value(row, "ci99", stat.half[index], stat.half_bound[index])
    elif name == "estimator_shootout":
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
        output, total, output_bound, total_bound = own_attention(feature, x, y, v, W)
        assert np.all(np.abs(total) > total_bound), "no denominator within round-off of 0"
        failed = int(np.sum(total <= 0))
        assert record["values"]["failed_rows"] == failed
        # ‖ô_i − o_i‖² moves by at most 2‖ô_i − o_i‖·√d_v·δ + d_v·δ², δ the bound on one entry
        distance = np.sqrt(np.sum((output - exact) ** 2, axis=-1))
        entry = output_bound + exact_bound
        squared = np.mean(distance**2, axis=-1)
        error = np.mean(2 * distance * math.sqrt(v.shape[1]) * entry + v.shape[1] * entry**2, axis=-1)
        samples[(p["regime"], p["estimator"], p["m"])].append((squared, error, failed, output.shape[1]))
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
    for record, W, row in zip(records, draws, rows, strict=True):
        p = record["params"]
        q, k = module.inputs(SEED, p["L"], p["R"], p["d"])
        x, y = q * p["d"] ** -0.25, k * p["d"] ** -0.25
        difference = x[:, None, :] - y[None, :, :]  # (L, L, d)
        scale = np.exp((sq(x)[:, None] + sq(y)[None, :]) / 2)
        exact = np.exp(x @ y.T)
        sup, largest = [], 0.0
        for draw in W:  # one draw at a time: (L, L, m) arguments
            argument = difference @ draw.T
            sup.append(np.abs(scale * np.cos(argument).mean(axis=-1) - exact).max())
            largest = max(largest, np.abs(argument).max())
        sup = np.array(sup)
        bound = (p["d"] + p["m"] + 8) * (1 + largest) * EPS * 2 * scale.max()
        assert np.all(np.abs(np.asarray(record["values"]["sup_errors"]) - sup) <= bound)
        ordered = np.sort(sup)
        check.value(row, "sup_error_q90", _interpolated_quantile(ordered, 0.9), 2 * bound)
        check.value(row, "sup_error_median", _interpolated_quantile(ordered, 0.5), 2 * bound)
    assert check.seen == {"sup_error_q90", "sup_error_median"}
