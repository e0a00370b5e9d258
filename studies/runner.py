"""Run studies: cells, seeds, the executor seam, resumable records, summaries and metadata.

A study (:class:`Study`) is a list of hashable cells and four pure functions. The runner

* builds each :class:`Cell` from the study's parameter dicts and the run's :class:`Context`
  (backend, device, dtype, RNG path, root seed, preset);
* seeds every cell from ``SeedSequence(root_seed, spawn_key=cell.seed_key)``, a stable SHA-256 of the
  study name and the cell's parameters (not Python's ``hash``, and not the backend), so a cell draws
  the same numbers in a loop, a process pool or a cluster, and on numpy, torch and jax when the
  portable RNG is used;
* sends batches of cells through a ``concurrent.futures.Executor`` (local processes by default, a Dask
  ``Client(...).get_executor(pure=False)`` on request, or in-process ``serial``);
* appends each finished record to ``<out>/<study>/records.jsonl`` (one JSON line, flushed and fsynced)
  stamped with the study's code fingerprint (:mod:`studies.provenance`), skips cells whose record the
  same code already wrote on a rerun (records of other code are recomputed and dropped), and rewrites
  the file in cell order at the end (temp file + rename), so the same seed gives byte-identical records;
* writes the study's CSV summary, its plot (PNG + SVG) and ``meta.json`` (the fingerprint, commit and
  dirty state that computed the records, versions, backend, device, dtype, seed, preset, the study's
  own cells computed/reused and times). Wall times live only in ``meta.json``.

Monte Carlo helpers (:func:`replicate_chunks`, :func:`error_moments`, :func:`merge_moments`) keep
replicates vectorized in memory-bounded chunks and reduce them to mergeable moment sums.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import fcntl
import functools
import hashlib
import importlib
import io
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from estimators.backends import Target, backend_of, native_rng, resolve_target

from . import provenance

PRESETS = ("quick", "paper")
RNG_PATHS = ("portable", "native")
DEFAULT_OUT = "results"
ELEMENT_BUDGET = 1 << 22
"""Default number of array elements one Monte Carlo chunk may hold (32 MiB in float64)."""


@dataclass(frozen=True)
class Context:
    """Where and how a run computes: shared by every cell of the run.

    ``rng="portable"`` draws on the host (identical numbers on every backend, for theory checks);
    ``"native"`` draws with the backend's own generator on the device (fast, streams differ).
    """

    backend: str = "numpy"
    device: str = "cpu"
    dtype: str = "float64"
    rng: str = "portable"
    seed: int = 0
    preset: str = "quick"

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {self.preset!r}")
        if self.rng not in RNG_PATHS:
            raise ValueError(f"rng must be one of {RNG_PATHS}, got {self.rng!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")

    @property
    def target(self) -> Target:
        """The checked :class:`~estimators.backends.Target` (raises if the backend/device is missing)."""
        return resolve_target(backend=self.backend, device=self.device, dtype=self.dtype)


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _digest(value) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()


def _spawn_key(value) -> tuple[int, ...]:
    """Four 32-bit words of the SHA-256 of ``value``'s canonical JSON (a stable SeedSequence key)."""
    digest = hashlib.sha256(_canonical(value).encode()).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


