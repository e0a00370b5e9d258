"""What every parameterized feature map does (GERF/OPRF, SADERF, Poisson/geometric DIRFs;
theory.md §10.2–10.3, claims 19–24): match its formula, stabilize by pure log shifts, agree across
backends given the same W and under the array API standard, name bad arguments, take the theory's
per-pair parameters as its data options, give the mean and variance from its moment formulas, and
run through the registry's Gram estimate and FAVOR with per-side (query, key) options.

Exact (Tier 0) checks only; the family-specific ones are in tests/test_gerf_features.py and
tests/test_discrete_features.py, the Monte Carlo checks in
tests/statistical/test_parameterized_and_coupled_rows.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from estimators import attention, backends, features, kernels, projections, registry, theory
from tests.conftest import to_numpy
from tests.parameterized_support import (
    DISCRETE_MAPS,
    GAUSSIAN_MAPS,
    MAP_OPTIONS,
    projection_for,
    reference_features,
)
from tests.parameterized_support import inputs as inputs  # a fixture; the alias marks it as used

# --- feature maps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*GAUSSIAN_MAPS, *DISCRETE_MAPS])
def test_parameterized_maps_match_their_formulas(name, inputs):
    W = projection_for(name)
    options = MAP_OPTIONS[name]
    result = features.feature_map(name)(inputs, W, **options)
    assert result.shape == (2, 5, 6 * features.features_per_projection(name))
    np.testing.assert_allclose(result, reference_features(name, inputs, W, options), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", ["oprf", "saderf", "poisson", "geometric"])
@pytest.mark.parametrize("stabilizer", ["row", "global"])
def test_stabilizers_are_pure_log_shifts(name, stabilizer, inputs):
    W = projection_for(name)
    options = MAP_OPTIONS[name]
    plain = features.feature_map(name)(inputs, W, **options)
    parts = features.feature_parts(name, inputs, W, **options)
    shift = features.row_shift(parts) if stabilizer == "row" else features.global_shift(parts)
    shifted = features.feature_map(name)(inputs, W, stabilizer=stabilizer, **options)
    np.testing.assert_allclose(shifted * np.exp(shift), plain, rtol=1e-12)


@pytest.mark.parametrize("name", [*GAUSSIAN_MAPS, *DISCRETE_MAPS])
@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-12), ("float32", 2e-5)])
def test_maps_agree_across_backends_given_the_same_W(name, dtype, rtol, inputs, backend, to_backend):
    W = projection_for(name)
    options = {
        k: (to_backend(v, dtype) if isinstance(v, np.ndarray) else v) for k, v in MAP_OPTIONS[name].items()
    }
    result = features.feature_map(name)(to_backend(inputs, dtype), to_backend(W, dtype), **options)
    assert backends.backend_of(result) == backend
    assert backends.dtype_name(result) == dtype
    reference = reference_features(name, inputs, W, MAP_OPTIONS[name])
    np.testing.assert_allclose(to_numpy(result), reference, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("name", ["oprf", "gerf-trig", "saderf", "poisson"])
def test_maps_use_only_the_array_api(name, inputs):
    """array_api_strict rejects non-standard calls (geometric needs lgamma, which the standard lacks)."""
    target = backends.resolve_target(backend="array_api_strict")
    W = projection_for(name)
    options = {
        k: (target.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in MAP_OPTIONS[name].items()
    }
    result = features.feature_map(name)(target.asarray(inputs), target.asarray(W), **options)
    np.testing.assert_allclose(
        np.asarray(result), reference_features(name, inputs, W, MAP_OPTIONS[name]), rtol=1e-12
    )


def test_feature_errors_name_the_argument(inputs):
    W = projections.iid(6, 4, seed=13)
    with pytest.raises(ValueError, match="A must lie in"):
        features.oprf(inputs, W, A=0.25)
    with pytest.raises(ValueError, match="rate must lie in"):
        features.poisson(inputs, projections.uniform(6, 4), rate=0.0)
    with pytest.raises(ValueError, match="p must lie in"):
        features.geometric(inputs, projections.uniform(6, 4), p=1.0)
    with pytest.raises(ValueError, match="psi must lie in"):
        features.saderf(inputs, W, psi=np.array([[1.0, -1.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="Uniform"):
        features.geometric(inputs, W)
    with pytest.raises(TypeError, match="takes no options"):
        features.feature_parts("positive", inputs, W, A=0.1)
    with pytest.raises(TypeError, match="A must be a float or an array"):
        features.oprf(inputs, W, A="small")


# --- data options and moments ---------------------------------------------------------------------


def test_per_pair_data_options_equal_the_theory_parameters():
    rng = np.random.default_rng(16)
    x, y = rng.standard_normal((2, 6)) * 0.5
    one_x, one_y = x[None], y[None]
    t = np.sum((x + y) ** 2)
    np.testing.assert_allclose(
        features.data_options("oprf", one_x, one_y)[0]["A"][0, 0],
        theory.optimal_gerf_A(t, 6),
        rtol=1e-13,
    )
    np.testing.assert_allclose(
        features.data_options("poisson", one_x, one_y)[0]["rate"][0, 0],
        theory.poisson_rate(x, y),
        rtol=1e-13,
    )
    np.testing.assert_allclose(
        features.data_options("geometric", one_x, one_y)[0]["p"][0, 0],
        theory.geometric_p(x, y),
        rtol=1e-13,
    )
    query_options, key_options = features.data_options("saderf", one_x, one_y)
    sx, sy = theory.saderf_pair(x, y)
    np.testing.assert_allclose(x * query_options["psi"][0], sx, rtol=1e-13)
    np.testing.assert_allclose(y * key_options["psi"][0], sy, rtol=1e-13)
    assert features.data_options("positive", one_x, one_y) == ({}, {})


@pytest.mark.parametrize("feature", ["oprf", "gerf-trig", "poisson", "geometric"])
def test_single_moments_give_the_mean_and_the_variance(feature):
    """E[g] = SM and E[g²] − SM² = V1 from the k-th moment formulas used by the statistical tests."""
    rng = np.random.default_rng(20)
    x, y = rng.standard_normal((2, 4, 5)) * 0.5
    sm = np.exp(np.sum(x * y, -1))
    np.testing.assert_allclose(theory.single_moment(feature, x, y, 1), sm, rtol=1e-10)
    variance = {
        "oprf": "oprf-iid",
        "gerf-trig": "gerf-trig-iid",
        "poisson": "poisson-iid",
        "geometric": "geometric-iid",
    }
    np.testing.assert_allclose(
        theory.single_moment(feature, x, y, 2) - sm**2,
        theory.mse(variance[feature], x, y, 1),
        rtol=1e-9,
    )


# --- registry and attention -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["oprf-ort", "saderf-iid", "poisson-iid"])
def test_registry_gram_uses_the_homogeneity_rule(name, inputs):
    row = registry.get(name)
    W = row.draw(8, 4, seed=22)
    queries, keys = inputs[0], inputs[1]
    query_options, key_options = features.data_options(row.feature, queries, keys)
    expected = row.features(queries, W, **query_options) @ row.features(keys, W, **key_options).T
    np.testing.assert_allclose(row.estimate_gram(queries, keys, W), expected, rtol=1e-13)


@pytest.mark.parametrize("name", ["oprf", "gerf-trig", "saderf", "poisson", "geometric"])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_with_parameterized_features_is_the_favor_algebra(name, causal, inputs):
    """FAVOR with a parameterized map and per-side data options equals the normalized kernel estimate
    built from the same features (SADERF needs Ψ for queries and Ψ⁻¹ for keys)."""
    rng = np.random.default_rng(23)
    q, k = inputs[0], inputs[1]
    v = rng.standard_normal((5, 3))
    W = projection_for(name, m=16)
    query_options, key_options = features.data_options(name, q, k, scale_inputs=True)
    out = attention.favor(
        q,
        k,
        v,
        W,
        feature=name,
        causal=causal,
        feature_options=(query_options, key_options),
        denominator="raw",
    )
    phi_q = features.feature_map(name)(q, W, scale_inputs=True, **query_options)
    phi_k = features.feature_map(name)(k, W, scale_inputs=True, **key_options)
    scores = kernels.estimate_gram(phi_q, phi_k)
    if causal:
        scores = np.tril(scores)
    np.testing.assert_allclose(out, scores @ v / scores.sum(-1, keepdims=True), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["oprf", "saderf", "poisson"])
def test_attention_with_parameterized_features_agrees_across_backends(name, inputs, backend, to_backend):
    rng = np.random.default_rng(24)
    q, k = inputs[0], inputs[1]
    v = rng.standard_normal((5, 3))
    W = projection_for(name, m=16)
    reference_options = features.data_options(name, q, k, scale_inputs=True)
    reference = attention.favor(q, k, v, W, feature=name, feature_options=reference_options)
    qb, kb, vb, Wb = (to_backend(a) for a in (q, k, v, W))
    options = features.data_options(name, qb, kb, scale_inputs=True)
    out = attention.favor(qb, kb, vb, Wb, feature=name, feature_options=options)
    assert backends.backend_of(out) == backend
    np.testing.assert_allclose(to_numpy(out), reference, rtol=1e-10)
