"""Moments of one random feature by Gauss–Hermite quadrature, for the MSE check of iid rows that
:mod:`estimators.theory.fourth_moments` has no closed form for (ReLU features).

The MSE check needs the variance of a squared error, a 4th moment of K̂. For iid Gaussian rows
(χ(d) norms) K̂ = (1/m) Σ_i g(ω_i) with g(ω) = K̂ at m = 1, a function of (ωᵀe₁, ωᵀe₂) for an
orthonormal basis e₁, e₂ of span{x, y}, which is N(0, I₂). So E[g^k] is a 2-D Gauss–Hermite
integral (probabilists' nodes, weight e^{−ξ²/2}/√(2π)):
exact for polynomials of degree ≤ 2n − 1 per axis and accurate to ~1e-12 relative for exp features
with ‖x + y‖² ≲ 2 at n = 64 (checked against E[(Λe^{ωᵀz})^k] = Λ^k e^{k²‖z‖²/2} in the tests).
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from estimators import registry

NODES = 64


def _plane_basis(x, y):
    """Orthonormal e₁, e₂ (2, d) spanning x and y (any completion when they are parallel or zero)."""
    d = x.shape[-1]
    candidates = np.stack([x, y, *np.eye(d)])
    basis = []
    for vector in candidates:
        for chosen in basis:
            vector = vector - (vector @ chosen) * chosen
        norm = np.linalg.norm(vector)
        if norm > 1e-12 * (1 + np.linalg.norm(candidates[0]) + np.linalg.norm(candidates[1])):
            basis.append(vector / norm)
        if len(basis) == min(2, d):
            break
    return np.stack(basis)


def quadrature_moments(row: str, x, y, orders=(1, 2, 3, 4), nodes: int = NODES) -> np.ndarray:
    """E[g(ω)^k] for ω ~ N(0, I_d) and each k in ``orders``; g = registry row ``row``'s K̂ at m = 1.

    x, y are single vectors (d,); returns a float64 array (len(orders),).
    """
    estimator = registry.get(row)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    basis = _plane_basis(x, y)
    points, weights = hermegauss(nodes)
    weights = weights / np.sqrt(2 * np.pi)
    grids = np.meshgrid(*([points] * basis.shape[0]), indexing="ij")
    grid_weights = np.prod(np.meshgrid(*([weights] * basis.shape[0]), indexing="ij"), axis=0).ravel()
    omegas = np.stack([g.ravel() for g in grids], axis=-1) @ basis
    values = np.asarray(estimator.estimate(x, y, omegas[:, None, :]), dtype=np.float64)
    return np.array([np.sum(grid_weights * values**k) for k in orders])


def iid_kurtosis(row: str, x, y, m: int) -> float:
    """κ = E[(K̂ − μ)⁴]/Var(K̂)² of the iid estimator with m projections.

    With central moments c₂, c₄ of one feature: E[(K̂ − μ)⁴] = (c₄ + 3(m − 1)c₂²)/m³ and
    Var(K̂) = c₂/m (sums of iid terms), so κ = 3 + (c₄/c₂² − 3)/m.
    """
    mu1, mu2, mu3, mu4 = quadrature_moments(row, x, y)
    c2 = mu2 - mu1**2
    c4 = mu4 - 4 * mu3 * mu1 + 6 * mu2 * mu1**2 - 3 * mu1**4
    return float(3 + (c4 / c2**2 - 3) / m)
