"""Projection draws W (m, d): iid Gaussian against block-orthogonal Haar (QR with sign fix).

The portable generator draws and factorizes on the host in float64, then moves W (identical W on
every backend); the native one draws and factorizes on the device (``torch.Generator``, a jitted
``jax.random`` draw). numpy has only the portable generator, so its native rows are n/a.
"""

from __future__ import annotations

from estimators import projections
from estimators.backends import native_rng

from . import common

DRAWS = {"iid": projections.iid, "orthogonal": projections.orthogonal}
SEED = 0


@common.cached
def draw_call(backend: str, projection: str, m: int, d: int, rng: str):
    """A warmed-up zero-argument callable drawing one (m, d) float32 W on ``backend``."""
    where = common.target(backend, "float32")
    draw = DRAWS[projection]
    if rng == "portable":
        return common.warmed_up(
            lambda: draw(m, d, seed=SEED, backend=where.backend, device=where.device, dtype="float32")
        )
    if where.backend == "numpy":
        raise NotImplementedError("numpy has only the portable generator")
    if where.backend == "jax":
        key = native_rng(SEED, where).key
        jitted = common.compile_function(where, lambda key: draw(m, d, seed=key))
        return common.warmed_up(lambda: jitted(key))
    generator = native_rng(SEED, where).generator
    return common.warmed_up(lambda: draw(m, d, seed=generator))


class ProjectionDraw(common.BackendBenchmark):
    """Time to draw W (m, d): iid vs orthogonal, portable vs native generator."""

    params = (common.BACKENDS, tuple(DRAWS), ("portable", "native"), (64, 1024), (16, 128))
    param_names = ("backend", "projection", "rng", "m", "d")

    def setup(self, probe, backend, projection, rng, m, d):
        common.require_backend(probe, backend)
        self.draw = draw_call(backend, projection, m, d, rng)

    def time_draw(self, probe, backend, projection, rng, m, d):
        common.sync(self.draw())
