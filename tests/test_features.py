"""Feature maps: closed forms, draw-by-draw identities, stabilizers, backends, dtypes and errors."""

from __future__ import annotations

import numpy as np
import pytest

from estimators import backends, feature_parts, features, kernels, projections
from tests.conftest import to_numpy

EXPONENTIAL = ("trig", "positive", "hyperbolic")
CORE_FEATURES = ("trig", "positive", "hyperbolic", "generalized")  # GERF, DIRF: test_parameterized_features


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 4)) * 0.5
    W = projections.orthogonal(6, 4, seed=1)
    return x, W


def _reference(name, x, W):
    """theory.md §3 table, written out directly in numpy."""
    m = W.shape[0]
    u = x @ W.T
    sq = (x**2).sum(-1, keepdims=True) / 2
    if name == "positive":
        return np.exp(u - sq) / np.sqrt(m)
    if name == "hyperbolic":
        return np.exp(-sq) * np.concatenate([np.exp(u), np.exp(-u)], -1) / np.sqrt(2 * m)
    if name == "trig":
        return np.exp(sq) * np.concatenate([np.cos(u), np.sin(u)], -1) / np.sqrt(m)
    return np.maximum(u, 0) / np.sqrt(m)


@pytest.mark.parametrize("name", CORE_FEATURES)
def test_features_match_the_closed_form(name, inputs):
    x, W = inputs
    np.testing.assert_allclose(features.feature_map(name)(x, W), _reference(name, x, W), rtol=1e-13)


@pytest.mark.parametrize("name", CORE_FEATURES)
@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-12), ("float32", 1e-5)])
def test_backends_agree_given_the_same_W(name, dtype, rtol, inputs, backend, to_backend):
    x, W = inputs
    result = features.feature_map(name)(to_backend(x, dtype), to_backend(W, dtype))
    assert backends.backend_of(result) == backend
    assert backends.dtype_name(result) == dtype
    np.testing.assert_allclose(to_numpy(result), _reference(name, x, W), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("name", EXPONENTIAL)
def test_half_precision_is_computed_in_float32_and_returned_as_input(name, inputs, backend, to_backend):
    x, W = inputs
    dtype = "float16" if backend == "numpy" else "bfloat16"
    result = features.feature_map(name)(to_backend(x, dtype), to_backend(W, dtype))
    assert backends.dtype_name(result) == dtype
    np.testing.assert_allclose(to_numpy(result), _reference(name, x, W), rtol=2e-2, atol=2e-2)


def test_trig_is_exact_at_x_equal_y(inputs):
    """Claim 5: cos² + sin² = 1 makes SM^trig_m(x, x) = e^{‖x‖²} for every draw."""
    x, W = inputs
    phi = features.trig(x, W)
    np.testing.assert_allclose(kernels.estimate(phi, phi), np.exp((x**2).sum(-1)), rtol=1e-13)


@pytest.mark.parametrize("name", ["positive", "hyperbolic"])
def test_positive_and_hyperbolic_are_exact_at_x_equal_minus_y(name, inputs):
    """Claim 5: at z = x + y = 0 the positive estimators equal Λ = SM(x, −x) for every draw."""
    x, W = inputs
    feature = features.feature_map(name)
    estimate = kernels.estimate(feature(x, W), feature(-x, W))
    np.testing.assert_allclose(estimate, np.exp(-(x**2).sum(-1)), rtol=1e-13)


@pytest.mark.parametrize("name", EXPONENTIAL)
@pytest.mark.parametrize("stabilizer", ["row", "global"])
def test_stabilizers_are_pure_log_shifts(name, stabilizer, inputs):
    x, W = inputs
    parts = features.feature_parts(name, x, W)
    shift = features.row_shift(parts) if stabilizer == "row" else features.global_shift(parts)
    stabilized = features.feature_map(name)(x, W, stabilizer=stabilizer)
    np.testing.assert_allclose(stabilized * np.exp(shift), _reference(name, x, W), rtol=1e-13)
    assert shift.shape == ((2, 5, 1) if stabilizer == "row" else (2, 1, 1))


def test_row_stabilizer_rescues_features_that_underflow():
    """At ‖x‖ = 80 every raw positive feature underflows to 0; the row shift keeps the largest at m^{-1/2}."""
    W = projections.orthogonal(8, 4, seed=2)
    x = np.full((1, 3, 4), 40.0)
    with pytest.warns(features.FeatureRangeWarning, match="3 row"):
        assert np.all(features.positive(x, W) == 0)
    stabilized = features.positive(x, W, stabilizer="row")
    np.testing.assert_allclose(stabilized.max(axis=-1), 8**-0.5, rtol=1e-14)


@pytest.mark.parametrize("name", EXPONENTIAL)
def test_assemble_overwrites_only_when_asked_and_gives_the_same_features(name, inputs, backend, to_backend):
    """``overwrite=True`` reuses the log-amplitudes as the features' buffer with bitwise the same
    values; without it the parts are left as they were (the range check reads them afterwards), and a
    shift that widens them (a larger batch) gets a new array of the wider shape."""
    x, W = (to_backend(a) for a in inputs)
    parts = features.feature_parts(name, x, W)
    before = to_numpy(parts.log_amplitude).copy()
    shift = features.row_shift(parts)
    kept = features.assemble(parts, shift)
    np.testing.assert_array_equal(to_numpy(parts.log_amplitude), before)
    overwritten = features.assemble(features.feature_parts(name, x, W), shift, overwrite=True)
    np.testing.assert_array_equal(to_numpy(overwritten), to_numpy(kept))
    wide = to_backend(np.zeros((3, *before.shape[:-1], 1)))
    widened = features.assemble(features.feature_parts(name, x, W), shift + wide, overwrite=True)
    assert tuple(widened.shape) == (3, *tuple(kept.shape))
    np.testing.assert_array_equal(to_numpy(widened), np.broadcast_to(to_numpy(kept), widened.shape))


def test_eps_adds_a_constant_per_feature(inputs):
    x, W = inputs
    shifted = features.positive(x, W, eps=1e-3) - features.positive(x, W)
    np.testing.assert_allclose(shifted, 1e-3 / np.sqrt(W.shape[0]), rtol=1e-10)


def test_scale_inputs_scales_by_d_to_the_minus_quarter(inputs):
    x, W = inputs
    np.testing.assert_allclose(
        features.positive(x, W, scale_inputs=True), features.positive(x * 4**-0.25, W), rtol=1e-14
    )


def test_generalized_without_projection_is_deterministic(inputs):
    x, _ = inputs
    np.testing.assert_array_equal(features.generalized(x), np.maximum(x, 0))
    np.testing.assert_allclose(features.generalized(x, f=np.tanh, eps=0.1), np.tanh(x) + 0.1)


def test_features_per_projection():
    assert [features.features_per_projection(n) for n in CORE_FEATURES] == [2, 1, 2, 1]


def test_feature_maps_run_under_array_api_strict(inputs):
    """The core uses only standard array-API calls: array_api_strict rejects anything else."""
    x, W = inputs
    target = backends.resolve_target(backend="array_api_strict")
    xs, ws = target.asarray(x), target.asarray(W)
    for name in CORE_FEATURES:
        result = features.feature_map(name)(
            xs, ws, **({} if name == "generalized" else {"stabilizer": "row"})
        )
        reference = _reference(name, x, W)
        if name != "generalized":
            reference = reference * np.exp(-to_numpy(features.row_shift(features.feature_parts(name, x, W))))
        np.testing.assert_allclose(np.asarray(result), reference, rtol=1e-13)
    assert kernels.exact_gram("softmax", xs[0, ...], xs[0, ...]).shape == (5, 5)


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "error", "message"),
    [
        ((4,), (6, 4), ValueError, "x must have at least 2 dimensions"),
        ((5, 4), (4,), ValueError, "W must have at least 2 dimensions"),
        ((5, 3), (6, 4), ValueError, "x has d=3 but W has d=4"),
        ((5, 4), (0, 4), ValueError, r"W must have at least one projection row \(m >= 1\)"),
    ],
)
def test_bad_shapes_are_named(x_shape, w_shape, error, message):
    with pytest.raises(error, match=message):
        features.positive(np.ones(x_shape), np.ones(w_shape))


