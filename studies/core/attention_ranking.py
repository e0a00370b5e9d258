"""Rankings, pairwise tests and rank agreement of the ``attention_metrics`` study (CSV rows).

Input: the study's records (per-draw values of each metric, one record per (family, m, estimator,
input draw)). Output rows, ``kind``:

* ``estimate``: one (family, m, metric, estimator): the mean over draws (``value``), its 99%
  percentile bootstrap interval (``ci_low``, ``ci_high``; draws resampled inside each input draw,
  :data:`RESAMPLES` times), its ``rank`` (1 = smallest, ties in registry order; empty where the
  estimator is not ranked on the metric: some draw had no value), the number of ``draws`` and the
  estimator's ``invalid_rate``;
* ``agreement``: one (family, m, metric ≠ kernel MSE): Kendall's ``tau`` between the kernel-MSE
  ranking and the metric's ranking over the ``compared`` estimators ranked on both, its 99% bootstrap
  interval, and how many pairs each orders significantly (``mse_significant``,
  ``metric_significant``), in the same direction (``concordant``) or opposite ones (``discordant``);
* ``discordant``: each discordant pair, ``estimator`` better on kernel MSE than ``versus`` and worse
  on ``metric``, with both z's (> 0: ``estimator`` smaller).

Pairwise test: van Elteren's stratified Mann–Whitney z (:mod:`studies.core.rank_tests`), two-sided,
Holm-corrected at family-wise α = :data:`FAMILY_ALPHA` over all (pair, m) of one (family, metric).
"""

from __future__ import annotations

import itertools

import numpy as np

from . import rank_tests
from .cells import group_records, stable_rng

METRICS = ("kernel_mse", "output_error", "kl", "tv", "entropy_error", "top_k_miss")
ATTENTION_METRICS = METRICS[1:]
FAMILY_ALPHA = 0.01
RESAMPLES = 1000
CONFIDENCE = 0.99
COLUMNS = (
    "kind family m metric estimator versus value ci_low ci_high rank draws invalid_rate tau tau_low "
    "tau_high compared mse_significant metric_significant concordant discordant z_mse z_metric"
).split()


def _row(kind, **values) -> dict:
    return {**dict.fromkeys(COLUMNS, ""), "kind": kind, **values}


def collect(records) -> dict:
    """(family, m) → (estimator names in record order, {metric: (E, S, n) float array, NaN = none},
    invalid rates (E,))."""
    grouped = {}
    for (family, m), group in group_records(records, "family", "m").items():
        by_name = group_records(sorted(group, key=lambda r: r["params"]["draw"]), "estimator")
        names = [name for (name,) in by_name]
        data = {
            metric: np.array(
                [[_floats(r["values"][metric]) for r in members] for members in by_name.values()]
            )
            for metric in (*METRICS, "invalid_rate")
        }
        grouped[(family, m)] = (names, data)
    return grouped


def _floats(values) -> list[float]:
    return [np.nan if value is None else float(value) for value in values]


def _ranked(samples) -> np.ndarray:
    """Estimators (E,) with a value in every draw."""
    return np.all(np.isfinite(samples), axis=(-2, -1))


def pair_tests(grouped, family, metric) -> dict:
    """(m, a, b) → (z, significant) for every pair of estimators ranked on ``metric`` at m."""
    keys, zs = [], []
    for (fam, m), (names, data) in grouped.items():
        if fam != family:
            continue
        samples = data[metric]
        ranked = _ranked(samples)
        for i, j in itertools.combinations(range(len(names)), 2):
            if ranked[i] and ranked[j]:
                keys.append((m, names[i], names[j]))
                zs.append(rank_tests.stratified_mann_whitney(samples[i], samples[j]))
    significant = rank_tests.holm(rank_tests.two_sided_p(np.array(zs)), FAMILY_ALPHA) if zs else []
    return {key: (z, bool(s)) for key, z, s in zip(keys, zs, significant, strict=True)}


