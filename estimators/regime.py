"""How far FAVOR inputs are outside the estimator's useful regime: the delta-method relative error.

For query row i the FAVOR output ô_i = N̂_i / D̂_i is a ratio of unbiased estimates. With m iid
projections the delta method (m → ∞) gives its bias b_i and covariance C_i in closed form
(:func:`estimators.theory.attention_delta`: with weights w_j = A_ij / D_i and the pair
moments G_jj′ of one projection, ``b_i = −(1/m) Σ w_j w_j′ G_jj′ (v_j − o_i)`` and
``C_i = (1/m) Σ w_j w_j′ G_jj′ (v_j − o_i)(v_j′ − o_i)ᵀ``). The predicted relative error is

    e = √( Σ_i (tr C_i + ‖b_i‖²) / Σ_i ‖o_i‖² ),

the root-mean-square error of the output relative to its size (the quantity ‖ô − o‖_F / ‖o‖_F
estimates). G_jj′ = exp((x_i + y_j)ᵀ(x_i + y_j′)) for positive features grows like e^{‖x + y‖²}, so
e grows explosively with the input norms: at ‖q‖ = ‖k‖ = 30 the output is noise.

Scope and accuracy. The moments are those of iid Gaussian projections (orthogonal blocks lower the
variance, so e is then an upper estimate); ``eps`` is not modelled. The expansion is accurate while
max ‖x_i + y_j‖² ≲ 1.5; beyond it the true error at finite m is smaller than e (positive features are
heavy-tailed), but e is then far above any useful level anyway. Above :data:`ERROR_THRESHOLD` the
inputs are outside the useful regime and :func:`estimators.attention.favor` warns
(:class:`RegimeWarning`).

Cost. Computed on the host in float64 on at most ``rows`` query rows (evenly spaced over the
flattened batch and positions): O(rows · M² · d) time and O(M²) memory per row for M visible keys.
"""

from __future__ import annotations

import math

import numpy as np

from .backends import to_host
from .theory import attention_delta

ERROR_THRESHOLD = 0.5
"""Predicted relative error above which the FAVOR output is mostly noise (RMS error ≥ half its size)."""

DELTA_FEATURES = {"positive": "positive-iid", "hyperbolic": "hyperbolic-iid", "trig": "trig-iid"}
"""Feature maps with a delta method, and the iid estimator row whose moments it uses."""

DEFAULT_ROWS = 64


class RegimeWarning(UserWarning):
    """FAVOR inputs outside the useful regime: predicted relative error above :data:`ERROR_THRESHOLD`."""


def predicted_error(
    q, k, v, m, feature="positive", causal=False, key_padding_mask=None, *, rows=DEFAULT_ROWS
):
    """The delta-method relative error e (module docstring) of FAVOR with m projections.

    Parameters
    ----------
    q, k, v : arrays (…, L, d), (…, M, d), (…, M, d_v)
        Raw queries, keys and values (scaled by d^{-1/4} here, as :func:`~estimators.attention.favor`).
    m : int
        Number of projections (rows of W).
    feature : {"positive", "hyperbolic", "trig"}
    causal : bool
        Query i sees keys j ≤ i.
    key_padding_mask : bool array (…, M) or None
        True keeps a key.
    rows : int
        Query rows used (evenly spaced); all rows when there are fewer.

    Returns
    -------
    float
        e ≥ 0; ``math.inf`` when the moments overflow float64 (far outside the regime); 0 when no
        sampled row has a visible key.
    """
    if feature not in DELTA_FEATURES:
        raise ValueError(
            f"feature must be one of {tuple(DELTA_FEATURES)} for a predicted error, got {feature!r}"
        )
    if isinstance(m, bool) or not hasattr(m, "__index__") or int(m) < 1:
        raise ValueError(f"m must be an integer >= 1, got {m!r}")
    if isinstance(rows, bool) or not hasattr(rows, "__index__") or int(rows) < 1:
        raise ValueError(f"rows must be an integer >= 1, got {rows!r}")
    q, k, v = (np.asarray(to_host(a), dtype=np.float64) for a in (q, k, v))
    d = q.shape[-1]
    q, k = q * d**-0.25, k * d**-0.25
    length = k.shape[-2]
    keep = np.ones(k.shape[:-1], dtype=bool)
    if key_padding_mask is not None:
        keep = np.asarray(to_host(key_padding_mask), dtype=bool)
    batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2], keep.shape[:-1])
    q = np.broadcast_to(q, (*batch, *q.shape[-2:])).reshape(-1, *q.shape[-2:])
    k = np.broadcast_to(k, (*batch, *k.shape[-2:])).reshape(-1, *k.shape[-2:])
    v = np.broadcast_to(v, (*batch, *v.shape[-2:])).reshape(-1, *v.shape[-2:])
    keep = np.broadcast_to(keep, (*batch, length)).reshape(-1, length)
    total = q.shape[0] * q.shape[1]
    picked = np.unique(np.linspace(0, total - 1, min(total, int(rows))).round().astype(np.int64))
    squared_error, squared_output = 0.0, 0.0
    for flat in picked:
        head, i = divmod(int(flat), q.shape[1])
        visible = keep[head] & (np.arange(length) <= i) if causal else keep[head]
        if not visible.any():
            continue
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            try:
                delta = attention_delta(
                    DELTA_FEATURES[feature], q[head, i : i + 1], k[head][visible], v[head][visible], int(m)
                )
            except OverflowError:
                return math.inf
            squared_error += float(np.trace(delta.covariance[0]) + np.sum(delta.bias[0] ** 2))
        squared_output += float(np.sum(delta.output[0] ** 2))
    if squared_error == 0.0:
        return 0.0
    if not math.isfinite(squared_error) or squared_output == 0.0:
        return math.inf
    return math.sqrt(squared_error / squared_output)


__all__ = ["DELTA_FEATURES", "ERROR_THRESHOLD", "RegimeWarning", "predicted_error"]
