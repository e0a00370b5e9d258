"""Attention-level errors of a FAVOR estimate: what the normalized attention rows suffer, beyond K̂'s MSE.

Shapes: an exact attention matrix ``exact`` P (…, L, M), rows P_i = softmax(q_i Kᵀ/√d) (Performers
Eq. 1; every row a probability distribution), and FAVOR's unnormalized estimate ``weights`` Â (…, L, M),
Â_ij = φ(q_i)ᵀφ(k_j) (Eq. 4), whose normalized rows P̂_i = Â_i / Σ_j Â_ij are FAVOR's attention rows
(:func:`normalized_rows`; ô_i = P̂_i V). Every function works on numpy, torch and jax arrays and returns
arrays of the input's backend, device and dtype (per-row results (…, L)).

Where P̂_i is a distribution. With positive features (FAVOR+, OPRF, SADERF) every Â_ij > 0 and P̂_i
is a distribution. Trigonometric, discretely-induced and hybrid features can give negative weights
or a non-positive row sum (Performers §2.3): such a row is **invalid** (:func:`invalid_rows`), and
the divergences of a distribution (KL, total variation, entropy) are NaN there; the rate of invalid
rows is reported instead (theory.md §7.2).

=========================  ==================================================  ==========================
metric                     per row i                                           source
=========================  ==================================================  ==========================
:func:`row_kl`             KL(P_i ‖ P̂_i) = Σ_j P_ij log(P_ij / P̂_ij)          Cover & Thomas Eq. 2.26
:func:`row_total_variation` ½ Σ_j |P_ij − P̂_ij|                               Cover & Thomas Eq. 11.137
:func:`entropy_error`      H(P̂_i) − H(P_i), H(p) = −Σ_j p_j log p_j            LLN attention (ICLR 2024)
:func:`top_k_miss`         1 if argmax_j P_ij is not among P̂_i's k largest    theory.md §7.2
:func:`relative_output_error` ‖Ô − O‖_F / ‖O‖_F over the last two axes         theory.md §7.2, §9
=========================  ==================================================  ==========================

Conventions: 0 log 0 = 0; KL is +∞ where P̂_ij = 0 < P_ij. Ties in :func:`top_k_miss` count for the
exact maximum (the key is among the top k when fewer than k weights are strictly larger).
"""

from __future__ import annotations

from .backends import namespace
from .validation import check_array, check_positive_int


def _check_pair(exact, weights, weights_name="weights"):
    check_array(exact, "exact", min_ndim=2)
    check_array(weights, weights_name, min_ndim=2, finite=False)
    if tuple(exact.shape[-2:]) != tuple(weights.shape[-2:]):
        raise ValueError(
            f"exact and {weights_name} must have the same (L, M) attention shape, got "
            f"{tuple(exact.shape)} and {tuple(weights.shape)}"
        )


def invalid_rows(weights):
    """Rows of Â (…, L, M) that do not normalize to a distribution → bool (…, L).

    A row is invalid when a weight is negative or not finite, or when its sum Σ_j Â_ij is not
    positive (FAVOR's denominator D̂_i ≤ 0, Performers §2.3).
    """
    check_array(weights, "weights", min_ndim=2, finite=False)
    xp = namespace(weights)
    finite = xp.all(xp.isfinite(weights), axis=-1)
    nonnegative = xp.all(weights >= 0, axis=-1)
    positive_sum = xp.sum(xp.where(xp.isfinite(weights), weights, 0.0), axis=-1) > 0
    return ~(finite & nonnegative & positive_sum)


def normalized_rows(weights):
    """FAVOR's attention rows P̂ = D̂⁻¹Â (…, L, M), D̂_i = Σ_j Â_ij (Performers Eq. 4), as computed
    (not checked: see :func:`invalid_rows`)."""
    check_array(weights, "weights", min_ndim=2, finite=False)
    xp = namespace(weights)
    return weights / xp.sum(weights, axis=-1, keepdims=True)


def _log_or_zero(p):
    """log p where p > 0, else 0 (the log that the 0 log 0 = 0 convention never uses)."""
    xp = namespace(p)
    return xp.log(xp.where(p > 0, p, 1.0))


def _plogp_ratio(p, q, log_p, log_q):
    """p log(p / q) elementwise with 0 log 0 = 0 (and +∞ where q = 0 < p); ``log_p``, ``log_q`` are
    :func:`_log_or_zero` of p and q."""
    xp = namespace(p, q)
    ratio = xp.where(q > 0, p * (log_p - log_q), xp.inf)
    return xp.where(p > 0, ratio, 0.0)


def _entropy(p, log_p):
    """−Σ_j p_j log p_j per row (0 log 0 = 0) from p (…, L, M) and its :func:`_log_or_zero`."""
    xp = namespace(p)
    return -xp.sum(xp.where(p > 0, p * log_p, 0.0), axis=-1)


class _Rows:
    """Â's rows as distributions: ``bad`` (…, L) :func:`invalid_rows`, ``rows`` P̂ (…, L, M) (rows of
    ones normalized where bad, so that every value below is finite there before it is masked) and
    ``log_rows`` their :func:`_log_or_zero`; computed once for all the divergences."""

    def __init__(self, weights):
        xp = namespace(weights)
        self.bad = invalid_rows(weights)
        self.rows = normalized_rows(xp.where(self.bad[..., None], 1.0, weights))
        self.log_rows = _log_or_zero(self.rows)


def _kl(exact, log_exact, estimated):
    xp = namespace(exact, estimated.rows)
    kl = xp.sum(_plogp_ratio(exact, estimated.rows, log_exact, estimated.log_rows), axis=-1)
    return xp.where(estimated.bad, xp.nan, kl)


