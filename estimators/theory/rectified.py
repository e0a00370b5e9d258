"""ReLU random features: the arc-cosine kernel and the moments of K̂ = (1/m) Σ ReLU(ω_iᵀx) ReLU(ω_iᵀy).

With ω ~ N(0, I_d) and θ the angle between x and y (Cho & Saul 2009, arc-cosine kernels of order n,
k_n = 2 E[…] = (1/π)‖x‖ⁿ‖y‖ⁿ J_n(θ); theory.md §3 table and claim 27, [DER, NUM:relu]):

* E ReLU(ωᵀx) = ‖x‖/√(2π),  E ReLU(ωᵀx)² = ‖x‖²/2,
* E[ReLU(ωᵀx) ReLU(ωᵀy)] = (‖x‖‖y‖/2π) J₁(θ),  J₁ = sin θ + (π − θ) cos θ,
* E[ReLU(ωᵀx)² ReLU(ωᵀy)²] = (‖x‖²‖y‖²/2π) J₂(θ),  J₂ = 3 sin θ cos θ + (π − θ)(1 + 2cos²θ).

J₁ and J₂ vanish like (π − θ)³ and (π − θ)⁵ at θ = π; both are evaluated there by their Taylor
series in ε = π − θ, so nearly opposite x, y keep full relative accuracy.

Orthogonal pairs [DER]: g(ω) = ReLU(ωᵀx)ReLU(ωᵀy) is 2-homogeneous, so with χ(d) norms
E[g(ω₁)g(ω₂)] = d² E[g(u₁)g(u₂)] for an orthonormal Haar pair (u₁, u₂). Given u₁, u₂ is uniform on the
unit sphere of u₁^⊥ (dimension d − 1), hence E[g(u₂) | u₁] = k(x′, y′)/(d − 1) with x′, y′ the projections
of x, y onto u₁^⊥ and k the order-1 kernel above. That leaves a 2-D expectation over the projection
p = r(cos φ, sin φ) of u₁ onto span(x, y): φ uniform, r² ~ Beta(1, (d − 2)/2). It is computed by
Gauss–Legendre in φ on the arc where both ReLUs are positive (split at the kinks φ = 0, θ) times
Gauss–Jacobi in w = √(1 − r²) with weight w^{d−3} (d = 2: r = 1 exactly).
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
from scipy import special

from .pairs import PairStats

_NEAR_PI = 1.0
_TAYLOR_TERMS = 20
_NODES_W = 48
_NODES_PHI = 32
_CHUNK = 256


def _j1_near_pi(eps):
    """J₁(π − ε) = sin ε − ε cos ε = Σ_{n≥1} (−1)^{n+1} 2n ε^{2n+1}/(2n+1)!."""
    n = np.arange(1, _TAYLOR_TERMS + 1, dtype=np.float64)
    coeff = (-1.0) ** (n + 1) * 2 * n / special.factorial(2 * n + 1)
    return np.sum(coeff * eps[..., None] ** (2 * n + 1), axis=-1)


def _j2_near_pi(eps):
    """J₂(π − ε) = Σ_{n≥2} (−1)^n (n − 1) w^{2n+1}/(2n+1)!, w = 2ε."""
    n = np.arange(2, _TAYLOR_TERMS + 2, dtype=np.float64)
    coeff = (-1.0) ** n * (n - 1) / special.factorial(2 * n + 1)
    return np.sum(coeff * (2 * eps[..., None]) ** (2 * n + 1), axis=-1)


def arccos_j1(theta, supplement=None):
    """J₁(θ) = sin θ + (π − θ) cos θ for θ ∈ [0, π] (Taylor series in ε = π − θ near π).

    ``supplement`` is ε when known more accurately than π − θ in float64 (absolute error ~1e-16).
    """
    theta = np.asarray(theta, dtype=np.float64)
    eps = np.pi - theta if supplement is None else np.asarray(supplement, dtype=np.float64)
    near = eps < _NEAR_PI
    direct = np.sin(theta) + eps * np.cos(theta)
    return np.where(near, _j1_near_pi(np.where(near, eps, 0.0)), direct)


def arccos_j2(theta, supplement=None):
    """J₂(θ) = 3 sin θ cos θ + (π − θ)(1 + 2 cos²θ) for θ ∈ [0, π] (Taylor series near π).

    ``supplement`` as in :func:`arccos_j1`.
    """
    theta = np.asarray(theta, dtype=np.float64)
    eps = np.pi - theta if supplement is None else np.asarray(supplement, dtype=np.float64)
    near = eps < _NEAR_PI
    cos = np.cos(theta)
    direct = 3 * np.sin(theta) * cos + eps * (1 + 2 * cos * cos)
    return np.where(near, _j2_near_pi(np.where(near, eps, 0.0)), direct)


def arccos_mean(p: PairStats):
    """(‖x‖‖y‖/2π) J₁(θ): the order-1 arc-cosine kernel, mean of the ReLU rows (Cho & Saul 2009)."""
    return np.sqrt(p.sq_x * p.sq_y) / (2 * math.pi) * arccos_j1(p.angle, p.supplement)


def relu_fourth_moment(p: PairStats):
    """E[ReLU(ωᵀx)² ReLU(ωᵀy)²] = (‖x‖²‖y‖²/2π) J₂(θ), ω ~ N(0, I_d) (order-2 arc-cosine kernel / 2)."""
    return p.sq_x * p.sq_y / (2 * math.pi) * arccos_j2(p.angle, p.supplement)


def relu_single_variance(p: PairStats):
    """V1 = E[ReLU(ωᵀx)²ReLU(ωᵀy)²] − k₁(x, y)² for one Gaussian row [DER]."""
    return relu_fourth_moment(p) - arccos_mean(p) ** 2


def relu_pair_covariance(p: PairStats):
    """Cov_ort = E[g(ω₁)g(ω₂)] − k₁² for an orthogonal pair with χ(d) norms (module docstring, [DER]).

    Deterministic quadrature (48 × 96 nodes), relative accuracy ~1e-9 or better against adaptive
    quadrature in the tests.
    """
    if p.d < 2:
        raise ValueError("an orthogonal pair needs d >= 2 (with d = 1 every block has one row)")
    shape = np.shape(p.angle)
    theta = np.ravel(p.angle)
    scale = np.ravel(p.sq_x * p.sq_y)
    unit_moment = np.empty_like(theta)
    for start in range(0, theta.size, _CHUNK):
        piece = slice(start, start + _CHUNK)
        unit_moment[piece] = _unit_pair_moment(theta[piece], p.d)
    pair_moment = (p.d**2 / (p.d - 1)) * scale * unit_moment / (2 * math.pi) ** 2
    return pair_moment.reshape(shape) - arccos_mean(p) ** 2


@functools.lru_cache(maxsize=64)
def _radial_rule(d: int):
    """Nodes s = r² and weights for E over r² ~ Beta(1, (d − 2)/2), via w = √(1 − s), weight w^{d−3}."""
    if d == 2:
        return np.ones(1), np.ones(1)
    x, weights = special.roots_jacobi(_NODES_W, 0.0, float(d - 3))
    w = (1 + x) / 2
    weights = weights / np.sum(weights)
    return 1 - w * w, weights


def _unit_pair_moment(theta, d: int):
    """∫_arc dφ E_s[s c(φ) c(φ−θ) √(AB) J₁(ψ)] for unit x, y at angle θ (see module docstring).

    J₁ is evaluated directly from cos ψ: where it cancels (ψ → π) the integrand is O((π − ψ)³) and
    only its absolute accuracy matters.
    """
    s_nodes, s_weights = _radial_rule(d)
    nodes, weights = special.roots_legendre(_NODES_PHI)
    lo, hi = theta - np.pi / 2, np.full_like(theta, np.pi / 2)
    cuts = [lo, np.clip(0.0, lo, hi), np.clip(theta, lo, hi), hi]
    total = np.zeros_like(theta)
    for a, b in itertools.pairwise(cuts):
        half = (b - a) / 2
        phi = (a + half)[:, None] + half[:, None] * nodes[None, :]
        cos_x = np.cos(phi)[..., None]
        cos_y = np.cos(phi - theta[:, None])[..., None]
        s = s_nodes[None, None, :]
        a_sq = np.maximum(1 - s * cos_x**2, 0.0)
        b_sq = np.maximum(1 - s * cos_y**2, 0.0)
        norm = np.sqrt(a_sq * b_sq)
        inner = np.cos(theta)[:, None, None] - s * cos_x * cos_y
        cos_psi = np.where(norm > 0, np.clip(inner / np.where(norm > 0, norm, 1.0), -1.0, 1.0), 1.0)
        j1 = np.sqrt(1 - cos_psi * cos_psi) + (np.pi - np.arccos(cos_psi)) * cos_psi
        integrand = s * np.maximum(cos_x, 0) * np.maximum(cos_y, 0) * norm * j1
        total += half * np.einsum("pqr,q,r->p", integrand, weights, s_weights)
    return total
