"""Attention-level metrics against hand-computed float64 values, on numpy, torch, jax and
array_api_strict; invalid rows, conventions (0 log 0, ties), argument errors, and agreement with
FAVOR's own output.

Tolerances: each hand value is a few float64 operations (sums of at most three logs), so results
agree to a few ulps; rtol = 1e-14 allows 50 ulps.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from estimators import attention, backends, input_families, registry
from estimators import attention_metrics as metrics
from tests.conftest import to_numpy

RTOL = 1e-14
LOG2, LOG3 = math.log(2.0), math.log(3.0)

EXACT = np.array([[0.5, 0.25, 0.25], [0.7, 0.2, 0.1], [0.5, 0.25, 0.25]])
WEIGHTS = np.array([[1.0, 2.0, 1.0], [0.1, 0.2, 0.7], [5.0, 5.0, 5.0]])
"""Rows normalize to P̂ = (1/4, 1/2, 1/4), (0.1, 0.2, 0.7), (1/3, 1/3, 1/3)."""
KL = [
    0.5 * LOG2 + 0.25 * math.log(0.5),  # = log(2)/4
    0.7 * math.log(7.0) + 0.2 * math.log(1.0) + 0.1 * math.log(1 / 7),  # = 0.6 log 7
    LOG3 - 1.5 * LOG2,  # KL(P‖uniform) = log 3 − H(P)
]
TV = [0.25, 0.6, 0.5 * (1 / 6 + 1 / 12 + 1 / 12)]
ENTROPY_ERROR = [0.0, 0.0, LOG3 - 1.5 * LOG2]  # rows 1-2: P̂ is a permutation of P


def test_divergences_match_hand_values(to_backend):
    exact, weights = to_backend(EXACT), to_backend(WEIGHTS)
    np.testing.assert_allclose(to_numpy(metrics.row_kl(exact, weights)), KL, rtol=RTOL)
    np.testing.assert_allclose(to_numpy(metrics.row_total_variation(exact, weights)), TV, rtol=RTOL)
    np.testing.assert_allclose(
        to_numpy(metrics.entropy_error(exact, weights)), ENTROPY_ERROR, rtol=RTOL, atol=1e-15
    )
    entropy = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    np.testing.assert_allclose(
        to_numpy(metrics.row_entropy(exact)), [1.5 * LOG2, entropy, 1.5 * LOG2], rtol=RTOL
    )


def test_top_k_miss_counts_the_exact_maximum_against_the_estimate_order(to_backend):
    """Row 0: exact max is key 0, Â = (1, 2, 1) ranks it second (miss at k = 1, hit at k = 2); row 1:
    key 0 is last of (0.1, 0.2, 0.7) (miss until k = 3); row 2: a three-way tie counts as a hit."""
    exact, weights = to_backend(EXACT), to_backend(WEIGHTS)
    assert to_numpy(metrics.top_k_miss(exact, weights, 1)).tolist() == [1.0, 1.0, 0.0]
    assert to_numpy(metrics.top_k_miss(exact, weights, 2)).tolist() == [0.0, 1.0, 0.0]
    assert to_numpy(metrics.top_k_miss(exact, weights, 3)).tolist() == [0.0, 0.0, 0.0]


def test_relative_output_error_matches_hand_value(to_backend):
    """O = (3, 4), Ô = (3, 0): ‖Ô − O‖ = 4, ‖O‖ = 5; a batch of two gives one value each."""
    exact = to_backend(np.array([[[3.0, 4.0]], [[3.0, 4.0]]]))
    estimate = to_backend(np.array([[[3.0, 0.0]], [[3.0, 4.0]]]))
    np.testing.assert_allclose(
        to_numpy(metrics.relative_output_error(estimate, exact)), [0.8, 0.0], rtol=RTOL
    )


def test_invalid_rows_are_flagged_and_get_nan_divergences(to_backend):
    """Negative weight, ±∞/NaN weight, zero sum, negative sum: invalid; the valid row keeps its value."""
    exact = to_backend(np.tile([0.5, 0.25, 0.25], (6, 1)))
    weights = to_backend(
        np.array(
            [
                [1.0, 2.0, 1.0],
                [1.0, -0.5, 1.0],
                [np.inf, 1.0, 1.0],
                [np.nan, 1.0, 1.0],
                [0.0, 0.0, 0.0],
                [-1.0, -2.0, -1.0],
            ]
        )
    )
    assert to_numpy(metrics.invalid_rows(weights)).astype(bool).tolist() == [False] + [True] * 5
    for metric in (metrics.row_kl, metrics.row_total_variation, metrics.entropy_error):
        values = to_numpy(metric(exact, weights))
        assert np.isfinite(values[0]) and np.all(np.isnan(values[1:]))
    misses = to_numpy(metrics.top_k_miss(exact, weights, 2))
    assert misses.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0]  # signed rows still rank; ∞, NaN, all-0 miss


def test_row_metrics_equal_each_metric_computed_alone(to_backend):
    """Replicates (R, L, M) of random signed weights with invalid rows and zeros, against exact rows
    with zeros: every entry of :func:`row_metrics` is bit-for-bit the metric's own function."""
    rng = np.random.default_rng(3)
    exact = rng.exponential(size=(5, 7)) * (rng.random((5, 7)) > 0.2)
    exact = to_backend(exact / exact.sum(-1, keepdims=True))
    raw = rng.exponential(size=(4, 5, 7)) * (rng.random((4, 5, 7)) > 0.2)
    raw[0, 1, 2], raw[1, 3, :], raw[2, 0, 4] = -0.3, 0.0, np.inf
    weights = to_backend(raw)
    together = {name: to_numpy(value) for name, value in metrics.row_metrics(exact, weights, 2).items()}
    alone = {
        "invalid": metrics.invalid_rows(weights),
        "kl": metrics.row_kl(exact, weights),
        "total_variation": metrics.row_total_variation(exact, weights),
        "entropy_error": metrics.entropy_error(exact, weights),
        "top_k_miss": metrics.top_k_miss(exact, weights, 2),
    }
    assert together.keys() == alone.keys()
    assert together["invalid"].sum() == 3
    for name, value in alone.items():
        np.testing.assert_array_equal(together[name], to_numpy(value), err_msg=name)


