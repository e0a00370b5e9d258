"""Closed forms of the random-feature estimators: means, variances and exact MSEs (float64 numpy/scipy).

Entry points (every registry row, x and y of shape (…, d) broadcasting over leading dims, already
scaled: the estimators target exp(xᵀy), i.e. x = q d^{−1/4}, y = k d^{−1/4} for attention):

* :func:`mean` ``(name, x, y)`` → (…): the kernel E[K̂(x, y)] equals (every row is unbiased for it);
* :func:`mse` ``(name, x, y, m)`` → (…): E[(K̂ − mean)²] with m projections (rows of W);
* :func:`single_variance` (V1), :func:`pair_covariance` (Cov_ort) and :func:`block_pairs` (P), with

      MSE_iid = V1/m,    MSE_ort = V1/m + (P/m²) Cov_ort,    P = Σ_b n_b(n_b − 1)

  for block-orthogonal rows (blocks of d Haar-orthonormal directions, the last one partial, norms
  iid χ(d) or fixed √d; theory.md §5.2, [DER, NUM:orf]).

``m`` counts projections: trig and hyperbolic rows have 2m features (Lemma 2 compares hyperbolic
with m projections against positive with 2m). Rows without a closed form raise
``NotImplementedError`` with the reason.

Registering a row: add one entry to :data:`ROW_THEORY` keyed by the registry name, a
:class:`RowTheory` of functions of :class:`~estimators.theory_inputs.PairStats` (float64 ‖x‖², ‖y‖²,
xᵀy, t = ‖x+y‖², s = ‖x−y‖², the angle θ and π − θ, d)::

    ROW_THEORY["oprf-ort"] = RowTheory(coupling="orthogonal", mean=softmax_mean,
                                       single_variance=my_v1, pair_covariance=my_cov)

``coupling`` is ``"iid"`` (MSE = V1/m), ``"orthogonal"`` (the block formula above) or ``"none"``
(``reason`` says why there is no closed form; :func:`mean` still works if ``mean`` is given).
A coupling whose pair law differs from Haar blocks (e.g. SimRF's simplex blocks) uses
``"orthogonal"`` with its own ``pair_covariance``: the block formula holds for any exchangeable
within-block coupling. The follow-up rows of theory.md §10 (GERF/OPRF, SADERF, SimRF, SORF, QMC,
Poisson/geometric) live in :mod:`estimators.theory_followup`, which the four entry points consult first.

Other closed forms: softmax / Gaussian / SMREG / arc-cosine kernels (:func:`softmax`, :func:`gaussian`,
:func:`smreg`, :func:`arccos`), :func:`relu_moments`, the orthogonal-pair moments
:func:`exp_pair_moment` (E_+) and :func:`cos_pair_moment` (E_cos) with their gaps, the SMREG series
(:func:`smreg_ratio_series`), Theorems 1, 2 and 4, the OpenReview variant of Theorem 2, the utility
ratio r(φ, l) of Fig. 2, and the delta-method bias and covariance of normalized attention (§7.1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import theory_followup
from .theory_attention import DELTA_ROWS, DeltaMethod, attention_delta
from .theory_bounds import BOUND_KERNELS, theorem4_features
from .theory_bounds import theorem2_bound as _theorem2_bound
from .theory_bounds import theorem2_gap as _theorem2_gap
from .theory_bounds import theorem2_openreview_bound as _theorem2_openreview_bound
from .theory_inputs import PairStats, as_output, check_dimension, pair_stats
from .theory_relu import (
    arccos_j1,
    arccos_j2,
    arccos_mean,
    relu_fourth_moment,
    relu_pair_covariance,
    relu_single_variance,
)
from .theory_smreg import (
    fixed_pair_covariance,
    fixed_single_variance,
    smreg_mean,
    smreg_ratio,
    smreg_ratio_series,
    theorem1_bounds,
)
from .theory_softmax import (
    cos_pair_gap,
    cos_pair_moment,
    exp_pair_covariance,
    exp_pair_moment,
    gaussian_mean,
    hyperbolic_single_variance,
    log_exp_pair_gap,
    positive_single_variance,
    softmax_mean,
    trig_pair_covariance,
    trig_single_variance,
    utility_ratio,
)

COUPLINGS = ("iid", "orthogonal", "none")


@dataclass(frozen=True)
class RowTheory:
    """The closed forms of one registry row, as functions of :class:`PairStats` returning (…) arrays.

    Attributes
    ----------
    coupling : str
        ``"iid"``, ``"orthogonal"`` (block law, needs ``pair_covariance``) or ``"none"``.
    mean : callable or None
        E[K̂(x, y)].
    single_variance : callable or None
        V1 = Var of one projection's contribution (MSE with m = 1).
    pair_covariance : callable or None
        Cov_ort of two projections in the same block.
    reason : str
        Why a missing piece has no closed form (shown in ``NotImplementedError``).
    source : str
        Where the formulas come from.
    """

    coupling: str
    mean: Callable[[PairStats], np.ndarray] | None
    single_variance: Callable[[PairStats], np.ndarray] | None = None
    pair_covariance: Callable[[PairStats], np.ndarray] | None = None
    reason: str = ""
    source: str = ""


ROW_THEORY: dict[str, RowTheory] = {
    "trig-iid": RowTheory("iid", softmax_mean, trig_single_variance, source="Lemma 2 (Eq. 8)"),
    "trig-ort": RowTheory(
        "orthogonal", softmax_mean, trig_single_variance, trig_pair_covariance, source="theory.md §5.2"
    ),
    "positive-iid": RowTheory("iid", softmax_mean, positive_single_variance, source="Lemma 2 (Eq. 8)"),
    "positive-ort": RowTheory(
        "orthogonal", softmax_mean, positive_single_variance, exp_pair_covariance, source="§5.2, Thm 2"
    ),
    "hyperbolic-iid": RowTheory("iid", softmax_mean, hyperbolic_single_variance, source="Lemma 2"),
    "hyperbolic-ort": RowTheory(
        "orthogonal", softmax_mean, hyperbolic_single_variance, exp_pair_covariance, source="§5.2"
    ),
    "positive-iid-fixed": RowTheory("iid", smreg_mean, fixed_single_variance, source="theory.md §6"),
    "positive-ort-fixed": RowTheory(
        "orthogonal", smreg_mean, fixed_single_variance, fixed_pair_covariance, source="theory.md §6"
    ),
    "relu-iid": RowTheory("iid", arccos_mean, relu_single_variance, source="Cho & Saul 2009; §3"),
    "relu-ort": RowTheory(
        "orthogonal", arccos_mean, relu_single_variance, relu_pair_covariance, source="theory_relu [DER]"
    ),
}


def _row(name: str) -> RowTheory:
    """The theory of row ``name``; ``ValueError`` for a name that is no estimator's (every registry
    row has an entry here or in :mod:`estimators.theory_followup`, possibly one without closed
    forms, and ``tests/test_theory.py`` keeps it so)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a registry row name (str), got {type(name).__name__}")
    if name in ROW_THEORY:
        return ROW_THEORY[name]
    raise ValueError(
        f"name must be an estimator name, one of {(*ROW_THEORY, *theory_followup.ROWS)}, got {name!r}"
    )


