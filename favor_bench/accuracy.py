"""Accuracy of FAVOR attention against exact softmax attention at fixed seeds (asv ``track_``).

For every registry estimator of the softmax kernel, on every backend in float64, two numbers:

**Relative output error** (:class:`AttentionAccuracy`): ‖favor(q, k, v, W) − exact(q, k, v)‖_F /
‖exact(q, k, v)‖_F (:func:`estimators.attention_metrics.relative_output_error`), bidirectional and causal,
with q, k, v (L = 512, d = 32) standard normal scaled by 0.5, m = 256, and W drawn with the portable
generator (seed 0), so every backend sees the same inputs and W and the numbers agree across
backends to rounding (the error's fall with m is the studies' subject, ``mse_vs_features``). A row
whose FAVOR denominator is not positive (discrete or trigonometric features can give D̂ ≤ 0) is
returned as zeros (``denominator="zero"``) and counts fully in the error. Data-tuned maps (OPRF,
SADERF, Poisson, geometric) use ``features.data_options`` of the whole q and k in both modes (in
causal mode that rule reads later positions; :func:`estimators.attention.favor` makes it explicit).
A jump in this number flags an estimator regression.

**Top-k miss rate** (:class:`AttentionTopKMiss`, an attention-level error, theory.md §7.2): the share
of the L = 512 query rows whose exact arg-max key is not among the k = 32 largest FAVOR weights Â_ij
(:func:`estimators.attention_metrics.top_k_miss`), on the two input families of
:mod:`estimators.input_families` (isotropic; anisotropic low-rank-plus-noise with log-normal norms) at
mean ‖x + y‖² = 1.5, d = 32, m = 256, W from the portable generator (seed 0). It is defined for every
estimator, including those whose rows are not distributions; the ``attention_metrics`` study shows
that it ranks estimators differently from the kernel MSE.
"""

from __future__ import annotations

import numpy as np

from estimators import attention_metrics, input_families, kernels, registry
from estimators.backends import namespace

from . import common

LENGTH, D, M = 512, 32, 256
INPUT_SCALE = 0.5
SOFTMAX_ESTIMATORS = tuple(row.name for row in registry.rows() if row.kernel == "softmax")
RHO = 1.5
TOP_K = LENGTH // 16


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
    estimate = common.na_if_untraceable(lambda: attention.favor(q, k, v, W, **call))
    reference = attention.exact(q, k, v, causal=causal)
    return float(_to_host(attention_metrics.relative_output_error(estimate, reference)))


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


@common.cached
def top_k_miss_rate(backend: str, estimator: str, family: str) -> float:
    """Share of query rows whose exact arg-max key is outside FAVOR's top-k weights (module docstring)."""
    where = common.target(backend, "float64")
    x, y, _ = (where.asarray(a * D**-0.25) for a in input_families.draw(family, LENGTH, D, rho=RHO, seed=24))
    row = registry.get(estimator)
    weights = row.estimate_gram(x, y, row.draw(M, D, seed=0, like=x))
    gram = kernels.exact_gram("softmax", x, y)
    exact = gram / namespace(gram).sum(gram, axis=-1, keepdims=True)
    return float(np.mean(_to_host(attention_metrics.top_k_miss(exact, weights, TOP_K))))


class AttentionTopKMiss(common.BackendBenchmark):
    """Top-k miss rate of FAVOR attention rows (L = 512, d = 32, m = 256, k = 32, float64)."""

    params = (common.BACKENDS, SOFTMAX_ESTIMATORS, input_families.FAMILIES)
    param_names = ("backend", "estimator", "inputs")

    def setup(self, probe, backend, estimator, inputs):
        common.require_backend(probe, backend)
        self.rate = top_k_miss_rate(backend, estimator, inputs)

    def track_top_k_miss(self, probe, backend, estimator, inputs):
        return self.rate

    track_top_k_miss.unit = "share of rows"
