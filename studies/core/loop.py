"""The run loop: compute missing cells, append their records, then summaries, plots and metadata.

Batches of cells go through a ``concurrent.futures.Executor`` (:mod:`studies.core.executors`); each
finished record is appended to ``<out>/<study>/records.jsonl`` stamped with the study's code
fingerprint (:mod:`studies.core.provenance`). A rerun skips the cells whose record the same code
already wrote (records of other code are recomputed and dropped); ``recompute`` computes every cell
again and compares. Each study then gets its CSV summary, its plot (PNG + SVG) and ``meta.json``
(the fingerprint, commit and dirty state that computed the records, versions, backend, device,
dtype, seed, preset, the study's own cells computed/reused and times). Wall times live only in
``meta.json``.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import json
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import interrupts, provenance, sizing
from .cells import DEFAULT_OUT, Cell, Context, Study, canonical_json, study_dir
from .executors import SerialExecutor
from .montecarlo import jsonable
from .records import (
    RecordLog,
    canonical_records,
    compare_records,
    read_meta,
    read_records,
    record_line,
    text_if_exists,
    write_atomic,
    write_csv,
)


def study_of(cell: Cell) -> Study:
    """The :class:`Study` a cell belongs to (imported from ``cell.module``)."""
    return importlib.import_module(cell.module).STUDY


def run_cell(cell: Cell) -> dict:
    """Compute one cell: a pure, top-level, picklable function of the cell.

    Returns the record ``{"key", "study", "params", "context", "values"}``; ``values`` is the study's
    ``compute(cell)`` made JSON-safe (NaN or Inf raise ``ValueError``: never written silently).
    """
    values = jsonable(study_of(cell).compute(cell))
    canonical_json(values)
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


def meta_for(study: Study, context: Context, cells: Sequence[Cell], run: StudyRun, previous: dict | None):
    """The ``meta.json`` dict of one study run: what computed the records, and this run's own cost.

    ``computed_by`` names the code fingerprint, commit and dirty state that computed the records
    (:func:`studies.core.provenance.computed_by`); ``cells`` and the times are this study's alone:
    ``wall_time_s`` from its first cell's start to its last cell's end, ``compute_time_s`` the sum of
    its batches' times in the workers (both 0 when every record was reused).
    """
    return {
        "study": study.name,
        "title": study.title,
        "claim": study.claim,
        "computed_by": provenance.computed_by(
            study.module_name, run.computed, run.compute_time, previous, sizing.fit_cost(run.batches)
        ),
        "versions": provenance.package_versions(context.backend),
        **asdict(context),
        "executor": run.executor,
        "platform": platform.platform(),
        "cells": {"total": len(cells), "computed": run.computed, "reused": len(cells) - run.computed},
        "wall_time_s": round(run.wall_time, 3),
        "compute_time_s": round(run.compute_time, 3),
    }


RECOMPUTE_LOG = ".recompute.jsonl"


"""Records of a ``recompute`` run in progress; they replace ``records.jsonl`` when the study ends."""


@dataclass
class StudyRun:
    """What one run did for one study.

    ``total`` is the study's number of cells, ``computed`` how many this run computed;
    ``started``/``finished`` are epoch seconds of its first batch's start and last batch's end in
    the workers, ``compute_time`` the sum of its batches' times there (``batches``: each batch's
    cells, work and seconds); ``comparison`` (recompute runs)
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
    batches: list = field(default_factory=list)

    @property
    def wall_time(self) -> float:
        return 0.0 if self.started is None else self.finished - self.started

    def add_batch(self, count: int, work: float, started: float, finished: float) -> None:
        """Count a finished batch of ``count`` cells and ``work`` units (:func:`sizing.work`)."""
        self.computed += count
        self.compute_time += finished - started
        self.batches.append((count, work, finished - started))
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
    (:func:`studies.core.provenance.code_fingerprint`); records of other code are recomputed and dropped.
    With ``recompute``, the existing ``records.jsonl`` is not reused: every cell is computed again into
    ``.recompute.jsonl`` (which an interrupted recompute run resumes), the result replaces
    ``records.jsonl`` and ``StudyRun.comparison`` says whether it is byte-identical to the old file.

    All studies' batches are in flight together, and each study is finished (records, CSV, plot,
    meta) as soon as its last batch lands, while the workers compute the others. Returns
    ``{study name: (CSV rows, StudyRun)}`` in the order of ``studies``; raises :class:`StudyFailure`
    (after finishing the other studies) if cells of some study raised.
    """
    executor = executor or SerialExecutor()
    pending, finished = {}, {}

    def finish(name: str) -> None:
        state = pending[name]
        state.log.close()
        finished[name] = (finish_study(state, context, Path(out), plot), state.run)

    try:
        for study in studies:
            cells = study.make_cells(context)
            folder = study_dir(out, study)
            log = RecordLog(folder / (RECOMPUTE_LOG if recompute else "records.jsonl"))
            fingerprint = provenance.code_fingerprint(study.module_name)
            provenance.git_state(study.module_name)
            done = {record["key"] for record in read_records(log.path) if record.get("code") == fingerprint}
            run = StudyRun(executor_name, total=len(cells))
            pending[study.name] = _Pending(study, cells, log, fingerprint, done, run)
        _compute(pending, executor, progress, finish)
        results = {name: finished[name] for name in pending if name in finished}
    finally:
        for state in pending.values():
            state.log.unlock()
    failures = {name: state.errors for name, state in pending.items() if state.errors}
    if failures:
        raise StudyFailure(failures, results)
    return results


def _compute(pending: dict, executor, progress: bool, finish) -> None:
    """Submit every missing cell in batches; append records as batches finish; note failures;
    ``finish(name)`` each study whose cells are all recorded without a failure, as soon as they are."""
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
    futures, unfinished = {}, {name: len(cells) for name, cells in todo.items()}
    try:
        for name, cells in todo.items():
            for batch in _batches(cells, pending[name].study.batch_size):
                work = sum(sizing.work(cell.kwargs) for cell in batch)
                futures[executor.submit(timed_batch, batch)] = (name, len(batch), work)
        for name in [name for name, count in unfinished.items() if not count]:
            finish(name)
        for future in interrupts.finished(futures):
            name, count, work = futures[future]
            state = pending[name]
            unfinished[name] -= count
            try:
                records, started, finished = future.result()
            except Exception as error:
                state.errors.append(f"{type(error).__name__}: {error}")
                continue
            for record in records:
                state.log.append({**record, "code": state.fingerprint})
                bar.update(1)
            state.run.add_batch(len(records), work, started, finished)
            if not unfinished[name] and not state.errors:
                finish(name)
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


def finish_study(state: _Pending, context: Context, out: Path, plot: bool = True) -> list[dict]:
    """Canonical records, CSV, plot and meta.json for one study; returns the CSV rows."""
    study, cells, run = state.study, state.cells, state.run
    context = context.for_study(study.dtype)
    folder = study_dir(out, study)
    records_path = folder / "records.jsonl"
    previous_text = text_if_exists(records_path)
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
