"""Pair moments of coupled projections: two rows of one block at a fixed cosine (theory.md §5.2, §10.4).

Block law (theory.md §5.2): ``MSE = V1/m + (P/m²) Cov``, ``P = Σ_b n_b(n_b − 1)``, valid for any
exchangeable within-block coupling. For two rows ω₁ = a u₁, ω₂ = b u₂ of one block (a, b iid χ(d),
u₁ᵀu₂ = c fixed, the pair Haar-rotated) the exponential features give

    E[g(ω₁) g(ω₂)] = Λ² M(c),   M(c) = E_{a,b}[₀F₁(; d/2; t(a² + b² + 2cab)/4)]

with c = 0 for ORF (M(0) = E_+(t) = ₁F₁(d; d/2; t/2)) and c = −1/(d − 1) for the simplex (SimRF,
claim 25). For a GERF with parameter A the factor D⁴ e^{2A(a²+b²)} turns the χ(d) laws into the same
laws rescaled by √(1 − 4A), which B = √(1 − 4A) undoes exactly, so the pair moment does not depend on
A [DER]: OPRF couples exactly like the positive map (theory.md claim 21's integral equals Λ²E_+(t)).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..special import log_hyp0f1
from .pairs import PairStats, as_output, check_dimension, host_float64

QUADRATURE_NODES = 96
ANGULAR_NODES = 64


def coupled_pair_moment(t, d, c, radial_nodes=QUADRATURE_NODES, angular_nodes=ANGULAR_NODES):
    """M(c) = E_{a,b iid χ(d)}[₀F₁(; d/2; t(a² + b² + 2cab)/4)] for −1 ≤ c ≤ 1 (theory.md §10.4).

    In polar form a = r cos θ, b = r sin θ: r² = S ~ χ²_{2d} independent of φ = 2θ ∈ [0, π] with
    density ∝ sin^{d−1} φ, and a² + b² + 2cab = S(1 + c sin φ). S is integrated by Gauss–Laguerre
    (weight u^{d−1}e^{−u}, S = 2u), φ by Gauss–Legendre (the integrand is analytic), in log space.
    M(0) = E_+(t) = ₁F₁(d; d/2; t/2) (tested). M is increasing in c, so the simplex value
    c = −1/(d−1) gives the smallest pair moment of any weight-independent coupling.
    """
    t = host_float64(t, "t")
    d = check_dimension(d)
    if not -1 <= c <= 1:
        raise ValueError(f"c must be a cosine in [-1, 1], got {c}")
    if np.any(t < 0):
        raise ValueError("t = ||x + y||^2 must be >= 0")
    u, radial_weights = special.roots_genlaguerre(radial_nodes, d - 1)
    log_radial = np.log(radial_weights) - special.gammaln(d)
    nodes, angular_weights = special.roots_legendre(angular_nodes)
    phi = (nodes + 1) * np.pi / 2
    log_norm = 0.5 * np.log(np.pi) + special.gammaln(d / 2) - special.gammaln((d + 1) / 2)
    log_angular = np.log(angular_weights * np.pi / 2) + (d - 1) * np.log(np.sin(phi)) - log_norm
    squared = np.maximum(np.multiply.outer(2 * u, 1 + c * np.sin(phi)), 0)
    log_joint = log_radial[:, None] + log_angular[None, :]
    values = log_hyp0f1(d / 2, np.multiply.outer(t, squared) / 4) + log_joint
    return as_output(np.exp(special.logsumexp(values.reshape((*t.shape, -1)), axis=-1)))


def simplex_cosine(d):
    """Common cosine −1/(d − 1) of the d simplex directions of a block (claim 25)."""
    d = check_dimension(d)
    if d < 2:
        raise ValueError("d must be >= 2 for a simplex")
    return -1.0 / (d - 1)


def simplex_pair_covariance(p: PairStats):
    """Cov_sim = Λ²M(−1/(d − 1)) − SM² of two rows of one simplex block, for the positive map and
    every GERF s = +1 (the pair moment does not depend on A; module docstring)."""
    moment = coupled_pair_moment(p.t, p.d, simplex_cosine(p.d))
    return np.exp(-(p.sq_x + p.sq_y)) * moment - np.exp(2 * p.inner)