def _missing(name: str, row: RowTheory, what: str) -> NotImplementedError:
    reason = row.reason or "no closed form is known"
    return NotImplementedError(f"{what} of {name!r} has no closed form: {reason}")


def block_pairs(m, d):
    """P = Σ_b n_b(n_b − 1): ordered same-block row pairs of block-orthogonal W (m, d) (theory.md §5.2).

    Blocks hold d rows, the last one m − d⌊m/d⌋ (official code; :func:`estimators.projections.orthogonal`).
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
    """Evaluate the closed form ``attribute`` of row ``name`` (§10 rows live in theory_followup)."""
    if name in theory_followup.ROWS:
        return getattr(theory_followup, attribute)(name, x, y)
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
    """Cov_ort: covariance of two same-block projections' terms; (…, d) → (…). Zero for iid rows."""
    if name in theory_followup.ROWS:  # theory.md §10 rows: estimators/theory_followup.py
        return theory_followup.pair_covariance(name, x, y)
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
    if name in theory_followup.ROWS:  # theory.md §10 rows: estimators/theory_followup.py
        return theory_followup.mse(name, x, y, m, target=target)
    row = _row(name)
    if row.coupling == "none" or row.single_variance is None:
        raise _missing(name, row, "the MSE")
    if row.coupling == "orthogonal" and row.pair_covariance is None:
        raise _missing(name, row, "the within-block pair covariance")
    if target is not None and row.mean is None:
        raise _missing(name, row, "the mean")
    stats = pair_stats(x, y)
    counts = _check_counts(m)
    value = row.single_variance(stats) / counts
    if row.coupling == "orthogonal":
        pairs = block_pairs(counts, stats.d)
        if np.any(pairs > 0):
            value = value + pairs / counts.astype(np.float64) ** 2 * row.pair_covariance(stats)
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


