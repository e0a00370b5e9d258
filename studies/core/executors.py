"""Executors: where cells run (in-process, a local process pool, or a Dask cluster).

The local pool spawns workers with one BLAS thread each and an allocator that reuses freed memory
(:data:`WORKER_ENV`); they ignore SIGINT (the parent stops the pool) and exit when their parent
dies, so no run leaves processes behind.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import time


class SerialExecutor(concurrent.futures.Executor):
    """Runs each task in the calling process at submit time (debugging, GPUs, tiny runs)."""

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
}
"""Environment of spawned workers (set where the user has not): one BLAS thread each, and glibc's
allocator keeping freed memory for reuse. By default glibc maps every block above 32 MiB afresh and
unmaps it on free, so each large Monte Carlo temporary is page-faulted and zeroed by the kernel
again; with no mmap blocks and a 1 GiB trim threshold a freed block is reused as it is. Other C
libraries ignore the two ``MALLOC_`` names."""


def _worker_env() -> None:
    for name, value in WORKER_ENV.items():
        os.environ.setdefault(name, value)


def check_executor_spec(spec: str | None) -> None:
    """Raise ``ValueError`` unless ``spec`` names an executor :func:`make_executor` knows."""
    if spec in (None, "local", "serial", "dask-local"):
        return
    if isinstance(spec, str) and spec.startswith(("dask://", "tcp://")) and ":" in spec.split("://", 1)[1]:
        return
    raise ValueError(f"executor must be local, serial, dask-local or dask://host:port, got {spec!r}")


def worker_count(spec: str | None, workers: int | None = None) -> int:
    """Workers an executor spec runs with: 1 for ``serial``, else ``workers`` or min(cores, 4)."""
    if spec == "serial":
        return 1
    return workers or min(os.cpu_count() or 1, 4)


PARENT_POLL_S = 0.5


"""How often a pool worker checks that the process that started it is still alive."""


def _worker_start(parent: int) -> None:
    """Pool worker initializer: ignore SIGINT (the parent stops the pool) and exit with the parent.

    A daemon thread polls ``os.getppid()`` every :data:`PARENT_POLL_S` s; when the parent is gone
    (even SIGKILLed, which no handler sees) the worker exits at once, so no orphan keeps computing.
    """
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _stop_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Terminate a pool's workers now (an interrupted run must not wait for their cells)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


@contextlib.contextmanager
def make_executor(spec: str | None = None, workers: int | None = None):
    """Yield ``(executor, description)`` for an executor spec, shutting it down afterwards.

    ``None``/``"local"``: a ``ProcessPoolExecutor`` (spawned workers with :data:`WORKER_ENV`);
    ``"serial"``: in-process; ``"dask-local"``: a Dask ``LocalCluster``; ``"dask://host:port"`` or
    ``"tcp://host:port"``: an existing Dask scheduler. Dask executors come from
    ``Client(...).get_executor(pure=False)``.
    """
    check_executor_spec(spec)
    workers = worker_count(spec, workers)
    if spec in (None, "local"):
        import multiprocessing

        _worker_env()
        context = multiprocessing.get_context("spawn")
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_worker_start, initargs=(os.getpid(),)
        )
        try:
            yield pool, f"local processes ({workers})"
        except BaseException:
            _stop_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    elif spec == "serial":
        yield SerialExecutor(), "serial"
    elif spec == "dask-local" or spec.startswith(("dask://", "tcp://")):
        try:
            from distributed import Client, LocalCluster
        except ImportError as error:
            raise ValueError("executor needs dask.distributed: pip install 'favor-bench[dask]'") from error
        if spec == "dask-local":
            _worker_env()
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None)
            with cluster, Client(cluster) as client:
                yield client.get_executor(pure=False), f"dask-local ({workers})"
        else:
            address = "tcp://" + spec.split("://", 1)[1]
            with Client(address) as client:
                yield client.get_executor(pure=False), f"dask {address}"
