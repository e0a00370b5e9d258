"""Range checks: feature maps warn instead of returning silent Inf or all-zero rows, and FAVOR reports
how far its inputs are outside the useful regime (the delta-method relative error).

Every failing case here returned silently before the checks existed (issue: ‖x‖ = 30 in torch
float32 gave all-Inf trigonometric and all-zero positive/hyperbolic rows without a word).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from estimators import attention, features, projections, regime
from estimators.theory import attention_delta

from .conftest import BACKENDS

EXPONENTIAL = ("trig", "positive", "hyperbolic")
D, M = 16, 32


def _rows(norm, rows=6, d=D, seed=0):
    x = np.random.default_rng(seed).standard_normal((rows, d))
    return norm * x / np.linalg.norm(x, axis=-1, keepdims=True)


def _on(backend, host, dtype):
    torch = pytest.importorskip("torch") if backend == "torch" else None
    if backend == "torch":
        return torch.tensor(host, dtype=getattr(torch, dtype))
    return host.astype(dtype)


CASES = [("torch", dtype) for dtype in ("float32", "float16", "bfloat16") if "torch" in BACKENDS]
CASES += [("numpy", "float32"), ("numpy", "float16")]


@pytest.mark.parametrize(("backend", "dtype"), CASES)
@pytest.mark.parametrize("name", EXPONENTIAL)
def test_out_of_range_features_warn_naming_norm_dtype_and_remedy(name, backend, dtype):
    x, W = _on(backend, _rows(30.0), dtype), _on(backend, projections.iid(M, D, seed=1), dtype)
    with np.errstate(all="ignore"), pytest.warns(features.FeatureRangeWarning) as caught:
        features.feature_map(name)(x, W)
    message = str(caught[0].message)
    assert f"'{name}' in {dtype}" in message
    assert "6 row(s)" in message
    assert "‖x‖ = 30" in message
    assert "stabilizer='row'" in message and "float64" in message


@pytest.mark.parametrize("name", EXPONENTIAL)
def test_check_raise_raises_and_check_off_is_silent_and_identical(name):
    x, W = _rows(30.0).astype(np.float32), projections.iid(M, D, seed=1, dtype="float32")
    feature = features.feature_map(name)
    with np.errstate(all="ignore"):
        with pytest.raises(features.FeatureRangeError, match="‖x‖ = 30"):
            feature(x, W, check="raise")
        with warnings.catch_warnings():
            warnings.simplefilter("error", features.FeatureRangeWarning)
            silent = feature(x, W, check="off")
        with pytest.warns(features.FeatureRangeWarning):
            checked = feature(x, W)
    np.testing.assert_array_equal(silent, checked)
    with pytest.raises(ValueError, match="check must be one of"):
        feature(x, W, check="ignore")


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
@pytest.mark.parametrize("name", EXPONENTIAL)
def test_in_range_and_stabilized_features_do_not_warn(name, dtype):
    """‖x‖ = 1 raw, and ‖x‖ = 30 with the row stabilizer (entries ≤ m^{-1/2}), in every dtype."""
    W = projections.iid(M, D, seed=1, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", features.FeatureRangeWarning)
        features.feature_map(name)(_rows(1.0).astype(dtype), W)
        features.feature_map(name)(_rows(30.0).astype(dtype), W, stabilizer="row")


@pytest.mark.parametrize(("half_sq_norm", "warns"), [(746.0, True), (744.0, False)])
def test_the_underflow_threshold_is_the_smallest_float64_subnormal(half_sq_norm, warns):
    """With W = 0 and m = 1 the one positive feature is e^{−‖x‖²/2}: e^{−746} rounds to 0 in float64
    (the smallest subnormal is 2^{−1074} = e^{−744.44}); e^{−744} is a nonzero subnormal, in range."""
    x = np.zeros((1, 2))
    x[0, 0] = math.sqrt(2 * half_sq_norm)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = features.positive(x, np.zeros((1, 2)))
    assert (value[0, 0] == 0) == warns
    assert any(issubclass(w.category, features.FeatureRangeWarning) for w in caught) == warns


def test_zero_features_that_are_exact_do_not_warn():
    """A Poisson feature is exactly 0 when a zero coordinate has a positive count: not an underflow."""
    x = np.zeros((3, 4))
    W = projections.uniform(8, 4, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", features.FeatureRangeWarning)
        values = features.poisson(x, W, rate=2.0)
    assert np.any(values == 0)


# ---- FAVOR: the predicted relative error -------------------------------------------------------


def _attention_inputs(norm, length=12, d=D, seed=0):
    rng = np.random.default_rng(seed)
    q, k = _rows(norm, length, d, seed), _rows(norm, length, d, seed + 1)
    return q, k, rng.standard_normal((length, 3))


@pytest.mark.parametrize("feature", ["positive", "hyperbolic", "trig"])
def test_predicted_error_is_the_delta_method_over_all_rows(feature):
    """With rows ≥ L it is √(Σ_i tr C_i + ‖b_i‖² / Σ_i ‖o_i‖²) from the delta method, row by row."""
    q, k, v = _attention_inputs(1.5)
    x, y = q * D**-0.25, k * D**-0.25
    delta = attention_delta(regime.DELTA_FEATURES[feature], x, y, v, M)
    squared_error = np.trace(delta.covariance, axis1=-2, axis2=-1).sum() + (delta.bias**2).sum()
    expected = math.sqrt(squared_error / (delta.output**2).sum())
    assert regime.predicted_error(q, k, v, M, feature) == pytest.approx(expected, rel=1e-12)


def test_predicted_error_drops_masked_keys_and_later_keys_in_causal_mode():
    q, k, v = _attention_inputs(1.5)
    keep = np.arange(12) % 4 != 1
    masked = regime.predicted_error(q, k, v, M, key_padding_mask=keep)
    assert masked == pytest.approx(regime.predicted_error(q, k[keep], v[keep], M), rel=1e-12)
    last_row = regime.predicted_error(q[-1:], k, v, M)
    causal = regime.predicted_error(q, k, v, M, causal=True, rows=1)
    assert causal == pytest.approx(regime.predicted_error(q[:1], k[:1], v[:1], M), rel=1e-12, abs=0)
    assert regime.predicted_error(q, k, v, M, causal=True) != last_row


BACKEND_DTYPES = [("numpy", "float64"), ("numpy", "float32")]
BACKEND_DTYPES += [("torch", dt) for dt in ("float32", "float16", "bfloat16") if "torch" in BACKENDS]


@pytest.mark.parametrize(("backend", "dtype"), BACKEND_DTYPES)
@pytest.mark.parametrize("norm", [30.0, 100.0])
def test_favor_far_outside_its_regime_warns_on_request(norm, backend, dtype):
    """‖q‖ = ‖k‖ = 30 or 100: FAVOR's output is noise (relative error ≈ 1.1-1.3 against exact)."""
    q, k, v = (_on(backend, a, dtype) for a in _attention_inputs(norm))
    W = _on(backend, projections.orthogonal(M, D, seed=2), dtype)
    with pytest.warns(regime.RegimeWarning, match="outside its useful regime") as caught:
        _, error = attention.favor(q, k, v, W, predict_error=True)
    assert error > regime.ERROR_THRESHOLD
    assert f"max ‖q‖ = {norm:.3g}" in str(caught[0].message)