@dataclass(frozen=True)
class Cell:
    """One unit of work: a study module, its parameters (sorted key/value pairs) and the run context."""

    module: str
    study: str
    params: tuple
    context: Context

    @classmethod
    def build(cls, module: str, study: str, params: dict, context: Context) -> Cell:
        return cls(module, study, tuple(sorted(params.items())), context)

    @property
    def kwargs(self) -> dict:
        """The parameters as a dict."""
        return dict(self.params)

    @property
    def key(self) -> str:
        """Stable identity of the cell's record: SHA-256 of study, parameters and context."""
        return _digest([self.study, self.kwargs, asdict(self.context)])

    @property
    def seed_key(self) -> tuple[int, ...]:
        """Spawn key from study and parameters only, so backends share the same portable draws."""
        return _spawn_key([self.study, self.kwargs])

    def seed_sequence(self, stream: int = 0) -> np.random.SeedSequence:
        """``SeedSequence(root_seed, spawn_key=(*seed_key, stream))``; streams are independent."""
        return np.random.SeedSequence(self.context.seed, spawn_key=(*self.seed_key, stream))

    def host_rng(self, stream: int = 0) -> np.random.Generator:
        """Host numpy Generator of this cell (for inputs built on the host whatever the RNG path)."""
        return np.random.Generator(np.random.PCG64(self.seed_sequence(stream)))

    def rng(self, stream: int = 0):
        """Random source for draws of W: the host Generator (portable) or the backend's native one."""
        if self.context.rng == "native":
            seed = int(self.seed_sequence(stream).generate_state(1)[0])
            return native_rng(seed, self.context.target)
        return self.host_rng(stream)


def stable_rng(root_seed: int, *labels) -> np.random.Generator:
    """A host numpy Generator seeded by ``root_seed`` and a stable hash of ``labels`` (JSON scalars).

    For data shared by several cells (e.g. one input draw used by every estimator and m).
    """
    return np.random.default_rng(np.random.SeedSequence(root_seed, spawn_key=_spawn_key(list(labels))))


@dataclass(frozen=True)
class Study:
    """A study: its cells and the pure functions that compute, summarize and plot them.

    Attributes
    ----------
    name : str
        Module name under ``studies`` and output folder name.
    title : str
        Figure title.
    claim : str
        One sentence: what the plot verifies (used by ``list`` and the gallery).
    cells : callable(preset) -> list of dict
        Parameter dicts (JSON scalars only), one per cell.
    compute : callable(cell) -> dict
        Pure function of the cell: JSON-able values (lists of floats, ints, strings).
    summarize : callable(records, context) -> list of dict
        CSV rows built from the records (each a dict with ``params`` and ``values``).
    plot : callable(rows, context, stem) -> None
        Draw the rows; save ``stem.png`` and ``stem.svg`` (see :func:`studies.plotting.save`).
    batch_size : int
        Cells sent to a worker at once (batch small cells).
    module : str
        Importable module that defines ``STUDY`` (defaults to ``studies.<name>``).
    """

    name: str
    title: str
    claim: str
    cells: Callable[[str], list[dict]]
    compute: Callable[[Cell], dict]
    summarize: Callable[[list[dict], Context], list[dict]]
    plot: Callable[[list[dict], Context, Path], None]
    batch_size: int = 1
    module: str = ""

    @property
    def module_name(self) -> str:
        return self.module or f"studies.{self.name}"

    def make_cells(self, context: Context) -> list[Cell]:
        """Every cell of this study for ``context``, in the study's order."""
        cells = [Cell.build(self.module_name, self.name, p, context) for p in self.cells(context.preset)]
        keys = [cell.key for cell in cells]
        if len(set(keys)) != len(keys):
            raise ValueError(f"study {self.name!r} lists the same cell twice")
        return cells


def study_of(cell: Cell) -> Study:
    """The :class:`Study` a cell belongs to (imported from ``cell.module``)."""
    return importlib.import_module(cell.module).STUDY


def run_cell(cell: Cell) -> dict:
    """Compute one cell: a pure, top-level, picklable function of the cell.

    Returns the record ``{"key", "study", "params", "context", "values"}``; ``values`` is the study's
    ``compute(cell)`` made JSON-safe (NaN or Inf raise ``ValueError``: never written silently).
    """
    values = jsonable(study_of(cell).compute(cell))
    _canonical(values)
    return {
        "key": cell.key,
        "study": cell.study,
        "params": cell.kwargs,
        "context": asdict(cell.context),
        "values": values,
    }


def run_batch(cells: Sequence[Cell]) -> list[dict]:
    """Compute several small cells in one task."""
    return [run_cell(cell) for cell in cells]


