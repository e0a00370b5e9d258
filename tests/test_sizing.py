"""Size before work: the work model, the rate taken from the run that computed the records, the plan
printed before a run, and the CLI's listing."""

from __future__ import annotations

import json

import pytest

from studies import __main__ as cli
from studies.core import sizing
from studies.core.cells import Context

from . import test_studies

TINY = test_studies.STUDY


def test_work_multiplies_replicates_features_dimension_and_keys():
    assert sizing.work({"replicates": 10, "m": 4, "d": 3, "L": 5, "chunk": 7}) == 600
    assert sizing.work({"draws": 10, "m": 4, "d": 3}) == 120
    assert sizing.work({"estimator": "x"}) == 1


def _meta(folder, **computed_by):
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"backend": "numpy", "preset": "quick", "computed_by": computed_by}
    (folder / "meta.json").write_text(json.dumps(meta))


def test_the_rate_comes_from_a_run_that_computed_every_cell(tmp_path):
    work = sum(sizing.work(cell) for cell in TINY.cells("quick"))
    _meta(tmp_path / TINY.name, cells=4, compute_time_s=8.0)
    cells, seconds = sizing.estimate(TINY, Context(), tmp_path)
    assert cells == 4 and seconds == pytest.approx(8.0)
    assert sizing.seconds_per_work(
        json.loads((tmp_path / TINY.name / "meta.json").read_text()), TINY, "numpy"
    ) == (pytest.approx(8.0 / work))
    assert sizing.estimate(TINY, Context(backend="torch"), tmp_path)[1] is None
    _meta(tmp_path / TINY.name, cells=2, compute_time_s=8.0)
    assert sizing.estimate(TINY, Context(), tmp_path)[1] is None


def test_the_plan_is_one_line_for_a_short_run_and_per_study_for_a_long_or_unknown_one(tmp_path):
    _meta(tmp_path / TINY.name, cells=4, compute_time_s=8.0)
    assert len(sizing.plan([TINY], Context(), tmp_path, workers=2)) == 1
    _meta(tmp_path / TINY.name, cells=4, compute_time_s=400.0)
    lines = sizing.plan([TINY], Context(), tmp_path, workers=2)
    assert lines[0] == f"  {TINY.name}: 4 cells, compute ~7 min"
    assert lines[1].startswith("4 cells (quick preset); estimated wall time ~3 min on 2 worker(s)")
    assert "unknown" in sizing.plan([TINY], Context(), tmp_path / "none", workers=2)[-1]


def test_list_shows_cells_and_time_per_study(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "discover", lambda: {TINY.name: TINY})
    _meta(tmp_path / TINY.name, cells=4, compute_time_s=8.0)
    assert cli.main(["list", "--out", str(tmp_path), "--preset", "paper"]) == 0
    assert capsys.readouterr().out.startswith(f"{TINY.name}  4 cells, compute ~8 s  ")
