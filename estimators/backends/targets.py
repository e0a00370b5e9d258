"""Where an array should live (:class:`Target`: backend, device, dtype) and what is installed."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .arrays import BACKENDS, DTYPES, backend_of, device_name, dtype_name, enable_jax_float64

_DEVICE_ALIASES = {"cpu": "cpu", "cuda": "cuda", "gpu": "cuda", "tpu": "tpu"}


@dataclass(frozen=True)
class Target:
    """Where an array should live: backend name, canonical device name and dtype name."""

    backend: str = "numpy"
    device: str = "cpu"
    dtype: str = "float64"

    @property
    def xp(self):
        """The array-API namespace of this target."""
        if self.backend in ("numpy", "torch"):
            return importlib.import_module(f"array_api_compat.{self.backend}")
        if self.backend == "jax":
            import jax.numpy as jnp

            return jnp
        import array_api_strict

        return array_api_strict

    @property
    def native_dtype(self):
        """The framework's dtype object."""
        return getattr(self.xp, self.dtype)

    @property
    def native_device(self):
        """The framework's device object (``None`` for numpy)."""
        if self.backend == "torch":
            import torch

            return torch.device(self.device)
        if self.backend == "jax":
            import jax

            platform = "gpu" if self.device == "cuda" else self.device
            return jax.devices(platform)[0]
        if self.backend == "array_api_strict":
            import array_api_strict

            return array_api_strict.Device()
        return None

    def asarray(self, host) -> Any:
        """Move a host (numpy) array here, converting its dtype."""
        host = np.asarray(host)
        if self.backend == "numpy":
            return host.astype(self.dtype, copy=False)
        if self.backend == "torch":
            import torch

            tensor = torch.from_numpy(host if host.flags.c_contiguous else host.copy(order="C"))
            return tensor.to(device=self.native_device, dtype=self.native_dtype)
        if self.backend == "jax":
            import jax

            return jax.device_put(host.astype(np.float64), self.native_device).astype(self.dtype)
        return self.xp.asarray(host.astype(self.dtype), device=self.native_device)


def resolve_target(*, like=None, backend=None, device=None, dtype=None) -> Target:
    """Build a :class:`Target` from an example array and/or explicit names, checking each name.

    ``like`` supplies defaults for the three fields; explicit arguments override it. Without
    either, the target is numpy float64 on the CPU. ``device`` accepts ``cpu``, ``cuda``, ``gpu``
    (an alias of ``cuda``) and ``tpu`` (JAX only).
    """
    if like is not None:
        base = Target(backend_of(like), device_name(like), dtype_name(like))
    else:
        base = Target()
    backend = base.backend if backend is None else backend
    if backend not in (*BACKENDS, "array_api_strict"):
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if device is None:
        device = base.device if like is not None else "cpu"
    if device not in _DEVICE_ALIASES:
        raise ValueError(f"device must be one of {tuple(_DEVICE_ALIASES)}, got {device!r}")
    device = _DEVICE_ALIASES[device]
    dtype = base.dtype if dtype is None else _canonical_dtype(dtype)
    if dtype not in DTYPES:
        raise TypeError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if backend in ("numpy", "array_api_strict") and device != "cpu":
        raise ValueError(f"device {device!r} is not available for backend {backend!r} (cpu only)")
    if dtype not in supported_dtypes(backend):
        raise TypeError(f"dtype {dtype!r} is not supported by {backend}; use torch or jax")
    if device == "tpu" and backend != "jax":
        raise ValueError("device 'tpu' needs backend 'jax'")
    if backend == "jax" and dtype == "float64":
        enable_jax_float64()
    target = Target(backend, device, dtype)
    _check_available(target)
    return target


def _canonical_dtype(dtype) -> str:
    return dtype if isinstance(dtype, str) else str(dtype).rsplit(".", 1)[-1].strip("'>")


def _check_available(target: Target) -> None:
    if target.backend == "torch":
        try:
            import torch
        except ImportError as error:
            raise ValueError("backend 'torch' is not installed (pip install torch)") from error
        if target.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    elif target.backend == "jax":
        try:
            import jax
        except ImportError as error:
            raise ValueError("backend 'jax' is not installed (pip install jax)") from error
        platform = "gpu" if target.device == "cuda" else target.device
        try:
            jax.devices(platform)
        except RuntimeError as error:
            raise ValueError(f"device {target.device!r} requested but jax has none") from error


_NUMPY_DTYPES = tuple(dtype for dtype in DTYPES if dtype != "bfloat16")


def supported_dtypes(backend: str) -> tuple[str, ...]:
    """The dtypes of :data:`DTYPES` that ``backend`` has (numpy has no bfloat16)."""
    return _NUMPY_DTYPES if backend == "numpy" else DTYPES


def framework_packages(backend: str) -> tuple[str, ...]:
    """The distributions besides numpy that computing on ``backend`` uses (for provenance)."""
    return {"torch": ("torch",), "jax": ("jax", "jaxlib")}.get(backend, ())


def available_backends() -> list[str]:
    """Backends importable here, in the order numpy, torch, jax."""
    found = ["numpy"]
    for name in ("torch", "jax"):
        try:
            __import__(name)
        except ImportError:
            continue
        found.append(name)
    return found
