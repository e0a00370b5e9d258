"""Operational faults of a study run: each gets one line naming the path or state and what to do,
a non-zero exit status, no lost finished cells and no surviving worker processes.

``STUDY`` here is a slow copy of the tiny smreg study (each cell sleeps ``SLEEP_S``), run in a
subprocess through the real command line so that signals reach a real process tree. The driver
restores Python's Ctrl-C handler: a test run started in the background by a non-interactive shell
inherits SIGINT ignored (as every background job does), and the run would then ignore the signal.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studies import __main__ as cli
from studies import smreg
from studies.core.records import RecordLog, record_line

from . import test_studies

ROOT = Path(__file__).resolve().parent.parent
SLEEP_S = 0.3
TINY = test_studies.STUDY
CELLS = 16


def _slow_compute(cell):
    time.sleep(SLEEP_S)
    return smreg.compute(cell)


def _slow_cells(preset):
    return [
        {"d": 4, "m": 4, "estimator": "positive-iid", "chunk": chunk, "replicates": 50}
        for chunk in range(CELLS)
    ]


STUDY = dataclasses.replace(
    TINY, name="slow_smreg", cells=_slow_cells, compute=_slow_compute, module="tests.test_faults"
)

DRIVER = """
import signal
import sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from studies import __main__ as cli
from tests import test_faults
cli.discover = lambda: {test_faults.STUDY.name: test_faults.STUDY}
sys.exit(cli.main(["run", "slow_smreg", "--quiet", "--workers", "2", "--out", sys.argv[1]]))
"""


def _main(capsys, *arguments):
    status = cli.main(list(arguments))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _tiny(monkeypatch):
    monkeypatch.setattr(cli, "discover", lambda: {TINY.name: TINY})


def _run_tiny(capsys, out, *extra):
    return _main(capsys, "run", TINY.name, "--out", str(out), "--quiet", "--executor", "serial", *extra)


def test_out_onto_a_file_is_one_line(tmp_path, capsys, monkeypatch):
    _tiny(monkeypatch)
    target = tmp_path / "file"
    target.write_text("")
    status, _, err = _run_tiny(capsys, target)
    assert status == cli.EXIT_USAGE
    assert err.strip().splitlines() == [
        f"python -m studies: error: --out {target} is a file, not a folder; give a folder for the results"
    ]


def test_unwritable_out_is_one_line(capsys, monkeypatch):
    _tiny(monkeypatch)
    status, _, err = _run_tiny(capsys, "/sys/favor-bench-results")
    assert status == cli.EXIT_USAGE
    assert len(err.strip().splitlines()) == 1
    assert "--out /sys/favor-bench-results is not writable" in err and "choose a writable folder" in err


@pytest.mark.parametrize(
    ("line", "problem"),
    [("{not json\n", "is not JSON"), ('{"foo": 1}\n', "is not a study record (no 'key')")],
)
def test_a_corrupt_record_line_is_one_line_saying_how_to_recover(
    tmp_path, capsys, monkeypatch, line, problem
):
    _tiny(monkeypatch)
    assert _run_tiny(capsys, tmp_path)[0] == 0
    path = tmp_path / TINY.name / "records.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([lines[0], line, *lines[1:]]))
    status, _, err = _run_tiny(capsys, tmp_path)
    assert status == cli.EXIT_FAILED
    assert err.strip().splitlines() == [
        f"python -m studies: error: {path}:2 {problem}; delete that line to recompute only its cell, "
        "or delete records.jsonl to recompute the study"
    ]


def test_a_torn_last_line_is_repaired_and_reported(tmp_path, capsys, monkeypatch):
    _tiny(monkeypatch)
    _run_tiny(capsys, tmp_path)
    path = tmp_path / TINY.name / "records.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][:20])
    status, out, err = _run_tiny(capsys, tmp_path)
    assert status == 0
    assert f"{path}: dropped a torn last line" in err
    assert f"{TINY.name}: 1 cells computed, 3 reused" in out
    assert path.read_text().splitlines(keepends=True) == lines


def test_a_live_run_s_lock_is_named_with_its_pid(tmp_path, capsys, monkeypatch):
    _tiny(monkeypatch)
    log = RecordLog(tmp_path / TINY.name / "records.jsonl")
    try:
        status, _, err = _run_tiny(capsys, tmp_path)
    finally:
        log.unlock()
    assert status == cli.EXIT_FAILED
    assert f"being written by another run (pid {os.getpid()})" in err and len(err.strip().splitlines()) == 1


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _start(out: Path):
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    records = out / STUDY.name / "records.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if records.exists() and records.read_text().count("\n") >= 2 and len(_descendants(process.pid)) >= 2:
            assert records.read_text().count("\n") < CELLS, "the run finished before it could be stopped"
            return process, _descendants(process.pid)
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"the run did not get going: {process.communicate()}")


def _gone_within(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(pids)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_run_leaves_no_process_and_keeps_finished_cells(tmp_path, signum):
    """SIGINT and SIGTERM end with one line and exit 130; after any of the three, no worker or
    resource-tracker process is left within 5 s, and (after SIGKILL) a rerun reuses every finished cell."""
    process, workers = _start(tmp_path)
    os.kill(process.pid, signum)
    _, err = process.communicate(timeout=30)
    survivors = _gone_within(workers, 5.0)
    assert not survivors, f"processes still alive after {signum.name}: {survivors}"
    if signum != signal.SIGKILL:
        assert process.returncode == cli.EXIT_INTERRUPTED
        assert err.strip().splitlines()[-1].endswith("run the same command again to resume")
    path = tmp_path / STUDY.name / "records.jsonl"
    kept = {
        json.loads(line)["key"] for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")
    }
    assert len(kept) >= 2, err
    if signum != signal.SIGKILL:
        return
    resumed = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{STUDY.name}: {CELLS - len(kept)} cells computed, {len(kept)} reused" in resumed.stdout, resumed
    records = path.read_text().splitlines(keepends=True)
    assert len(records) == CELLS and all(line == record_line(json.loads(line)) for line in records)


def test_a_signal_while_waiting_for_workers_is_raised_after_the_wait(monkeypatch):
    """A signal that arrives while the main thread waits on its workers is noted and raised as the
    interrupt once the wait has returned: raised inside the wait, it can land in threading's lock
    handling and surface as ``RuntimeError: release unlocked lock`` with a traceback. The fake wait
    sends SIGTERM to this process and then records that it ran to its end."""
    from concurrent.futures import Future

    from studies.core import interrupts

    completed = []

    def wait(futures, timeout, return_when):
        os.kill(os.getpid(), signal.SIGTERM)
        completed.append(True)
        return set(), set(futures)

    monkeypatch.setattr(interrupts.concurrent.futures, "wait", wait)
    with interrupts.stop_on_signals(), pytest.raises(KeyboardInterrupt, match="stopped by SIGTERM"):
        list(interrupts.finished([Future()]))
    assert completed == [True]
