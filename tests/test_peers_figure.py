"""scripts/peers_figure.py: asv rows to ratios, floor, crossover and claims, on a synthetic results file
whose times are chosen so each number is known in advance."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import pytest

from favor_bench import peers
from favor_bench.asv_results import benchmark_rows, newest_results_file

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("peers_figure", ROOT / "scripts" / "peers_figure.py")
figure = importlib.util.module_from_spec(spec)
spec.loader.exec_module(figure)

SGEMM, EXP = 100.0, 1.0
SPEED = {"favor-bench": 1.0, "favor-bench-compiled": 0.5, "performer-pytorch": 3.0, "sdpa": None}


def _time(implementation, mode, attention_pass, length):
    """favor-bench L·1e-6 s (causal 1.2x), compiled half that, performer 3x it, SDPA L²·5e-10 s (0.51x
    favor-bench at 1024, 2.05x at 4096; 1.02x compiled at 1024).

    Forward+backward doubles every time.
    """
    base = length * 1e-6 * (1.2 if mode == "causal" else 1.0) * (2 if attention_pass != "forward" else 1)
    if implementation == "sdpa":
        return length**2 * 5e-10 * (2 if attention_pass != "forward" else 1)
    return base * SPEED[implementation]


def _results_file(tmp_path):
    names = figure.NAMES
    values = [common_backends(), peers.IMPLEMENTATIONS, peers.MODES, peers.PASSES, peers.LENGTHS]
    result = [
        _time(i, m, p, length) if b == "torch:cpu" else None
        for b, i, m, p, length in itertools.product(*values)
    ]
    columns = ["result", "params"]
    data = {
        "commit_hash": "0123456789abcdef",
        "date": 1,
        "params": {"python": "3.11", "machine": "test"},
        "result_columns": columns,
        "results": {
            figure.TIME_KEY: [result, [[repr(v) for v in options] for options in values]],
            figure.SGEMM_KEY: [
                [SGEMM if b == "torch:cpu" else None for b in common_backends()],
                [[repr(b) for b in common_backends()]],
            ],
            figure.EXP_KEY: [
                [EXP if b == "torch:cpu" else None for b in common_backends()],
                [[repr(b) for b in common_backends()]],
            ],
        },
    }
    assert len(names) == len(values)
    folder = tmp_path / "machine"
    folder.mkdir(parents=True)
    (folder / "machine.json").write_text("{}")
    (folder / "0123-env.json").write_text(json.dumps(data))
    return tmp_path


def common_backends():
    from favor_bench import common

    return common.BACKENDS


def test_rows_ratios_floor_and_crossover_follow_the_times(tmp_path):
    results = _results_file(tmp_path)
    path = newest_results_file(results, figure.TIME_KEY)
    data = json.loads(path.read_text())
    times = benchmark_rows(data, figure.TIME_KEY, figure.NAMES)
    assert {r["backend"] for r in times} == {"torch:cpu"}
    rows = figure.table(times, "torch:cpu", SGEMM, EXP)
    for row in rows:
        expected = _time("sdpa", row["mode"], row["pass"], row["L"]) / _time(
            "favor-bench", row["mode"], row["pass"], row["L"]
        )
        assert row["sdpa_over_favor-bench"] == pytest.approx(expected, rel=1e-12)
        assert row["performer-pytorch_over_favor-bench"] == pytest.approx(3.0, rel=1e-12)
        assert row["performer-pytorch_over_favor-bench-compiled"] == pytest.approx(6.0, rel=1e-12)
        if row["pass"] == "forward":
            heads = peers.BATCH * peers.HEADS
            floor = 8 * heads * row["L"] * peers.M * peers.D / 100e9 + 2 * heads * row["L"] * peers.M / 1e9
            assert row["floor_s"] == pytest.approx(floor, rel=1e-12)
            for name in ("favor-bench", "favor-bench-compiled", "performer-pytorch"):
                assert row[f"{name}_over_floor"] == pytest.approx(row[f"{name}_s"] / floor, rel=1e-12)
        else:
            assert row["floor_s"] is None
    assert figure.crossover(rows, "bidirectional", "forward") == "L = 4096"
    assert figure.crossover(rows, "bidirectional", "forward", "favor-bench-compiled") == "L = 1024"
    verdicts = {c["claim"]: c for c in figure.claims(rows)}
    for ours in figure.OURS:
        bidirectional = f"{ours}: bidirectional forward >= 2x performer-pytorch at every measured L >= 1024"
        assert verdicts[bidirectional]["verdict"] == "met"
        causal_peer = verdicts[f"{ours}: causal forward >= 10x performer-pytorch at every measured L >= 1024"]
        assert causal_peer["verdict"] == "not attainable"
        assert "within 10x of the floor (0.49 at L = 1024" in causal_peer["measured"]
        causal = verdicts[f"{ours}: causal forward <= 1.5x bidirectional at every measured L"]
        assert causal["verdict"] == "met" and causal["measured"] == "largest causal/bidirectional 1.20"


def test_crossover_needs_every_larger_length_to_be_faster():
    rows = [
        {
            "mode": "causal",
            "pass": "forward",
            "L": length,
            "favor-bench_s": 1.0,
            "sdpa_over_favor-bench": ratio,
        }
        for length, ratio in ((1024, 2.0), (4096, 0.5), (16384, 3.0))
    ]
    assert figure.crossover(rows, "causal", "forward") == "L = 16384"
    rows[-1]["sdpa_over_favor-bench"] = 0.9
    assert figure.crossover(rows, "causal", "forward") == "never (in the measured range)"


def test_the_figure_script_writes_its_outputs(tmp_path):
    results = _results_file(tmp_path / "asv")
    out = tmp_path / "out"
    assert figure.main(["--results-dir", str(results), "--out", str(out)]) == 0
    rows = (out / "peers.csv").read_text().splitlines()
    assert len(rows) == 1 + len(peers.MODES) * len(peers.PASSES) * len(peers.LENGTHS)
    assert json.loads((out / "meta.json").read_text())["commit"] == "0123456789abcdef"


def test_a_missed_ratio_is_not_attainable_only_where_the_peer_runs_near_the_floor(tmp_path):
    """A ratio below the target is "not attainable" only if the peer's own time is within the target
    of the floor at every length where it is missed; one length with room left makes it "not met"."""
    rows = [
        {
            "mode": "bidirectional",
            "pass": "forward",
            "L": length,
            "p_over_favor-bench": r,
            "p_over_floor": bound,
        }
        for length, r, bound in ((1024, 1.5, 1.8), (4096, 2.5, 4.0), (16384, 3.0, 5.0))
    ]
    verdict = figure.peer_claim(rows, "p", "bidirectional", 2.0)
    assert verdict["verdict"] == "not attainable"
    assert verdict["measured"].endswith("(1.80 at L = 1024)")
    rows[1]["p_over_favor-bench"] = 1.9
    assert figure.peer_claim(rows, "p", "bidirectional", 2.0)["verdict"] == "not met"
    rows[1]["p_over_favor-bench"] = 2.5
    rows[0]["p_over_floor"] = 2.2
    assert figure.peer_claim(rows, "p", "bidirectional", 2.0)["verdict"] == "not met"
    assert figure.peer_claim(rows, "p", "causal", 2.0)["verdict"] == "n/a"
