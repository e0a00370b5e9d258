"""The entry points over the table: the mean, variances and MSE of any row, and the target kernels.

Every function takes pairs x, y of shape (…, d) broadcasting over leading dims, already scaled (the
estimators target exp(xᵀy), i.e. x = q d^{−1/4}, y = k d^{−1/4} for attention), and returns float64
numpy (…):

* :func:`mean` ``(name, x, y)``: E[K̂(x, y)] (every row is unbiased for it);
* :func:`single_variance` (V1), :func:`pair_covariance` (Cov within a block) and :func:`block_pairs`
  (P), which :func:`mse` ``(name, x, y, m)`` combines by the row's coupling
  (:mod:`estimators.theory.table`; theory.md §5.2, [DER, NUM:orf]).

``m`` counts projections: trig and hyperbolic rows have 2m features (Lemma 2 compares hyperbolic
with m projections against positive with 2m). Rows without a closed form raise
``NotImplementedError`` with the reason. The target kernels: softmax, Gaussian, SMREG and
arc-cosine (:func:`softmax`, :func:`gaussian`, :func:`smreg`, :func:`arccos`), and the moments of
ReLU features (:func:`relu_moments`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .exponential import gaussian_mean, log_exp_pair_gap, softmax_mean
from .pairs import PairStats, as_output, check_dimension, pair_stats
from .rectified import arccos_mean, relu_fourth_moment
from .regularized import smreg_mean
from .table import ROW_THEORY, RowTheory


def _row(name: str) -> RowTheory:
    """The theory of row ``name``; ``ValueError`` for a name that is no estimator's (every registry
    row has an entry in :data:`~estimators.theory.table.ROW_THEORY`, possibly one without closed
    forms, and ``tests/test_theory_table.py`` keeps it so)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a registry row name (str), got {type(name).__name__}")
    if name in ROW_THEORY:
        return ROW_THEORY[name]
    raise ValueError(f"name must be an estimator name, one of {tuple(ROW_THEORY)}, got {name!r}")


def _missing(name: str, row: RowTheory, what: str) -> NotImplementedError:
    reason = row.reason or "no closed form is known"
    return NotImplementedError(f"{what} of {name!r} has no closed form: {reason}")


def block_pairs(m, d):
    """P = Σ_b n_b(n_b − 1): ordered same-block row pairs of block-orthogonal W (m, d) (theory.md §5.2).

    Blocks hold d rows, the last one m − d⌊m/d⌋ (official code; :func:`estimators.projections.orthogonal`,
    and the simplex blocks of :func:`estimators.projections.simplex`).
    ``m`` may be an int or an integer array (broadcast); returns int64 of m's shape.
    """
    d = check_dimension(d)
    m = _check_counts(m)
    full, rest = np.divmod(m, d)
    pairs = full * d * (d - 1) + rest * (rest - 1)
    return pairs[()] if pairs.ndim == 0 else pairs


def _check_counts(m) -> np.ndarray:
    if isinstance(m, bool):
        raise TypeError("m must be an integer >= 1 (or an integer array), got a bool")
    m = np.asarray(m)
    if m.dtype.kind not in "iu":
        raise TypeError(f"m must be an integer >= 1 (or an integer array), got dtype {m.dtype}")
    if np.any(m < 1):
        raise ValueError(f"m must be >= 1, got min {m.min()}")
    return m.astype(np.int64)


def _row_quantity(name, x, y, attribute, description):
    """Evaluate the closed form ``attribute`` of row ``name``."""
    row = _row(name)
    formula = getattr(row, attribute)
    if formula is None:
        raise _missing(name, row, description)
    return as_output(formula(pair_stats(x, y)))


def mean(name, x, y):
    """E[K̂(x, y)] for registry row ``name`` on pairs x, y (…, d) → (…) float64 numpy."""
    return _row_quantity(name, x, y, "mean", "the mean")


def single_variance(name, x, y):
    """V1: variance of one projection's term (MSE with m = 1) for row ``name``; (…, d) → (…)."""
    return _row_quantity(name, x, y, "single_variance", "the single-feature variance")


def pair_covariance(name, x, y):
    """Cov: covariance of two same-block projections' terms; (…, d) → (…). Zero for iid rows."""
    row = _row(name)
    if row.coupling == "iid":
        stats = pair_stats(x, y)
        return as_output(np.zeros(np.shape(stats.t)))
    if row.pair_covariance is None:
        raise _missing(name, row, "the within-block pair covariance")
    return as_output(row.pair_covariance(pair_stats(x, y)))


