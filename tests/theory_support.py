"""What the closed-form theory tests share (tests/test_theory_*.py): the core rows, input pairs of a
given geometry, and the independent reference computations, written on the test side only (numerical
quadrature, Gauss–Laguerre over χ² norms, raw pair moments of one projection term).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special

from estimators.theory.pairs import pair_stats
from studies.audit.suite import CORE_ROWS

BASE_ROWS = list(CORE_ROWS)


def pair_with(t, s, d):
    """x, y (d,) with ‖x‖ = ‖y‖, ‖x + y‖² = t and ‖x − y‖² = s."""
    radius = math.sqrt((t + s) / 4)
    cos = (t - s) / (t + s)
    x, y = np.zeros(d), np.zeros(d)
    x[0] = radius
    y[0], y[1 % d] = radius * cos, radius * math.sqrt(max(1 - cos * cos, 0.0))
    return x, y


def pair_at_angle(norm_x, norm_y, angle, d):
    x, y = np.zeros(d), np.zeros(d)
    x[0] = norm_x
    y[0], y[1] = norm_y * math.cos(angle), norm_y * math.sin(angle)
    return x, y


def random_pairs(rng, count, d, scale):
    return rng.normal(size=(count, d)) * scale, rng.normal(size=(count, d)) * scale


def grid_pairs(seed, count=400, dims=(2, 3, 4, 8, 16)):
    rng = np.random.default_rng(seed)
    for d in dims:
        scale = rng.uniform(0.05, 1.2, size=(count, 1)) / math.sqrt(d)
        yield d, rng.normal(size=(count, d)) * scale, rng.normal(size=(count, d)) * scale * 1.5


# ----------------------------------------------------------------------------------------------
# Independent reference computations (test side only)


def gaussian_expectation(f, variance):
    """E f(a), a ~ N(0, variance), by adaptive quadrature."""
    sd = math.sqrt(variance)
    value, _ = integrate.quad(lambda u: f(sd * u) * math.exp(-u * u / 2), -40, 40, limit=400, epsabs=0)
    return value / math.sqrt(2 * math.pi)


def sphere_coordinate_expectation(f, d):
    """E f(v), v the first coordinate of a uniform point on S^{d−1} (density ∝ (1 − v²)^{(d−3)/2})."""
    log_norm = special.betaln(0.5, (d - 1) / 2)
    value, _ = integrate.quad(lambda v: f(v) * (1 - v * v) ** ((d - 3) / 2), -1, 1, limit=400, epsabs=0)
    return value / math.exp(log_norm)


def relu_product_moment(norm_x, norm_y, angle, power):
    """E[ReLU(ωᵀx)^n ReLU(ωᵀy)^n] in polar coordinates of the 2-D Gaussian (radial part 2^n n!)."""
    arc, _ = integrate.quad(
        lambda p: (math.cos(p) * math.cos(p - angle)) ** power, angle - math.pi / 2, math.pi / 2, epsabs=0
    )
    return (norm_x * norm_y) ** power * 2**power * math.factorial(power) * arc / (2 * math.pi)


def chi_square_rule(d, nodes=80):
    """Nodes and weights for E over ρ² ~ χ²_d (Gauss–Laguerre in ρ²/2 with weight x^{d/2−1}e^{−x})."""
    x, w = special.roots_genlaguerre(nodes, d / 2 - 1)
    return 2 * x, w / np.sum(w)


def orthogonal_pair_mgf(alpha, beta, value, d, kind, norms="chi"):
    """E[h(α ω₁ᵀv + β ω₂ᵀv)] for an orthogonal pair, h = exp (value = ‖v‖²) or cos.

    αω₁ + βω₂ has squared norm α²ρ₁² + β²ρ₂² and a uniform direction, and E[exp(R uᵀv)] =
    ₀F₁(; d/2; R²‖v‖²/4), E[cos(R uᵀv)] = ₀F₁(; d/2; −R²‖v‖²/4); the norms are integrated by a
    Gauss–Laguerre tensor rule (χ(d) norms) or fixed at √d.
    """
    sign = 1.0 if kind == "exp" else -1.0
    if norms == "fixed":
        return special.hyp0f1(d / 2, sign * (alpha**2 + beta**2) * d * value / 4)
    r2, w = chi_square_rule(d)
    total = alpha**2 * r2[:, None] + beta**2 * r2[None, :]
    return float(np.sum(w[:, None] * w[None, :] * special.hyp0f1(d / 2, sign * total * value / 4)))


def feature_expansion(kind, power):
    """h(a)^n = Σ coeff · e^{κ a} (exp, cosh) or Σ coeff · cos(κ a) (cos): list of (coeff, κ)."""
    if kind == "positive":
        return [(1.0, power)]
    return [(math.comb(power, k) / 2**power, power - 2 * k) for k in range(power + 1)]


def pair_raw_moment(name, x, y, i, j, coupling):
    """E[g(ω₁)^i g(ω₂)^j] for one projection term g of row ``name`` (exp/cos features)."""
    stats = pair_stats(x, y)
    kind = name.split("-")[0]
    norms = "fixed" if name.endswith("fixed") else "chi"
    if kind == "trig":
        scale, value, mgf_kind = math.exp((stats.sq_x + stats.sq_y) / 2), float(stats.s), "cos"
    else:
        scale, value, mgf_kind = math.exp(-(stats.sq_x + stats.sq_y) / 2), float(stats.t), "exp"
    expand = "positive" if kind == "positive" else "symmetric"
    total = 0.0
    for ci, ki in feature_expansion(expand, i):
        for cj, kj in feature_expansion(expand, j):
            if coupling == "iid":
                one = orthogonal_pair_mgf(ki, 0, value, stats.d, mgf_kind, norms)
                two = orthogonal_pair_mgf(kj, 0, value, stats.d, mgf_kind, norms)
                total += ci * cj * one * two
            else:
                total += ci * cj * orthogonal_pair_mgf(ki, kj, value, stats.d, mgf_kind, norms)
    return scale ** (i + j) * total


def central_moments_of_pair_mean(name, x, y, coupling):
    """(MSE, E[e⁴]) of K̂ = (g₁ + g₂)/2 (m = 2) from the raw pair moments, e = K̂ − E K̂."""
    mu = pair_raw_moment(name, x, y, 1, 0, coupling)
    sums = [
        sum(math.comb(n, i) * pair_raw_moment(name, x, y, i, n - i, coupling) for i in range(n + 1))
        for n in range(5)
    ]
    centred = [sum(math.comb(k, n) * sums[n] * (-2 * mu) ** (k - n) for n in range(k + 1)) for k in (2, 4)]
    return centred[0] / 4, centred[1] / 16
