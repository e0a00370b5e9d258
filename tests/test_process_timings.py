"""``scripts/process_timings.py``: the fault counter, the interval over processes, the verdicts,
the rank association, the allocator effect, and one run end to end."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import mmap
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("process_timings", ROOT / "scripts" / "process_timings.py")
process_timings = importlib.util.module_from_spec(spec)
spec.loader.exec_module(process_timings)

on_linux = pytest.mark.skipif(sys.platform != "linux", reason="minor faults are read from Linux's getrusage")

BLOCK = 16 << 20
HUGE_PAGE = 2 << 20


def touch_fresh_block():
    """Map a fresh anonymous 16 MiB block and write one byte per 4 KiB page."""
    with mmap.mmap(-1, BLOCK) as block:
        for offset in range(0, BLOCK, 4096):
            block[offset] = 1


@on_linux
def test_fresh_pages_count_as_faults():
    """A fresh mapping faults at least once per 2 MiB (once per 4 KiB without transparent huge
    pages); a call that maps nothing faults less than that. A counter reading the wrong field
    (major faults, or nothing) fails the first assertion."""
    fresh, times = process_timings.faults_and_times(touch_fresh_block, 3)
    idle, _ = process_timings.faults_and_times(lambda: None, 3)
    assert len(times) == 3 and all(t >= 0 for t in times)
    assert fresh >= BLOCK / HUGE_PAGE
    assert idle < BLOCK / HUGE_PAGE


def records(medians, faults=None):
    faults = faults if faults is not None else [0.0] * len(medians)
    return [{"median_ms": m, "faults_per_call": f} for m, f in zip(medians, faults, strict=True)]


def test_median_interval_is_the_order_statistics_of_the_processes():
    """16 processes: the 99% interval of the median is [X(3), X(14)] (P(K <= 2) = 0.0021 <= 0.005 <
    P(K <= 3) = 0.0106 for K ~ Bin(16, 1/2)); below 8 processes no order statistic bounds it."""
    assert process_timings.median_interval(records([float(i) for i in range(16, 0, -1)])) == (8.5, 3.0, 14.0)
    _, low, high = process_timings.median_interval(records([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]))
    assert (low, high) == (-math.inf, math.inf)


def arguments(mode="bidirectional", attention_pass="forward"):
    return argparse.Namespace(mode=mode, attention_pass=attention_pass)


def spread(center, count=16, faults=0.0):
    """``count`` process medians around ``center``, 1% apart, each with ``faults`` per call."""
    return records([center * (1 + 0.01 * (i - count / 2)) for i in range(count)], [faults] * count)


@pytest.mark.parametrize(
    ("peer_ms", "verdict"),
    [(30.0, "met"), (15.0, "missed"), (21.0, "undecided")],
)
def test_a_target_is_decided_by_the_interval_over_processes(peer_ms, verdict):
    """performer-pytorch over favor-bench against the bidirectional 2x target, ours at 10 ms: ratio
    3 met, 1.5 missed, 2.1 undecided (its interval, about 1.87-2.36, holds 2). A verdict taken from
    the ratio of medians alone would call 2.1 met."""
    timings = {"favor-bench": spread(10.0), "performer-pytorch": spread(peer_ms)}
    (line,) = process_timings.comparisons(arguments(), process_timings.summarize(timings))
    assert line.startswith("performer-pytorch / favor-bench: ")
    assert line.endswith(f"target >= 2: {verdict}")


def test_no_verdict_without_a_target():
    """SDPA has no target, and the targets are for the forward pass only."""
    timings = {"favor-bench": spread(10.0), "sdpa": spread(30.0), "performer-pytorch": spread(30.0)}
    lines = process_timings.comparisons(
        arguments(attention_pass="forward+backward"), process_timings.summarize(timings)
    )
    assert len(lines) == 2 and not any("target" in line for line in lines)
    (sdpa_line, _) = process_timings.comparisons(arguments(), process_timings.summarize(timings))
    assert sdpa_line.startswith("sdpa / favor-bench: 3.00") and "target" not in sdpa_line


def test_association_ranks_faults_against_medians():
    monotone = records([10 + f / 100 for f in (0, 5, 50, 500, 900)], [0, 5, 50, 500, 900])
    rho, p = process_timings.association(monotone)
    assert rho == pytest.approx(1.0)
    assert p < 0.05
    reversed_ = records([-r["median_ms"] for r in monotone], [r["faults_per_call"] for r in monotone])
    assert process_timings.association(reversed_)[0] == pytest.approx(-1.0)
    constant = records([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert all(math.isnan(x) for x in process_timings.association(constant))


def by_setting(default, held):
    """Timings keyed by allocator setting, then implementation."""
    return {"default": default, "hold": held}


@pytest.mark.parametrize(
    ("default_ms", "held_ms", "shown"),
    [
        (20.0, 10.0, "faster with the heap held"),
        (10.0, 20.0, "slower with the heap held"),
        (10.5, 10.0, "no change shown"),
    ],
)
def test_the_allocator_effect_is_decided_by_the_interval(default_ms, held_ms, shown):
    """Default over held: 2 (interval about 1.8-2.3) is a change, 0.5 the opposite one, 1.05
    (about 0.94-1.17) none. Reading the effect from the ratio of medians alone would call 1.05 a
    change."""
    timings = by_setting(
        {"performer-pytorch": spread(default_ms, faults=900.0)},
        {"performer-pytorch": spread(held_ms, faults=40.0)},
    )
    summaries = {malloc: process_timings.summarize(by_name) for malloc, by_name in timings.items()}
    (line,) = process_timings.allocator_effects(timings, summaries)
    assert line.startswith(f"performer-pytorch, default / hold: {default_ms / held_ms:.2f} (interval ")
    assert f"): {shown}; rank-sum p = " in line and line.endswith("; median faults per call 900 / 40")
    p = float(line.split("rank-sum p = ")[1].split(";")[0])
    assert p < 1e-4 if shown != "no change shown" else p > 1e-3


def test_the_rank_sum_test_finds_nothing_between_identical_settings():
    """Identical process medians under both settings: ratio 1, p = 1 (a p-value computed from the
    wrong columns, the faults say, would not be 1 here)."""
    same = records([10.0 + i for i in range(8)], [float(100 * i) for i in range(8)])
    other_faults = records([10.0 + i for i in range(8)], [0.0] * 8)
    timings = by_setting({"sdpa": same}, {"sdpa": other_faults})
    summaries = {malloc: process_timings.summarize(by_name) for malloc, by_name in timings.items()}
    (line,) = process_timings.allocator_effects(timings, summaries)
    assert "default / hold: 1.00 " in line and "no change shown; rank-sum p = 1;" in line


def test_no_allocator_effect_from_one_setting():
    timings = {"hold": {"sdpa": spread(10.0)}}
    summaries = {"hold": process_timings.summarize(timings["hold"])}
    assert process_timings.allocator_effects(timings, summaries) == []


def test_the_default_setting_drops_held_thresholds_from_the_environment(monkeypatch):
    """A ``default`` process runs with glibc's own thresholds even when the caller's environment
    holds them; a ``hold`` process gets them."""
    seen = []

    def fake_run(command, env, **_):
        seen.append({key: env.get(key) for key in process_timings.HELD_HEAP})
        return argparse.Namespace(returncode=0, stdout='{"faults_per_call": 0, "median_ms": 1}\n')

    monkeypatch.setattr(process_timings.subprocess, "run", fake_run)
    for key, value in process_timings.HELD_HEAP.items():
        monkeypatch.setenv(key, value)
    args = process_timings.parse_args(["--length", "64"])
    for malloc in ("default", "hold"):
        process_timings.spawn(args, "sdpa", malloc, 0)
    assert seen == [dict.fromkeys(process_timings.HELD_HEAP), process_timings.HELD_HEAP]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--processes", "2"], "--processes must be at least 3"),
        (["--implementations", "sdpa", "sdpa"], "--implementations must not repeat"),
        (["--malloc", "hold", "hold"], "--malloc must not repeat"),
    ],
)
def test_bad_arguments_are_refused(capsys, argv, message):
    with pytest.raises(SystemExit):
        process_timings.parse_args(argv)
    assert message in capsys.readouterr().err


@on_linux
def test_one_run_end_to_end(capsys, tmp_path):
    """Three rounds of fresh processes time SDPA and favor-bench at L = 64 under both allocator
    settings: one row per process, finite positive medians, non-negative fault counts, the summary
    lines (an interval unbounded with three processes), SDPA's ratio in each setting without a
    verdict, and each implementation's allocator line (no change shown by an unbounded interval);
    the record appended to ``--out`` holds the same processes by setting, the unbounded ends as null,
    the printed lines and the commit."""
    out = tmp_path / "runs" / "timings.jsonl"
    sizes = ["--length", "64", "--processes", "3", "--calls", "2", "--out", str(out)]
    process_timings.main(["--implementations", "sdpa", "favor-bench", "--malloc", "default", "hold", *sizes])
    lines = capsys.readouterr().out.splitlines()
    starts = (1, 7, 13, 19)
    for start in starts:
        rows = [line.split() for line in lines[start + 2 : start + 5]]
        assert [int(row[0]) for row in rows] == [0, 1, 2]
        assert all(0 < float(row[1]) < 1e3 and float(row[2]) >= 0 for row in rows)
        assert (
            lines[start + 5].startswith("  median over processes ")
            and "interval -inf-inf" in lines[start + 5]
        )
    assert [lines[start] for start in starts] == [
        f"{name}, malloc {malloc}" for malloc in ("default", "hold") for name in ("sdpa", "favor-bench")
    ]
    compared = lines[25:]
    assert [line.split(": ")[0] for line in compared] == [
        "malloc default",
        "malloc hold",
        "sdpa, default / hold",
        "favor-bench, default / hold",
    ]
    assert all(line.endswith("(interval 0.00-inf)") for line in compared[:2])
    assert all("(interval 0.00-inf): no change shown; rank-sum p = " in line for line in compared[2:])
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (
        record["settings"]["implementations"] == ["sdpa", "favor-bench"]
        and record["settings"]["malloc"] == ["default", "hold"]
        and record["settings"]["length"] == 64
    )
    printed = [float(row.split()[1]) for row in lines[15:18]]
    recorded = [r["median_ms"] for r in record["processes"]["hold"]["sdpa"]]
    assert all(abs(a - b) <= 0.005 + 1e-9 for a, b in zip(recorded, printed, strict=True))
    favor = record["summaries"]["default"]["favor-bench"]
    assert favor["low_ms"] is None and favor["median_ms"] > 0
    assert record["comparisons"] == compared
    assert len(record["commit"]) == 40 and isinstance(record["dirty"], bool)


def test_an_unwritable_out_is_one_line_saying_what_to_do(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as stop:
        process_timings.append_record(blocker / "timings.jsonl", {"x": 1})
    message = str(stop.value)
    assert message.startswith(f"cannot append to {blocker / 'timings.jsonl'} (")
    assert message.endswith("rerun with --out set to a writable file") and "\n" not in message


def test_records_append_one_line_each(tmp_path):
    out = tmp_path / "new" / "timings.jsonl"
    for value in (1, 2):
        process_timings.append_record(out, {"run": value})
    assert [json.loads(line) for line in out.read_text().splitlines()] == [{"run": 1}, {"run": 2}]
