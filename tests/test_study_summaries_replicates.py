"""The replicate arithmetic of ``studies.core`` against direct computation on raw samples.

``replicate_chunks`` and ``chunk_cells`` split the replicates as the budget allows and add up to the
total; ``error_moments``, ``merge_moments`` and ``moment_summary`` give the sums and sample
statistics numpy gives on the raw errors; ``kernel_errors`` gives the moments of the estimates K̂
computed here from the same W. Bounds are float64 round-off of sums of n terms.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from estimators import registry
from studies.core import montecarlo
from studies.core.cells import Cell, Context, chunk_cells

from .summaries_support import EPS, SEED, Z99, Z_PRINTED, softmax_cf, sq


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

    cell = Cell.build(__name__, "kernel_errors", {}, Context(seed=SEED))
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


@pytest.mark.parametrize(("pairs", "per_group"), [(16, 5), (3, 0), (1, 4), (7, 7)])
def test_pair_groups_cover_every_pair_once_in_groups_of_at_most_per_group(pairs, per_group):
    groups = montecarlo.pair_groups(pairs, per_group)
    assert [p for g in groups for p in range(pairs)[g]] == list(range(pairs))
    assert all(len(range(pairs)[g]) <= max(1, per_group) for g in groups)


@pytest.mark.parametrize(
    ("name", "ms"),
    [("trig-ort", None), ("saderf-iid", None), ("poisson-iid", None), ("positive-iid", [2, 6])],
)
def test_kernel_errors_on_groups_of_pairs_equal_one_pair_at_a_time(monkeypatch, name, ms):
    """The moments from pairs estimated in groups equal, bit for bit, those of one pair per call."""
    rng = np.random.default_rng(9)
    x, y = 0.4 * rng.standard_normal((2, 5, 4))
    row = registry.get(name)
    cell = Cell.build(__name__, "kernel_errors", {}, Context(seed=SEED))
    reference = softmax_cf(x, y)

    def moments():
        return montecarlo.kernel_errors(cell, row, 6, x, y, reference, 30, ms=ms)

    monkeypatch.setattr(montecarlo, "pairs_per_group", lambda row, n, m: 2)
    grouped = moments()
    monkeypatch.setattr(montecarlo, "pairs_per_group", lambda row, n, m: 1)
    single = moments()
    for key in ("s1", "s2", "s4"):
        np.testing.assert_array_equal(grouped[key], single[key])
    assert np.shape(grouped["s1"]) == ((5,) if ms is None else (len(ms), 5))


def test_pairs_per_group_keeps_both_sides_features_within_the_budget():
    trig, poisson = registry.get("trig-iid"), registry.get("poisson-iid")
    assert montecarlo.pairs_per_group(trig, 100, 8, budget=100 * 2 * 16 * 3) == 3
    assert montecarlo.pairs_per_group(poisson, 1, 8) == 1
