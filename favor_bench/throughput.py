"""Monte Carlo throughput of a kernel-estimate study cell: independent estimates K̂(x, y) per second.

One cell, as the studies run it: a batch of R = 1024 projections W (R, m, d) (m = 64, d = 16), each
giving one estimate of the registry row's kernel at a fixed pair (x, y). torch and JAX draw with
their native generators on the device (the fast path for large studies) where the row's sampler
accepts one; numpy, and host-only samplers (quasi-Monte Carlo), draw on the host. The JAX cell
(draw + estimate) is one jitted function; a row ``jax.jit`` cannot trace is n/a on JAX.
"""

from __future__ import annotations

import time

from estimators import registry
from estimators.backends import native_rng

from . import common

REPLICATES, M, D = 1024, 64, 16
INPUT_SCALE = 0.5 * D**-0.25
TIMED_RUNS = 5


def _native_seed(row, where):
    """The backend's native generator (or key) if ``row``'s sampler accepts one, else ``None``."""
    if where.backend == "numpy":
        return None
    rng = native_rng(0, where)
    seed = rng.key if where.backend == "jax" else rng.generator
    try:
        row.draw(M, D, seed=seed)
    except TypeError:  # host-only samplers (scipy quasi-Monte Carlo)
        return None
    return seed


@common.cached
def cell_call(backend: str, estimator: str):
    """A warmed-up zero-argument callable returning REPLICATES estimates (float32).

    Draws with the native generator where the row's sampler accepts one (torch, JAX: the JAX cell is
    one jitted function), else with the portable host generator (seed 0) and a jitted estimate.
    """
    where = common.target(backend, "float32")
    row = registry.get(estimator)
    x = common.normal(backend, "float32", (D,), seed=4, scale=INPUT_SCALE)
    y = common.normal(backend, "float32", (D,), seed=5, scale=INPUT_SCALE)
    seed = _native_seed(row, where)
    if where.backend == "jax" and seed is not None:
        cell = common.compile_function(
            where, lambda key: row.estimate(x, y, row.draw(M, D, batch_shape=(REPLICATES,), seed=key))
        )
        return common.warmed_up(lambda: cell(seed))
    estimate = common.compile_function(where, row.estimate)

    def cell():
        W = row.draw(M, D, batch_shape=(REPLICATES,), seed=0 if seed is None else seed, like=x)
        return estimate(x, y, W)

    return common.warmed_up(cell)


def best_seconds(call, runs: int = TIMED_RUNS) -> float:
    """Fastest of ``runs`` synchronized calls, in seconds."""
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        common.sync(call())
        timings.append(time.perf_counter() - start)
    return min(timings)


class MonteCarloThroughput(common.BackendBenchmark):
    """Estimates per second of one study cell (R = 1024 draws of W, m = 64, d = 16)."""

    params = (common.BACKENDS, tuple(registry.names()))
    param_names = ("backend", "estimator")

    def setup(self, probe, backend, estimator):
        common.require_backend(probe, backend)
        self.cell = cell_call(backend, estimator)

    def track_samples_per_second(self, probe, backend, estimator):
        return REPLICATES / best_seconds(self.cell)

    track_samples_per_second.unit = "samples/second"
