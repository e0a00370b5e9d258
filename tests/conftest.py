"""Shared fixtures: the backends to run on, float64 everywhere theory is checked."""

from __future__ import annotations

import numpy as np
import pytest

from estimators.backends import available_backends, enable_jax_float64, resolve_target

pytest.register_assert_rewrite("tests.summaries_support")  # helpers that assert, explained like tests

BACKENDS = available_backends()
if "jax" in BACKENDS:
    enable_jax_float64()


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each installed backend name: numpy, torch, jax."""
    return request.param


@pytest.fixture
def to_backend(backend):
    """Move a host array to ``backend`` (float64 unless a dtype is given)."""

    def convert(host, dtype="float64"):
        return resolve_target(backend=backend, dtype=dtype).asarray(np.asarray(host))

    return convert


def to_numpy(x):
    """Any backend's array as a float64 numpy array (for comparisons)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
    return np.asarray(x, dtype=np.float64)


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()
