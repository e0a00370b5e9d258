"""A study computes in float32 only where float32 rounding cannot move its Monte Carlo estimates.

Criterion, for every study whose ``Study.dtype`` is not float64: on cells of its quick preset, the
float32 and float64 runs draw the same W (portable RNG), and each estimate the study reports from a
cell differs between them by under :data:`SHARE_OF_SE` of its float64 standard error. So the
precision adds under 1% of the Monte Carlo uncertainty every interval already shows.

* attention_error: the mean output RMS error and the output MSE over a cell's replicates (standard
  errors from the moment sums), at every m, trig and positive features (iid);
* uniform_convergence: the 90th percentile and the median of the sup-norm errors (standard errors from
  their distribution-free 99% intervals, half-width / 2.576), at every m of the longest L;
* estimator_shootout: the mean relative output error of an attention cell (standard error from the
  moment sums), trig, positive and hybrid rows (block-orthogonal, iid);
* attention_metrics: each metric's mean over a cell's draws (standard error of that mean; a metric
  without spread, e.g. no invalid row, must be equal), trig, positive and hybrid rows at the smallest
  and largest m.

A study that declares float32 without a check here fails :func:`test_every_float32_study_is_checked`,
and a float32 result rounded to 8 significant bits (a bfloat16-like defect) fails the criterion.
"""

from __future__ import annotations

import numpy as np
import pytest

from estimators import registry
from studies import attention_error, attention_metrics, discover, estimator_shootout, uniform_convergence
from studies.core.cells import Context

SHARE_OF_SE = 0.01
Z99 = 2.576


def _first_draw_cells(study, context, kind, estimators):
    """The cells of ``study`` of ``kind`` at input draw 0 for ``estimators``."""
    return [
        cell
        for cell in study.make_cells(context)
        if cell.kwargs["kind"] == kind and cell.kwargs["draw"] == 0 and cell.kwargs["estimator"] in estimators
    ]


def _attention_error_cells(context):
    return _first_draw_cells(attention_error.STUDY, context, "monte_carlo", ("trig-iid", "positive-iid"))


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


SHOOTOUT_ROWS = ("trig-ort", "positive-ort", "hybrid-iid")


def _shootout_cells(context):
    return _first_draw_cells(estimator_shootout.STUDY, context, "attention", SHOOTOUT_ROWS)


def _shootout_estimates(values):
    """The mean relative output error and its standard error from a cell's moment sums."""
    n = values["n"]
    mean = values["s1"] / n
    return np.array([mean]), np.array([np.sqrt((values["s2"] / n - mean**2) / (n - 1))])


METRICS_ROWS = ("trig-ort", "positive-ort", "hybrid-iid")


def _metrics_cells(context):
    cells = attention_metrics.STUDY.make_cells(context)
    ms = [cell.kwargs["m"] for cell in cells]
    return [
        cell
        for cell in cells
        if cell.kwargs["draw"] == 0
        and cell.kwargs["m"] in (min(ms), max(ms))
        and cell.kwargs["estimator"] in METRICS_ROWS
    ]


def _metrics_estimates(values):
    """Each metric's mean over the draws and its standard error (a metric missing in some draw counts
    as NaN, so a change in which draws have it fails the criterion)."""
    estimates, errors = [], []
    for name in sorted(values):
        samples = np.array([np.nan if value is None else value for value in values[name]])
        estimates.append(samples.mean())
        errors.append(samples.std(ddof=1) / np.sqrt(samples.size))
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


def _plant_in_output_error(monkeypatch):
    error = estimator_shootout.attention_metrics.relative_output_error

    def rounded(estimate, exact):
        return error(_eight_bit(estimate), exact)

    monkeypatch.setattr(estimator_shootout.attention_metrics, "relative_output_error", rounded)


def _plant_in_estimate_gram(monkeypatch):
    estimate_gram = registry.Estimator.estimate_gram

    def rounded(self, *args, **kwargs):
        return _eight_bit(estimate_gram(self, *args, **kwargs))

    monkeypatch.setattr(registry.Estimator, "estimate_gram", rounded)


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
    "estimator_shootout": (
        estimator_shootout,
        _shootout_cells,
        _shootout_estimates,
        _plant_in_output_error,
    ),
    "attention_metrics": (
        attention_metrics,
        _metrics_cells,
        _metrics_estimates,
        _plant_in_estimate_gram,
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
        shares.append(np.max(_share_of_se(estimate, reference, standard_error)))
    return max(shares)


def _share_of_se(estimate, reference, standard_error):
    """|estimate − reference| / SE: 0 where they are equal (both NaN included), infinite where they
    differ and the SE is 0 (no spread) or either is NaN."""
    equal = (estimate == reference) | (np.isnan(estimate) & np.isnan(reference))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.abs(estimate - reference) / standard_error
    return np.where(equal, 0.0, np.where(np.isnan(share), np.inf, share))


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