@pytest.mark.parametrize("causal", [False, True])
def test_favor_inside_its_regime_is_silent_and_unchanged(causal):
    q, k, v = _attention_inputs(1.0)
    W = projections.orthogonal(64, D, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", regime.RegimeWarning)
        out, error = attention.favor(q, k, v, W, causal=causal, predict_error=True)
    assert 0 < error < regime.ERROR_THRESHOLD
    np.testing.assert_array_equal(out, attention.favor(q, k, v, W, causal=causal))


def test_predicted_error_names_its_arguments():
    q, k, v = _attention_inputs(1.0)
    with pytest.raises(ValueError, match="feature must be one of"):
        regime.predicted_error(q, k, v, M, "oprf")
    with pytest.raises(ValueError, match="m must be"):
        regime.predicted_error(q, k, v, 0)
    with pytest.raises(ValueError, match="rows must be"):
        regime.predicted_error(q, k, v, M, rows=0)


def test_predict_error_inside_jax_jit_is_refused():
    jax = pytest.importorskip("jax")
    q, k, v = (jax.numpy.asarray(a) for a in _attention_inputs(1.0))
    W = jax.numpy.asarray(projections.orthogonal(M, D, seed=2))
    with pytest.raises(ValueError, match="predict_error reads q, k and v on the host"):
        jax.jit(lambda q: attention.favor(q, k, v, W, predict_error=True))(q)
