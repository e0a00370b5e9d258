"""The registry: every row draws, estimates and agrees across backends."""

from __future__ import annotations

import numpy as np
import pytest

from estimators import backends, registry
from tests.conftest import to_numpy


def test_names_are_unique_and_get_rejects_unknown_names():
    assert len(set(registry.names())) == len(registry.names())
    with pytest.raises(ValueError, match="estimator must be one of"):
        registry.get("positive-sorf")


@pytest.mark.parametrize("name", registry.names())
def test_rows_estimate_the_same_numbers_on_every_backend(name, backend, to_backend):
    row = registry.get(name)
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((2, 4)) * 0.4
    reference = row.estimate(x, y, row.draw(9, 4, batch_shape=(5,), seed=1))
    W = row.draw(9, 4, batch_shape=(5,), seed=1, backend=backend)
    estimate = row.estimate(to_backend(x), to_backend(y), W)
    assert backends.backend_of(estimate) == backend
    assert estimate.shape == (5,)
    np.testing.assert_allclose(to_numpy(estimate), reference, rtol=1e-12)
    assert np.isfinite(to_numpy(row.exact(to_backend(x), to_backend(y))))


@pytest.mark.parametrize("name", registry.names())
def test_feature_width_is_r(name):
    row = registry.get(name)
    W = row.draw(7, 3, seed=0)
    assert row.features(np.ones((2, 3)), W).shape == (2, 7 * row.features_per_projection)


def test_fixed_norm_rows_have_sqrt_d_rows():
    for name in ("positive-iid-fixed", "positive-ort-fixed"):
        W = registry.get(name).draw(10, 4, seed=3)
        np.testing.assert_allclose(np.linalg.norm(W, axis=-1), 2.0, rtol=1e-14)


@pytest.mark.parametrize("name", registry.names())
def test_rows_estimate_under_jax_jit(name):
    """Every row's estimate traces under ``jax.jit`` (parameter checks must not read traced values)
    and gives the numpy numbers."""
    jax = pytest.importorskip("jax")
    row = registry.get(name)
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((2, 4)) * 0.4
    W = row.draw(9, 4, batch_shape=(5,), seed=1)
    jitted = jax.jit(row.estimate)(*(jax.numpy.asarray(a) for a in (x, y, W)))
    np.testing.assert_allclose(np.asarray(jitted), row.estimate(x, y, W), rtol=1e-12)
