"""Accuracy of FAVOR attention against exact softmax attention at fixed seeds (asv ``track_``).

For every registry estimator of the softmax kernel, on every backend in float64:
relative error ‖favor(q, k, v, W) − exact(q, k, v)‖_F / ‖exact(q, k, v)‖_F, bidirectional and causal,
with q, k, v (L = 512, d = 32) standard normal scaled by 0.5, m = 256, and W drawn with the portable
generator (seed 0), so every backend sees the same inputs and W and the numbers agree across
backends to rounding (the error's fall with m is the studies' subject, ``mse_vs_features``). A row
whose FAVOR denominator is not positive (discrete or trigonometric features can give D̂ ≤ 0) is
returned as zeros (``denominator="zero"``) and counts fully in the error. Data-tuned maps (OPRF,
SADERF, Poisson, geometric) use ``features.data_options`` of the whole q and k in both modes (in
causal mode that rule reads later positions; :func:`estimators.attention.favor` makes it explicit).
A jump in this number flags an estimator regression.
"""

from __future__ import annotations

import numpy as np

from estimators import registry

from . import common

LENGTH, D, M = 512, 32, 256
INPUT_SCALE = 0.5
SOFTMAX_ESTIMATORS = tuple(row.name for row in registry.rows() if row.kernel == "softmax")


def _to_host(array) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu()
    return np.asarray(array, dtype=np.float64)


@common.cached
def relative_error(backend: str, estimator: str, mode: str) -> float:
    """‖favor − exact‖_F / ‖exact‖_F for registry row ``estimator`` with M features, float64."""
    from estimators import attention, features

    common.target(backend, "float64")
    q, k, v = (common.normal(backend, "float64", (LENGTH, D), seed, INPUT_SCALE) for seed in (21, 22, 23))
    row = registry.get(estimator)
    W = row.draw(M, D, seed=0, like=q)
    causal = mode == "causal"
    options = features.data_options(row.feature, q, k, scale_inputs=True)
    call = dict(feature=estimator, causal=causal, denominator="zero", feature_options=options)
    estimate = _to_host(common.na_if_untraceable(lambda: attention.favor(q, k, v, W, **call)))
    reference = _to_host(attention.exact(q, k, v, causal=causal))
    return float(np.linalg.norm(estimate - reference) / np.linalg.norm(reference))


class AttentionAccuracy(common.BackendBenchmark):
    """Relative Frobenius error of FAVOR vs exact attention (L = 512, d = 32, m = 256, float64)."""

    params = (common.BACKENDS, SOFTMAX_ESTIMATORS, ("bidirectional", "causal"))
    param_names = ("backend", "estimator", "mode")

    def setup(self, probe, backend, estimator, mode):
        common.require_backend(probe, backend)
        self.error = relative_error(backend, estimator, mode)

    def track_relative_error(self, probe, backend, estimator, mode):
        return self.error

    track_relative_error.unit = "relative error"
