"""Closed forms of the random-feature estimators: means, variances, exact MSEs and bounds (float64).

One table, one entry point per quantity. :data:`ROW_THEORY` (:mod:`.table`) holds a
:class:`RowTheory` per registry row, core Performer rows and later families alike; :func:`mean`,
:func:`single_variance`, :func:`pair_covariance` and :func:`mse` (:mod:`.quantities`) evaluate any
row from it. Every function takes pairs x, y (…, d), already scaled, and returns float64 numpy (…).
The formulas, their derivations and sources are in ``docs/theory.md``, which the "theory.md §N" and
"claim N" citations in this package name.

Modules, one family of formulas each:

* :mod:`.pairs`: input checks and the pair statistics ‖x‖², ‖y‖², xᵀy, ‖x ± y‖², the angle;
* :mod:`.exponential`: trig, positive and hyperbolic moments, the orthogonal-pair moments (§4–§5);
* :mod:`.rectified`: arc-cosine kernel and ReLU-feature moments (claim 27);
* :mod:`.regularized`: SMREG, the fixed-√d-norm rows and Theorem 1 (§6);
* :mod:`.parameterized`: GERF, SADERF and the discrete families at their parameter rules (§10);
* :mod:`.coupled`: pair moments of coupled rows at a fixed cosine (ORF, simplex; §5.2, §10.4);
* :mod:`.bounds`: Theorems 2 and 4 and the false OpenReview variant of Theorem 2 (§5.3, §7);
* :mod:`.delta_method`: bias and covariance of normalized attention to first order (§7.1);
* :mod:`.fourth_moments`: raw moments E[K̂^k], k ≤ 4, for the variance of squared errors;
* :mod:`.table` and :mod:`.quantities`: the table and its entry points.
"""

from . import fourth_moments
from .bounds import BOUND_KERNELS, theorem2_bound, theorem2_gap, theorem2_openreview_bound, theorem4_features
from .coupled import coupled_pair_moment, simplex_cosine
from .delta_method import DELTA_ROWS, DeltaMethod, DeltaTrace, attention_delta, attention_delta_trace
from .exponential import cos_pair_gap, cos_pair_moment, exp_pair_moment, log_exp_pair_gap, utility_ratio
from .parameterized import (
    expplus_A,
    geometric_p,
    geometric_variance,
    gerf_trig_variance,
    gerf_variance,
    optimal_gerf_A,
    poisson_rate,
    poisson_variance,
    saderf_pair,
    single_moment,
)
from .quantities import (
    ReluMoments,
    arccos,
    block_pairs,
    exp_pair_gap,
    gaussian,
    mean,
    mse,
    pair_covariance,
    relu_moments,
    single_variance,
    smreg,
    softmax,
)
from .rectified import arccos_j1, arccos_j2
from .regularized import smreg_ratio, smreg_ratio_series, theorem1_bounds
from .table import COUPLINGS, ROW_THEORY, RowTheory

__all__ = [
    "BOUND_KERNELS",
    "COUPLINGS",
    "DELTA_ROWS",
    "ROW_THEORY",
    "DeltaMethod",
    "DeltaTrace",
    "ReluMoments",
    "RowTheory",
    "arccos",
    "arccos_j1",
    "arccos_j2",
    "attention_delta",
    "attention_delta_trace",
    "block_pairs",
    "cos_pair_gap",
    "cos_pair_moment",
    "coupled_pair_moment",
    "exp_pair_gap",
    "exp_pair_moment",
    "expplus_A",
    "fourth_moments",
    "gaussian",
    "geometric_p",
    "geometric_variance",
    "gerf_trig_variance",
    "gerf_variance",
    "log_exp_pair_gap",
    "mean",
    "mse",
    "optimal_gerf_A",
    "pair_covariance",
    "poisson_rate",
    "poisson_variance",
    "relu_moments",
    "saderf_pair",
    "simplex_cosine",
    "single_moment",
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
