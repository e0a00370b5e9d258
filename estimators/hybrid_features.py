"""Angular hybrid random features (HRF; Choromanski et al., ICLR 2022, arXiv 2110.04367; theory.md §10.5).

The estimate mixes the trigonometric and hyperbolic softmax estimators with an angular weight:

    K̂(x, y) = w T(x, y) + (1 − w) H(x, y),   λ̂ = 1/2 − (1/2n) Σ_r sgn(ξ_rᵀx) sgn(ξ_rᵀy),

E λ̂ = θ/π. The projection W (…, m, d) holds k = m − n rows ω (shared by T and H) and then
n = :func:`estimators.hybrid_split.split` rows ξ. Two orientations of the trig weight w:

* ``hybrid`` (exact-ends): w = 1 − λ̂, so K̂ = T (exact for x = y) at θ = 0 and K̂ = H (exact for
  x = −y) at θ = π: the orientation for which [HRF]'s smaller worst-case relative error holds;
* ``hybrid-notebook``: w = λ̂, as the public notebook computes it ([code: HL-hanlin/HRF_ICLR2022
  ``Angular Hybrid.ipynb``]); theory.md §10.5 shows by Monte Carlo that this is what it computes and
  by the closed forms that its worst case is that of its base estimators.

Features. λ̂ = c_q(x)ᵀc_k(y) and 1 − λ̂ = a(x)ᵀa(y) with a(x) = [1/√2, s(x)/√(2n)],
c_q = a and c_k(y) = [1/√2, −s(y)/√(2n)], s(x) = sgn(Ξx) (n,). With the trig features t(x) =
e^{‖x‖²/2} k^{-1/2} [cos Ωx, sin Ωx] and hyperbolic ones h(x) = e^{−‖x‖²/2} (2k)^{-1/2}
[exp Ωx, exp(−Ωx)], the query and key rows are tensor products

    φ_q(x) = [a(x) ⊗ t(x), c_q(x) ⊗ h(x)],   φ_k(y) = [a(y) ⊗ t(y), c_k(y) ⊗ h(y)]   (exact-ends),

with the coin vectors exchanged for the notebook orientation, so φ_q(x)ᵀφ_k(y) = K̂(x, y): the
feature width is r = 4k(n + 1) (:func:`width`), and queries and keys differ (``side``). :func:`gram`
computes the same K̂ for all query/key pairs in O(L M m) without the r-wide features.
"""

from __future__ import annotations

from .backends import framework, namespace
from .feature_parts import FeatureParts
from .hybrid_split import split

ORIENTATION = {"hybrid": "exact-ends", "hybrid-notebook": "notebook"}
"""Feature name → orientation of the trig weight (:data:`estimators.theory.hybrid.ORIENTATIONS`)."""
SIDES = ("query", "key")


def width(m: int) -> int:
    """Feature width r = 4k(n + 1) of an HRF map with m projection rows."""
    k, n = split(m)
    return 4 * k * (n + 1)


def _pieces(x, W):
    """(Ωx (…, L, k), ‖x‖²/2 (…, L, 1), sgn Ξx (…, L, n)) for W (…, m, d)."""
    xp = namespace(x)
    k, _ = split(W.shape[-2])
    projected = xp.matmul(x, xp.matrix_transpose(W))
    return projected[..., :k], xp.sum(x * x, axis=-1, keepdims=True) / 2, xp.sign(projected[..., k:])


def _kron(xp, coin, values):
    """Row-wise tensor product (…, L, p), (…, L, q) → (…, L, p·q)."""
    product = coin[..., :, None] * values[..., None, :]
    return xp.reshape(product, (*product.shape[:-2], product.shape[-2] * product.shape[-1]))


def parts(x, W, dtype, *, side, orientation):
    """:class:`FeatureParts` of the HRF rows of ``side`` ("query" or "key") for x (…, L, d), W (…, m, d)."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES} (hybrid query and key features differ), got {side!r}")
    xp = namespace(x)
    projected, half_sq_norm, signs = _pieces(x, W)
    k, n = projected.shape[-1], signs.shape[-1]
    ones = xp.ones_like(signs[..., :1]) * 2**-0.5
    symmetric = xp.concat([ones, signs * (2 * n) ** -0.5], axis=-1)
    signed = symmetric if side == "query" else xp.concat([ones, -signs * (2 * n) ** -0.5], axis=-1)
    trig_coin, hyper_coin = (symmetric, signed) if orientation == "exact-ends" else (signed, symmetric)
    trig = framework(projected).cos_and_sin(projected) * k**-0.5
    both = xp.concat([projected, -projected], axis=-1) - half_sq_norm
    hyper_logs = _kron(xp, xp.ones_like(hyper_coin), both)
    trig_logs = xp.zeros_like(hyper_logs) + half_sq_norm
    factor = xp.concat(
        [_kron(xp, trig_coin, trig), _kron(xp, hyper_coin, xp.ones_like(both) * (2 * k) ** -0.5)], axis=-1
    )
    return FeatureParts(xp.concat([trig_logs, hyper_logs], axis=-1), factor, 1.0, dtype)


def gram(name, x, y, W):
    """K̂(x_i, y_j) (…, L, M) for x (…, L, d), y (…, M, d), W (…, m, d): w∘T + (1 − w)∘H computed
    directly (equal to the features' inner products; module docstring).

    Three Gram products: T = e^{‖x‖²/2}[cos Ωx, sin Ωx] · e^{‖y‖²/2}[cos Ωy, sin Ωy]ᵀ / k,
    H = [e^{Ωx − ‖x‖²/2}, e^{−Ωx − ‖x‖²/2}] · [e^{Ωy − ‖y‖²/2}, e^{−Ωy − ‖y‖²/2}]ᵀ / 2k and
    S = sgn(Ξx) sgn(Ξy)ᵀ / 2n = 1/2 − λ̂; then K̂ = H + w∘(T − H) with w = 1/2 ± S.
    """
    xp = namespace(x, y)
    k, n = split(W.shape[-2])
    px, half_x, sx = _pieces(x, W)
    py, half_y, sy = _pieces(y, W)
    half_minus_lam = xp.matmul(sx, xp.matrix_transpose(sy)) / (2 * n)
    weight = 0.5 + half_minus_lam if ORIENTATION[name] == "exact-ends" else 0.5 - half_minus_lam
    trig = xp.matmul(_trig_rows(px, half_x), xp.matrix_transpose(_trig_rows(py, half_y))) / k
    hyper = xp.matmul(_hyper_rows(px, half_x), xp.matrix_transpose(_hyper_rows(py, half_y))) / (2 * k)
    return hyper + weight * (trig - hyper)


def _trig_rows(projected, half_sq_norm):
    """e^{‖x‖²/2}[cos Ωx, sin Ωx] (…, L, 2k), whose inner products are k·T."""
    xp = namespace(projected)
    return framework(projected).cos_and_sin(projected) * xp.exp(half_sq_norm)


def _hyper_rows(projected, half_sq_norm):
    """[e^{Ωx − ‖x‖²/2}, e^{−Ωx − ‖x‖²/2}] (…, L, 2k), whose inner products are 2k·H."""
    xp = namespace(projected)
    return xp.exp(xp.concat([projected, -projected], axis=-1) - half_sq_norm)


__all__ = ["ORIENTATION", "SIDES", "gram", "parts", "width"]