def test_non_finite_and_integer_inputs_are_rejected(inputs):
    x, W = inputs
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        features.trig(bad, W)
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        features.trig(np.ones((2, 4), dtype=np.int64), W)
    with pytest.raises(TypeError, match="x must be a numpy, torch or jax array"):
        features.trig([[1.0, 2.0]], W)
    with pytest.raises(ValueError, match="stabilizer must be one of"):
        features.positive(x, W, stabilizer="column")
    with pytest.raises(ValueError, match="feature must be one of"):
        features.feature_parts("laplace", x, W)
    with pytest.raises(ValueError, match="W must be a projection"):
        features.feature_parts("positive", x, None)


@pytest.mark.parametrize("eps", [-1e-3, float("nan"), float("inf"), "0.1"])
@pytest.mark.parametrize("name", ["positive", "hyperbolic", "generalized", "oprf", "saderf"])
def test_eps_must_be_a_finite_non_negative_number(name, eps, inputs):
    x, W = inputs
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        features.feature_map(name)(x, W, eps=eps)


def test_row_stabilized_trig_features_are_the_factor_exactly():
    """The trigonometric map's log-amplitude is one value per row, its own row maximum: stabilized
    query features are scale · [cos, sin] with no exponential left (exp(a − a) = 1 exactly)."""
    rng = np.random.default_rng(3)
    x, W = rng.standard_normal((5, 4)), rng.standard_normal((6, 4))
    parts = features.feature_parts("trig", x, W)
    stabilized, shift = feature_parts.row_stabilized(parts)
    assert shift is None and stabilized.log_amplitude is None
    np.testing.assert_array_equal(features.assemble(stabilized), parts.scale * parts.factor)
    row_shift = features.row_shift(parts)
    np.testing.assert_array_equal(features.assemble(stabilized), features.assemble(parts, row_shift))
