"""Size before work: the work model, the cost model fitted to the run that computed the records, the
plan printed before a run, and the CLI's listing."""

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


def _meta(folder, per_cell=0.0, per_work=0.0, backend="numpy", preset="quick"):
    folder.mkdir(parents=True, exist_ok=True)
    model = {"s_per_cell": per_cell, "s_per_work": per_work}
    meta = {"backend": backend, "preset": preset, "computed_by": {"cost_model": model}}
    (folder / "meta.json").write_text(json.dumps(meta))


def test_the_fit_recovers_a_fixed_cost_per_cell_and_a_cost_per_unit_of_work():
    """Batch times made exactly of 0.05 s per cell and 2e-9 s per unit: the fit returns both to
    rounding, where a rate per unit alone (total time over total work) would charge the fixed cost
    to the work and predict a cell of 10⁹ units 11x too slow."""
    sizes = ((4, 1e6), (8, 3e6), (2, 4e7), (5, 5e5))
    batches = [(cells, work, 0.05 * cells + 2e-9 * work) for cells, work in sizes]
    model = sizing.fit_cost(batches)
    assert model["s_per_cell"] == pytest.approx(0.05, rel=1e-9)
    assert model["s_per_work"] == pytest.approx(2e-9, rel=1e-9)
    rate_only = sum(t for _, _, t in batches) / sum(w for _, w, _ in batches)
    big_cell = 1e9
    assert rate_only * big_cell > 11 * (0.05 + 2e-9 * big_cell)


def test_the_fit_keeps_both_costs_non_negative_and_needs_a_batch():
    model = sizing.fit_cost([(1, 1e6, 1.0), (1, 2e6, 1.5), (1, 4e6, 2.5)])
    assert model["s_per_cell"] >= 0 and model["s_per_work"] >= 0
    assert sizing.fit_cost([(2, 0.0, 1.0)]) == {"s_per_cell": 0.5, "s_per_work": 0.0}
    assert sizing.fit_cost([]) is None


def test_the_estimate_comes_from_the_cost_model_of_the_same_backend(tmp_path):
    work = sum(sizing.work(cell) for cell in TINY.cells("quick"))
    _meta(tmp_path / TINY.name, per_cell=0.5, per_work=1e-6)
    cells, seconds = sizing.estimate(TINY, Context(), tmp_path)
    assert cells == 4 and seconds == pytest.approx(4 * 0.5 + 1e-6 * work, rel=1e-12)
    assert sizing.estimate(TINY, Context(backend="torch"), tmp_path)[1] is None
    assert sizing.estimate(TINY, Context(), tmp_path / "none")[1] is None


def test_the_estimate_prefers_a_run_of_the_same_preset_then_the_committed_runs(tmp_path, monkeypatch):
    """``out`` holds a quick run and the committed paper run another model: a paper estimate takes
    the paper run's, a quick estimate the run in ``out``; with nothing in ``out`` the committed runs
    serve, and the same preset still comes first."""
    monkeypatch.chdir(tmp_path)
    _meta(tmp_path / "out" / TINY.name, per_cell=1.0, preset="quick")
    _meta(tmp_path / "results" / TINY.name, per_cell=3.0, preset="quick")
    _meta(tmp_path / "results" / "paper" / TINY.name, per_cell=2.0, preset="paper")
    paper_cells = len(TINY.cells("paper"))
    assert sizing.estimate(TINY, Context(preset="paper"), "out") == (paper_cells, 2.0 * paper_cells)
    assert sizing.estimate(TINY, Context(), "out") == (4, 4.0)
    assert sizing.estimate(TINY, Context(), "none") == (4, 12.0)
    assert sizing.estimate(TINY, Context(preset="paper"), "none") == (paper_cells, 2.0 * paper_cells)


def test_a_run_records_its_fitted_cost_model(tmp_path):
    test_studies._run(tmp_path)
    meta = json.loads((tmp_path / TINY.name / "meta.json").read_text())
    model = meta["computed_by"]["cost_model"]
    assert model["s_per_cell"] >= 0 and model["s_per_work"] >= 0
    cells, seconds = sizing.estimate(TINY, Context(), tmp_path)
    assert cells == 4 and 0 < seconds < 10 * meta["compute_time_s"]


def test_the_plan_is_one_line_for_a_short_run_and_per_study_for_a_long_or_unknown_one(tmp_path):
    _meta(tmp_path / TINY.name, per_cell=2.0)
    assert len(sizing.plan([TINY], Context(), tmp_path, workers=2)) == 1
    _meta(tmp_path / TINY.name, per_cell=100.0)
    lines = sizing.plan([TINY], Context(), tmp_path, workers=2)
    assert lines[0] == f"  {TINY.name}: 4 cells, compute ~7 min"
    assert lines[1].startswith("4 cells (quick preset); estimated wall time ~3 min on 2 worker(s)")
    assert "unknown" in sizing.plan([TINY], Context(), tmp_path / "none", workers=2)[-1]


def test_list_shows_cells_and_time_per_study(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "discover", lambda: {TINY.name: TINY})
    _meta(tmp_path / TINY.name, per_cell=2.0)
    assert cli.main(["list", "--out", str(tmp_path), "--preset", "paper"]) == 0
    assert capsys.readouterr().out.startswith(f"{TINY.name}  4 cells, compute ~8 s  ")
