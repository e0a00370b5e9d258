"""The one table of closed forms: a :class:`RowTheory` per registry row, core and later families alike.

Each entry gives the row's mean, its one-projection variance V1 and its same-block pair covariance as
functions of :class:`~estimators.theory.pairs.PairStats` returning (…) float64 arrays, and the
coupling that combines them (:mod:`estimators.theory.quantities`):

    MSE_iid = V1/m,    MSE_block = V1/m + (P/m²) Cov,    P = Σ_b n_b(n_b − 1)

for rows drawn in blocks of d (Haar-orthogonal or simplex; the last block partial), a law that holds
for any exchangeable within-block coupling (theory.md §5.2). A row whose MSE is not of this form gives
it whole (coupling ``"formula"``: ``mse(stats, m)``; the hybrid rows, whose m rows split into ω's and
ξ's, theory.md §10.5). A row without a closed form says why (``reason``), and its mean may still be
known.

Registering a row's theory is one entry here, keyed by its registry name::

    ROW_THEORY["oprf-ort"] = RowTheory("block", softmax_mean, oprf_single_variance, exp_pair_covariance)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import hybrid
from .coupled import simplex_pair_covariance
from .exponential import (
    exp_pair_covariance,
    hyperbolic_single_variance,
    positive_single_variance,
    softmax_mean,
    trig_pair_covariance,
    trig_single_variance,
)
from .pairs import PairStats
from .parameterized import (
    geometric_single_variance,
    gerf_trig_single_variance,
    oprf_single_variance,
    poisson_single_variance,
    saderf_single_variance,
    saderf_stats,
)
from .rectified import arccos_mean, relu_pair_covariance, relu_single_variance
from .regularized import fixed_pair_covariance, fixed_single_variance, smreg_mean

COUPLINGS = ("iid", "block", "formula", "none")

Formula = Callable[[PairStats], np.ndarray]
MseFormula = Callable[[PairStats, int], np.ndarray]


@dataclass(frozen=True)
class RowTheory:
    """The closed forms of one registry row, as functions of :class:`PairStats` returning (…) arrays.

    Attributes
    ----------
    coupling : str
        ``"iid"`` (MSE = V1/m), ``"block"`` (the block law, needs ``pair_covariance``), ``"formula"``
        (MSE = ``mse(stats, m)``) or ``"none"`` (no closed-form MSE; ``reason`` says why).
    mean : callable or None
        E[K̂(x, y)]; ``None`` when it has no closed form.
    single_variance : callable or None
        V1 = Var of one projection's contribution (the MSE with m = 1).
    pair_covariance : callable or None
        Cov of two projections in the same block.
    reason : str
        Why a missing piece has no closed form (shown in ``NotImplementedError``).
    source : str
        Where the formulas come from (a section or claim of docs/theory.md, or a paper).
    mse : callable or None
        The whole MSE with m rows, for coupling ``"formula"``.
    """

    coupling: str
    mean: Formula | None
    single_variance: Formula | None = None
    pair_covariance: Formula | None = None
    reason: str = ""
    source: str = ""
    mse: MseFormula | None = None


def _saderf_pair_covariance(p: PairStats):
    return exp_pair_covariance(saderf_stats(p))


_SORF = (
    "SORF rows H·D₁·H·D₂·H·D₃ take finitely many directions, not Haar ones "
    "(Yu et al. 2016 give only a bias bound)"
)
_HYBRID = (
    "the hybrid MSE is not V1/m: its m rows split into k ω's and n ξ's, and the angular weight "
    "multiplies the ω terms (theory.md §10.5); theory.mse gives it whole"
)
_QMC = (
    "randomized QMC has no closed-form variance for unbounded exponential features (theory.md §10.6); "
    "the mean is exact because every scrambled point is uniform"
)

ROW_THEORY: dict[str, RowTheory] = {
    "trig-iid": RowTheory("iid", softmax_mean, trig_single_variance, source="Lemma 2 (Eq. 8)"),
    "trig-ort": RowTheory(
        "block", softmax_mean, trig_single_variance, trig_pair_covariance, source="theory.md §5.2"
    ),
    "positive-iid": RowTheory("iid", softmax_mean, positive_single_variance, source="Lemma 2 (Eq. 8)"),
    "positive-ort": RowTheory(
        "block", softmax_mean, positive_single_variance, exp_pair_covariance, source="§5.2, Thm 2"
    ),
    "hyperbolic-iid": RowTheory("iid", softmax_mean, hyperbolic_single_variance, source="Lemma 2"),
    "hyperbolic-ort": RowTheory(
        "block", softmax_mean, hyperbolic_single_variance, exp_pair_covariance, source="§5.2"
    ),
    "positive-iid-fixed": RowTheory("iid", smreg_mean, fixed_single_variance, source="theory.md §6"),
    "positive-ort-fixed": RowTheory(
        "block", smreg_mean, fixed_single_variance, fixed_pair_covariance, source="theory.md §6"
    ),
    "relu-iid": RowTheory("iid", arccos_mean, relu_single_variance, source="Cho & Saul 2009; §3"),
    "relu-ort": RowTheory(
        "block", arccos_mean, relu_single_variance, relu_pair_covariance, source="theory.md claim 27 [DER]"
    ),
    "oprf-iid": RowTheory("iid", softmax_mean, oprf_single_variance, source="theory.md claim 19"),
    "oprf-ort": RowTheory(
        "block", softmax_mean, oprf_single_variance, exp_pair_covariance, source="theory.md claims 19, 21"
    ),
    "oprf-simplex": RowTheory(
        "block", softmax_mean, oprf_single_variance, simplex_pair_covariance, source="claims 19, 25"
    ),
    "gerf-trig-iid": RowTheory("iid", softmax_mean, gerf_trig_single_variance, source="theory.md claim 20"),
    "saderf-iid": RowTheory("iid", softmax_mean, saderf_single_variance, source="theory.md claim 24"),
    "saderf-ort": RowTheory(
        "block", softmax_mean, saderf_single_variance, _saderf_pair_covariance, source="claims 21, 24"
    ),
    "positive-simplex": RowTheory(
        "block", softmax_mean, positive_single_variance, simplex_pair_covariance, source="theory.md claim 25"
    ),
    "poisson-iid": RowTheory("iid", softmax_mean, poisson_single_variance, source="theory.md claim 22"),
    "geometric-iid": RowTheory("iid", softmax_mean, geometric_single_variance, source="theory.md claim 22"),
    "positive-sorf-chi": RowTheory(
        "none",
        None,
        reason=f"{_SORF}; χ(d) norms match the Gaussian second moment but not the fourth",
        source="theory.md §10.1",
    ),
    "positive-sorf-fixed": RowTheory(
        "none",
        None,
        reason="SORF rows have fixed √d norms and a discrete, non-Haar direction law; the mean is close "
        "to SMREG but not equal (theory.md §10.1)",
        source="theory.md §10.1",
    ),
    "positive-qmc": RowTheory("none", softmax_mean, reason=_QMC, source="theory.md §10.6"),
    "positive-qmc-halton": RowTheory("none", softmax_mean, reason=_QMC, source="theory.md §10.6"),
    "hybrid-iid": RowTheory(
        "formula",
        softmax_mean,
        reason=_HYBRID,
        source="theory.md §10.5, claim 26",
        mse=lambda p, m: hybrid.mse(p, m, "exact-ends"),
    ),
    "hybrid-notebook-iid": RowTheory(
        "formula",
        softmax_mean,
        reason=_HYBRID,
        source="theory.md §10.5, claim 26",
        mse=lambda p, m: hybrid.mse(p, m, "notebook"),
    ),
}
