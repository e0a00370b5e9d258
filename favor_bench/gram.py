"""Gram matrices: random-feature estimates Â = φ(X)φ(Y)ᵀ of every registry row, and exact kernels.

X, Y (L, d) are standard normal scaled by 0.5·d^{-1/4} (moderate kernel values, where every row's
estimator is well conditioned); d = 16, m = 256, float32, W drawn once per row with the portable
generator. The SMREG kernel is a host (scipy) computation and is not jitted.
"""

from __future__ import annotations

from estimators import kernels, registry

from . import common

M, D = 256, 16
INPUT_SCALE = 0.5 * D**-0.25


def _inputs(backend: str, length: int):
    x = common.normal(backend, "float32", (length, D), seed=2, scale=INPUT_SCALE)
    y = common.normal(backend, "float32", (length, D), seed=3, scale=INPUT_SCALE)
    return x, y


@common.cached
def estimate_call(backend: str, estimator: str, length: int):
    """A warmed-up zero-argument callable computing the (L, L) estimate of registry row ``estimator``."""
    where = common.target(backend, "float32")
    row = registry.get(estimator)
    x, y = _inputs(backend, length)
    W = row.draw(M, D, seed=0, like=x)
    estimate = common.compile_function(where, row.estimate_gram)
    return common.warmed_up(lambda: estimate(x, y, W))


@common.cached
def exact_call(backend: str, kernel: str, length: int):
    """A warmed-up zero-argument callable computing the exact (L, L) Gram matrix of ``kernel``."""
    where = common.target(backend, "float32")
    x, y = _inputs(backend, length)

    def gram(x, y):
        return kernels.exact_gram(kernel, x, y)

    if kernel != "smreg":
        gram = common.compile_function(where, gram)
    return common.warmed_up(lambda: gram(x, y))


class GramEstimate(common.BackendBenchmark):
    """Time of Â = φ(X)φ(Y)ᵀ (L × L) for every registry estimator."""

    params = (common.BACKENDS, tuple(registry.names()), (1024,))
    param_names = ("backend", "estimator", "L")

    def setup(self, probe, backend, estimator, length):
        common.require_backend(probe, backend)
        self.estimate = estimate_call(backend, estimator, length)

    def time_estimate_gram(self, probe, backend, estimator, length):
        common.sync(self.estimate())


class GramExact(common.BackendBenchmark):
    """Time of the exact L × L Gram matrix of each kernel (the estimators' targets)."""

    params = (common.BACKENDS, kernels.KERNELS, (1024,))
    param_names = ("backend", "kernel", "L")

    def setup(self, probe, backend, kernel, length):
        common.require_backend(probe, backend)
        self.exact = exact_call(backend, kernel, length)

    def time_exact_gram(self, probe, backend, kernel, length):
        common.sync(self.exact())
