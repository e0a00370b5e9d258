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

Evaluation: every pair moment factors through a fixed key-by-key kernel. With E_jj′ = exp(−‖y_j − y_j′‖²/2)
and F_jj′ = exp(−‖y_j + y_j′‖²/2) (both in (0, 1], independent of the query),

    w_j w_j′ exp(z_jᵀz_j′) = a_j E_jj′ a_j′,        a_j = exp(log w_j + ‖z_j‖²/2),
    w_j w_j′ exp(−z_jᵀz_j′) = b_j F_jj′ b_j′,       b_j = exp(log w_j + ‖Δ_j‖²/2 − ‖x_i‖²),

(and the same with z and Δ exchanged for trig, cosh u = (e^u + e^{−u})/2), because ‖z_j‖² + ‖z_j′‖²
− 2 z_jᵀz_j′ = ‖y_j − y_j′‖². So Σ_{j,j′} is one product with E (or F) for all queries at once:
O(Lk² d + Lq Lk² dv) flops and O(Lk² + Lq Lk dv) memory instead of Lq Lk² exponentials.

Accurate when max ‖x_i + y_j‖² ≲ 1.5 (positive features are heavy-tailed: at ‖x_i + y_j‖² ≈ 5 the
Monte Carlo value at m = 512 is still ~40–60% of the asymptote, theory.md §7.1).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special

from .pairs import host_float64

DELTA_ROWS = ("positive-iid", "hyperbolic-iid", "trig-iid")


class DeltaTrace(NamedTuple):
    """‖bias_i‖² (…, Lq) and tr Cov(ô_i) (…, Lq) of the delta method."""

    bias_sq: np.ndarray
    trace: np.ndarray


