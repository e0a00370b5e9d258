"""Study records on disk: append-only JSONL logs with a folder lock, canonical rewrites, CSVs.

Each finished cell is one JSON line (sorted keys, no NaN), flushed and fsynced as it arrives; a torn
last line (a write cut short) is dropped and reported, any other bad line raises
:class:`CorruptRecords` with what to do. At the end of a study the log is rewritten in cell order
(temp file + rename), so the same seed gives byte-identical records.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import io
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .cells import Cell, canonical_json


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
    return canonical_json(record) + "\n"


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


def compare_records(previous: str | None, new: str) -> str:
    """One sentence comparing a study's new ``records.jsonl`` text with the previous one.

    Byte-identical; identical values computed by other code (only the ``code`` fingerprint differs:
    a change that left every value as it was); or how many records differ in value, appeared or
    disappeared (matched by key).
    """
    if previous is None:
        return "new (there were no previous records)"
    if previous == new:
        return "byte-identical to the previous records"
    old = {record["key"]: record for record in map(json.loads, previous.splitlines()) if record}
    fresh = {record["key"]: record for record in map(json.loads, new.splitlines()) if record}
    common = fresh.keys() & old.keys()
    changed = [key for key in common if _values(fresh[key]) != _values(old[key])]
    added, removed = len(fresh.keys() - old.keys()), len(old.keys() - fresh.keys())
    if not (changed or added or removed):
        return (
            f"values identical to the previous records; only the code fingerprint changed "
            f"({sum(1 for key in common if fresh[key] != old[key])} of {len(fresh)} records)"
        )
    size = ""
    if changed:
        largest = max(_relative_difference(fresh[key]["values"], old[key]["values"]) for key in changed)
        size = (
            "; the changed records differ in their fields"
            if np.isinf(largest)
            else f"; largest relative difference of a changed value {largest:.2g}"
        )
    return (
        f"DIFFERENT from the previous records ({len(changed)} changed, {added} new, {removed} gone of "
        f"{len(fresh)}{size}): the previous records were stale, the computation is not deterministic, "
        "or (a difference near the working precision) another machine rounded differently (CPU, BLAS, "
        "library versions)"
    )


def _relative_difference(new, old) -> float:
    """The largest |new − old| / max(|new|, |old|) over the numbers of two records' values (nested
    dicts and lists); infinite where their fields or shapes differ, or a non-number differs."""
    if isinstance(new, dict) and isinstance(old, dict):
        if new.keys() != old.keys():
            return np.inf
        return max((_relative_difference(new[name], old[name]) for name in new), default=0.0)
    if isinstance(new, list) and isinstance(old, list):
        if len(new) != len(old):
            return np.inf
        return max((_relative_difference(a, b) for a, b in zip(new, old, strict=True)), default=0.0)
    numbers = (int, float)
    if isinstance(new, numbers) and isinstance(old, numbers) and not isinstance(new, bool):
        scale = max(abs(new), abs(old))
        return 0.0 if scale == 0 else abs(new - old) / scale
    return 0.0 if new == old else np.inf


def _values(record: dict) -> dict:
    """A record without its provenance field (``code``)."""
    return {name: value for name, value in record.items() if name != "code"}


def text_if_exists(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def read_meta(path: Path) -> dict | None:
    """A previous ``meta.json``, or ``None`` when there is none or it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
