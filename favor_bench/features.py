"""Feature maps φ(x) (L, r) for x (L, d) and W (m, d): trig, positive, hyperbolic, generalized (ReLU).

Inputs are standard normal, scaled by d^{-1/4} inside the map (``scale_inputs=True``) as in
attention; W comes from the first registry row using the map (its sampler: Gaussian, block-orthogonal,
uniform variates for the discrete maps), drawn once with the portable generator. A map that
``jax.jit`` cannot trace is n/a on JAX.
"""

from __future__ import annotations

from estimators import features, registry

from . import common

M, D = 256, 64


def first_row_using(feature: str) -> registry.Estimator:
    """The first registry row whose feature map is ``feature`` (it says how to draw W)."""
    return next(row for row in registry.rows() if row.feature == feature)


@common.cached
def feature_call(backend: str, feature: str, length: int):
    """A warmed-up zero-argument callable computing φ(x) for x (length, D), W (M, D), float32."""
    where = common.target(backend, "float32")
    x = common.normal(backend, "float32", (length, D), seed=1)
    W = first_row_using(feature).draw(M, D, seed=0, like=x)
    feature_map = features.feature_map(feature)
    mapped = common.compile_function(where, lambda x, W: feature_map(x, W, scale_inputs=True))
    return common.warmed_up(lambda: mapped(x, W))


def _has_row(feature: str) -> bool:
    return any(row.feature == feature for row in registry.rows())


class FeatureMap(common.BackendBenchmark):
    """Time of one feature map on L rows (m = 256, d = 64, float32)."""

    params = (common.BACKENDS, tuple(name for name in features.FEATURES if _has_row(name)), (4096,))
    param_names = ("backend", "feature", "L")

    def setup(self, probe, backend, feature, length):
        common.require_backend(probe, backend)
        self.features = feature_call(backend, feature, length)

    def time_features(self, probe, backend, feature, length):
        common.sync(self.features())
