"""What an array is and where it lives: namespace, framework name, device, dtype, host copies, sync."""

from __future__ import annotations

import sys

import array_api_compat
import numpy as np

BACKENDS = ("numpy", "torch", "jax")
DTYPES = ("float16", "bfloat16", "float32", "float64")


def namespace(*arrays):
    """The array-API namespace of ``arrays`` (numpy, torch, jax or array_api_strict)."""
    return array_api_compat.array_namespace(*arrays)


def backend_of(x) -> str:
    """Name of the library that owns ``x``: ``numpy``, ``torch``, ``jax`` or ``array_api_strict``."""
    if array_api_compat.is_numpy_array(x):
        return "numpy"
    if array_api_compat.is_torch_array(x):
        return "torch"
    if array_api_compat.is_jax_array(x):
        return "jax"
    if type(x).__module__.startswith("array_api_strict"):
        return "array_api_strict"
    raise TypeError(f"expected a numpy, torch or jax array, got {type(x).__name__}")


def device_name(x) -> str:
    """Canonical device name of array ``x``: ``cpu``, ``cuda`` or ``tpu``."""
    backend = backend_of(x)
    if backend == "torch":
        return "cuda" if x.is_cuda else x.device.type
    if backend == "jax":
        if is_tracer(x):  # inside jit: placement is decided outside
            return "cpu"
        platform = next(iter(x.devices())).platform
        return "cuda" if platform == "gpu" else platform
    return "cpu"


def dtype_name(x) -> str:
    """Canonical dtype name of ``x`` (``float32``, ``bfloat16`` ...): numpy and JAX dtypes carry it
    as ``.name`` (fast: this runs several times per attention call); torch's print as ``torch.<name>``."""
    dtype = x.dtype
    return getattr(dtype, "name", None) or str(dtype).rsplit(".", 1)[-1]


def to_host(x) -> np.ndarray:
    """``x`` as a numpy array on the host (bfloat16 as float32: numpy has no bfloat16); reads the
    device, so it synchronizes."""
    backend = backend_of(x)
    if backend == "torch":
        x = x.detach().cpu()
        return (x.float() if dtype_name(x) == "bfloat16" else x).numpy()
    host = np.asarray(x)
    return host.astype(np.float32) if dtype_name(host) == "bfloat16" else host


def host_float64(x) -> np.ndarray:
    """``x`` (any backend's array, or array-like) as a float64 numpy array on the host."""
    if isinstance(x, np.ndarray | float | int | list | tuple):
        return np.asarray(x, dtype=np.float64)
    return np.asarray(to_host(x), dtype=np.float64)


def is_tracer(x) -> bool:
    """True for a JAX tracer (inside ``jit``/``grad``), whose values cannot be read on the host."""
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.core.Tracer)


def sync(*arrays) -> None:
    """Block until the device work producing ``arrays`` is done (no-op on numpy and CPU torch).

    Timings without this are wrong for asynchronous devices: a CUDA kernel launch returns at once.
    Nested tuples/lists/dicts of arrays are accepted.
    """
    for x in _leaves(arrays):
        backend = backend_of(x)
        if backend == "torch" and x.is_cuda:
            import torch

            torch.cuda.synchronize(x.device)
        elif backend == "jax":
            x.block_until_ready()


def _leaves(tree):
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _leaves(value)
    elif isinstance(tree, (tuple, list)):
        for value in tree:
            yield from _leaves(value)
    elif tree is not None:
        yield tree


def enable_jax_float64() -> None:
    """Turn on ``jax_enable_x64`` (needed before any float64 jax array exists)."""
    import jax

    jax.config.update("jax_enable_x64", True)
