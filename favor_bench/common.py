"""Shared machinery of the asv suite, after SciPy's ``benchmarks/benchmarks/common.py``.

* :data:`BACKENDS`: the ``backend`` parameter, identical on every machine. :func:`target` turns one
  value into an :class:`estimators.backends.Target` and raises ``NotImplementedError`` (asv shows
  n/a) when the library or the device is absent.
* :func:`sync`: every timed call ends with it (a CUDA or JAX call returns before the work is done;
  unsynchronized GPU timings were measured 2-11x too low).
* :func:`compile_function`, :func:`gradient_function`, :func:`warmed_up`: JAX functions are jitted
  and run once in ``setup``, so timings never include tracing or compilation.
* :func:`cached`: asv re-runs ``setup`` before every sample, so expensive setup is memoized per
  process (each parameter combination runs in its own forked process).
* :func:`peak_bytes`: working memory of one call on its device: the allocator's peak minus what
  was allocated before the call (``torch.cuda.max_memory_allocated``, JAX ``memory_stats``, or
  ``tracemalloc`` for numpy's host buffers).
* :func:`require_length`, :func:`require_fits`: sizes that exceed a device's length cap or memory
  budget are skipped with ``NotImplementedError`` instead of swapping or crashing.

Nothing here imports torch or jax at module import time, and no device is touched until a
benchmark's ``setup`` runs (asv forks benchmark processes from a forkserver that imported the
benchmark modules; an initialized CUDA context does not survive a fork).
"""

from __future__ import annotations

import functools
import os
import sys
import time
import timeit
import tracemalloc

import numpy as np

from estimators import backends
from estimators.backends import Target, resolve_target

BACKENDS = ("numpy", "torch:cpu", "torch:cuda", "jax:cpu", "jax:gpu", "jax:tpu")
DTYPES = ("float32", "float64", "bfloat16", "float16")
ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
CPU_MAX_LENGTH = 65_536
ACCELERATOR_MAX_LENGTH = 1_048_576
HOST_MEMORY_FRACTION = 0.25
DEVICE_MEMORY_FRACTION = 0.8
_DEVICE_OF_SUFFIX = {"cpu": "cpu", "cuda": "cuda", "gpu": "cuda", "tpu": "tpu"}


def probe_backends() -> dict:
    """For every value of :data:`BACKENDS`, ``None`` if usable here, else why not (a string).

    Imports torch and jax (when installed) and queries their devices; run it once per ``asv run``
    through :meth:`BackendBenchmark.setup_cache`, never at import time.
    """
    reasons = {}
    for backend in BACKENDS:
        try:
            target(backend)
        except NotImplementedError as error:
            reasons[backend] = str(error)
        else:
            reasons[backend] = None
    return reasons


def require_backend(probe: dict, backend: str) -> None:
    """``NotImplementedError`` (n/a) when :func:`probe_backends` found ``backend`` unusable."""
    split_backend(backend)
    if probe[backend] is not None:
        raise NotImplementedError(probe[backend])


def benchmark_timer():
    """asv's timer: the wall clock, or process CPU time when ``FAVOR_BENCH_TIMER=process``.

    CPU time suits single-threaded CPU runs on a shared host (``OMP_NUM_THREADS=1``, XLA's
    ``--xla_cpu_multi_thread_eigen=false``), where other processes inflate the wall clock; it
    counts every thread's time and misses asynchronous device work, so GPU runs keep the default.
    """
    choice = os.environ.get("FAVOR_BENCH_TIMER", "wall")
    if choice not in ("wall", "process"):
        raise ValueError(f"FAVOR_BENCH_TIMER must be 'wall' or 'process', got {choice!r}")
    return time.process_time if choice == "process" else timeit.default_timer


class BackendBenchmark:
    """Base of every benchmark with a ``backend`` parameter.

    ``setup_cache`` probes the backends once; asv keys the cache by this function's source, so all
    subclasses share one probe per run, and an absent device is skipped without importing its
    library in every benchmark process. asv passes the probe as the first argument of ``setup`` and
    of each benchmark method. One round (one process per parameter combination) keeps a full CPU
    run within about half an hour on two cores.
    """

    rounds = 1
    timer = staticmethod(benchmark_timer())

    def setup_cache(self):
        return probe_backends()


class HeavyBenchmark(BackendBenchmark):
    """Timing settings for calls that take up to seconds (attention at large L).

    No warm-up loop (``setup`` already ran the call once), and sampling stops after
    four seconds once two samples exist; asv reports the median sample.
    """

    repeat = (1, 5, 4.0)
    warmup_time = 0.0
    timeout = 600


