"""Array backends: namespace, device, dtype, sync and random numbers for numpy, torch and jax.

Every estimator is written once against the array API (``array_api_compat.array_namespace``);
this module is the only place that knows the frameworks apart. Neither torch nor jax is imported
unless the caller already uses it (asks for that backend, or passes one of its arrays), so
``import estimators`` stays light.

Two random-number paths sit behind one small interface (:class:`PortableRng`, :class:`TorchRng`,
:class:`JaxRng`, built by :func:`make_rng`):

* **portable**: a numpy ``Generator`` on the host, draws moved to the target afterwards. The same
  seed gives the same numbers on every backend and device; use it for cross-backend equality and
  theory checks.
* **native**: ``torch.Generator`` or a ``jax.random`` key, drawing directly on the device. Fast for
  large Monte Carlo on a GPU; its streams differ from backend to backend (and from the portable
  stream), which is expected.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import sys
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

BACKENDS = ("numpy", "torch", "jax")
DTYPES = ("float16", "bfloat16", "float32", "float64")
_DEVICE_ALIASES = {"cpu": "cpu", "cuda": "cuda", "gpu": "cuda", "tpu": "tpu"}


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
    """Canonical dtype name of ``x`` (``float32``, ``bfloat16`` ...)."""
    return str(x.dtype).rsplit(".", 1)[-1]


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


class _ArrayApiOps:
    """What an eager array-API library (numpy, array_api_strict) does for the operations the array
    API lacks; :class:`_TorchOps` and :class:`_JaxOps` override them. Callers never branch on the
    framework: they call ``framework(x).operation(...)``."""

    traces_loops = False
    """True where a loop over chunks must be written as a traced scan (JAX: immutable arrays, jit)."""

    @staticmethod
    def stop_gradient(x):
        """``x`` cut from automatic differentiation (no-op without autodiff)."""
        return x

    @staticmethod
    def log_gamma(x):
        """log Γ(x) elementwise, on ``x``'s backend."""
        from scipy.special import gammaln

        return namespace(x).asarray(gammaln(np.asarray(x)))

    @staticmethod
    def cumulative_max(x, axis: int):
        """Running maximum along ``axis`` (not differentiated)."""
        return namespace(x).asarray(np.maximum.accumulate(np.asarray(x), axis=axis))

    @staticmethod
    def split_rows(a, sizes) -> list:
        """``a`` (…, R, ·) cut along axis −2 into consecutive pieces of ``sizes`` rows."""
        edges = itertools.accumulate(sizes, initial=0)
        return [a[..., start:stop, :] for start, stop in itertools.pairwise(edges)]

    @staticmethod
    def compiled(function, static_argnums: tuple[int, ...]):
        """``function`` compiled for this framework where that pays (identity here)."""
        return function

    @staticmethod
    def is_cuda_tensor(x) -> bool:
        """True for a torch tensor on a CUDA device (what the Triton kernels take)."""
        return False


class _TorchOps(_ArrayApiOps):
    @staticmethod
    def stop_gradient(x):
        return x.detach()

    @staticmethod
    def log_gamma(x):
        import torch

        return torch.lgamma(x)

    @staticmethod
    def cumulative_max(x, axis: int):
        import torch

        return torch.cummax(x, dim=axis).values

    @staticmethod
    def split_rows(a, sizes) -> list:
        """One ``torch.split``: its backward is one concatenation, where the backward of many slices
        writes each piece's gradient into a zero tensor of the whole length (O(L²/C) work)."""
        import torch

        return list(torch.split(a, list(sizes), dim=-2))

    @staticmethod
    def is_cuda_tensor(x) -> bool:
        return bool(x.is_cuda)


class _JaxOps(_ArrayApiOps):
    traces_loops = True

    @staticmethod
    def stop_gradient(x):
        import jax

        return jax.lax.stop_gradient(x)

    @staticmethod
    def log_gamma(x):
        from jax.scipy.special import gammaln

        return gammaln(x)

    @staticmethod
    def cumulative_max(x, axis: int):
        import jax

        return jax.lax.cummax(x, axis=axis)

    @staticmethod
    def compiled(function, static_argnums: tuple[int, ...]):
        """One graph per (function, static arguments, shapes): op-by-op dispatch would compile every
        primitive separately."""
        return _jax_jit(function, static_argnums)


@functools.cache
def _jax_jit(function, static_argnums):
    import jax

    return jax.jit(function, static_argnums=static_argnums)


