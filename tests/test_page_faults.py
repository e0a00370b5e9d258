"""``scripts/page_faults.py``: the fault counter, the rank association, and one run end to end."""

from __future__ import annotations

import importlib.util
import math
import mmap
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("page_faults", ROOT / "scripts" / "page_faults.py")
page_faults = importlib.util.module_from_spec(spec)
spec.loader.exec_module(page_faults)

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="minor faults are read from Linux's getrusage"
)

BLOCK = 16 << 20
HUGE_PAGE = 2 << 20


def touch_fresh_block():
    """Map a fresh anonymous 16 MiB block and write one byte per 4 KiB page."""
    with mmap.mmap(-1, BLOCK) as block:
        for offset in range(0, BLOCK, 4096):
            block[offset] = 1


def test_fresh_pages_count_as_faults():
    """A fresh mapping faults at least once per 2 MiB (once per 4 KiB without transparent huge
    pages); a call that maps nothing faults less than that. A counter reading the wrong field
    (major faults, or nothing) fails the first assertion."""
    fresh, times = page_faults.faults_and_times(touch_fresh_block, 3)
    idle, _ = page_faults.faults_and_times(lambda: None, 3)
    assert len(times) == 3 and all(t >= 0 for t in times)
    assert fresh >= BLOCK / HUGE_PAGE
    assert idle < BLOCK / HUGE_PAGE


def test_association_ranks_faults_against_medians():
    monotone = [{"faults_per_call": f, "median_ms": 10 + f / 100} for f in (0, 5, 50, 500, 900)]
    rho, p = page_faults.association(monotone)
    assert rho == pytest.approx(1.0)
    assert p < 0.05
    reversed_ = [{"faults_per_call": r["faults_per_call"], "median_ms": -r["median_ms"]} for r in monotone]
    assert page_faults.association(reversed_)[0] == pytest.approx(-1.0)
    constant = [{"faults_per_call": 0.0, "median_ms": m} for m in (1.0, 2.0, 3.0)]
    assert all(math.isnan(x) for x in page_faults.association(constant))


def test_too_few_processes_is_refused(capsys):
    with pytest.raises(SystemExit):
        page_faults.parse_args(["--processes", "2"])
    assert "--processes must be at least 3" in capsys.readouterr().err


def test_one_run_end_to_end(capsys):
    """Three fresh processes time SDPA at L = 64 (with the held heap): one row each, finite
    positive medians, non-negative fault counts, and the correlation line."""
    page_faults.main(
        ["--implementation", "sdpa", "--length", "64", "--processes", "3", "--calls", "2", "--malloc", "hold"]
    )
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[2:5]]
    assert [int(row[0]) for row in rows] == [0, 1, 2]
    assert all(0 < float(row[1]) < 1e3 and float(row[2]) >= 0 for row in rows)
    assert lines[5].startswith("medians ") and "over 3 processes" in lines[5]