def _check_m(m) -> int:
    if isinstance(m, bool) or not hasattr(m, "__index__") or int(m) < 1:
        raise ValueError(f"m must be an integer >= 1, got {m!r}")
    return int(m)


def theorem2_bound(x, y, m, *, kernel="softmax"):
    """Theorem 2 (Performers Eq. 10, camera-ready) upper bound on MSE(SM^ort+_m(x, y)), m ≤ d.

    MSE(SM^+_m) − 2(m − 1)/(m(d + 2)) (SM − Λ)²; ``kernel="smreg"`` gives the SMREG analogue (fixed
    √d norms; Theorem 6 with a₀ = 1). Compare with ``mse("positive-ort", x, y, m)`` (or
    ``"positive-ort-fixed"``). x, y (…, d) → (…).
    """
    stats = pair_stats(x, y)
    return as_output(_theorem2_bound(stats, _check_m(m), kernel))


def theorem2_gap(x, y, m, *, kernel="softmax"):
    """The gap term of :func:`theorem2_bound`, 2(m − 1)/(m(d + 2)) (SM − Λ)² ≥ 0; x, y (…, d) → (…)."""
    stats = pair_stats(x, y)
    return as_output(_theorem2_gap(stats, _check_m(m), kernel))


def theorem2_openreview_bound(x, y, m):
    """The OpenReview submission's (false) Theorem 2: MSE(SM^+_m) − (1 − 1/m)(2/(d + 2)) SM².

    Kept only to show that it fails (e.g. at x = −y, where it is negative but the ORF MSE is 0).
    """
    stats = pair_stats(x, y)
    return as_output(_theorem2_openreview_bound(stats, _check_m(m)))


__all__ = [
    "BOUND_KERNELS",
    "COUPLINGS",
    "DELTA_ROWS",
    "ROW_THEORY",
    "DeltaMethod",
    "ReluMoments",
    "RowTheory",
    "arccos",
    "arccos_j1",
    "arccos_j2",
    "attention_delta",
    "block_pairs",
    "cos_pair_gap",
    "cos_pair_moment",
    "exp_pair_gap",
    "exp_pair_moment",
    "gaussian",
    "log_exp_pair_gap",
    "mean",
    "mse",
    "pair_covariance",
    "relu_moments",
    "single_variance",
    "smreg",
    "smreg_ratio",
    "smreg_ratio_series",
    "softmax",
    "theorem1_bounds",
    "theorem2_bound",
    "theorem2_gap",
    "theorem2_openreview_bound",
    "theorem4_features",
    "utility_ratio",
]