def test_kl_conventions_zero_log_zero_and_infinite_where_the_estimate_vanishes(to_backend):
    exact = to_backend(np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]]))
    weights = to_backend(np.array([[1.0, 1.0, 3.0], [1.0, 0.0, 1.0]]))
    kl = to_numpy(metrics.row_kl(exact, weights))
    np.testing.assert_allclose(kl[0], math.log(2.5), rtol=RTOL)  # P̂ = (1/5, 1/5, 3/5)
    assert kl[1] == math.inf


@pytest.mark.parametrize("scale", [1e-30, 1.0, 3e20])
def test_exact_rows_up_to_a_row_factor_have_zero_error(scale):
    """Â = c_i P (any per-row c_i > 0, FAVOR's row stabilizer) normalizes to P: every metric is 0
    up to the round-off of normalizing (a few ulps per entry)."""
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, 6))
    exact = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    weights = exact * scale * rng.uniform(0.5, 2.0, (4, 1))
    assert np.all(np.abs(metrics.row_kl(exact, weights)) < 1e-15)
    assert np.all(metrics.row_total_variation(exact, weights) < 1e-15)
    assert np.all(np.abs(metrics.entropy_error(exact, weights)) < 1e-14)
    assert np.all(metrics.top_k_miss(exact, weights, 1) == 0)


def test_results_keep_backend_dtype_and_broadcast_replicates(backend, to_backend):
    """float32 in, float32 out; exact (L, M) against replicates (R, L, M) gives (R, L)."""
    exact = to_backend(EXACT, "float32")
    weights = to_backend(np.stack([WEIGHTS, 2 * WEIGHTS]), "float32")
    for metric in (metrics.row_kl, metrics.row_total_variation, metrics.entropy_error):
        result = metric(exact, weights)
        assert backends.backend_of(result) == backend
        assert backends.dtype_name(result) == "float32"
        assert tuple(result.shape) == (2, 3)
        np.testing.assert_allclose(to_numpy(result[1]), to_numpy(result[0]), rtol=1e-6, atol=1e-7)
    miss = metrics.top_k_miss(exact, weights, 1)
    assert backends.dtype_name(miss) == "float32" and tuple(miss.shape) == (2, 3)