class DeltaMethod(NamedTuple):
    """Exact output o (…, Lq, dv), delta-method bias (…, Lq, dv) and covariance (…, Lq, dv, dv)."""

    output: np.ndarray
    bias: np.ndarray
    covariance: np.ndarray


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

    Memory is O(Lk² + Lq · Lk · dv) per leading index (module docstring: the weights w_j w_j′ G_jj′
    are never formed). ``OverflowError`` when a factor a_j or b_j overflows float64 (‖x_i ± y_j‖² of
    several hundred, far outside the delta method's regime).
    """
    x, y, v, log_w, output = _weights(name, x, y, v, m, scale_inputs)
    centred = v[..., None, :, :] - output[..., :, None, :]
    bias = np.zeros_like(output)
    covariance = np.zeros((*output.shape, output.shape[-1]))
    for coefficient, log_scale, kernel in _pair_terms(name, x, y, log_w):
        scale = _scale(log_scale)
        scaled = scale[..., None] * centred
        row_sums = scale * np.swapaxes(kernel @ np.swapaxes(scale, -1, -2), -1, -2)
        bias -= coefficient * (row_sums[..., None, :] @ centred)[..., 0, :]
        covariance += coefficient * (np.swapaxes(scaled, -1, -2) @ _apply_kernel(kernel, scaled))
    return DeltaMethod(output=output, bias=bias / m, covariance=covariance / m)


def attention_delta_trace(name, x, y, v, m, *, scale_inputs=False) -> DeltaTrace:
    """‖bias_i‖² and tr Cov(ô_i) (…, Lq) of :func:`attention_delta`, without its covariance matrices.

    Arguments as in :func:`attention_delta`. With s_j = a_j (or b_j) and K the key kernel of each pair
    term (module docstring), the centred sums expand into products with K and with K ∘ VVᵀ (Lk × Lk,
    shared by every query):

        Σ_{j,j′} s_j K_jj′ s_j′ (v_j − o_i)ᵀ(v_j′ − o_i) = sᵀ(K ∘ VVᵀ)s − 2 (s ∘ V o_i)ᵀ K s + ‖o_i‖² sᵀ K s,
        Σ_{j,j′} s_j K_jj′ s_j′ (v_j − o_i) = Vᵀ(s ∘ K s) − o_i sᵀ K s,

    so the cost is O(Lq Lk²) flops and O(Lk² + Lq Lk) memory, not O(Lq Lk² dv) and O(Lq Lk dv). Equal
    to the trace and squared norm of ``attention_delta``'s terms up to float64 rounding.
    """
    x, y, v, log_w, output = _weights(name, x, y, v, m, scale_inputs)
    bias = np.zeros_like(output)
    trace = np.zeros(output.shape[:-1])
    values_gram = v @ np.swapaxes(v, -1, -2)
    along_output = output @ np.swapaxes(v, -1, -2)
    for coefficient, log_scale, kernel in _pair_terms(name, x, y, log_w):
        scale = _scale(log_scale)
        spread = np.swapaxes(kernel @ np.swapaxes(scale, -1, -2), -1, -2)
        spread_values = np.swapaxes((kernel * values_gram) @ np.swapaxes(scale, -1, -2), -1, -2)
        weighted = scale * spread
        total = np.sum(weighted, axis=-1)
        bias -= coefficient * (weighted @ v - output * total[..., None])
        trace += coefficient * (
            np.sum(scale * spread_values, axis=-1)
            - 2 * np.sum(weighted * along_output, axis=-1)
            + np.sum(output * output, axis=-1) * total
        )
    return DeltaTrace(bias_sq=np.sum(bias * bias, axis=-1) / m**2, trace=trace / m)


def _weights(name, x, y, v, m, scale_inputs):
    """Checked float64 x, y, v (scaled when ``scale_inputs``), log w (…, Lq, Lk) and o (…, Lq, dv)."""
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
    return x, y, v, log_w, np.exp(log_w) @ v


def _scale(log_scale):
    """a = exp(log a) (…, Lq, Lk); ``OverflowError`` where it overflows float64."""
    with np.errstate(over="ignore"):
        scale = np.exp(log_scale)
    if not np.all(np.isfinite(scale)):
        raise OverflowError(
            "x and y are too large for the delta method: ‖x_i ± y_j‖²/2 reaches "
            f"{np.max(log_scale):.0f}, and the pair moments overflow float64"
        )
    return scale


def _pair_terms(name, x, y, log_w):
    """(coefficient, log a (…, Lq, Lk), kernel (…, Lk, Lk)) whose Σ coefficient·a_j K_jj′ a_j′ is
    w_j w_j′ G_jj′ (module docstring)."""
    sq_x = np.sum(x * x, axis=-1)[..., :, None]
    sq_y = np.sum(y * y, axis=-1)[..., None, :]
    cross = x @ np.swapaxes(y, -1, -2)
    log_plus = log_w + (sq_x + 2 * cross + sq_y) / 2
    gram = y @ np.swapaxes(y, -1, -2)
    norms = np.sum(y * y, axis=-1)
    outer = norms[..., :, None] + norms[..., None, :]
    difference = np.exp(-np.maximum(outer - 2 * gram, 0) / 2)
    if name == "positive-iid":
        return [(1.0, log_plus, difference)]
    log_minus = log_w + (sq_x - 2 * cross + sq_y) / 2
    total = np.exp(-np.maximum(outer + 2 * gram, 0) / 2)
    if name == "hyperbolic-iid":
        return [(0.5, log_plus, difference), (0.5, log_minus - sq_x, total)]
    return [(0.5, log_minus, difference), (0.5, log_plus - sq_x, total)]


def _apply_kernel(kernel, scaled):
    """kernel (…, Lk, Lk) applied to every query's (…, Lq, Lk, dv) block as one matrix product."""
    *lead, queries, keys, width = scaled.shape
    stacked = np.moveaxis(scaled, -3, -2).reshape(*lead, keys, queries * width)
    product = (kernel @ stacked).reshape(*lead, keys, queries, width)
    return np.moveaxis(product, -2, -3)


def _check_shapes(x, y, v) -> None:
    if x.ndim < 2 or y.ndim < 2 or v.ndim < 2:
        raise ValueError(f"x, y, v must be (..., L, d) arrays, got shapes {x.shape}, {y.shape}, {v.shape}")
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x has d={x.shape[-1]} but y has d={y.shape[-1]}; they must match")
    if v.shape[-2] != y.shape[-2]:
        raise ValueError(f"v has {v.shape[-2]} rows but y has {y.shape[-2]} keys; they must match")