def split_backend(backend: str) -> tuple[str, str]:
    """``"torch:cuda"`` -> ``("torch", "cuda")``; ``"jax:gpu"`` -> ``("jax", "cuda")``; ``"numpy"`` -> cpu."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    library, _, suffix = backend.partition(":")
    return library, _DEVICE_OF_SUFFIX[suffix or "cpu"]


def target(backend: str, dtype: str = "float32") -> Target:
    """The :class:`Target` for a ``backend`` parameter value and ``dtype``.

    Raises ``NotImplementedError`` (asv: n/a) when the library is not installed, the device is
    absent, or the library lacks the dtype (numpy bfloat16).
    """
    library, device = split_backend(backend)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    try:
        return resolve_target(backend=library, device=device, dtype=dtype)
    except (ValueError, TypeError) as error:
        raise NotImplementedError(f"{backend} {dtype} unavailable here: {error}") from error


def cached(function):
    """Memoize ``function`` per process (asv calls ``setup`` again before every sample)."""
    return functools.lru_cache(maxsize=16)(function)


@cached
def host_normal(shape: tuple, seed: int) -> np.ndarray:
    """Standard normal float64 host array of ``shape`` from ``numpy.random.default_rng(seed)``."""
    values = np.random.default_rng(seed).standard_normal(shape)
    values.flags.writeable = False
    return values


@cached
def normal(backend: str, dtype: str, shape: tuple, seed: int, scale: float = 1.0):
    """``scale`` times :func:`host_normal` on ``backend`` in ``dtype`` (identical on every backend)."""
    return target(backend, dtype).asarray(scale * host_normal(shape, seed))


def sync(result):
    """Wait for the device work producing ``result`` (any nesting of arrays) and return it."""
    backends.sync(result)
    return result


def compile_function(where: Target, function):
    """``jax.jit(function)`` on JAX, ``function`` itself elsewhere."""
    if where.backend == "jax":
        import jax

        return jax.jit(function)
    return function


def gradient_function(where: Target, function, n_differentiated: int):
    """Forward + backward: gradients of ``sum(function(*args))`` w.r.t. its first ``n_differentiated`` args.

    Torch uses ``torch.autograd.grad`` (nothing accumulates between calls; the caller passes
    tensors with ``requires_grad=True``); JAX jits ``jax.grad``. The sum is taken in float32 so
    half-precision outputs do not overflow it. numpy has no autodiff: ``NotImplementedError``.
    """
    if where.backend == "torch":
        import torch

        def torch_gradients(*args):
            total = function(*args).float().sum()
            return torch.autograd.grad(total, args[:n_differentiated])

        return torch_gradients
    if where.backend == "jax":
        import jax
        import jax.numpy as jnp

        def total(*args):
            return jnp.sum(function(*args).astype(jnp.float32))

        return jax.jit(jax.grad(total, argnums=tuple(range(n_differentiated))))
    raise NotImplementedError(f"{where.backend} has no automatic differentiation")


def requires_grad(array):
    """A torch leaf copy of ``array`` that records gradients; other arrays unchanged."""
    if hasattr(array, "requires_grad_"):
        return array.detach().clone().requires_grad_(True)
    return array


def warmed_up(call):
    """Run ``call()`` once and wait for it (JIT compilation, lazy initialization); return ``call``."""
    sync(na_if_untraceable(call))
    return call


def na_if_untraceable(call):
    """``call()``; a JAX trace error (a traced value read on the host) becomes ``NotImplementedError``.

    Such a function cannot run under ``jax.jit``/``lax`` control flow, which is what the suite times.
    """
    try:
        return call()
    except TypeError as error:
        jax = sys.modules.get("jax")
        if jax is not None and isinstance(error, jax.errors.JAXTypeError):
            raise NotImplementedError(f"not traceable by jax.jit: {type(error).__name__}") from error
        raise


def max_length(device: str) -> int:
    """Longest sequence timed on ``device``: 65 536 on a CPU, 1 048 576 on an accelerator."""
    return CPU_MAX_LENGTH if device == "cpu" else ACCELERATOR_MAX_LENGTH


def require_length(backend: str, length: int) -> None:
    """``NotImplementedError`` when ``length`` exceeds :func:`max_length` for ``backend``'s device.

    Decided from the parameter alone, before any library is imported.
    """
    _, device = split_backend(backend)
    if length > max_length(device):
        raise NotImplementedError(f"L = {length} exceeds the {device} cap of {max_length(device)}")


def memory_budget_bytes(where: Target) -> int:
    """Bytes a benchmark may use on ``where``'s device.

    80% of an accelerator's memory; 25% of the host's physical memory on a CPU (the host also
    runs the OS and asv).
    """
    if where.backend == "torch" and where.device == "cuda":
        import torch

        total = torch.cuda.get_device_properties(where.native_device).total_memory
        return int(DEVICE_MEMORY_FRACTION * total)
    if where.backend == "jax" and where.device != "cpu":
        stats = where.native_device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(DEVICE_MEMORY_FRACTION * stats["bytes_limit"])
    return int(HOST_MEMORY_FRACTION * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def require_fits(where: Target, nbytes: int, what: str) -> None:
    """``NotImplementedError`` when ``what`` needs more than :func:`memory_budget_bytes`."""
    budget = memory_budget_bytes(where)
    if nbytes > budget:
        raise NotImplementedError(
            f"{what} needs about {nbytes / 2**30:.1f} GiB, more than the {budget / 2**30:.1f} GiB "
            f"budget on {where.backend}:{where.device}"
        )


PEAK_BYTES_BACKENDS = ("numpy", "torch:cpu", "torch:cuda", "jax:cpu", "jax:gpu", "jax:tpu")


def require_peak_bytes(backend: str) -> None:
    """``NotImplementedError`` where :func:`peak_bytes` cannot measure; decided from the parameter
    alone, before any library is imported."""
    split_backend(backend)
    if backend not in PEAK_BYTES_BACKENDS:
        raise NotImplementedError(f"no allocator statistics for {backend}")


def peak_bytes(where: Target, call) -> int:
    """Peak bytes allocated on ``where``'s device while ``call()`` runs, minus those held before it.

    numpy: ``tracemalloc`` (numpy reports its data buffers to it). Torch CPU: the profiler's
    allocation records (:func:`_torch_cpu_peak`). Torch CUDA: the caching allocator's
    ``max_memory_allocated`` after ``reset_peak_memory_stats``. JAX on CPU (no allocator
    statistics): XLA's buffer plan of a ``functools.partial(jitted, *args)`` (:func:`_xla_planned_bytes`).
    Other JAX devices: ``memory_stats()``
    ``peak_bytes_in_use`` (it cannot be reset, so this is exact only in a fresh process whose
    earlier work used less, which is how asv runs each ``track_``).
    """
    if where.backend == "numpy":
        return _tracemalloc_peak(call)
    if where.backend == "torch" and where.device == "cpu":
        return _torch_cpu_peak(call)
    if where.device == "cpu":
        return _xla_planned_bytes(call)
    if where.backend == "torch":
        import torch

        device = where.native_device
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        sync(call())
        return int(torch.cuda.max_memory_allocated(device) - before)
    stats = where.native_device.memory_stats()
    if not stats:
        raise NotImplementedError(f"no allocator statistics for {where.backend}:{where.device}")
    before = stats["bytes_in_use"]
    sync(call())
    return int(where.native_device.memory_stats()["peak_bytes_in_use"] - before)


def _torch_cpu_peak(call) -> int:
    """Peak of the running sum of the bytes each torch operator allocates and frees on the CPU, in the
    order the operators start (``torch.profiler`` with ``profile_memory``; the CPU allocator keeps no
    peak statistic). Exact at operator granularity: a buffer allocated and freed inside one operator
    is not seen."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        call()
    events = sorted(profiler.events(), key=lambda event: event.time_range.start)
    running = peak = 0
    for event in events:
        running += event.self_cpu_memory_usage
        peak = max(peak, running)
    return int(peak)


