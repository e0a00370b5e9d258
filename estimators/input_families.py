"""Query, key and value families for attention-level comparisons (theory.md §7.2).

Both families are rescaled so that the mean over all pairs of ‖x_i + y_j‖², x = q d^{-1/4},
y = k d^{-1/4}, equals ``rho`` (:func:`estimators.gerf.homogeneity_rho`; every softmax estimator's
relative MSE grows with ‖x + y‖², theory.md §4), so they differ in shape, not in overall scale:

* ``isotropic``: q_i, k_j iid N(0, I_d) before rescaling;
* ``anisotropic``: q_i = r_i z_i, k_j = r_j z_j with z ~ N(0, Σ), the low-rank-plus-noise covariance
  Σ = U diag(λ) Uᵀ + σ² I_d shared by queries and keys (U a Haar-random d × r frame, r =
  :data:`RANK`, λ_l ∝ 2^{-l}, σ² d = :data:`NOISE_SHARE` · tr Σ), and the log-normal radial factor
  r = exp(s ξ − s²), ξ ~ N(0, 1), s = :data:`RADIAL_SIGMA` (E r² = 1; heavy-tailed token norms).

Values are v_j ~ N(0, I_d) in both. Draws come from a numpy ``Generator`` on the host (the portable
path of :mod:`estimators.backends`): a seed fixes the inputs on every backend, and callers move them
to their target with ``Target.asarray``.
"""

from __future__ import annotations

import math

import numpy as np

from .gerf import homogeneity_rho
from .projections import haar_rows
from .validation import check_choice, check_positive_int

FAMILIES = ("isotropic", "anisotropic")
RANK = 4
"""Rank r of the shared signal subspace of the anisotropic family (min(r, d) is used)."""
NOISE_SHARE = 0.1
"""Share of tr Σ in the isotropic noise σ² I_d (the rest is the rank-r signal)."""
RADIAL_SIGMA = 0.5
"""s of the log-normal radial factor exp(s ξ − s²): the middle 95% of token norms spans e^{±2s}."""


def covariance(d: int, rng: np.random.Generator) -> np.ndarray:
    """Σ = U diag(λ) Uᵀ + σ² I_d (d, d) of the anisotropic family, tr Σ = d (module docstring)."""
    rank = min(RANK, d)
    frame = haar_rows(rng.standard_normal((d, d)))[:rank]
    signal = 2.0 ** -np.arange(1, rank + 1)
    signal *= (1 - NOISE_SHARE) * d / signal.sum()
    return frame.T @ (signal[:, None] * frame) + NOISE_SHARE * np.eye(d)


def tokens(family: str, count: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Unscaled queries and keys (2, count, d) of ``family``: E[q qᵀ] = I_d (isotropic) or Σ
    (anisotropic, E r² = 1), before :func:`draw` rescales them to the target ρ."""
    check_choice(family, "family", FAMILIES)
    if family == "isotropic":
        return rng.standard_normal((2, count, d))
    root = np.linalg.cholesky(covariance(d, rng))
    radial = np.exp(RADIAL_SIGMA * rng.standard_normal((2, count, 1)) - RADIAL_SIGMA**2)
    return radial * (rng.standard_normal((2, count, d)) @ root.T)


def draw(family: str, length: int, d: int, *, rho: float, seed, queries: int | None = None):
    """Host float64 q (queries, d), k (length, d), v (length, d) of ``family`` at mean ‖x + y‖² = ρ.

    Parameters
    ----------
    family : {"isotropic", "anisotropic"}
    length : int
        Number of keys and values M.
    d : int
        Head dimension.
    rho : float
        Target mean over all (query, key) pairs of ‖(q_i + k_j) d^{-1/4}‖², > 0.
    seed : int, numpy ``SeedSequence`` or ``Generator``
        Everything (frame, tokens, values) is drawn from ``numpy.random.default_rng(seed)``.
    queries : int, optional
        Number of queries L (default ``length``; the first ``queries`` tokens of a sequence of
        ``max(length, queries)``, so queries and keys share their law and the family's frame).
    """
    check_choice(family, "family", FAMILIES)
    length = check_positive_int(length, "length")
    d = check_positive_int(d, "d")
    queries = length if queries is None else check_positive_int(queries, "queries")
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not math.isfinite(rho) or rho <= 0:
        raise ValueError(f"rho must be a finite number > 0, got {rho!r}")
    rng = np.random.default_rng(seed)
    q, k = tokens(family, max(length, queries), d, rng)
    v = rng.standard_normal((length, d))
    q, k = q[:queries], k[:length]
    scale = d**-0.25
    current = float(homogeneity_rho(q * scale, k * scale)[0, 0])
    factor = math.sqrt(rho / current)
    return q * factor, k * factor, v


__all__ = ["FAMILIES", "NOISE_SHARE", "RADIAL_SIGMA", "RANK", "covariance", "draw", "tokens"]