def _total_variation(exact, estimated):
    xp = namespace(exact, estimated.rows)
    return xp.where(estimated.bad, xp.nan, 0.5 * xp.sum(xp.abs(exact - estimated.rows), axis=-1))


def _entropy_error(exact, log_exact, estimated):
    xp = namespace(exact, estimated.rows)
    return xp.where(
        estimated.bad, xp.nan, _entropy(estimated.rows, estimated.log_rows) - _entropy(exact, log_exact)
    )


def row_kl(exact, weights):
    """KL(P_i ‖ P̂_i) = Σ_j P_ij log(P_ij / P̂_ij) per row → (…, L); NaN on invalid rows.

    ``exact`` P (…, L, M) with rows summing to 1, ``weights`` Â (…, L, M) unnormalized (normalized
    here). Relative entropy of Cover & Thomas, *Elements of Information Theory* (2nd ed.), Eq. 2.26;
    ≥ 0, and 0 exactly when P̂_i = P_i.
    """
    _check_pair(exact, weights)
    return _kl(exact, _log_or_zero(exact), _Rows(weights))


def row_total_variation(exact, weights):
    """Total variation ½ Σ_j |P_ij − P̂_ij| per row → (…, L), in [0, 1]; NaN on invalid rows.

    The total variation distance of two distributions on the M keys (Cover & Thomas, Eq. 11.137):
    the largest difference in the attention mass the two rows give any set of keys.
    """
    _check_pair(exact, weights)
    return _total_variation(exact, _Rows(weights))


def row_entropy(rows):
    """Shannon entropy H(p) = −Σ_j p_j log p_j (nats) of distributions ``rows`` (…, L, M) → (…, L)."""
    check_array(rows, "rows", min_ndim=2)
    return _entropy(rows, _log_or_zero(rows))


def entropy_error(exact, weights):
    """H(P̂_i) − H(P_i) per row → (…, L) (nats); NaN on invalid rows.

    The entropy of attention rows measures their concentration (Linear Log-Normal Attention, Nahshan
    et al., ICLR 2024, compare linear-attention rows with softmax rows by it); positive: the estimate
    spreads attention more than softmax does. In [−log M, log M].
    """
    _check_pair(exact, weights)
    return _entropy_error(exact, _log_or_zero(exact), _Rows(weights))


def row_metrics(exact, weights, k):
    """Every per-row metric of Â at once, each as its own function computes it → dict of (…, L):
    ``invalid`` (:func:`invalid_rows`, bool), ``kl``, ``total_variation``, ``entropy_error`` and
    ``top_k_miss`` (with ``k``). The validity mask, P̂ and log P̂ are computed once for all of them.
    """
    _check_pair(exact, weights)
    estimated = _Rows(weights)
    log_exact = _log_or_zero(exact)
    return {
        "invalid": estimated.bad,
        "kl": _kl(exact, log_exact, estimated),
        "total_variation": _total_variation(exact, estimated),
        "entropy_error": _entropy_error(exact, log_exact, estimated),
        "top_k_miss": top_k_miss(exact, weights, k),
    }


def top_k_miss(exact, weights, k):
    """1.0 where the key of the largest exact weight is *not* among the k largest of Â_i, else 0.0
    → (…, L); a row with a non-finite weight, or all weights 0 (underflow), is a miss.

    The key j* = argmax_j P_ij is among Â_i's top k when fewer than k weights satisfy Â_ij > Â_ij*
    (ties count for j*). Normalization does not change the order of a row with D̂_i > 0, so Â is
    used as given; for D̂_i < 0 the order of P̂_i is reversed, and the weights Â_ij are what a top-k
    (sparse) attention would keep. 1 − this is the top-k hit rate (theory.md §7.2).
    """
    _check_pair(exact, weights)
    k = check_positive_int(k, "k")
    if k > weights.shape[-1]:
        raise ValueError(f"k must be at most the number of keys M = {weights.shape[-1]}, got {k}")
    xp = namespace(exact, weights)
    best = xp.argmax(exact, axis=-1, keepdims=True)
    exact, weights = xp.broadcast_arrays(exact, weights)
    best = xp.broadcast_to(best, (*weights.shape[:-1], 1))
    at_best = xp.take_along_axis(weights, best, axis=-1)
    above = xp.sum(xp.astype(weights > at_best, weights.dtype), axis=-1)
    informative = xp.all(xp.isfinite(weights), axis=-1) & xp.any(weights != 0, axis=-1)
    return xp.astype(~(informative & (above < k)), weights.dtype)


def relative_output_error(estimate, exact):
    """‖Ô − O‖_F / ‖O‖_F over the last two axes (…, L, d_v) → (…): the relative output error.

    The error of the normalized FAVOR output against exact softmax attention that the shoot-out
    (``studies.estimator_shootout``), the accuracy benchmark (``favor_bench.accuracy``) and the
    numerics table report (theory.md §7.2, §9). NaN where Ô holds NaN, +∞ where it holds ±∞.
    """
    check_array(estimate, "estimate", min_ndim=2, finite=False)
    check_array(exact, "exact", min_ndim=2)
    if tuple(estimate.shape[-2:]) != tuple(exact.shape[-2:]):
        raise ValueError(
            f"estimate and exact must have the same (L, d_v) shape, got {tuple(estimate.shape)} and "
            f"{tuple(exact.shape)}"
        )
    xp = namespace(estimate, exact)
    difference = xp.sum((estimate - exact) ** 2, axis=(-2, -1))
    return xp.sqrt(difference / xp.sum(exact**2, axis=(-2, -1)))


__all__ = [
    "entropy_error",
    "invalid_rows",
    "normalized_rows",
    "relative_output_error",
    "row_entropy",
    "row_kl",
    "row_metrics",
    "row_total_variation",
    "top_k_miss",
]
