"""Where the feature maps and FAVOR attention stop giving finite, accurate results as ‖q‖ = ‖k‖ grows.

For each ‖q‖ = ‖k‖ = r in 1 … 100, backend (numpy, torch CPU) and dtype (float64, float32, float16,
bfloat16; numpy has no bfloat16), with d = 64, L = 128 rows and m = 128 projections (one fixed draw):

* **feature maps** trig, positive, hyperbolic, as a kernel estimate uses them (raw inputs, no
  stabilizer, ``scale_inputs=False``): φ(x_i)ᵀφ(y_i) for 128 pairs of random directions of norm r.
  ``nonfinite`` / ``zero_rows``: fraction of feature rows with a non-finite value / with every feature
  zero (x and y rows together); ``numeric_error``: median over the pairs of
  |K̂_dtype − K̂_float64| / |K̂_float64|, the same W in both (rounding and range only, no Monte Carlo
  error; inf where the estimate over- or underflows); ``warned``: whether
  :class:`estimators.features.FeatureRangeWarning` fired.
* **FAVOR attention** (positive features, block-orthogonal W, the default stabilizers, q, k, v of
  shape (L, d)): ``error_vs_exact`` = ‖Ô − O‖_F / ‖O‖_F with O exact softmax attention in float64;
  ``numeric_error`` = the same against FAVOR in float64 with the same W; ``predicted_error``: the
  delta-method relative error of :func:`estimators.regime.predicted_error` (float64, dtype-independent).

A cell is **ok** when every row is finite and nonzero, the rounding error (``numeric_error``) is at
most 1% and, for FAVOR, ``error_vs_exact`` ≤ 0.1. Writes ``results/numerics/``: ``numerics.csv`` (every
cell), ``summary.md`` (per map, backend and dtype: up to which norm the results stay finite, within 1%
of float64, and for FAVOR within 0.1 of exact attention; the first failure; where the range warning
starts) and ``meta.json``. Run: ``python scripts/numerics_table.py`` (about two minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import subprocess
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

from estimators import attention, backends, features, projections, regime

NORMS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 70, 100)
MAPS = ("trig", "positive", "hyperbolic")
DTYPES = ("float64", "float32", "float16", "bfloat16")
D, L, M, DV = 64, 128, 128, 16
ROUNDING_TOLERANCE = 1e-2
ATTENTION_TOLERANCE = 0.1
FIELDS = (
    "quantity",
    "backend",
    "dtype",
    "norm",
    "nonfinite",
    "zero_rows",
    "numeric_error",
    "error_vs_exact",
    "predicted_error",
    "warned",
    "ok",
)


def directions(rows, seed):
    """``rows`` independent random unit vectors (rows, D) in float64."""
    x = np.random.default_rng(seed).standard_normal((rows, D))
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


host = backends.host_float64


def feature_cell(name, backend, dtype, norm, W):
    """One feature-map row of the table."""
    x, y = norm * directions(L, 1), norm * directions(L, 2)
    target = backends.resolve_target(backend=backend, dtype=dtype)
    feature = features.feature_map(name)
    with np.errstate(all="ignore"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", features.FeatureRangeWarning)
        phi = [host(feature(target.asarray(a), target.asarray(W))) for a in (x, y)]
    with np.errstate(all="ignore"):
        reference = [feature(a, W, check="off") for a in (x, y)]
        estimate = np.sum(phi[0] * phi[1], axis=-1)
        exact = np.sum(reference[0] * reference[1], axis=-1)
        error = np.abs(estimate - exact) / np.abs(exact)
    rows = np.concatenate(phi)
    nonfinite = float(np.mean(~np.all(np.isfinite(rows), axis=-1)))
    zero_rows = float(np.mean(np.all(rows == 0, axis=-1)))
    numeric_error = float(np.median(np.where(np.isfinite(error), error, np.inf)))
    warned = any(issubclass(w.category, features.FeatureRangeWarning) for w in caught)
    ok = nonfinite == 0 and zero_rows == 0 and numeric_error <= ROUNDING_TOLERANCE
    return {
        "quantity": name,
        "nonfinite": nonfinite,
        "zero_rows": zero_rows,
        "numeric_error": numeric_error,
        "warned": warned,
        "ok": ok,
    }


def attention_cell(backend, dtype, norm, W, predicted):
    """One FAVOR attention row of the table."""
    q, k = norm * directions(L, 3), norm * directions(L, 4)
    v = np.random.default_rng(5).standard_normal((L, DV))
    target = backends.resolve_target(backend=backend, dtype=dtype)
    exact = attention.exact(q, k, v)
    with np.errstate(all="ignore"):
        reference = attention.favor(q, k, v, W, denominator="raw")
        out = host(attention.favor(*(target.asarray(a) for a in (q, k, v, W)), denominator="raw"))
    finite = bool(np.all(np.isfinite(out)))
    error_vs_exact = float(np.linalg.norm(out - exact) / np.linalg.norm(exact)) if finite else math.inf
    numeric_error = float(np.linalg.norm(out - reference) / np.linalg.norm(reference)) if finite else math.inf
    return {
        "quantity": "favor",
        "nonfinite": float(np.mean(~np.all(np.isfinite(out), axis=-1))),
        "zero_rows": float(np.mean(np.all(out == 0, axis=-1))),
        "numeric_error": numeric_error,
        "error_vs_exact": error_vs_exact,
        "predicted_error": predicted,
        "ok": finite and numeric_error <= ROUNDING_TOLERANCE and error_vs_exact <= ATTENTION_TOLERANCE,
    }


def cells():
    """Every row of the table, in table order."""
    W_features = projections.iid(M, D, seed=6)
    W_attention = projections.orthogonal(M, D, seed=7)
    predicted = {}
    for norm in NORMS:
        q, k = norm * directions(L, 3), norm * directions(L, 4)
        v = np.random.default_rng(5).standard_normal((L, DV))
        predicted[norm] = regime.predicted_error(q, k, v, M)
    for backend in ("numpy", "torch"):
        for dtype in (dtype for dtype in DTYPES if dtype in backends.supported_dtypes(backend)):
            for norm in NORMS:
                common = {"backend": backend, "dtype": dtype, "norm": norm}
                for name in MAPS:
                    yield {**common, **feature_cell(name, backend, dtype, norm, W_features)}
                yield {**common, **attention_cell(backend, dtype, norm, W_attention, predicted[norm])}


def failure(row) -> str:
    """What failed in a row that is not ok, in words."""
    if row["nonfinite"] > 0:
        return f"non-finite rows ({row['nonfinite']:.0%})"
    if row["zero_rows"] > 0:
        return f"all-zero rows ({row['zero_rows']:.0%})"
    if not row["numeric_error"] <= ROUNDING_TOLERANCE:
        what = "kernel estimate over/underflows" if math.isinf(row["numeric_error"]) else "rounding error"
        return f"{what} ({row['numeric_error']:.2g})"
    return f"error vs exact {row['error_vs_exact']:.2g}"


def up_to(group, passes) -> str:
    """The largest norm up to which every row of ``group`` passes (``< first norm`` if none does)."""
    passed = None
    for row in group:
        if not passes(row):
            break
        passed = row["norm"]
    return f"< {NORMS[0]}" if passed is None else str(passed)


def summary(rows) -> str:
    """Markdown: per (quantity, backend, dtype) up to which norm each property holds."""
    lines = [
        "# Where the feature maps and FAVOR attention stop being finite and accurate",
        "",
        f"‖q‖ = ‖k‖ from {NORMS[0]} to {NORMS[-1]}; d = {D}, L = {L}, m = {M}. Feature maps as kernel "
        "estimates φ(x)ᵀφ(y) (raw inputs, no stabilizer); FAVOR with positive features, orthogonal W and "
        "its default stabilizers. *Finite*: no Inf/NaN and no all-zero row; *rounding ≤ 1%*: relative "
        "difference from the same computation in float64 with the same W; *vs exact ≤ 0.1*: FAVOR's "
        "relative error against exact softmax attention (Monte Carlo error included). Each column gives "
        "the largest ‖q‖ up to which the property holds at every norm. Generated by "
        "`scripts/numerics_table.py`; every cell is in `numerics.csv`.",
        "",
        "| quantity | backend | dtype | finite up to | rounding ≤ 1% up to | vs exact ≤ 0.1 up to "
        "| first failure | range warning from |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups = {}
    for row in rows:
        groups.setdefault((row["quantity"], row["backend"], row["dtype"]), []).append(row)
    for (quantity, backend, dtype), group in groups.items():
        first_bad = next((row for row in group if not row["ok"]), None)
        warned = [row["norm"] for row in group if row.get("warned")]
        finite = up_to(group, lambda row: row["nonfinite"] == 0 and row["zero_rows"] == 0)
        rounding = up_to(group, lambda row: row["numeric_error"] <= ROUNDING_TOLERANCE)
        versus_exact = (
            up_to(group, lambda row: row["error_vs_exact"] <= ATTENTION_TOLERANCE)
            if quantity == "favor"
            else "—"
        )
        first = f"{first_bad['norm']}: {failure(first_bad)}" if first_bad else "—"
        warning = f"{warned[0]}" if warned else ("n/a" if quantity == "favor" else "never")
        columns = (quantity, backend, dtype, finite, rounding, versus_exact, first, warning)
        lines.append("| " + " | ".join(columns) + " |")
    lines += [
        "",
        "FAVOR's delta-method predicted relative error (`favor(..., predict_error=True)`, which warns "
        f"above {regime.ERROR_THRESHOLD}) and the measured error vs exact (numpy float64), at each norm:",
        "",
        "| ‖q‖ = ‖k‖ | " + " | ".join(str(n) for n in NORMS) + " |",
        "|---" * (len(NORMS) + 1) + "|",
    ]
    reference = [
        row
        for row in rows
        if row["quantity"] == "favor" and (row["backend"], row["dtype"]) == ("numpy", "float64")
    ]
    for label, key in (("predicted", "predicted_error"), ("measured", "error_vs_exact")):
        lines.append(f"| {label} | " + " | ".join(f"{row[key]:.2g}" for row in reference) + " |")
    return "\n".join(lines) + "\n"


def write(rows, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "numerics.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, FIELDS, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {key: (f"{value:.4g}" if isinstance(value, float) else value) for key, value in row.items()}
            )
    (out / "summary.md").write_text(summary(rows), encoding="utf-8")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout
    meta = {
        "commit": commit.strip(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": metadata.version("torch"),
        "machine": platform.machine(),
        "d": D,
        "L": L,
        "m": M,
        "norms": list(NORMS),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "results" / "numerics"
    )
    args = parser.parse_args(argv)
    rows = list(cells())
    write(rows, args.out)
    print(summary(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
