"""Delta-method bias and covariance of the normalized FAVOR output ô_i = N̂_i / D̂_i (theory.md §7.1).

For query row i, Â_ij (unbiased for A_ij = exp(x_iᵀy_j)), D̂_i = Σ_j Â_ij and N̂_i = Σ_j Â_ij v_j are
unbiased, the ratio is not. With w_j = A_ij/D_i, o_i = Σ_j w_j v_j and, for one projection ω,
G_jj′ = E[â_j â_j′]/(A_ij A_ij′) (â_j = the single-projection estimate of A_ij), the delta method
(m → ∞, iid projections) gives [DER, NUM:attn]

    E[ô_i] − o_i ≈ −(1/m) Σ_{j,j′} w_j w_j′ G_jj′ (v_j − o_i),
    Cov(ô_i)    ≈  (1/m) Σ_{j,j′} w_j w_j′ G_jj′ (v_j − o_i)(v_j′ − o_i)ᵀ,

(N̂ − o D̂ = (1/m) Σ_l Y_l with E Y_l = 0). The pair moments, with z_j = x_i + y_j and Δ_j = x_i − y_j:

* positive-iid: G = exp(z_jᵀz_j′)  (E e^{ωᵀ(z_j + z_j′)} = e^{‖z_j + z_j′‖²/2});
* hyperbolic-iid: G = cosh(z_jᵀz_j′);
* trig-iid: G = cosh(Δ_jᵀΔ_j′).

Accurate when max ‖x_i + y_j‖² ≲ 1.5 (positive features are heavy-tailed: at ‖x_i + y_j‖² ≈ 5 the
Monte Carlo value at m = 512 is still ~40–60% of the asymptote, theory.md §7.1).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import special

from .pairs import host_float64

DELTA_ROWS = ("positive-iid", "hyperbolic-iid", "trig-iid")


class DeltaMethod(NamedTuple):
    """Exact output o (…, Lq, dv), delta-method bias (…, Lq, dv) and covariance (…, Lq, dv, dv)."""

    output: np.ndarray
    bias: np.ndarray
    covariance: np.ndarray


def _log_cosh(u):
    a = np.abs(u)
    return a + np.log1p(np.exp(-2 * a)) - math.log(2.0)


def attention_delta(name, x, y, v, m, *, scale_inputs=False) -> DeltaMethod:
    """Delta-method bias and covariance of ô_i for iid row ``name`` with m projections.

    Parameters
    ----------
    name : str
        One of ``positive-iid``, ``hyperbolic-iid``, ``trig-iid``.
    x, y : array (…, Lq, d), (…, Lk, d)
        Queries and keys, already scaled (x = q d^{−1/4}, so A = exp(x yᵀ)); ``scale_inputs=True``
        takes raw q, k and scales them here.
    v : array (…, Lk, dv)
        Values.
    m : int
        Number of projections (hyperbolic and trig have 2m features).

    Memory is O(Lq · Lk²) per leading index (the weights w_j w_j′ G_jj′ are formed explicitly).
    """
    if name not in DELTA_ROWS:
        raise ValueError(f"name must be one of {DELTA_ROWS} (iid rows with a delta method), got {name!r}")
    if isinstance(m, bool) or not hasattr(m, "__index__") or int(m) < 1:
        raise ValueError(f"m must be an integer >= 1, got {m!r}")
    x, y, v = (host_float64(a, n) for a, n in ((x, "x"), (y, "y"), (v, "v")))
    _check_shapes(x, y, v)
    if scale_inputs:
        x, y = x * x.shape[-1] ** -0.25, y * y.shape[-1] ** -0.25
    logits = x @ np.swapaxes(y, -1, -2)
    log_w = logits - special.logsumexp(logits, axis=-1, keepdims=True)
    output = np.exp(log_w) @ v
    log_g = _log_pair_moment(name, x, y)
    weights = np.exp(log_w[..., :, None] + log_w[..., None, :] + log_g)
    centred = v[..., None, :, :] - output[..., :, None, :]
    bias = -np.sum(np.sum(weights, axis=-1)[..., None] * centred, axis=-2) / m
    covariance = np.swapaxes(centred, -1, -2) @ weights @ centred / m
    return DeltaMethod(output=output, bias=bias, covariance=covariance)


def _check_shapes(x, y, v) -> None:
    if x.ndim < 2 or y.ndim < 2 or v.ndim < 2:
        raise ValueError(f"x, y, v must be (..., L, d) arrays, got shapes {x.shape}, {y.shape}, {v.shape}")
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x has d={x.shape[-1]} but y has d={y.shape[-1]}; they must match")
    if v.shape[-2] != y.shape[-2]:
        raise ValueError(f"v has {v.shape[-2]} rows but y has {y.shape[-2]} keys; they must match")


def _log_pair_moment(name, x, y):
    """log G_jj′ of shape (…, Lq, Lk, Lk)."""
    keys = y[..., None, :, :]
    queries = x[..., :, None, :]
    if name == "trig-iid":
        diffs = queries - keys
        return _log_cosh(diffs @ np.swapaxes(diffs, -1, -2))
    sums = queries + keys
    inner = sums @ np.swapaxes(sums, -1, -2)
    return inner if name == "positive-iid" else _log_cosh(inner)
