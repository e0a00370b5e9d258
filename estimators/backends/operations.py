"""The operations the array API lacks, one small class per framework (einops' ``_backends`` style):
callers write ``framework(x).operation(...)`` and never compare framework names."""

from __future__ import annotations

import functools
import itertools
import warnings

import numpy as np

from .arrays import backend_of, namespace


class _ArrayApiOps:
    """What an eager array-API library (numpy, array_api_strict) does for the operations the array
    API lacks; :class:`_TorchOps` and :class:`_JaxOps` override them. Callers never branch on the
    framework: they call ``framework(x).operation(...)``."""

    traces_loops = False
    """True where a loop over chunks must be written as a traced scan (JAX: immutable arrays, jit)."""

    compiles_steps = False
    """True where :meth:`compiled_step` compiles (torch: ``torch.compile``; JAX: inside ``jax.jit``)."""

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
    def exp_of_temporary(x):
        """``exp(x)`` for an ``x`` the caller created and never reads again: written over ``x`` where
        the framework can (numpy, torch), which spares a fresh allocation; a new array elsewhere."""
        return namespace(x).exp(x)

    @staticmethod
    def cos_and_sin(x):
        """``[cos(x), sin(x)]`` (…, 2n) for ``x`` (…, n): written into one new array where the framework
        can (numpy; torch keeps the concatenation, since its ``out=`` refuses autograd), which spares
        two n-wide temporaries and their copy."""
        xp = namespace(x)
        return xp.concat([xp.cos(x), xp.sin(x)], axis=-1)

    @staticmethod
    def compiled(function, static_argnums: tuple[int, ...]):
        """``function`` compiled for this framework where that pays (identity here)."""
        return function

    @staticmethod
    def compiled_step(function):
        """``function``, one chunk or block step of the FAVOR sums, compiled where
        :attr:`compiles_steps` says so (identity here and under JAX, where the whole call is jitted)."""
        return function

    @staticmethod
    def is_cuda_tensor(x) -> bool:
        """True for a torch tensor on a CUDA device (what the Triton kernels take)."""
        return False


class _NumpyOps(_ArrayApiOps):
    @staticmethod
    def exp_of_temporary(x):
        return np.exp(x, out=x)

    @staticmethod
    def cos_and_sin(x):
        width = x.shape[-1]
        out = np.empty((*x.shape[:-1], 2 * width), dtype=x.dtype)
        np.cos(x, out=out[..., :width])
        np.sin(x, out=out[..., width:])
        return out


class _TorchOps(_ArrayApiOps):
    compiles_steps = True

    @staticmethod
    def stop_gradient(x):
        return x.detach()

    @staticmethod
    def compiled_step(function):
        """``torch.compile(function, dynamic=False)`` (Inductor: fused elementwise work and fewer
        temporaries; one graph per block shape, reused by every block of that shape), made once per
        function. A failed compilation (no C++ compiler, say) raises one RuntimeError naming the way out."""
        return _torch_compiled(function)

    @staticmethod
    def exp_of_temporary(x):
        """In place (autograd saves the result, which is what ``exp``'s backward reads)."""
        return x.exp_()

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
    compiles_steps = True

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


_TRACED_CACHE_WARNING = "Dynamo detected a call to a `functools.lru_cache`-wrapped function"
"""What Dynamo says of array_api_compat's class-keyed caches (which array namespace a type has): pure
functions of the class, which tracing through is exact; a user would otherwise see one per cache."""


@functools.cache
def _torch_compiled(function):
    import torch
    from torch._dynamo.exc import BackendCompilerFailed

    compiled = torch.compile(function, dynamic=False)

    @functools.wraps(function)
    def call(*args):
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_TRACED_CACHE_WARNING, category=UserWarning)
                return compiled(*args)
        except BackendCompilerFailed as error:
            reason = str(error).strip().splitlines()[0]
            raise RuntimeError(
                f"torch.compile could not compile {function.__qualname__} ({reason}); it needs a working "
                "C++ compiler on a CPU (g++ or clang, or the CXX environment variable): install one, "
                "or pass impl='reference'"
            ) from error

    return call


_OPS = {"numpy": _NumpyOps, "array_api_strict": _ArrayApiOps, "torch": _TorchOps, "jax": _JaxOps}


def framework(x) -> type[_ArrayApiOps]:
    """The framework operations of ``x``'s library (:class:`_ArrayApiOps` and its subclasses)."""
    return _OPS[backend_of(x)]