def _xla_planned_bytes(call) -> int:
    """Temporaries plus outputs of XLA's buffer assignment (``Compiled.memory_analysis()``) for
    ``call = functools.partial(jitted, *args)``: the peak the compiled program plans, inputs excluded."""
    function = getattr(call, "func", None)
    if not hasattr(function, "lower"):
        raise NotImplementedError("jax:cpu memory needs functools.partial(jitted_function, *args)")
    analysis = function.lower(*call.args, **call.keywords).compile().memory_analysis()
    return int(analysis.temp_size_in_bytes + analysis.output_size_in_bytes)


def _tracemalloc_peak(call) -> int:
    already_tracing = tracemalloc.is_tracing()
    if not already_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not already_tracing:
            tracemalloc.stop()
    return int(peak - before)


def skip_if_out_of_memory(build):
    """``build()``, turning an out-of-memory failure (host or device) into ``NotImplementedError``."""
    try:
        return build()
    except MemoryError as error:
        raise NotImplementedError(f"does not fit in host memory: {error}") from error
    except RuntimeError as error:  # torch.cuda.OutOfMemoryError, jax RESOURCE_EXHAUSTED
        message = str(error)
        if "out of memory" in message.lower() or "RESOURCE_EXHAUSTED" in message:
            raise NotImplementedError(f"does not fit in device memory: {message[:200]}") from error
        raise


def imported_array_libraries() -> list[str]:
    """Which of torch, jax and jaxlib are imported in this process (for import-hygiene checks)."""
    return [name for name in ("torch", "jax", "jaxlib") if name in sys.modules]
