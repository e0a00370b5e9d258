"""Random sources behind one small interface: portable (numpy on the host, identical on every
backend) and native (``torch.Generator`` or a ``jax.random`` key, on the device)."""

from __future__ import annotations

import sys

import array_api_compat
import numpy as np

from .arrays import device_name
from .targets import Target


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
