"""The attention_metrics CSV, every column recomputed a second way from the raw per-draw records.

Means by ``math.fsum``; ranks by sorting; the 99% bootstrap intervals by resampling each stratum in a
loop with the study's seeded stream (``stable_rng(seed, "attention_metrics", "bootstrap", family, m)``,
one (B, S, n) block of draw positions shared by every estimator and metric); van Elteren's z from
scipy's Mann–Whitney U per stratum and the tie-corrected variance counted with ``numpy.unique``; Holm
by its step-down loop; Kendall's τ by a double loop over estimator pairs. Tolerances: a mean of N
values differs by at most 2N·ε·max|x| between summation orders; z by 64ε relatively; ranks, counts,
the Holm decisions exactly; τ (a ratio of integers, and quantiles of such) to 4ε.
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as sps

from studies.core import attention_ranking, rank_tests
from studies.core.cells import stable_rng

from .summaries_support import EPS, Checker, Run, group_by, tiny

RESAMPLES, TAIL = 1000, 0.005


def _samples(group, metric) -> np.ndarray:
    ordered = sorted(group, key=lambda r: r["params"]["draw"])
    return np.array([[math.nan if v is None else v for v in r["values"][metric]] for r in ordered])


def _van_elteren(a, b) -> float:
    numerator = variance = 0.0
    for a_s, b_s in zip(a, b, strict=True):
        u = sps.mannwhitneyu(b_s, a_s, method="asymptotic").statistic  # #{b > a} + ½ #{ties}
        total = a_s.size + b_s.size
        counts = np.unique(np.concatenate([a_s, b_s]), return_counts=True)[1].astype(float)
        var_s = a_s.size * b_s.size / 12 * (total + 1 - np.sum(counts**3 - counts) / (total * (total - 1)))
        numerator += (u - a_s.size * b_s.size / 2) / (total + 1)
        variance += var_s / (total + 1) ** 2
    return numerator / math.sqrt(variance)


def _holm(p_values, alpha=0.01) -> list[bool]:
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for position, index in enumerate(order):
        if p_values[index] > alpha / (len(p_values) - position):
            break
        rejected[index] = True
    return rejected


def _tau(x, y) -> float:
    pairs = list(itertools.combinations(range(len(x)), 2))
    return sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in pairs) / len(pairs)


def _bootstrap(samples, picks) -> np.ndarray:
    """Means (B,) of ``samples`` (S, n) resampled at ``picks`` (B, S, n), stratum by stratum."""
    total = np.zeros(picks.shape[0])
    for s in range(samples.shape[0]):
        total += samples[s][picks[:, s, :]].sum(axis=-1)
    return total / (samples.shape[0] * samples.shape[1])


def _tests(by_point, family, metric):
    """(m, a, b) → (z, significant) over every pair of estimators with values at m."""
    keys, zs = [], []
    for (fam, m), estimators in by_point.items():
        if fam != family:
            continue
        valid = [name for name, data in estimators.items() if np.all(np.isfinite(data[metric]))]
        for a, b in itertools.combinations(valid, 2):
            keys.append((m, a, b))
            zs.append(_van_elteren(estimators[a][metric], estimators[b][metric]))
    significant = _holm([2 * sps.norm.sf(abs(z)) for z in zs])
    return dict(zip(keys, zip(zs, significant, strict=True), strict=True))


def check_attention_metrics(run: Run, check: Checker) -> None:
    metrics = run.module.attention_ranking.METRICS
    by_point = {}
    for (family, m, name), group in group_by(run.records, "family", "m", "estimator").items():
        by_point.setdefault((family, m), {})[name] = {
            metric: _samples(group, metric) for metric in (*metrics, "invalid_rate")
        }
    tests = {(f, metric): _tests(by_point, f, metric) for f, _ in by_point for metric in metrics}
    rows = {(r["kind"], r["family"], r["m"], r["metric"], r["estimator"], r["versus"]): r for r in run.rows}
    expected_rows = 0
    for (family, m), estimators in by_point.items():
        names = list(estimators)
        strata, n = estimators[names[0]]["kernel_mse"].shape
        picks = stable_rng(run.context.seed, "attention_metrics", "bootstrap", family, m).integers(
            0, n, size=(RESAMPLES, strata, n)
        )
        boot, means = {}, {}
        for metric in metrics:
            valid = [name for name in names if np.all(np.isfinite(estimators[name][metric]))]
            means[metric] = {
                name: math.fsum(estimators[name][metric].ravel()) / (strata * n) for name in valid
            }
            boot[metric] = {name: _bootstrap(estimators[name][metric], picks) for name in valid}
            ranks = {name: rank + 1 for rank, name in enumerate(sorted(valid, key=means[metric].get))}
            for name in names:
                row = rows[("estimate", family, m, metric, name, "")]
                expected_rows += 1
                samples = estimators[name][metric]
                scale = float(np.nanmax(np.abs(samples))) if name in valid else 0.0
                bound = 2 * strata * n * EPS * scale
                check.value(row, "value", means[metric].get(name, math.nan), bound)
                low, high = (
                    np.quantile(boot[metric][name], [TAIL, 1 - TAIL]) if name in valid else (math.nan,) * 2
                )
                check.value(row, "ci_low", low, bound)
                check.value(row, "ci_high", high, bound)
                check.value(row, "rank", ranks.get(name, ""))
                check.value(row, "draws", strata * n)
                invalid = estimators[name]["invalid_rate"]
                check.value(
                    row, "invalid_rate", math.fsum(invalid.ravel()) / invalid.size, 2 * invalid.size * EPS
                )
                _blank(check, row, ("tau", "tau_low", "tau_high", "compared", "versus", "z_mse", "z_metric"))
                _blank(check, row, ("mse_significant", "metric_significant", "concordant", "discordant"))
        for metric in metrics[1:]:
            both = [name for name in names if name in means["kernel_mse"] and name in means[metric]]
            row = rows[("agreement", family, m, metric, "", "")]
            expected_rows += 1
            check.value(
                row,
                "tau",
                _tau([means["kernel_mse"][x] for x in both], [means[metric][x] for x in both]),
                4 * EPS,
            )
            taus = _tau(
                np.array([boot["kernel_mse"][x] for x in both]), np.array([boot[metric][x] for x in both])
            )
            low, high = np.quantile(taus, [TAIL, 1 - TAIL])
            check.value(row, "tau_low", low, 4 * EPS)
            check.value(row, "tau_high", high, 4 * EPS)
            check.value(row, "compared", len(both))
            counts = {"mse_significant": 0, "metric_significant": 0, "concordant": 0, "discordant": 0}
            for a, b in itertools.combinations(both, 2):
                z_mse, sig_mse = tests[(family, "kernel_mse")][(m, a, b)]
                z_metric, sig_metric = tests[(family, metric)][(m, a, b)]
                counts["mse_significant"] += sig_mse
                counts["metric_significant"] += sig_metric
                if sig_mse and sig_metric:
                    kind = "concordant" if (z_mse > 0) == (z_metric > 0) else "discordant"
                    counts[kind] += 1
                    if kind == "discordant":
                        better, worse, sign = (a, b, 1) if z_mse > 0 else (b, a, -1)
                        pair = rows[("discordant", family, m, metric, better, worse)]
                        expected_rows += 1
                        check.value(pair, "versus", worse)
                        check.value(pair, "z_mse", sign * z_mse, 64 * EPS * abs(z_mse))
                        check.value(pair, "z_metric", sign * z_metric, 64 * EPS * abs(z_metric))
            for column, count in counts.items():
                check.value(row, column, count)
            _blank(check, row, ("estimator", "versus", "value", "ci_low", "ci_high", "rank", "draws"))
            _blank(check, row, ("invalid_rate", "z_mse", "z_metric"))
    for row in run.rows:
        check.holds(row, "kind", row["kind"] in ("estimate", "agreement", "discordant"), "a known row kind")
        check.holds(row, "family", (row["family"], row["m"]) in by_point, "a family and m of the records")
        check.holds(row, "m", (row["family"], row["m"]) in by_point, "a family and m of the records")
        check.holds(row, "metric", row["metric"] in metrics, "a metric of the study")
        check.holds(
            row,
            "estimator",
            row["kind"] == "agreement" or row["estimator"] in by_point[(row["family"], row["m"])],
            "a recorded estimator",
        )
    assert len(run.rows) == expected_rows


def _blank(check, row, columns):
    for column in columns:
        check.value(row, column, "")


CHECKS = {"attention_metrics": check_attention_metrics}


def test_summary_values_match_an_independent_computation():
    check_attention_metrics(tiny("attention_metrics"), Checker())


def _welch_z(a, b):
    """A planted error: a z-test on the sample SDs instead of the rank test."""
    return float(
        (np.mean(b) - np.mean(a)) / math.sqrt(np.var(a, ddof=1) / a.size + np.var(b, ddof=1) / b.size)
    )


@pytest.mark.parametrize(
    ("attribute", "planted", "column"),
    [
        ("CONFIDENCE", 0.95, "ci_low"),
        ("RESAMPLES", 999, "ci_low"),
        (
            "rank_tests",
            SimpleNamespace(**{**vars(rank_tests), "stratified_mann_whitney": _welch_z}),
            "mse_significant",
        ),
    ],
)
def test_planted_errors_in_summarize_are_caught(attribute, planted, column, monkeypatch):
    """95% intervals, a different bootstrap, a z-test on the sample SD: each is rejected."""
    run = tiny("attention_metrics")
    monkeypatch.setattr(attention_ranking, attribute, planted)
    rows = attention_ranking.summarize(run.records, run.context.seed)
    with pytest.raises(AssertionError, match=f"^{column}: "):
        check_attention_metrics(run._replace(rows=rows), Checker())


def test_a_planted_error_in_the_rows_is_caught():
    run = tiny("attention_metrics")
    rows = [{**row, "tau": -row["tau"]} if row["kind"] == "agreement" else row for row in run.rows]
    with pytest.raises(AssertionError, match=r"^tau: "):
        check_attention_metrics(run._replace(rows=rows), Checker())
