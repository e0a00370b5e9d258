"""What the study-summary tests share: the tiny runs, the column checker, the Monte Carlo statistics
with their round-off bounds, and the float64 closed forms written here.

Each study runs its own ``compute`` on a tiny preset (:data:`TINY`, chunked, so merging is exercised),
then its ``summarize``; :func:`tiny` keeps the run (records, summary rows, the CSV read back) for the
whole session. A column counts as covered only when a comparison ran on it (:class:`Checker`).

Tolerances come from float64 round-off: a value from k chunk sums and a few operations differs by
at most (k + c)·ε·(sum of the magnitudes that were added), and a closed form evaluated two ways by
at most (operations + size of the exponents)·ε relatively (:func:`theory_bound`). The runner prints
the 99% normal quantile as 2.576, at most 5·10⁻⁴ from z₀.₉₉₅ (:data:`Z_PRINTED`), which is the only
allowance beyond round-off.
"""

from __future__ import annotations

import csv
import functools
import importlib
import math
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from scipy import special
from scipy import stats as sps

from estimators import theory
from studies.core.cells import Context
from studies.core.loop import run_cell
from studies.core.records import write_csv

EPS = float(np.finfo(np.float64).eps)
Z99 = float(sps.norm.isf(0.005))
Z_PRINTED = 5e-4 / Z99
"""Relative error of the printed quantile 2.576 (three decimals, at most 5·10⁻⁴ from z₀.₉₉₅)."""
OPS = 64
"""Float64 operations in the longer of two evaluation paths of one closed form (exp, log, powers,
products, the library ₀F₁ and the GERF and DIRF series counted as a few operations each)."""
SEED = 11

TINY = {
    "unbiasedness": {"d": 4, "m": 4, "replicates": 300, "chunk": 120},
    "mse_vs_features": {"d": 4, "ms": (2, 4, 8), "replicates": 300, "chunk": 120},
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
    "uniform_convergence": {"d": 4, "ms": (4, 8), "Ls": (8, 16), "Rs": (1.0, 2.0), "draws": 60, "chunk": 25},
    "causal_stability": {"d": 16, "L": 16, "m": 16, "draws": 3},
    "estimator_shootout": {
        "d": 4,
        "ms": (2, 4),
        "replicates": 60,
        "chunk": 25,
        "attention": {"d": 4, "L": 8, "m": 4, "draws": 2, "replicates": 3},
    },
    "attention_metrics": {"d": 4, "L": 16, "ms": (4, 8), "draws": 2, "replicates": 6},
}
"""Each study's quick preset with these entries replaced (keys the study does not use are ignored)."""


class Run(NamedTuple):
    module: object
    context: Context
    records: list
    rows: list
    header: list
    written: list


@functools.cache
def tiny(name: str) -> Run:
    """The study's tiny run (records, summary rows, CSV header and rows read back), computed once."""
    module = importlib.import_module(f"studies.{name}")
    context = Context(seed=SEED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(module.PRESETS, "quick", {**module.PRESETS["quick"], **TINY[name]})
        records = [run_cell(cell) for cell in module.STUDY.make_cells(context)]
        rows = module.STUDY.summarize(records, context)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.csv"
        write_csv(path, rows)
        with path.open() as stream:
            reader = csv.DictReader(stream)
            written = list(reader)
    return Run(module, context, records, rows, list(reader.fieldnames), written)


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


def half_width(var, var_bound, n, z_tolerance):
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
    half, half_bound = half_width(var, var_bound, n, z_tolerance)
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


def interpolated_quantile(ordered, level):
    """numpy's default (linear) sample quantile: ordered[h] with h = (n − 1)·level interpolated."""
    position = (len(ordered) - 1) * level
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])
