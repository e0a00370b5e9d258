"""Reading asv's results files: the newest file holding a benchmark, and its rows as dicts.

asv writes ``.asv/results/<machine>/<commit>-<environment>.json``; each benchmark's entry holds
``result_columns`` (``result``, ``params``, ``stats_q_25``, ``stats_q_75``, …) where ``params`` lists
every parameter's values (as Python literals) and ``result`` follows their Cartesian product.
Skipped (n/a) and failed combinations are ``None`` or NaN and are left out.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
from pathlib import Path


def newest_results_file(results_dir: Path, key: str, machine: str | None = None) -> Path:
    """The most recent results file (by its ``date``) holding benchmark ``key``.

    Raises ``SystemExit`` with what to run when there is none.
    """
    results_dir = Path(results_dir)
    candidates = []
    machines = [results_dir / machine] if machine else [p for p in results_dir.iterdir() if p.is_dir()]
    for folder in machines:
        for path in folder.glob("*.json"):
            if path.name == "machine.json":
                continue
            data = json.loads(path.read_text())
            if key in data.get("results", {}):
                candidates.append((data.get("date", 0), str(path)))
    if not candidates:
        raise SystemExit(f"no results with {key} under {results_dir}; run asv first (see --help)")
    return Path(max(candidates)[1])


def benchmark_rows(data: dict, key: str, names: tuple[str, ...]) -> list[dict]:
    """One dict per measured parameter combination: its parameters, ``value`` (the median), ``q25``,
    ``q75``, and ``ci_low``, ``ci_high``: asv's 99% confidence interval for the median (order
    statistics of the samples of every round, pooled; None where the file has none)."""
    if key not in data["results"]:
        return []
    columns = dict(zip(data["result_columns"], data["results"][key], strict=False))
    values = [[ast.literal_eval(v) for v in options] for options in columns["params"]]
    if len(values) != len(names):
        raise ValueError(f"{key} has {len(values)} parameters, names gives {len(names)}: {names}")
    count = len(columns["result"])
    stats = {
        field: columns.get(column) or [None] * count
        for field, column in (
            ("q25", "stats_q_25"),
            ("q75", "stats_q_75"),
            ("ci_low", "stats_ci_99_a"),
            ("ci_high", "stats_ci_99_b"),
        )
    }
    rows = []
    for position, (combo, value) in enumerate(
        zip(itertools.product(*values), columns["result"], strict=True)
    ):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        row = {**dict(zip(names, combo, strict=True)), "value": float(value)}
        rows.append(row | {field: column[position] for field, column in stats.items()})
    return rows