def summarize(records, seed: int) -> list[dict]:
    grouped = collect(records)
    families = [family for family in ("isotropic", "anisotropic") if any(f == family for f, _ in grouped)]
    tests = {(f, metric): pair_tests(grouped, f, metric) for f in families for metric in METRICS}
    rows = []
    for (family, m), (names, data) in grouped.items():
        rng = stable_rng(seed, "attention_metrics", "bootstrap", family, m)
        stacked = np.stack([data[metric] for metric in METRICS])  # (metric, E, S, n)
        means = np.moveaxis(rank_tests.bootstrap_means(stacked, rng, RESAMPLES), 0, -1)  # (metric, E, B)
        boot = dict(zip(METRICS, means, strict=True))
        invalid = data["invalid_rate"].mean(axis=(-2, -1))
        for metric in METRICS:
            rows += _estimates(family, m, metric, names, data[metric], boot[metric], invalid)
        for metric in ATTENTION_METRICS:
            rows += _agreement(family, m, metric, names, data, boot, tests)
    return rows


def _estimates(family, m, metric, names, samples, boot, invalid) -> list[dict]:
    """``boot`` (E, B): bootstrap means of each estimator."""
    ranked = _ranked(samples)
    means = np.full(len(names), np.nan)
    means[ranked] = samples[ranked].mean(axis=(-2, -1))
    ranked_index = np.flatnonzero(ranked)
    ranks = {
        int(ranked_index[k]): position + 1
        for position, k in enumerate(np.argsort(means[ranked], kind="stable"))
    }
    tail = (1 - CONFIDENCE) / 2
    rows = []
    for e, name in enumerate(names):
        low, high = np.quantile(boot[e], [tail, 1 - tail]) if ranked[e] else (np.nan, np.nan)
        rows.append(
            _row(
                "estimate",
                family=family,
                m=m,
                metric=metric,
                estimator=name,
                value=float(means[e]),
                ci_low=float(low),
                ci_high=float(high),
                rank=ranks.get(e, ""),
                draws=samples.shape[-2] * samples.shape[-1],
                invalid_rate=float(invalid[e]),
            )
        )
    return rows


def _agreement(family, m, metric, names, data, boot, tests) -> list[dict]:
    both = _ranked(data["kernel_mse"]) & _ranked(data[metric])
    chosen = [name for name, keep in zip(names, both, strict=True) if keep]
    tau = float(
        rank_tests.kendall_tau(
            data["kernel_mse"][both].mean(axis=(-2, -1)), data[metric][both].mean(axis=(-2, -1))
        )
    )
    low, high = rank_tests.tau_interval(boot["kernel_mse"][both].T, boot[metric][both].T, CONFIDENCE)
    counts = {"mse_significant": 0, "metric_significant": 0, "concordant": 0, "discordant": 0}
    discordant = []
    for a, b in itertools.combinations(chosen, 2):
        z_mse, sig_mse = tests[(family, "kernel_mse")][(m, a, b)]
        z_metric, sig_metric = tests[(family, metric)][(m, a, b)]
        counts["mse_significant"] += sig_mse
        counts["metric_significant"] += sig_metric
        if sig_mse and sig_metric:
            agree = np.sign(z_mse) == np.sign(z_metric)
            counts["concordant" if agree else "discordant"] += 1
            if not agree:
                sign = 1 if z_mse > 0 else -1
                better, worse = (a, b) if sign > 0 else (b, a)
                discordant.append(
                    _row(
                        "discordant",
                        family=family,
                        m=m,
                        metric=metric,
                        estimator=better,
                        versus=worse,
                        z_mse=sign * z_mse,
                        z_metric=sign * z_metric,
                    )
                )
    agreement = _row(
        "agreement",
        family=family,
        m=m,
        metric=metric,
        tau=tau,
        tau_low=low,
        tau_high=high,
        compared=len(chosen),
        **counts,
    )
    return [agreement, *discordant]


__all__ = ["ATTENTION_METRICS", "COLUMNS", "FAMILY_ALPHA", "METRICS", "collect", "pair_tests", "summarize"]
