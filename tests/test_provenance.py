"""Provenance: records are reused only by the code that computed them, recompute runs compare
byte for byte, meta.json names what computed the records and this study's own cost, and the
committed results were computed by the code in this tree.

``TINY`` is the tiny study of ``tests.test_studies`` (two estimators, two chunks each).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

import studies
from studies import __main__ as cli
from studies import smreg
from studies.core import loop, provenance, records
from studies.core.cells import Context
from studies.core.loop import StudyFailure, run_studies
from studies.core.records import read_records

from . import test_studies

ROOT = Path(__file__).resolve().parent.parent
TINY = test_studies.STUDY


def _run(out, study=TINY, **options):
    return run_studies([study], Context(seed=5), out=out, progress=False, **options)


def _folder(out):
    return Path(out) / TINY.name


def _meta(out):
    return json.loads((_folder(out) / "meta.json").read_text())


def test_fingerprint_covers_every_estimators_file_the_study_module_and_the_runner():
    files = provenance.source_files(TINY.module_name)
    estimators = {p for p in (ROOT / "estimators").rglob("*.py") if "__pycache__" not in p.parts}
    assert estimators <= set(files)
    assert {ROOT / "studies" / "core" / "loop.py", ROOT / "tests" / "test_studies.py"} <= set(files)


def test_fingerprint_changes_with_any_byte_of_any_source(tmp_path):
    paths = [tmp_path / "a.py", tmp_path / "b.py"]
    paths[0].write_text("x = 1\n")
    paths[1].write_text("y = 2\n")
    before = provenance.fingerprint_of(paths, tmp_path)
    assert provenance.fingerprint_of(paths, tmp_path) == before
    paths[1].write_text("y = 3\n")
    assert provenance.fingerprint_of(paths, tmp_path) != before
    paths[1].write_text("y = 2\n")
    renamed = tmp_path / "c.py"
    paths[1].rename(renamed)
    assert provenance.fingerprint_of([paths[0], renamed], tmp_path) != before


def test_unchanged_code_reuses_every_record_and_keeps_who_computed_them(tmp_path):
    _run(tmp_path)
    first = _meta(tmp_path)
    records = (_folder(tmp_path) / "records.jsonl").read_bytes()
    results = _run(tmp_path)
    second = _meta(tmp_path)
    assert first["cells"] == {"total": 4, "computed": 4, "reused": 0}
    assert second["cells"] == {"total": 4, "computed": 0, "reused": 4}
    assert second["computed_by"] == first["computed_by"]
    assert second["wall_time_s"] == second["compute_time_s"] == 0
    assert (_folder(tmp_path) / "records.jsonl").read_bytes() == records
    assert results[TINY.name][1].computed == 0


def test_changed_code_recomputes_every_cell_and_drops_the_old_records(tmp_path, monkeypatch):
    _run(tmp_path)
    old = provenance.code_fingerprint(TINY.module_name)
    monkeypatch.setattr(provenance, "code_fingerprint", lambda module_name: "0" * 64)
    _, run = _run(tmp_path)[TINY.name]
    records = read_records(_folder(tmp_path) / "records.jsonl")
    assert run.computed == 4 and run.discarded == 4
    assert len(records) == 4 and {r["code"] for r in records} == {"0" * 64} != {old}
    assert _meta(tmp_path)["computed_by"]["fingerprint"] == "0" * 64


def test_meta_names_the_commit_the_run_started_from(tmp_path, monkeypatch):
    """A commit made while cells compute must not be named as their author: HEAD is read when the run
    starts (planted: reading it when the meta is written names the later commit)."""
    heads = iter(["a" * 40, "b" * 40])

    def git(root, *args):
        return next(heads) + "\n" if args[0] == "rev-parse" else ""

    monkeypatch.setattr(provenance, "_git", git)
    provenance.git_state.cache_clear()
    try:
        _run(tmp_path)
        assert provenance.git_state(TINY.module_name)["commit"] == "a" * 40
    finally:
        provenance.git_state.cache_clear()
    assert _meta(tmp_path)["computed_by"]["commit"] == "a" * 40


def test_a_source_change_during_the_run_is_flagged(tmp_path, monkeypatch):
    """Spawned workers import study code when they first need it, so a file edited mid-run can mix
    code: the meta says so, and the command line warns."""
    _run(tmp_path)
    assert "note" not in _meta(tmp_path)["computed_by"]
    monkeypatch.setattr(provenance, "code_fingerprint", lambda module_name: "0" * 64)
    _, run = _run(tmp_path)[TINY.name]
    entry = _meta(tmp_path)["computed_by"]
    assert entry["dirty"] is True and entry["note"] == provenance.CHANGED_DURING_RUN
    assert "WARNING: source files changed" in cli._report_line(TINY.name, run, tmp_path, TINY.module_name)


def test_recompute_says_byte_identical_and_catches_a_stale_record(tmp_path):
    _run(tmp_path)
    path = _folder(tmp_path) / "records.jsonl"
    good = path.read_bytes()
    _, run = _run(tmp_path, recompute=True)[TINY.name]
    assert run.computed == 4 and run.comparison == "byte-identical to the previous records"
    assert path.read_bytes() == good
    lines = good.decode().splitlines(keepends=True)
    stale = json.loads(lines[1])
    stale["values"]["n"] += 1
    path.write_text("".join([lines[0], records.record_line(stale), *lines[2:]]))
    _, run = _run(tmp_path, recompute=True)[TINY.name]
    assert run.comparison.startswith("DIFFERENT") and "1 changed, 0 new, 0 gone of 4" in run.comparison
    assert path.read_bytes() == good


def test_a_change_of_fingerprint_alone_is_not_called_a_change_of_values(tmp_path):
    """Recomputing after a code change that left every value alone says so, and a value change in
    the same records is still counted."""
    _run(tmp_path)
    path = _folder(tmp_path) / "records.jsonl"
    good = path.read_bytes()
    lines = [json.loads(line) for line in good.decode().splitlines()]
    relabelled = "".join(records.record_line({**record, "code": "0" * 64}) for record in lines)
    assert records.compare_records(relabelled, good.decode()) == (
        "values identical to the previous records; only the code fingerprint changed (4 of 4 records)"
    )
    lines[0]["values"]["n"] += 1
    stale = "".join(records.record_line({**record, "code": "0" * 64}) for record in lines)
    assert "1 changed, 0 new, 0 gone of 4" in records.compare_records(stale, good.decode())


def test_a_value_change_reports_its_size():
    """The largest relative difference of a changed value, so a rounding-level change (another
    machine's BLAS) reads apart from a real one; a change of fields is said to be one."""
    old = records.record_line({"key": "a", "code": "0", "values": {"s": [1.0, 2.0], "n": 3}})
    rounded = records.record_line({"key": "a", "code": "0", "values": {"s": [1.0, 2.0 + 4e-16], "n": 3}})
    assert "largest relative difference of a changed value 2.2e-16" in records.compare_records(old, rounded)
    moved = records.record_line({"key": "a", "code": "0", "values": {"s": [1.0, 3.0], "n": 3}})
    assert "largest relative difference of a changed value 0.33" in records.compare_records(old, moved)
    reshaped = records.record_line({"key": "a", "code": "0", "values": {"s": [1.0], "n": 3}})
    assert "the changed records differ in their fields" in records.compare_records(old, reshaped)


def test_an_interrupted_recompute_leaves_the_records_alone_and_resumes(tmp_path, monkeypatch):
    _run(tmp_path)
    path = _folder(tmp_path) / "records.jsonl"
    good = path.read_bytes()
    failing = TINY.make_cells(Context(seed=5))[2].key

    def interrupted(cell):
        if cell.key == failing:
            raise RuntimeError("interrupted")
        return smreg.compute(cell)

    flaky = dataclasses.replace(TINY, compute=interrupted)
    monkeypatch.setattr(test_studies, "STUDY", flaky)
    with pytest.raises(StudyFailure, match="interrupted"):
        _run(tmp_path, study=flaky, recompute=True)
    staged = _folder(tmp_path) / loop.RECOMPUTE_LOG
    assert len(read_records(staged)) == 3 and path.read_bytes() == good
    monkeypatch.undo()
    _, run = _run(tmp_path, recompute=True)[TINY.name]
    assert run.computed == 1 and run.comparison == "byte-identical to the previous records"
    assert not staged.exists()


def _sleepy_compute(cell):
    time.sleep(0.3)
    return smreg.compute(cell)


STUDY = dataclasses.replace(
    TINY, name="tiny_smreg_slow", compute=_sleepy_compute, module="tests.test_provenance"
)
"""A tiny study whose cells take 0.3 s each (``STUDY``: workers import it from this module)."""


def test_meta_times_are_the_study_s_own_not_the_run_s_total(tmp_path):
    run_studies([TINY, STUDY], Context(seed=5), out=tmp_path, progress=False)
    fast = json.loads((tmp_path / TINY.name / "meta.json").read_text())
    slow = json.loads((tmp_path / STUDY.name / "meta.json").read_text())
    assert slow["compute_time_s"] >= 4 * 0.3
    assert fast["wall_time_s"] < 4 * 0.3 <= slow["wall_time_s"]


def test_the_cli_reports_computed_reused_and_the_comparison(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "discover", lambda: {TINY.name: TINY})
    arguments = ["run", TINY.name, "--out", str(tmp_path), "--seed", "5", "--quiet", "--executor", "serial"]
    assert cli.main(arguments) == 0
    assert cli.main([*arguments, "--recompute"]) == 0
    assert cli.main(arguments) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(TINY.name)]
    assert lines[0].startswith(f"{TINY.name}: 4 cells computed, 0 reused")
    assert "records byte-identical to the previous records" in lines[1]
    assert lines[2].startswith(f"{TINY.name}: 0 cells computed, 4 reused")


@pytest.mark.parametrize("name", list(studies.discover()))
def test_committed_records_were_computed_by_this_code(name):
    """Every committed study's records and meta.json carry the fingerprint of the code in this tree.

    Fails after any change to ``estimators/``, the study infrastructure or the study's module until
    ``make studies`` has recomputed the study and the new records are committed.
    """
    study = studies.discover()[name]
    folder = ROOT / "results" / name
    fingerprint = provenance.code_fingerprint(study.module_name)
    stale = [r["params"] for r in read_records(folder / "records.jsonl") if r.get("code") != fingerprint]
    assert not stale, (
        f"{len(stale)} committed records of {name} were computed by other code: run make studies"
    )
    assert json.loads((folder / "meta.json").read_text())["computed_by"]["fingerprint"] == fingerprint
