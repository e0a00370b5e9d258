"""Studies: cells and seeds, resumable byte-identical records, executors (serial, process pool, Dask),
backend agreement, the CLI, and every study end to end at a tiny size.

The tiny study below (``STUDY``) reuses the smreg study's compute and summary on two small cells;
it lives in this module so that worker processes can import it by name.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import studies
from studies import __main__ as cli
from studies import smreg, uniform_convergence
from studies.core import montecarlo, records
from studies.core.cells import Cell, Context, Study
from studies.core.executors import make_executor
from studies.core.loop import StudyFailure, run_cell, run_studies
from studies.core.records import read_records

from .conftest import BACKENDS


def _tiny_cells(preset):
    return [
        {"d": 4, "m": 4, "estimator": name, "chunk": chunk, "replicates": 300}
        for name in ("positive-iid", "positive-iid-fixed")
        for chunk in range(2)
    ]


def _no_plot(rows, context, stem):
    Path(stem).with_suffix(".txt").write_text("plot\n")


STUDY = Study(
    name="tiny_smreg",
    title="tiny",
    claim="tiny copy of the smreg study for tests",
    cells=_tiny_cells,
    compute=smreg.compute,
    summarize=smreg.summarize,
    plot=_no_plot,
    module="tests.test_studies",
)


def _run(out, executor=None):
    return run_studies([STUDY], Context(seed=5), out=out, executor=executor, progress=False)


def _files(out):
    folder = Path(out) / "tiny_smreg"
    return (folder / "records.jsonl").read_bytes(), (folder / "tiny_smreg.csv").read_bytes()


def test_cell_key_is_stable_and_seed_ignores_backend():
    a = Cell.build("m", "s", {"b": 1, "a": 2.5}, Context())
    b = Cell.build("m", "s", {"a": 2.5, "b": 1}, Context())
    torch_cell = Cell.build("m", "s", {"a": 2.5, "b": 1}, Context(backend="torch"))
    assert a == b and hash(a) == hash(b) and a.key == b.key
    assert torch_cell.key != a.key
    assert torch_cell.seed_key == a.seed_key
    other_seed = Cell.build("m", "s", {"a": 2.5, "b": 1}, Context(seed=1))
    assert other_seed.rng().random() != a.rng().random()
    assert a.rng().random() == b.rng().random()


def test_a_cell_in_another_dtype_keeps_its_parameters_and_streams():
    cell = Cell.build("m", "s", {"a": 2.5}, Context(dtype="float32", seed=4))
    wide = cell.in_dtype("float64")
    assert wide.context.dtype == "float64" and wide.context.target.dtype == "float64"
    assert wide.kwargs == cell.kwargs and wide.seed_key == cell.seed_key
    assert wide.rng().random() == cell.rng().random()


def test_context_rejects_bad_values():
    with pytest.raises(ValueError, match="preset"):
        Context(preset="huge")
    with pytest.raises(ValueError, match="seed"):
        Context(seed=-1)
    with pytest.raises(ValueError, match="rng"):
        Context(rng="fast")


def test_run_cell_is_pure():
    cell = STUDY.make_cells(Context(seed=3))[0]
    assert run_cell(cell) == run_cell(cell)


def test_same_seed_gives_identical_files_serial_and_process_pool(tmp_path):
    _run(tmp_path / "serial")
    with make_executor("local", 2) as (executor, _):
        _run(tmp_path / "pool", executor)
    assert _files(tmp_path / "serial") == _files(tmp_path / "pool")
    meta = json.loads((tmp_path / "pool" / "tiny_smreg" / "meta.json").read_text())
    assert meta["cells"] == {"computed": 4, "reused": 0, "total": 4}
    assert {"computed_by", "versions", "backend", "device", "dtype", "seed", "preset", "wall_time_s"} <= set(
        meta
    )
    assert {"fingerprint", "commit", "dirty"} <= set(meta["computed_by"])


def test_dask_local_cluster_gives_the_same_records(tmp_path):
    distributed = pytest.importorskip("distributed")
    _run(tmp_path / "local")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster) as client:
            _run(tmp_path / "dask", client.get_executor(pure=False))
        address = cluster.scheduler_address.split("://", 1)[1]
        with make_executor(f"dask://{address}") as (executor, _):
            _run(tmp_path / "dask-url", executor)
    assert _files(tmp_path / "local") == _files(tmp_path / "dask") == _files(tmp_path / "dask-url")


def test_dask_local_executor_spec_gives_the_same_records(tmp_path):
    pytest.importorskip("distributed")
    _run(tmp_path / "local")
    with make_executor("dask-local", 1) as (executor, description):
        _run(tmp_path / "dask", executor)
    assert description.startswith("dask-local")
    assert _files(tmp_path / "local") == _files(tmp_path / "dask")


def test_interrupted_run_keeps_finished_cells_and_recomputes_none(tmp_path, monkeypatch):
    _run(tmp_path / "fresh")
    fresh = _files(tmp_path / "fresh")
    failing = STUDY.make_cells(Context(seed=5))[2].key

    def interrupted(cell):
        if cell.key == failing:
            raise CellInterrupted("interrupted")
        return smreg.compute(cell)

    flaky = dataclasses.replace(STUDY, compute=interrupted)
    monkeypatch.setattr(sys.modules[__name__], "STUDY", flaky)
    with pytest.raises(StudyFailure, match="interrupted"):
        run_studies([flaky], Context(seed=5), out=tmp_path / "resumed", progress=False)
    records_path = tmp_path / "resumed" / "tiny_smreg" / "records.jsonl"
    assert len(read_records(records_path)) == 3
    with records_path.open("a") as stream:
        stream.write('{"key": "torn')
    monkeypatch.undo()
    _run(tmp_path / "resumed")
    meta = json.loads((tmp_path / "resumed" / "tiny_smreg" / "meta.json").read_text())
    assert meta["cells"]["computed"] == 1
    assert _files(tmp_path / "resumed") == fresh


class _HeldExecutor(concurrent.futures.Executor):
    """Runs the batches of ``held`` study only once ``release()`` is true (or after 20 s), in a
    thread; every other batch at submit time. ``seen`` records ``release()`` at each held batch."""

    def __init__(self, held, release):
        self.held, self.release, self.seen, self.threads = held, release, [], []

    def submit(self, fn, batch):
        future = concurrent.futures.Future()
        if batch[0].study != self.held:
            future.set_result(fn(batch))
            return future

        def later():
            deadline = time.monotonic() + 20
            while not self.release() and time.monotonic() < deadline:
                time.sleep(0.01)
            self.seen.append(self.release())
            future.set_result(fn(batch))

        self.threads.append(threading.Thread(target=later, daemon=True))
        self.threads[-1].start()
        return future


def test_a_study_is_finished_while_the_others_still_compute(tmp_path):
    """The first study's files are written before the second study's cells return (planted: finishing
    only after every batch would leave the held batches waiting out their deadline, ``seen`` False)."""
    second = dataclasses.replace(STUDY, name="tiny_smreg_second")
    executor = _HeldExecutor(second.name, (tmp_path / STUDY.name / "meta.json").exists)
    results = run_studies([STUDY, second], Context(seed=5), out=tmp_path, executor=executor, progress=False)
    assert executor.seen and all(executor.seen)
    assert list(results) == [STUDY.name, second.name]
    assert (tmp_path / second.name / "meta.json").exists()


def test_a_second_run_into_the_same_folder_is_refused(tmp_path):
    log = records.RecordLog(tmp_path / "tiny_smreg" / "records.jsonl")
    try:
        with pytest.raises(ValueError, match="another run"):
            _run(tmp_path)
    finally:
        log.unlock()
    _run(tmp_path)


class CellInterrupted(RuntimeError):
    """Stands in for an interruption inside one cell."""


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_backends_agree_with_numpy_given_the_same_draws(backend):
    numpy_record = run_cell(STUDY.make_cells(Context(seed=2))[0])
    other = run_cell(STUDY.make_cells(Context(seed=2, backend=backend))[0])
    for name in ("s1", "s2", "s4"):
        np.testing.assert_allclose(other["values"][name], numpy_record["values"][name], rtol=1e-9)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_native_rng_path_runs_on_the_backend(backend):
    record = run_cell(STUDY.make_cells(Context(seed=2, backend=backend, rng="native"))[0])
    assert record["values"]["n"] == 300 and record["context"]["rng"] == "native"


def test_moment_summary_matches_direct_computation():
    rng = np.random.default_rng(0)
    errors = rng.standard_normal((500, 3))
    chunks = [montecarlo.error_moments(errors[:200]), montecarlo.error_moments(errors[200:])]
    summary = montecarlo.moment_summary(montecarlo.merge_moments(chunks))
    np.testing.assert_allclose(summary["bias"], errors.mean(0), rtol=1e-12)
    np.testing.assert_allclose(summary["mse"], (errors**2).mean(0), rtol=1e-12)
    sd = errors.std(0, ddof=1)
    np.testing.assert_allclose(summary["bias_ci"], 2.576 * sd / np.sqrt(500), rtol=1e-9)


def test_replicate_chunks_respect_the_budget():
    sizes = montecarlo.replicate_chunks(1000, 300, budget=3000)
    assert sum(sizes) == 1000 and max(sizes) * 300 <= 3000


def test_json_records_refuse_nan():
    with pytest.raises(ValueError):
        records.record_line({"values": float("nan")})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "nope"], "unknown study"),
        (["all", "--backend", "cupy"], "--backend"),
        (["all", "--device", "cuda"], "device"),
        (["all", "--preset", "huge"], "--preset"),
        (["all", "--executor", "ray"], "executor"),
        (["all", "--seed", "-3"], "seed"),
        ([], "required"),
    ],
)
def test_cli_bad_arguments_give_one_line_and_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_cli_lists_every_study(capsys):
    assert cli.main(["list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed[: len(studies.ORDER)] == list(studies.ORDER)


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_every_study_builds_distinct_cells_for_each_preset(preset):
    for study in studies.discover().values():
        cells = study.make_cells(Context(preset=preset))
        assert cells and len({cell.key for cell in cells}) == len(cells)


TINY = {
    "unbiasedness": {"d": 4, "m": 4, "replicates": 200, "chunk": 200},
    "mse_vs_features": {"d": 4, "ms": (2, 4), "replicates": 200, "chunk": 200},
    "trig_vs_positive": {"d": 4, "m": 4, "replicates": 200, "chunk": 200},
    "orthogonal_gain": {
        "ms": (2, 4),
        "ds": (2, 4),
        "replicates": 200,
        "trig_replicates": 200,
        "chunk": 200,
        "trig_chunk": 200,
    },
    "smreg": {"d": 4, "m": 4, "replicates": 200, "chunk": 200},
    "attention_error": {"d": 4, "L": 16, "queries": 4, "ms": (4, 8), "draws": 2, "replicates": 3},
    "uniform_convergence": {"d": 4, "ms": (4, 8), "Ls": (8, 16), "Rs": (1.0, 2.0), "draws": 5},
    "causal_stability": {"d": 16, "L": 16, "m": 16, "draws": 2},
    "estimator_shootout": {
        "d": 4,
        "ms": (2, 4),
        "replicates": 40,
        "chunk": 40,
        "attention": {"d": 4, "L": 8, "m": 4, "draws": 1, "replicates": 2},
    },
    "attention_metrics": {"d": 4, "L": 16, "ms": (4, 8), "draws": 2, "replicates": 6},
}


@pytest.mark.parametrize("name", studies.ORDER)
def test_every_study_runs_end_to_end_at_a_tiny_size(name, tmp_path, monkeypatch):
    module = importlib.import_module(f"studies.{name}")
    monkeypatch.setitem(module.PRESETS, "quick", TINY[name])
    results = run_studies([module.STUDY], Context(), out=tmp_path, progress=False)
    folder = tmp_path / name
    assert results[name]
    for suffix in (".csv", ".png", ".svg"):
        assert (folder / f"{name}{suffix}").stat().st_size > 0
    assert json.loads((folder / "meta.json").read_text())["study"] == name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_convergence_sup_errors_are_those_of_the_float64_difference(dtype):
    """max |Â − A| per draw, computed in a reused buffer, equals it from Â converted to float64 first."""
    rng = np.random.default_rng(6)
    estimate, exact = rng.standard_normal((3, 4, 5)).astype(dtype), rng.standard_normal((4, 5))
    buffer = np.empty((3, 4, 5))
    expected = np.max(np.abs(estimate.astype(np.float64) - exact), axis=(-2, -1))
    np.testing.assert_array_equal(uniform_convergence.sup_errors_of(estimate, exact, buffer), expected)