def jsonable(value):
    """Nested numpy/torch/jax arrays and scalars as plain Python lists, floats, ints and strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return host(value).tolist()


def host(x) -> np.ndarray:
    """Any backend's array as a float64 numpy array on the host."""
    if not isinstance(x, np.ndarray) and backend_of(x) == "torch":
        x = x.detach().cpu().double()
    return np.asarray(x, dtype=np.float64)


# ---------------------------------------------------------------- Monte Carlo helpers


def replicate_chunks(total: int, per_replicate: int, budget: int = ELEMENT_BUDGET) -> list[int]:
    """Split ``total`` replicates into chunk sizes whose arrays hold at most ``budget`` elements.

    ``per_replicate`` is the number of elements one replicate needs (e.g. m·d for a projection).
    Chunks are drawn one after another from the cell's stream, so the split is part of what a seed
    reproduces: a different budget gives different (equally distributed) draws.
    """
    size = max(1, min(total, budget // max(1, per_replicate)))
    return [min(size, total - start) for start in range(0, total, size)]


def error_moments(errors) -> dict:
    """Sums over replicates (axis 0) of e, e², e⁴ and their count, as float64 host lists.

    ``errors`` is (n, …) on any backend; the sums merge across chunks and cells with
    :func:`merge_moments`, and give the mean error (bias) and the MSE with confidence intervals.
    """
    e = host(errors)
    squared = e * e
    return {
        "n": int(e.shape[0]),
        "s1": e.sum(axis=0).tolist(),
        "s2": squared.sum(axis=0).tolist(),
        "s4": (squared * squared).sum(axis=0).tolist(),
    }


def merge_moments(parts: Iterable[dict]) -> dict:
    """Add moment sums from :func:`error_moments` (chunks of one cell, or cells of one point)."""
    parts = list(parts)
    if not parts:
        raise ValueError("parts must hold at least one moment dict")
    merged = {"n": sum(p["n"] for p in parts)}
    for name in ("s1", "s2", "s4"):
        merged[name] = np.sum([np.asarray(p[name], dtype=np.float64) for p in parts], axis=0)
    return merged


def moment_summary(moments: dict, z: float = 2.576) -> dict:
    """Mean error and MSE with normal-approximation ``z`` confidence half-widths (default 99%).

    bias = s1/n ± z·sd(e)/√n; MSE = s2/n ± z·sd(e²)/√n. Exponential features are heavy-tailed, so
    these sample-based intervals are for display; hypothesis tests use the theoretical variance.
    """
    n = moments["n"]
    mean = np.asarray(moments["s1"]) / n
    mse = np.asarray(moments["s2"]) / n
    var_e = np.maximum(mse - mean**2, 0.0) * n / max(n - 1, 1)
    var_sq = np.maximum(np.asarray(moments["s4"]) / n - mse**2, 0.0) * n / max(n - 1, 1)
    return {
        "n": n,
        "bias": mean,
        "bias_ci": z * np.sqrt(var_e / n),
        "mse": mse,
        "mse_ci": z * np.sqrt(var_sq / n),
    }


def kernel_errors(
    cell: Cell, row, m: int, x, y, reference, replicates: int, *, relative=True, draw=None
) -> dict:
    """Moment sums of K̂(x_p, y_p) − reference over ``replicates`` independent draws of W.

    ``row`` is a registry :class:`~estimators.registry.Estimator`; ``x``, ``y`` are host (P, d) pairs
    and ``reference`` (P,) the value each estimate is compared with (errors are K̂/reference − 1
    when ``relative``). W (n, m, d) is drawn ``n`` replicates at a time on the run's backend and
    device (``draw(m, d, n, rng, like)`` overrides ``row.draw``); the P pairs of one replicate share
    W and each pair is estimated on its own (``row.estimate(x_p, y_p, W)`` → (n,)), so estimators
    with data-dependent parameters see one pair at a time. Returns :func:`merge_moments` of the
    (n, P) errors.
    """
    target = cell.context.target
    xs, ys = target.asarray(np.asarray(x)), target.asarray(np.asarray(y))
    d = xs.shape[-1]
    rng = cell.rng()
    reference = np.asarray(reference, dtype=np.float64)
    parts = []
    for n in replicate_chunks(replicates, m * (d + 4)):
        if draw is None:
            W = row.draw(m, d, batch_shape=(n,), seed=rng, like=xs)
        else:
            W = draw(m, d, n, rng, xs)
        estimates = np.stack([host(row.estimate(xs[p], ys[p], W)) for p in range(xs.shape[0])], axis=-1)
        errors = estimates / reference - 1 if relative else estimates - reference
        parts.append(error_moments(errors))
    return merge_moments(parts)


# ---------------------------------------------------------------- records and files


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


@functools.cache
def _umask() -> int:
    """The process umask (mkstemp creates 0600 files; results get the usual 0644)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def record_line(record: dict) -> str:
    """One canonical JSONL line (sorted keys, no NaN)."""
    return _canonical(record) + "\n"


RECORD_FIELDS = ("key", "study", "params", "context", "values")


class CorruptRecords(ValueError):
    """A records file holds a line that is not a study record (one line says which and what to do)."""


def read_records(path: Path) -> list[dict]:
    """Records in ``path``; a torn last line (an interrupted write) is dropped, other bad lines raise.

    Raises :class:`CorruptRecords` naming the file and line when a line is not JSON or lacks one of
    :data:`RECORD_FIELDS`.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise CorruptRecords(_corrupt(path, number, "is not JSON")) from None
        missing = [name for name in RECORD_FIELDS if not isinstance(record, dict) or name not in record]
        if missing:
            raise CorruptRecords(_corrupt(path, number, f"is not a study record (no {missing[0]!r})"))
        records.append(record)
    return records


def _corrupt(path: Path, number: int, problem: str) -> str:
    return (
        f"{path}:{number} {problem}; delete that line to recompute only its cell, "
        f"or delete {path.name} to recompute the study"
    )


class RecordLog:
    """Append-only ``records.jsonl``: one flushed, fsynced line per finished cell.

    The study folder is locked (``.lock``, ``flock``) until :meth:`unlock`, so a second run into the
    same folder fails at once (``ValueError``) instead of losing appends to a rewritten file.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = open(self.path.parent / ".lock", "a+")
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = (self.path.parent / ".lock").read_text().strip() or "unknown"
            self.lock.close()
            raise ValueError(
                f"{self.path.parent} is being written by another run (pid {holder}); wait for it to "
                f"finish or stop it (a lock of a run that died is released by the system)"
            ) from None
        self.lock.truncate(0)
        self.lock.write(f"{os.getpid()}\n")
        self.lock.flush()
        try:
            self._repair_torn_tail()
            self.stream = open(self.path, "a", encoding="utf-8")
        except BaseException:
            self.unlock()
            raise

    def _repair_torn_tail(self) -> None:
        """Drop an unterminated last line (a write cut short), saying so on stderr."""
        if self.path.exists() and self.path.stat().st_size:
            text = self.path.read_text(encoding="utf-8")
            if not text.endswith("\n"):
                kept = text[: text.rfind("\n") + 1]
                write_atomic(self.path, kept)
                print(
                    f"studies: {self.path}: dropped a torn last line (a write cut short); "
                    f"its cell is recomputed",
                    file=sys.stderr,
                )

    def append(self, record: dict) -> None:
        self.stream.write(record_line(record))
        self.stream.flush()
        os.fsync(self.stream.fileno())

    def close(self) -> None:
        self.stream.close()

    def unlock(self) -> None:
        """Close the log if still open and release the folder lock (after the study's files are final)."""
        stream = getattr(self, "stream", None)
        if stream is not None and not stream.closed:
            stream.close()
        fcntl.flock(self.lock, fcntl.LOCK_UN)
        self.lock.close()


def canonical_records(path: Path, cells: Sequence[Cell], fingerprint: str):
    """Rewrite ``path`` with this run's records in cell order, then other cells' records of the same code.

    Only records carrying ``fingerprint`` (the study's code fingerprint) are kept: records computed by
    other code are dropped, never mixed in. Duplicates (a cell finished twice after an interrupted
    rewrite) keep the first copy. Returns ``(ours, others, discarded)``: this run's records, the kept
    records of other cells, and the number of records of other code that were dropped.
    """
    by_key: dict[str, dict] = {}
    discarded = 0
    for record in read_records(path):
        if record.get("code") != fingerprint:
            discarded += 1
            continue
        by_key.setdefault(record["key"], record)
    order = [cell.key for cell in cells]
    missing = [key for key in order if key not in by_key]
    if missing:
        raise RuntimeError(f"{len(missing)} cells have no record in {path}")
    ours = [by_key[key] for key in order]
    wanted = set(order)
    others = [record for key, record in by_key.items() if key not in wanted]
    write_atomic(path, "".join(record_line(r) for r in [*ours, *others]))
    return ours, others, discarded


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    """Rows as CSV (header from the first row, floats in shortest round-trip form), atomically."""
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: repr(float(v)) if isinstance(v, (float, np.floating)) else v for k, v in row.items()}
        )
    write_atomic(path, buffer.getvalue())


# ---------------------------------------------------------------- metadata


def meta_for(study: Study, context: Context, cells: Sequence[Cell], run: StudyRun, previous: dict | None):
    """The ``meta.json`` dict of one study run: what computed the records, and this run's own cost.

    ``computed_by`` names the code fingerprint, commit and dirty state that computed the records
    (:func:`studies.provenance.computed_by`); ``cells`` and the times are this study's alone:
    ``wall_time_s`` from its first cell's start to its last cell's end, ``compute_time_s`` the sum of
    its batches' times in the workers (both 0 when every record was reused).
    """
    return {
        "study": study.name,
        "title": study.title,
        "claim": study.claim,
        "computed_by": provenance.computed_by(study.module_name, run.computed, run.compute_time, previous),
        "versions": provenance.package_versions(context.backend),
        **asdict(context),
        "executor": run.executor,
        "platform": platform.platform(),
        "cells": {"total": len(cells), "computed": run.computed, "reused": len(cells) - run.computed},
        "wall_time_s": round(run.wall_time, 3),
        "compute_time_s": round(run.compute_time, 3),
    }


# ---------------------------------------------------------------- executors


class SerialExecutor(concurrent.futures.Executor):
    """Runs each task in the calling process at submit time (debugging, GPUs, tiny runs)."""

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


def _single_thread_env() -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


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

    ``None``/``"local"``: a ``ProcessPoolExecutor`` (spawned workers, one BLAS thread each);
    ``"serial"``: in-process; ``"dask-local"``: a Dask ``LocalCluster``; ``"dask://host:port"`` or
    ``"tcp://host:port"``: an existing Dask scheduler. Dask executors come from
    ``Client(...).get_executor(pure=False)``.
    """
    check_executor_spec(spec)
    workers = worker_count(spec, workers)
    if spec in (None, "local"):
        import multiprocessing

        _single_thread_env()
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
            _single_thread_env()
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None)
            with cluster, Client(cluster) as client:
                yield client.get_executor(pure=False), f"dask-local ({workers})"
        else:
            address = "tcp://" + spec.split("://", 1)[1]
            with Client(address) as client:
                yield client.get_executor(pure=False), f"dask {address}"


# ---------------------------------------------------------------- running studies

RECOMPUTE_LOG = ".recompute.jsonl"
"""Records of a ``recompute`` run in progress; they replace ``records.jsonl`` when the study ends."""


@dataclass
class StudyRun:
    """What one run did for one study.

    ``total`` is the study's number of cells, ``computed`` how many this run computed;
    ``started``/``finished`` are epoch seconds of its first batch's start and last batch's end in
    the workers, ``compute_time`` the sum of its batches' times there; ``comparison`` (recompute runs)
    says how the new records compare with the previous ``records.jsonl``; ``discarded`` counts records
    of other code that were dropped.
    """

    executor: str
    total: int = 0
    computed: int = 0
    started: float | None = None
    finished: float | None = None
    compute_time: float = 0.0
    comparison: str | None = None
    discarded: int = 0

    @property
    def wall_time(self) -> float:
        return 0.0 if self.started is None else self.finished - self.started

    def add_batch(self, count: int, started: float, finished: float) -> None:
        self.computed += count
        self.compute_time += finished - started
        self.started = started if self.started is None else min(self.started, started)
        self.finished = finished if self.finished is None else max(self.finished, finished)


@dataclass
class _Pending:
    study: Study
    cells: list[Cell]
    log: RecordLog
    fingerprint: str
    done: set
    run: StudyRun
    errors: list = field(default_factory=list)


def timed_batch(cells: Sequence[Cell]) -> tuple[list[dict], float, float]:
    """:func:`run_batch` with the epoch seconds at which it started and finished (in the worker)."""
    started = time.time()
    records = run_batch(cells)
    return records, started, time.time()


def _batches(cells: Sequence[Cell], size: int) -> list[list[Cell]]:
    return [list(cells[i : i + size]) for i in range(0, len(cells), size)]


def study_dir(out: Path, study: Study) -> Path:
    return Path(out) / study.name


def run_studies(
    studies: Sequence[Study],
    context: Context,
    *,
    out: Path | str = DEFAULT_OUT,
    executor: concurrent.futures.Executor | None = None,
    executor_name: str = "serial",
    progress: bool = True,
    plot: bool = True,
    recompute: bool = False,
) -> dict[str, list[dict]]:
    """Run every cell of ``studies`` not already recorded under ``out``; write CSVs, plots and meta.

    A record is reused only if it carries the study's current code fingerprint
    (:func:`studies.provenance.code_fingerprint`); records of other code are recomputed and dropped.
    With ``recompute``, the existing ``records.jsonl`` is not reused: every cell is computed again into
    ``.recompute.jsonl`` (which an interrupted recompute run resumes), the result replaces
    ``records.jsonl`` and ``StudyRun.comparison`` says whether it is byte-identical to the old file.

    All studies' batches are in flight together. Returns ``{study name: (CSV rows, StudyRun)}``;
    raises :class:`StudyFailure` (after finishing the other studies) if cells of some study raised.
    """
    executor = executor or SerialExecutor()
    pending = {}
    try:
        for study in studies:
            cells = study.make_cells(context)
            folder = study_dir(out, study)
            log = RecordLog(folder / (RECOMPUTE_LOG if recompute else "records.jsonl"))
            fingerprint = provenance.code_fingerprint(study.module_name)
            done = {record["key"] for record in read_records(log.path) if record.get("code") == fingerprint}
            run = StudyRun(executor_name, total=len(cells))
            pending[study.name] = _Pending(study, cells, log, fingerprint, done, run)
        _compute(pending, executor, progress)
        results = {
            name: (finish_study(state, context, Path(out), plot), state.run)
            for name, state in pending.items()
            if not state.errors
        }
    finally:
        for state in pending.values():
            state.log.unlock()
    failures = {name: state.errors for name, state in pending.items() if state.errors}
    if failures:
        raise StudyFailure(failures, results)
    return results


def _compute(pending: dict, executor, progress: bool) -> None:
    """Submit every missing cell in batches; append records as batches finish; note failures."""
    from tqdm import tqdm

    todo = {
        name: [cell for cell in state.cells if cell.key not in state.done] for name, state in pending.items()
    }
    total = sum(len(state.cells) for state in pending.values())
    bar = tqdm(
        total=total,
        initial=total - sum(len(cells) for cells in todo.values()),
        desc="studies",
        unit="cell",
        file=sys.stderr,
        disable=not progress or None,
    )
    futures = {}
    try:
        for name, cells in todo.items():
            for batch in _batches(cells, pending[name].study.batch_size):
                futures[executor.submit(timed_batch, batch)] = name
        for future in concurrent.futures.as_completed(futures):
            state = pending[futures[future]]
            try:
                records, started, finished = future.result()
            except Exception as error:
                state.errors.append(f"{type(error).__name__}: {error}")
                continue
            for record in records:
                state.log.append({**record, "code": state.fingerprint})
                bar.update(1)
            state.run.add_batch(len(records), started, finished)
    finally:
        for future in futures:
            future.cancel()
        bar.close()
        for state in pending.values():
            state.log.close()


class StudyFailure(RuntimeError):
    """Some cells raised: ``failures`` maps study name to error lines; ``results`` holds the rest.

    Finished cells of a failed study stay in its records, so a rerun computes only what is missing.
    """

    def __init__(self, failures: dict[str, list[str]], results: dict):
        self.failures = failures
        self.results = results
        lines = [
            f"{name}: {len(errors)} batch(es) failed, first: {errors[0]}" for name, errors in failures.items()
        ]
        super().__init__("; ".join(lines))


def compare_records(previous: str | None, new: str) -> str:
    """One sentence comparing a study's new ``records.jsonl`` text with the previous one.

    Byte-identical, or how many records differ in value, appeared or disappeared (matched by key).
    """
    if previous is None:
        return "new (there were no previous records)"
    if previous == new:
        return "byte-identical to the previous records"
    old = {record["key"]: record for record in map(json.loads, previous.splitlines()) if record}
    fresh = {record["key"]: record for record in map(json.loads, new.splitlines()) if record}
    changed = sum(1 for key in fresh.keys() & old.keys() if fresh[key] != old[key])
    added, removed = len(fresh.keys() - old.keys()), len(old.keys() - fresh.keys())
    return (
        f"DIFFERENT from the previous records ({changed} changed, {added} new, {removed} gone of "
        f"{len(fresh)}): the previous records were stale, or the computation is not deterministic"
    )


def _previous_text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def finish_study(state: _Pending, context: Context, out: Path, plot: bool = True) -> list[dict]:
    """Canonical records, CSV, plot and meta.json for one study; returns the CSV rows."""
    study, cells, run = state.study, state.cells, state.run
    folder = study_dir(out, study)
    records_path = folder / "records.jsonl"
    previous_text = _previous_text(records_path)
    records, others, run.discarded = canonical_records(state.log.path, cells, state.fingerprint)
    if state.log.path != records_path:
        old = read_records(records_path)
        ours = {record["key"] for record in records}
        kept = {record["key"]: record for record in others}
        for record in old:
            if record.get("code") == state.fingerprint and record["key"] not in ours:
                kept.setdefault(record["key"], record)
        write_atomic(records_path, "".join(record_line(r) for r in [*records, *kept.values()]))
        run.comparison = compare_records(previous_text, records_path.read_text(encoding="utf-8"))
        state.log.path.unlink()
    rows = study.summarize(records, context)
    write_csv(folder / f"{study.name}.csv", rows)
    if plot:
        study.plot(rows, context, folder / study.name)
    meta_path = folder / "meta.json"
    meta = meta_for(study, context, cells, run, read_meta(meta_path))
    write_atomic(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return rows


def read_meta(path: Path) -> dict | None:
    """A previous ``meta.json``, or ``None`` when there is none or it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def chunk_cells(base: dict, replicates: int, chunk: int) -> list[dict]:
    """Split ``replicates`` of one point into cells of at most ``chunk`` replicates (key ``chunk``)."""
    count = math.ceil(replicates / chunk)
    return [
        {**base, "chunk": index, "replicates": min(chunk, replicates - index * chunk)}
        for index in range(count)
    ]


def group_records(records: Iterable[dict], *names: str) -> dict[tuple, list[dict]]:
    """Records grouped by the values of parameters ``names`` (chunks of one point merge), in order."""
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault(tuple(record["params"][n] for n in names), []).append(record)
    return groups
