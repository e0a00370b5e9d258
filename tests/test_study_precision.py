"""A study computes in float32 only where float32 rounding cannot move its Monte Carlo estimates.

Criterion, for every study whose ``Study.dtype`` is not float64: on cells of its quick preset, the
float32 and float64 runs draw the same W (portable RNG), and each estimate the study reports from a
cell differs between them by under :data:`SHARE_OF_SE` of its float64 standard error. So the
precision adds under 1% of the Monte Carlo uncertainty every interval already shows.

* attention_error: the mean output RMS error and the output MSE over a cell's replicates (standard
  errors from the moment sums), at every m, trig and positive features (iid);
* uniform_convergence: the 90th percentile and the median of the sup-norm errors (standard errors from
  their distribution-free 99% intervals, half-width / 2.576), at every m of the longest L.

A study that declares float32 without a check here fails :func:`test_every_float32_study_is_checked`,
and a float32 result rounded to 8 significant bits (a bfloat16-like defect) fails the criterion.
"""

from __future__ import annotations

import numpy as np
import pytest

from estimators import registry
from studies import attention_error, discover, uniform_convergence
from studies.core.cells import Context

SHARE_OF_SE = 0.01
Z99 = 2.576


def _attention_error_cells(context):
    return [
        cell
        for cell in attention_error.STUDY.make_cells(context)
        if cell.kwargs["kind"] == "monte_carlo"
        and cell.kwargs["draw"] == 0
        and cell.kwargs["estimator"] in ("trig-iid", "positive-iid")
    ]


def _attention_error_estimates(values):
    """(mean RMS error, MSE) at every m and their standard errors from a cell's moment sums."""
    n = values["n"]
    s1, s2, s4 = (np.asarray(values[key]) for key in ("s1", "s2", "s4"))
    mean, mse = s1 / n, s2 / n
    spread = np.concatenate([mse - mean**2, s4 / n - mse**2])
    return np.concatenate([mean, mse]), np.sqrt(spread / (n - 1))


def _uniform_convergence_cells(context):
    cells = uniform_convergence.STUDY.make_cells(context)
    longest = max(cell.kwargs["L"] for cell in cells)
    return [cell for cell in cells if cell.kwargs["L"] == longest]


def _uniform_convergence_estimates(values):
    """(90th percentile, median) of the sup errors at every m, and their standard errors from the 99%
    intervals."""
    estimates, errors = [], []
    for samples in values["sup_errors"]:
        for quantile in (uniform_convergence.QUANTILE, 0.5):
            estimate, low, high = uniform_convergence.quantile_interval(samples, quantile)
            estimates.append(estimate)
            errors.append((high - low) / (2 * Z99))
    return np.array(estimates), np.array(errors)


def _eight_bit(array):
    mantissa, exponent = np.frexp(np.asarray(array, dtype=np.float64))
    return np.ldexp(np.round(mantissa * 256) / 256, exponent)


def _plant_in_favor_prefixes(monkeypatch):
    prefixes = attention_error.favor_prefixes

    def rounded(*args, **kwargs):
        for size, output in prefixes(*args, **kwargs):
            yield size, _eight_bit(output)

    monkeypatch.setattr(attention_error, "favor_prefixes", rounded)


def _plant_in_gram_prefixes(monkeypatch):
    prefixes = registry.Estimator.gram_prefixes

    def rounded(self, *args, **kwargs):
        for size, gram in prefixes(self, *args, **kwargs):
            yield size, _eight_bit(gram)

    monkeypatch.setattr(registry.Estimator, "gram_prefixes", rounded)


CHECKS = {
    "attention_error": (
        attention_error,
        _attention_error_cells,
        _attention_error_estimates,
        _plant_in_favor_prefixes,
    ),
    "uniform_convergence": (
        uniform_convergence,
        _uniform_convergence_cells,
        _uniform_convergence_estimates,
        _plant_in_gram_prefixes,
    ),
}


def largest_share_of_se(name, monkeypatch=None):
    """Largest |float32 − float64| / SE over the chosen cells of study ``name``; with ``monkeypatch``
    the float32 run's result is rounded to 8 significant bits (the planted defect)."""
    module, select, estimates_of, plant = CHECKS[name]
    wide_cells, narrow_cells = select(Context(dtype="float64")), select(Context(dtype=None))
    assert {cell.context.dtype for cell in narrow_cells} == {module.STUDY.dtype}
    references = [estimates_of(module.compute(cell)) for cell in wide_cells]
    if monkeypatch is not None:
        plant(monkeypatch)
    shares = []
    for (reference, standard_error), wide, narrow in zip(references, wide_cells, narrow_cells, strict=True):
        assert wide.kwargs == narrow.kwargs
        estimate, _ = estimates_of(module.compute(narrow))
        shares.append(np.max(np.abs(estimate - reference) / standard_error))
    return max(shares)


def test_every_float32_study_is_checked():
    declared = {name for name, study in discover().items() if study.dtype != "float64"}
    assert declared == set(CHECKS)


@pytest.mark.parametrize("name", CHECKS)
def test_float32_moves_estimates_by_under_one_percent_of_their_se(name):
    assert largest_share_of_se(name) < SHARE_OF_SE


@pytest.mark.parametrize("name", CHECKS)
def test_an_eight_bit_result_fails_the_criterion(name, monkeypatch):
    assert largest_share_of_se(name, monkeypatch) > SHARE_OF_SE


def test_a_named_dtype_applies_to_every_study():
    study = attention_error.STUDY
    assert {cell.context.dtype for cell in study.make_cells(Context(dtype="float64"))} == {"float64"}
    assert {cell.context.dtype for cell in study.make_cells(Context(dtype=None))} == {"float32"}
    assert Context(dtype=None).for_study("float64").dtype == "float64"
