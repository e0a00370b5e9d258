"""Cells and studies: what one unit of work is and how it is seeded.

A study (:class:`Study`) is a list of hashable cells and four pure functions. Each :class:`Cell` is
built from the study's parameter dicts and the run's :class:`Context` (backend, device, dtype, RNG
path, root seed, preset) and seeded from ``SeedSequence(root_seed, spawn_key=cell.seed_key)``, a
stable SHA-256 of the study name and the cell's parameters (not Python's ``hash``, and not the
backend), so a cell draws the same numbers in a loop, a process pool or a cluster, and on numpy,
torch and jax when the portable RNG is used.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from estimators.backends import Target, native_rng, resolve_target

PRESETS = ("quick", "paper")


RNG_PATHS = ("portable", "native")
DEFAULT_DTYPE = "float64"
"""Working precision of a study that names none, and of every study when the run names none."""


@dataclass(frozen=True)
class Context:
    """Where and how a run computes: shared by every cell of the run.

    ``rng="portable"`` draws on the host (identical numbers on every backend, for theory checks);
    ``"native"`` draws with the backend's own generator on the device (fast, streams differ).
    ``dtype=None`` lets each study compute in its own working precision (:attr:`Study.dtype`); a
    named dtype applies to every study.
    """

    backend: str = "numpy"
    device: str = "cpu"
    dtype: str | None = DEFAULT_DTYPE
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
        return resolve_target(backend=self.backend, device=self.device, dtype=self.dtype or DEFAULT_DTYPE)

    def for_study(self, study_dtype: str) -> Context:
        """This context with ``dtype`` set to ``study_dtype`` where the run names no dtype."""
        return self if self.dtype is not None else replace(self, dtype=study_dtype)


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _digest(value) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def _spawn_key(value) -> tuple[int, ...]:
    """Four 32-bit words of the SHA-256 of ``value``'s canonical JSON (a stable SeedSequence key)."""
    digest = hashlib.sha256(canonical_json(value).encode()).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


COUNTS_DTYPE = "float64"
"""Precision of the rows that read W through integer counts, whatever the run's dtype."""


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

    def in_dtype(self, dtype: str) -> Cell:
        """This cell computing in ``dtype``: same parameters, so the same seeds and random streams."""
        return replace(self, context=replace(self.context, dtype=dtype))

    def for_estimator(self, row) -> Cell:
        """This cell as ``row`` (:class:`estimators.registry.Estimator`) computes it: in
        :data:`COUNTS_DTYPE` for a row that reads W through integer counts (``row.counts``: rounding
        U to a narrower dtype can move a count, and the estimate by far more), else as it is."""
        return self.in_dtype(COUNTS_DTYPE) if row.counts else self

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
        Draw the rows; save ``stem.png`` and ``stem.svg`` (see :func:`studies.core.plotting.save`).
    batch_size : int
        Cells sent to a worker at once (batch small cells).
    module : str
        Importable module that defines ``STUDY`` (defaults to ``studies.<name>``).
    dtype : str
        Working precision when the run names none (``--dtype``). ``float32`` only for a study whose
        claims are about Monte Carlo errors that float32 rounding cannot move: its tests show the
        float32 and float64 estimates of a cell differ by under 1% of their standard error. Theory
        checks stay float64.
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
    dtype: str = DEFAULT_DTYPE

    @property
    def module_name(self) -> str:
        return self.module or f"studies.{self.name}"

    def make_cells(self, context: Context) -> list[Cell]:
        """Every cell of this study for ``context`` (in the study's dtype if the run names none)."""
        context = context.for_study(self.dtype)
        cells = [Cell.build(self.module_name, self.name, p, context) for p in self.cells(context.preset)]
        keys = [cell.key for cell in cells]
        if len(set(keys)) != len(keys):
            raise ValueError(f"study {self.name!r} lists the same cell twice")
        return cells


DEFAULT_OUT = "results"
"""Where runs write unless told (``--out``): the committed quick-preset results."""
PAPER_RUN_OUT = "results/paper"
"""The committed run of the paper preset (its meta, CSVs, captions and plots; not its records)."""


def study_dir(out: Path | str, study: Study) -> Path:
    """The folder of ``study``'s records, CSV, plot and meta under the output root ``out``."""
    return Path(out) / study.name


def chunk_cells(base: dict, replicates: int, chunk: int) -> list[dict]:
    """Split ``replicates`` of one point into cells of at most ``chunk`` replicates (key ``chunk``)."""
    count = math.ceil(replicates / chunk)
    return [
        {**base, "chunk": index, "replicates": min(chunk, replicates - index * chunk)}
        for index in range(count)
    ]


def powers_of_two(m_min: int, m_max: int) -> list[int]:
    """m_min, 2·m_min, …, m_max: the m of a cell that computes every m from one draw of m_max rows.

    Raises ``ValueError`` unless both are powers of two with m_min ≤ m_max.
    """
    if not all(m >= 1 and m & (m - 1) == 0 for m in (m_min, m_max)) or m_min > m_max:
        raise ValueError(f"m_min and m_max must be powers of two with m_min <= m_max, got {m_min}, {m_max}")
    return [2**k for k in range(m_min.bit_length() - 1, m_max.bit_length())]


def nested_m_range(ms, study: str) -> dict:
    """``{"m_min", "m_max"}`` of a preset's ``ms``, which must be consecutive powers of two (a cell then
    computes every m from one draw of m_max rows; :func:`powers_of_two` gives them back)."""
    m_min, m_max = min(ms), max(ms)
    if powers_of_two(m_min, m_max) != list(ms):
        raise ValueError(f"{study}: ms must be consecutive powers of two, got {tuple(ms)}")
    return {"m_min": m_min, "m_max": m_max}


def group_records(records: Iterable[dict], *names: str) -> dict[tuple, list[dict]]:
    """Records grouped by the values of parameters ``names`` (chunks of one point merge), in order."""
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault(tuple(record["params"][n] for n in names), []).append(record)
    return groups
