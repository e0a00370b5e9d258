"""Cold start: a fresh interpreter imports favor-bench and its backend, then runs one FAVOR+ call.

``timeraw_`` runs the code in a new process each sample, so the time includes importing torch or
jax, device initialization (CUDA context, XLA client), JIT compilation for JAX and the first call
(L = 1024, d = 64, m = 256, float32, causal), synchronized.
"""

from __future__ import annotations

from . import common

FIRST_CALL = """
from estimators import attention, projections
from favor_bench import common

where = common.target({backend!r}, "float32")
q = common.normal({backend!r}, "float32", (1024, 64), seed=11)
W = projections.orthogonal(256, 64, seed=0, like=q)
forward = common.compile_function(where, lambda q, W: attention.favor(q, q, q, W, causal=True))
common.sync(forward(q, W))
"""


class ImportAndFirstCall(common.BackendBenchmark):
    """Seconds from a bare interpreter to the first synchronized causal FAVOR+ result."""

    params = (common.BACKENDS,)
    param_names = ("backend",)
    repeat = 3
    number = 1

    def setup(self, probe, backend):
        common.require_backend(probe, backend)

    def timeraw_import_and_first_call(self, probe, backend):
        return FIRST_CALL.format(backend=backend)
