"""scripts/peers_figure.py and favor_bench/peer_verdicts.py: asv rows to ratios, floor, crossover
and claims, on a synthetic results file whose times are chosen so each number is known in advance."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import pytest

from favor_bench import peer_verdicts, peers
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
    assert peer_verdicts.crossover(rows, "bidirectional", "forward") == "L = 4096"
    assert peer_verdicts.crossover(rows, "bidirectional", "forward", "favor-bench-compiled") == "L = 1024"
    verdicts = {c["claim"]: c for c in peer_verdicts.claims(rows)}
    crossing = verdicts["favor-bench: crossover with SDPA, bidirectional forward: faster from"]["measured"]
    assert crossing == "L = 4096; sdpa/favor-bench there 2.05 (99% interval 2.05-2.05)"
    for ours in peer_verdicts.OURS:
        bidirectional = f"{ours}: bidirectional forward >= 2x performer-pytorch at every measured L >= 1024"
        assert verdicts[bidirectional]["verdict"] == "met"
        causal_peer = verdicts[f"{ours}: causal forward >= 10x performer-pytorch at every measured L >= 1024"]
        assert causal_peer["verdict"] == "not attainable"
        assert "within 10x of the floor (0.49 at L = 1024" in causal_peer["measured"]
        causal = verdicts[f"{ours}: causal forward <= 1.5x bidirectional at every measured L"]
        assert causal["verdict"] == "met"
        assert causal["measured"] == "largest causal/bidirectional 1.20 (99% interval 1.20-1.20) at L = 1024"


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
    assert peer_verdicts.crossover(rows, "causal", "forward") == "L = 16384"
    rows[-1]["sdpa_over_favor-bench"] = 0.9
    assert peer_verdicts.crossover(rows, "causal", "forward") == "never (in the measured range)"


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
        _ratio_row(length, r, r, r, bound)
        for length, r, bound in ((1024, 1.5, 1.8), (4096, 2.5, 4.0), (16384, 3.0, 5.0))
    ]
    verdict = peer_verdicts.peer_claim(rows, "p", "bidirectional", 2.0)
    assert verdict["verdict"] == "not attainable"
    assert verdict["measured"].endswith("(1.80 at L = 1024)")
    rows[1] = _ratio_row(4096, 1.9, 1.9, 1.9, 4.0)
    assert peer_verdicts.peer_claim(rows, "p", "bidirectional", 2.0)["verdict"] == "not met"
    rows[1] = _ratio_row(4096, 2.5, 2.5, 2.5, 4.0)
    rows[0]["p_over_floor"] = 2.2
    assert peer_verdicts.peer_claim(rows, "p", "bidirectional", 2.0)["verdict"] == "not met"
    assert peer_verdicts.peer_claim(rows, "p", "causal", 2.0)["verdict"] == "n/a"


def _ratio_row(length, ratio, low, high, peer_over_floor=None):
    return {
        "mode": "bidirectional",
        "pass": "forward",
        "L": length,
        "p_over_favor-bench": ratio,
        "p_over_favor-bench_low": low,
        "p_over_favor-bench_high": high,
        "p_over_floor": peer_over_floor,
    }


def test_a_ratio_interval_is_the_ratio_of_opposite_ends_and_open_where_asv_could_not_bound_it():
    columns = peer_verdicts.ratio_columns("r", (6.0, 5.0, 8.0), (2.0, 1.0, 4.0))
    assert columns == {"r": 3.0, "r_low": 5.0 / 4.0, "r_high": 8.0}
    columns = peer_verdicts.ratio_columns("r", (6.0, -0.1, 8.0), (2.0, -0.5, 4.0))
    assert columns["r_low"] == 0.0 and columns["r_high"] == float("inf")
    assert peer_verdicts.ratio_columns("r", (None, None, None), (2.0, 1.0, 4.0))["r"] is None


def test_a_verdict_follows_the_interval_not_the_median():
    """A median past the target with an interval that holds it is undecided, not met (the point
    verdict's error: it flipped between runs at L = 1k); an interval wholly past it decides."""
    rows = [_ratio_row(1024, 2.5, 1.8, 3.4), _ratio_row(4096, 3.0, 2.6, 3.5)]
    verdict = peer_verdicts.peer_claim(rows, "p", "bidirectional", 2.0)
    assert verdict["verdict"] == "undecided"
    assert verdict["measured"] == (
        "least ratio 2.50 (99% interval 1.80-3.40) at L = 1024, over 2 lengths; "
        "the interval holds 2 at L = 1024"
    )
    rows[0] = _ratio_row(1024, 2.5, 2.1, 3.4)
    assert peer_verdicts.peer_claim(rows, "p", "bidirectional", 2.0)["verdict"] == "met"
    rows[0] = _ratio_row(1024, 1.5, 1.2, 1.9, peer_over_floor=5.0)
    rows[1] = _ratio_row(4096, 1.9, 1.5, 2.4)
    verdict = peer_verdicts.peer_claim(rows, "p", "bidirectional", 2.0)
    assert verdict["verdict"] == "not met" and verdict["measured"].endswith("; missed at L = 1024")
    rows[0] = _ratio_row(1024, 1.5, 1.2, 1.9, peer_over_floor=1.6)
    assert peer_verdicts.peer_claim(rows, "p", "bidirectional", 2.0)["verdict"] == "not attainable"


def test_an_upper_bound_claim_is_met_missed_or_undecided_by_its_intervals():
    claim = "c"
    points = [(1024, 1.4, 1.2, 1.45), (4096, 1.3, 1.1, 1.4)]
    assert peer_verdicts.bounded_claim(claim, points, "largest", 1.5)["verdict"] == "met"
    points[0] = (1024, 1.45, 1.2, 1.7)
    verdict = peer_verdicts.bounded_claim(claim, points, "largest", 1.5)
    assert verdict["verdict"] == "undecided" and verdict["measured"].endswith("holds 1.5 at L = 1024")
    points[1] = (4096, 1.8, 1.6, 2.0)
    verdict = peer_verdicts.bounded_claim(claim, points, "largest", 1.5)
    assert verdict["verdict"] == "not met"
    assert verdict["measured"] == "largest 1.80 (99% interval 1.60-2.00) at L = 4096; missed at L = 4096"
    assert peer_verdicts.bounded_claim(claim, [], "largest", 1.5)["verdict"] == "n/a"


def test_the_intervals_come_from_the_results_file(tmp_path):
    """asv's stats_ci_99_a/b reach each time's interval and every ratio's, through the file reader."""
    results = _results_file(tmp_path)
    path = newest_results_file(results, figure.TIME_KEY)
    data = json.loads(path.read_text())
    entry = data["results"][figure.TIME_KEY]
    data["result_columns"] += ["stats_ci_99_a", "stats_ci_99_b"]
    entry += [[v and 0.5 * v for v in entry[0]], [v and 2.0 * v for v in entry[0]]]
    rows = figure.table(benchmark_rows(data, figure.TIME_KEY, figure.NAMES), "torch:cpu", SGEMM, EXP)
    row = next(r for r in rows if (r["mode"], r["pass"], r["L"]) == ("bidirectional", "forward", 4096))
    assert row["favor-bench_low_s"] == pytest.approx(0.5 * row["favor-bench_s"], rel=1e-12)
    assert row["performer-pytorch_over_favor-bench_low"] == pytest.approx(3.0 / 4, rel=1e-12)
    assert row["performer-pytorch_over_favor-bench_high"] == pytest.approx(3.0 * 4, rel=1e-12)
    assert row["favor-bench_over_floor_high"] == pytest.approx(2.0 * row["favor-bench_over_floor"], rel=1e-12)
    verdicts = {c["claim"]: c["verdict"] for c in peer_verdicts.claims(rows)}
    assert verdicts["favor-bench: causal forward <= 1.5x bidirectional at every measured L"] == "undecided"


def test_a_peer_timing_takes_enough_samples_to_narrow_its_interval_below_the_sample_range():
    """asv's 99% interval for a median is the whole sample range up to 10 samples (and a posterior
    below 8), too wide to decide a target at L = 1k; the samples one combination may take over its
    rounds must give an order-statistic interval inside the range (fails with at most 5 a round)."""
    from asv_runner.statistics import quantile_ci

    count = peers.PeerAttentionTime.repeat[1] * peers.PeerAttentionTime.rounds
    _, (low, high) = quantile_ci(list(range(count)), 0.5, alpha_min=0.99)
    assert 0 < low and high < count - 1