def test_metrics_use_only_standard_array_api_calls():
    target = backends.resolve_target(backend="array_api_strict")
    exact, weights = target.asarray(EXACT), target.asarray(WEIGHTS)
    np.testing.assert_allclose(np.asarray(metrics.row_kl(exact, weights)), KL, rtol=RTOL)
    np.testing.assert_allclose(np.asarray(metrics.row_total_variation(exact, weights)), TV, rtol=RTOL)
    np.testing.assert_allclose(np.asarray(metrics.entropy_error(exact, weights)), ENTROPY_ERROR, atol=1e-15)
    assert np.asarray(metrics.top_k_miss(exact, weights, 2)).tolist() == [0.0, 1.0, 0.0]
    np.testing.assert_allclose(
        np.asarray(metrics.relative_output_error(target.asarray([[3.0, 0.0]]), target.asarray([[3.0, 4.0]]))),
        0.8,
        rtol=RTOL,
    )


def test_normalized_rows_times_v_is_the_favor_output():
    """P̂ V from a registry row's Gram estimate equals :func:`estimators.attention.favor` (Performers
    Eq. 4 computed two ways; stabilizers cancel), so the metrics judge the rows FAVOR really uses."""
    rng = np.random.default_rng(3)
    q, k, v = rng.standard_normal((3, 12, 8)) * 0.5
    row = registry.get("positive-ort")
    W = row.draw(16, 8, seed=4)
    scale = 8**-0.25
    rows = metrics.normalized_rows(row.estimate_gram(q * scale, k * scale, W))
    np.testing.assert_allclose(rows @ v, attention.favor(q, k, v, W, feature="positive"), rtol=1e-12)
    exact = attention.exact(q, k, v)
    np.testing.assert_allclose(
        metrics.relative_output_error(rows @ v, exact),
        np.linalg.norm(rows @ v - exact) / np.linalg.norm(exact),
        rtol=1e-14,
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.row_kl(EXACT, WEIGHTS[:, :2]), "same \\(L, M\\)"),
        (lambda: metrics.top_k_miss(EXACT, WEIGHTS, 4), "k must be at most"),
        (lambda: metrics.top_k_miss(EXACT, WEIGHTS, 0), "k must be an integer"),
        (lambda: metrics.row_total_variation([[1.0]], WEIGHTS), "exact must be a numpy"),
        (lambda: metrics.relative_output_error(EXACT[:, :2], EXACT), "estimate and exact"),
        (lambda: metrics.invalid_rows(np.ones(3)), "weights must have at least 2"),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call()


def test_the_asv_top_k_track_matches_a_plain_numpy_count_on_every_backend():
    """favor_bench.accuracy's top-k miss rate equals a count by sorting (float64 host, argsort) and
    is the same on every installed backend (portable draws)."""
    from favor_bench import accuracy

    row = registry.get("positive-ort")
    scale = accuracy.D**-0.25
    q, k, _ = input_families.draw("anisotropic", accuracy.LENGTH, accuracy.D, rho=accuracy.RHO, seed=24)
    weights = row.estimate_gram(q * scale, k * scale, row.draw(accuracy.M, accuracy.D, seed=0))
    logits = (q * scale) @ (k * scale).T
    best = np.argmax(logits, axis=-1)
    top = np.argsort(-weights, axis=-1, kind="stable")[:, : accuracy.TOP_K]
    expected = np.mean([b not in t for b, t in zip(best, top, strict=True)])
    for backend in backends.available_backends():
        name = {"numpy": "numpy", "torch": "torch:cpu", "jax": "jax:cpu"}[backend]
        assert accuracy.top_k_miss_rate(name, "positive-ort", "anisotropic") == expected
    assert 0 < expected < 1