def mse(name, x, y, m, *, target=None):
    """MSE of K̂(x, y) with ``m`` projections for row ``name``: x, y (…, d) → (…) float64.

    Without ``target``: the variance around the row's own mean (every row is unbiased for
    :func:`mean`). With ``target`` a kernel name (``"softmax"``, ``"gaussian"``, ``"smreg"``,
    ``"arccos"``): variance + (mean − target kernel)², e.g. the fixed-norm rows against softmax
    (theory.md claim 13). ``m`` (int or integer array) broadcasts against the leading dims.
    """
    row = _row(name)
    if row.coupling == "formula":
        return _formula_mse(name, row, x, y, m, target)
    if row.coupling == "none" or row.single_variance is None:
        raise _missing(name, row, "the MSE")
    if row.coupling == "block" and row.pair_covariance is None:
        raise _missing(name, row, "the within-block pair covariance")
    if target is not None and row.mean is None:
        raise _missing(name, row, "the mean")
    stats = pair_stats(x, y)
    counts = _check_counts(m)
    value = row.single_variance(stats) / counts
    if row.coupling == "block":
        pairs = block_pairs(counts, stats.d)
        if np.any(pairs > 0):
            value = value + pairs / counts.astype(np.float64) ** 2 * row.pair_covariance(stats)
    if target is not None:
        value = value + (row.mean(stats) - _kernel(target, stats)) ** 2
    return as_output(value)


def _formula_mse(name, row, x, y, m, target):
    """MSE of a ``"formula"`` row: ``row.mse`` per distinct m (an int or an integer array), plus the
    squared bias against ``target``."""
    stats = pair_stats(x, y)
    counts = _check_counts(m)
    value = np.zeros(np.broadcast_shapes(counts.shape, np.shape(stats.t)))
    for count in np.unique(counts):
        value = np.where(counts == count, row.mse(stats, int(count)), value)
    if target is not None:
        value = value + (row.mean(stats) - _kernel(target, stats)) ** 2
    return as_output(value)


_KERNELS = {"softmax": softmax_mean, "gaussian": gaussian_mean, "smreg": smreg_mean, "arccos": arccos_mean}


def _kernel(name, stats: PairStats):
    if name not in _KERNELS:
        raise ValueError(f"target must be one of {tuple(_KERNELS)}, got {name!r}")
    return _KERNELS[name](stats)


def softmax(x, y):
    """SM(x, y) = exp(xᵀy) (Performers Eq. 6) on pairs (…, d) → (…)."""
    return as_output(softmax_mean(pair_stats(x, y)))


def gaussian(x, y):
    """exp(−‖x − y‖²/2) on pairs (…, d) → (…)."""
    return as_output(gaussian_mean(pair_stats(x, y)))


def smreg(x, y):
    """SMREG(x, y) = Λ ₀F₁(; d/2; d‖x + y‖²/4) (theory.md §6) on pairs (…, d) → (…)."""
    return as_output(smreg_mean(pair_stats(x, y)))


def arccos(x, y):
    """Order-1 arc-cosine kernel (‖x‖‖y‖/2π)(sin θ + (π − θ) cos θ) on pairs (…, d) → (…)."""
    return as_output(arccos_mean(pair_stats(x, y)))


class ReluMoments(NamedTuple):
    """Moments of ReLU(ωᵀx), ReLU(ωᵀy) for ω ~ N(0, I_d), each (…) (theory.md claim 27)."""

    first_x: np.ndarray
    first_y: np.ndarray
    second_x: np.ndarray
    second_y: np.ndarray
    cross: np.ndarray
    cross_squares: np.ndarray


def relu_moments(x, y) -> ReluMoments:
    """E ReLU(ωᵀx) = ‖x‖/√(2π), E ReLU² = ‖x‖²/2, E[ReLU ReLU] = k₁, E[ReLU² ReLU²] = (‖x‖²‖y‖²/2π) J₂."""
    stats = pair_stats(x, y)
    root = np.sqrt(2 * np.pi)
    return ReluMoments(
        first_x=as_output(np.sqrt(stats.sq_x) / root),
        first_y=as_output(np.sqrt(stats.sq_y) / root),
        second_x=as_output(stats.sq_x / 2),
        second_y=as_output(stats.sq_y / 2),
        cross=as_output(arccos_mean(stats)),
        cross_squares=as_output(relu_fourth_moment(stats)),
    )


def exp_pair_gap(t, d):
    """e^t − E_+(t) ≥ 0 (t = ‖x + y‖²), the orthogonal deficit of PRF pair moments (theory.md §5.2)."""
    return as_output(np.exp(log_exp_pair_gap(t, d)))
