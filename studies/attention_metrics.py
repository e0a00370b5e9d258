"""Does the kernel-MSE ranking of the softmax estimators predict how well they approximate attention?

Every registry row of the softmax kernel (read from the registry by kernel) is run on the same input
draws of two families (:mod:`estimators.input_families`, theory.md §7.2): isotropic Gaussian q, k,
and anisotropic ones (shared low-rank-plus-noise covariance, log-normal token norms), both at a mean
‖x_i + y_j‖² of ρ = :data:`RHO` (x = q d^{-1/4}, y = k d^{-1/4}; the shoot-out's regime). For each
(family, m ∈ {16 … 256}, estimator, input draw) ``replicates`` independent W give Â (L, L) =
φ(x)φ(y)ᵀ (data-tuned parameters by the attention rules of ``features.data_options``) and these
per-draw values (each the mean over the L query rows or L² pairs; :mod:`estimators.attention_metrics`):

* ``kernel_mse``: mean over pairs of (Â_ij/K_ij − 1)², the relative kernel MSE the papers rank by;
* ``output_error``: ‖P̂V − PV‖_F/‖PV‖_F (P̂ = D̂⁻¹Â, the FAVOR output);
* ``kl``, ``tv``, ``entropy_error``: KL(P_i‖P̂_i), total variation, |H(P̂_i) − H(P_i)| (a draw with
  an invalid row, i.e. one that is not a distribution, has none);
* ``top_k_miss``: share of rows whose exact arg-max key is not among Â_i's k = L/16 largest;
* ``invalid_rate``: share of rows with a negative or non-finite weight or D̂_i ≤ 0.

Estimators are ranked on a metric by its mean (``ranked`` only when every draw has a value: KL, TV
and the entropy error are defined only where every row is a distribution), with 99% percentile
bootstrap intervals (draws resampled inside each input draw). Orderings are tested pairwise with
van Elteren's stratified Mann–Whitney test (:mod:`studies.core.rank_tests`; null: in every input draw
the two estimators' per-draw values have the same distribution), Holm-corrected at family-wise
α = 0.01 over every (pair, m) of one (input family, metric). A pair is **discordant**
when kernel MSE and the metric order it significantly in opposite directions. Agreement of whole
rankings: Kendall's τ between the MSE ranking and the metric's ranking, with a 99% bootstrap
interval. All tests are conditional on the input draws (the same for every estimator).

Precision: Â and the metrics compute in float32 unless the run names a dtype (``--dtype``); the
inputs are drawn in float64 on the host. The discretely-induced rows always compute in float64
(:attr:`estimators.registry.Estimator.counts`: rounding U to float32 can move a count, and a count
moves their heavy-tailed estimates by far more than rounding). tests/test_study_precision.py checks
that each metric's mean over a cell's draws moves by under 1% of its standard error between float32
and float64.
"""

from __future__ import annotations

import sys

import numpy as np

from estimators import attention_metrics, input_families, kernels, registry
from estimators.backends import namespace

from .core import attention_ranking
from .core.cells import Study, stable_rng
from .core.montecarlo import host
from .figures import attention_metrics as figures

PRESETS = {
    "quick": {"d": 16, "L": 64, "ms": (16, 32, 64, 128, 256), "draws": 2, "replicates": 32},
    "paper": {"d": 64, "L": 256, "ms": (16, 32, 64, 128, 256), "draws": 6, "replicates": 64},
}
RHO = 1.5
"""Mean ‖x_i + y_j‖² of both input families (the estimator shoot-out's attention regime)."""
TOP_K_SHARE = 16
"""k = L / TOP_K_SHARE for the top-k miss rate (4 of 64 keys in the quick preset)."""


def estimators() -> tuple[str, ...]:
    """Every registry row whose kernel is softmax, in table order."""
    return tuple(row.name for row in registry.rows() if row.kernel == "softmax")


def cells(preset: str) -> list[dict]:
    config = PRESETS[preset]
    fixed = {key: config[key] for key in ("d", "L", "replicates")}
    return [
        {**fixed, "family": family, "estimator": name, "m": m, "draw": draw}
        for family in input_families.FAMILIES
        for m in config["ms"]
        for name in estimators()
        for draw in range(config["draws"])
    ]


def inputs(seed: int, family: str, draw: int, length: int, d: int):
    """Host q, k, v (L, d) of one input draw, shared by every estimator and m."""
    rng = stable_rng(seed, "attention_metrics", "inputs", family, draw, length, d)
    return input_families.draw(family, length, d, rho=RHO, seed=rng)


def compute(cell) -> dict:
    """Per-draw values (lists of length ``replicates``; ``None`` where a value is not finite)."""
    p = cell.kwargs
    row = registry.get(p["estimator"])
    cell = cell.for_estimator(row)
    target = cell.context.target
    q, k, v = (target.asarray(a) for a in inputs(cell.context.seed, p["family"], p["draw"], p["L"], p["d"]))
    scale = p["d"] ** -0.25
    x, y = q * scale, k * scale
    native_qmc = cell.context.rng == "native" and row.projection.startswith("qmc")
    seed = cell.host_rng(1) if native_qmc else cell.rng()
    W = row.draw(p["m"], p["d"], batch_shape=(p["replicates"],), seed=seed, like=x)
    gram = kernels.exact_gram("softmax", x, y)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        weights = row.estimate_gram(x, y, W)
        values = metric_values(weights, gram, v, p["L"] // TOP_K_SHARE)
    return {name: [float(x) if np.isfinite(x) else None for x in value] for name, value in values.items()}


def metric_values(weights, gram, v, k) -> dict:
    """Each metric per replicate (host float64 (R,)) from Â (R, L, M), K (L, M) and v (M, d_v)."""
    xp = namespace(weights)
    exact = gram / xp.sum(gram, axis=-1, keepdims=True)
    rows = attention_metrics.normalized_rows(weights)
    output = attention_metrics.relative_output_error(xp.matmul(rows, v), xp.matmul(exact, v))
    per_row = {name: host(value) for name, value in attention_metrics.row_metrics(exact, weights, k).items()}
    return {
        "kernel_mse": host(xp.mean((weights / gram - 1) ** 2, axis=(-2, -1))),
        "output_error": host(output),
        "kl": per_row["kl"].mean(axis=-1),
        "tv": per_row["total_variation"].mean(axis=-1),
        "entropy_error": np.abs(per_row["entropy_error"]).mean(axis=-1),
        "top_k_miss": per_row["top_k_miss"].mean(axis=-1),
        "invalid_rate": per_row["invalid"].mean(axis=-1),
    }


def summarize(records, context) -> list[dict]:
    return attention_ranking.summarize(records, context.seed)


def plot(rows, context, stem) -> None:
    """The figure and its claims caption (:func:`studies.figures.attention_metrics.plot`)."""
    figures.plot(rows, stem, title=STUDY.title)


STUDY = Study(
    name="attention_metrics",
    title="Kernel MSE vs attention-level errors: do the rankings agree?",
    claim="Every softmax estimator ranked on kernel MSE and on five attention-level errors (output, KL, "
    "total variation, entropy, top-k), isotropic and anisotropic inputs, m = 16 to 256, with the "
    "significant disagreements between the rankings.",
    cells=cells,
    compute=compute,
    summarize=summarize,
    plot=plot,
    batch_size=4,
    dtype="float32",
)

if __name__ == "__main__":
    from .__main__ import main_for

    sys.exit(main_for(STUDY.name))
