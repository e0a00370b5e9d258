"""Exact kernels and their random-feature estimates K̂(x, y) = φ(x)ᵀφ(y).

All exact kernels here are functions of the inner product xᵀy and the squared norms ‖x‖², ‖y‖²
(theory.md §1, §3, §6), so each has a pair form (inputs (…, d) and (…, d) → (…)) and a Gram form
(inputs (…, L, d) and (…, M, d) → (…, L, M)) that share one formula:

* ``softmax``: SM(x, y) = exp(xᵀy) (Performers, Eq. 6);
* ``gaussian``: exp(−‖x − y‖²/2);
* ``smreg``: SMREG(x, y) = Λ ₀F₁(; d/2; d‖x + y‖²/4), Λ = exp(−(‖x‖² + ‖y‖²)/2) (theory.md §6;
  the mean of positive features with √d-normed rows); host float64 via scipy, not differentiable;
* ``arccos``: the order-1 arc-cosine kernel (‖x‖‖y‖/2π)(sin θ + (π − θ) cos θ) (Cho & Saul 2009),
  the mean of ReLU features with Gaussian rows; computed from the vectors (Kahan's angle formula),
  so its Gram form holds (…, L, M, d) in memory.
"""

from __future__ import annotations

import math

import numpy as np

from .backends import host_float64, namespace, resolve_target
from .special import log_hyp0f1
from .validation import check_array, check_choice, check_same_d

KERNELS = ("softmax", "gaussian", "smreg", "arccos")


def _from_inner(name, inner, sq_x, sq_y, d):
    xp = namespace(inner)
    if name == "softmax":
        return xp.exp(inner)
    if name == "gaussian":
        return xp.exp(-(sq_x + sq_y - 2 * inner) / 2)
    host = [host_float64(a) for a in (inner, sq_x, sq_y)]
    sq_sum = host[1] + host[2] + 2 * host[0]
    value = np.exp(-(host[1] + host[2]) / 2 + log_hyp0f1(d / 2, d * np.maximum(sq_sum, 0) / 4))
    target = resolve_target(like=inner)
    return target.asarray(value)


def _arccos(x, y):
    """(‖x‖‖y‖/2π) J₁(θ), J₁ = sin θ + (π − θ) cos θ, for x, y (…, d) broadcasting → (…).

    θ and π − θ come from Kahan's θ = 2 atan2(‖x̂ − ŷ‖, ‖x̂ + ŷ‖), accurate at every angle (an
    arccos of the cosine loses half the digits near 0 and π). Near θ = π, J₁ = sin ε − ε cos ε with
    ε = π − θ cancels; there the series ε³/3 − ε⁵/30 + ε⁷/840 is used (error < ε⁹/45360).
    """
    xp = namespace(x, y)
    norm_x = xp.linalg.vector_norm(x, axis=-1)
    norm_y = xp.linalg.vector_norm(y, axis=-1)
    unit_x = x / xp.where(norm_x > 0, norm_x, xp.ones_like(norm_x))[..., None]
    unit_y = y / xp.where(norm_y > 0, norm_y, xp.ones_like(norm_y))[..., None]
    difference = xp.linalg.vector_norm(unit_x - unit_y, axis=-1)
    total = xp.linalg.vector_norm(unit_x + unit_y, axis=-1)
    theta = 2 * xp.atan2(difference, total)
    supplement = 2 * xp.atan2(total, difference)
    obtuse = theta > math.pi / 2
    sin = xp.where(obtuse, xp.sin(supplement), xp.sin(theta))
    cos = xp.where(obtuse, -xp.cos(supplement), xp.cos(theta))
    general = sin + supplement * cos
    eps2 = supplement * supplement
    series = supplement * eps2 * (1 / 3 - eps2 / 30 + eps2 * eps2 / 840)
    j1 = xp.where(supplement < 1e-2, series, general)
    norms = norm_x * norm_y
    return xp.where(norms > 0, norms * j1 / (2 * math.pi), xp.zeros_like(norms))


def exact(name, x, y):
    """Kernel ``name`` on pairs: x, y (…, d) broadcasting over leading dims → (…)."""
    check_choice(name, "kernel", KERNELS)
    check_array(x, "x")
    check_array(y, "y")
    check_same_d(x, y, "x", "y")
    if name == "arccos":
        return _arccos(x, y)
    xp = namespace(x, y)
    inner = xp.sum(x * y, axis=-1)
    return _from_inner(name, inner, xp.sum(x * x, axis=-1), xp.sum(y * y, axis=-1), x.shape[-1])


def exact_gram(name, x, y):
    """Kernel ``name`` between every row pair: x (…, L, d), y (…, M, d) → (…, L, M)."""
    check_choice(name, "kernel", KERNELS)
    check_array(x, "x", min_ndim=2)
    check_array(y, "y", min_ndim=2)
    check_same_d(x, y, "x", "y")
    if name == "arccos":
        return _arccos(x[..., :, None, :], y[..., None, :, :])
    xp = namespace(x, y)
    inner = xp.matmul(x, xp.matrix_transpose(y))
    sq_x = xp.sum(x * x, axis=-1)[..., :, None]
    sq_y = xp.sum(y * y, axis=-1)[..., None, :]
    return _from_inner(name, inner, sq_x, sq_y, x.shape[-1])


def softmax(x, y):
    """SM(x, y) = exp(xᵀy) on pairs (…, d) → (…)."""
    return exact("softmax", x, y)


def gaussian(x, y):
    """exp(−‖x − y‖²/2) on pairs (…, d) → (…)."""
    return exact("gaussian", x, y)


def smreg(x, y):
    """SMREG(x, y) = Λ ₀F₁(; d/2; d‖x + y‖²/4) on pairs (…, d) → (…) (theory.md §6)."""
    return exact("smreg", x, y)


def arccos(x, y):
    """Order-1 arc-cosine kernel (‖x‖‖y‖/2π)(sin θ + (π − θ) cos θ) on pairs (…, d) → (…)."""
    return exact("arccos", x, y)


def estimate(phi_x, phi_y):
    """K̂(x, y) = φ(x)ᵀφ(y) on pairs of feature rows: (…, r) and (…, r) → (…)."""
    xp = namespace(phi_x, phi_y)
    return xp.sum(phi_x * phi_y, axis=-1)


def estimate_gram(phi_x, phi_y):
    """Â = φ(X) φ(Y)ᵀ: features (…, L, r) and (…, M, r) → (…, L, M)."""
    xp = namespace(phi_x, phi_y)
    return xp.matmul(phi_x, xp.matrix_transpose(phi_y))