_OPS = {"numpy": _ArrayApiOps, "array_api_strict": _ArrayApiOps, "torch": _TorchOps, "jax": _JaxOps}


def framework(x) -> type[_ArrayApiOps]:
    """The framework operations of ``x``'s library (:class:`_ArrayApiOps` and its subclasses)."""
    return _OPS[backend_of(x)]


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


def supported_dtypes(backend: str) -> tuple[str, ...]:
    """The dtypes of :data:`DTYPES` that ``backend`` has (numpy has no bfloat16)."""
    return tuple(dtype for dtype in DTYPES if not (backend == "numpy" and dtype == "bfloat16"))


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


class PortableRng:
    """Host-side numpy ``Generator``: identical draws for every backend, computed in float64.

    ``seed`` is an int, ``None``, a ``SeedSequence`` or a ``Generator`` (used as is).
    """

    native = False

    def __init__(self, seed=None):
        if isinstance(seed, np.random.Generator):
            self.generator = seed
        else:
            self.generator = np.random.default_rng(seed)
        self.space = Target("numpy", "cpu", "float64")

    def normal(self, shape):
        """Standard normal draws of ``shape``, a float64 numpy array."""
        return self.generator.standard_normal(shape)

    def uniform(self, shape):
        """Uniform [0, 1) draws of ``shape``, a float64 numpy array."""
        return self.generator.random(shape)


class TorchRng:
    """A ``torch.Generator`` drawing directly on its device."""

    native = True

    def __init__(self, generator, dtype="float32"):
        self.generator = generator
        device = generator.device.type
        self.space = Target("torch", "cuda" if device == "cuda" else device, dtype)

    def normal(self, shape):
        import torch

        space = self.space
        return torch.randn(
            tuple(shape),
            generator=self.generator,
            device=self.generator.device,
            dtype=space.native_dtype,
        )

    def uniform(self, shape):
        import torch

        return torch.rand(
            tuple(shape),
            generator=self.generator,
            device=self.generator.device,
            dtype=self.space.native_dtype,
        )


class JaxRng:
    """A ``jax.random`` key, split once per draw; draws land on the key's device."""

    native = True

    def __init__(self, key, dtype="float32"):
        self.key = key
        self.space = Target("jax", device_name(key), dtype)

    def _next_key(self):
        import jax

        self.key, sub = jax.random.split(self.key)
        return sub

    def normal(self, shape):
        import jax

        return jax.random.normal(self._next_key(), tuple(shape), dtype=self.space.native_dtype)

    def uniform(self, shape):
        import jax

        return jax.random.uniform(self._next_key(), tuple(shape), dtype=self.space.native_dtype)


def make_rng(seed=None, *, dtype="float32"):
    """Random source for ``seed``.

    int, ``None``, ``SeedSequence`` or numpy ``Generator`` give a :class:`PortableRng`;
    a ``torch.Generator`` gives a :class:`TorchRng`; a ``jax.random`` key gives a :class:`JaxRng`.
    ``dtype`` is the dtype native generators draw in (the portable path always draws float64).
    An object that is already a random source is returned as is.
    """
    if isinstance(seed, (PortableRng, TorchRng, JaxRng)):
        return seed
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"seed must be an int >= 0 or a random source, got the bool {seed!r}")
    if isinstance(seed, (int, np.integer)) and seed < 0:
        raise ValueError(f"seed must be an int >= 0 (numpy SeedSequence entropy), got {int(seed)}")
    if seed is None or isinstance(seed, (int, np.integer, np.random.SeedSequence, np.random.Generator)):
        return PortableRng(seed)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(seed, torch.Generator):
        return TorchRng(seed, dtype)
    if array_api_compat.is_jax_array(seed):
        return JaxRng(seed, dtype)
    raise TypeError(
        "seed must be an int, None, numpy SeedSequence/Generator, torch.Generator or jax key, "
        f"got {type(seed).__name__}"
    )


def native_rng(seed: int, target: Target):
    """A native random source on ``target``'s backend and device, seeded with the int ``seed``."""
    if target.backend == "torch":
        import torch

        generator = torch.Generator(device=target.native_device)
        generator.manual_seed(int(seed))
        return TorchRng(generator, target.dtype)
    if target.backend == "jax":
        import jax

        key = jax.device_put(jax.random.key(int(seed)), target.native_device)
        return JaxRng(key, target.dtype)
    return PortableRng(seed)
