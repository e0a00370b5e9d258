"""Raw moments E[K̂^k], k ≤ 4, of the softmax / SMREG random-feature estimators (float64 numpy/scipy).

``estimators.theory`` gives E[K̂] and MSE = Var K̂. A z-test on the squared error (K̂ − μ)² also needs
its variance, E(K̂ − μ)⁴ − MSE², i.e. the 4th moment of K̂. For the exponential features it is
closed-form for iid AND block-orthogonal rows [DER; checked against theory.mse and by the Tier 2
calibration]:

K̂ = (1/m) Σ_i Y_i with per-projection terms (x, y scaled inputs, z = x + y, Δ = x − y,
t = ‖z‖², s = ‖Δ‖², Λ = exp(−(‖x‖² + ‖y‖²)/2), B = 1/Λ):

* positive:   Y = Λ e^{ωᵀz};
* hyperbolic: Y = Λ cosh(ωᵀz),  cosh^k a = 2^{−k} Σ_j C(k, j) e^{(2j−k)a};
* trig:       Y = B cos(ωᵀΔ),   cos^k a = 2^{−k} Σ_j C(k, j) cos((2j−k)a).

E[K̂^k] = m^{−k} Σ over index tuples (i_1 … i_k) of E[Π_l Y_{i_l}]; rows in different blocks (or iid
rows) are independent, so the expectation factorizes into block factors E[Π_i Y_i^{k_i}] over the
distinct rows i of one block. Expanding the powers gives terms E[exp(Σ_i c_i ω_iᵀz)] (or the cosine
of Σ_i c_i ω_iᵀΔ, whose signs do not matter). Within a block the rows are ω_i = ρ_i q_i with
orthonormal Haar q_i and independent norms, so Σ_i c_i ω_i has a uniform direction and squared norm
Q = Σ_i c_i² ρ_i² (theory.md §5.2), and

    E exp(Σ c_i ω_iᵀz) = E_Q ₀F₁(; d/2;  t Q/4),   E cos(Σ c_i ω_iᵀΔ) = E_Q ₀F₁(; d/2; −s Q/4)

(theory.md §1). For √d norms Q = d Σ c_i². For χ(d) norms Q = Σ c_i² χ²_d is a weighted chi-square
sum; with e_j = E[Q^j]/j!, the moment–cumulant recursion (κ_r = 2^{r−1} (r−1)! d Σ_i c_i^{2r}) gives
e_j = (1/j) Σ_{r=1}^{j} 2^{r−1} d (Σ_i c_i^{2r}) e_{j−r}, and E_Q ₀F₁(; b; ±uQ/4) = Σ_j (±u/4)^j e_j/(b)_j.
For one row (iid) this is e^{c²t/2} (chi) as it must be.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np
from scipy import special

from ..special import log_hyp0f1

FEATURES = ("positive", "hyperbolic", "trig")
NORMS = ("chi", "fixed")
_SERIES_TERMS = 400


def _geometry(x, y) -> tuple[float, float, float]:
    """(‖x‖² + ‖y‖², t = ‖x + y‖², s = ‖x − y‖²) of one pair of vectors."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(x @ x + y @ y), float((x + y) @ (x + y)), float((x - y) @ (x - y))


@lru_cache(maxsize=4096)
def coupled_hyp0f1(weights: tuple[int, ...], u: float, d: int, norms: str) -> float:
    """E_Q ₀F₁(; d/2; u Q/4) with Q = Σ_i w_i ρ_i², ρ_i iid χ(d) (``chi``) or √d (``fixed``); u may be < 0.

    E exp((Σ c_i ω_i)ᵀz) for orthogonal rows ω_i is this with w_i = c_i² and u = ‖z‖²;
    E cos((Σ c_i ω_i)ᵀΔ) with u = −‖Δ‖².
    """
    weights = tuple(w for w in weights if w)
    if not weights or u == 0:
        return 1.0
    b = d / 2
    if norms == "fixed":
        arg = u * d * sum(weights) / 4
        return float(np.exp(log_hyp0f1(b, arg))) if arg > 0 else float(special.hyp0f1(b, arg))
    cumulant = [0.0] + [2 ** (r - 1) * d * sum(w**r for w in weights) for r in range(1, _SERIES_TERMS + 1)]
    e = [1.0]
    total, term_scale = 1.0, 1.0
    for j in range(1, _SERIES_TERMS + 1):
        e.append(sum(cumulant[r] * e[j - r] for r in range(1, j + 1)) / j)
        term_scale *= (u / 4) / (b + j - 1)
        term = term_scale * e[j]
        total += term
        if j > 8 and abs(term) < 1e-17 * max(abs(total), 1e-300):
            return total
    raise ArithmeticError(f"series for weights {weights}, u={u} did not converge")


def _row_power_terms(feature: str, power: int):
    """Y^k as Σ coefficient · g(c·a): [(coefficient, c)] with g = exp (positive, hyperbolic) or cos (trig)."""
    if feature == "positive":
        return [(1.0, power)]
    return [(math.comb(power, j) / 2**power, 2 * j - power) for j in range(power + 1)]


def block_factor(feature: str, norms: str, x, y, d: int, powers: tuple[int, ...]) -> float:
    """E[Π_i Y_i^{k_i}] for distinct rows i of ONE orthogonal block (or a single iid row), k_i = powers."""
    sq_sum, t, s = _geometry(x, y)
    scale = math.exp((1 if feature == "trig" else -1) * sum(powers) * sq_sum / 2)
    u = -s if feature == "trig" else t
    total = 0.0
    for combo in itertools.product(*(_row_power_terms(feature, k) for k in powers)):
        coefficient = math.prod(c for c, _ in combo)
        weights = tuple(sorted(c * c for _, c in combo))
        total += coefficient * coupled_hyp0f1(weights, u, d, norms)
    return scale * total


def raw_moments(feature: str, norms: str, x, y, d: int, m: int, *, orthogonal: bool) -> np.ndarray:
    """[E K̂, E K̂², E K̂³, E K̂⁴] for m rows, iid or in blocks of d (the last one m − d⌊m/d⌋)."""
    if feature not in FEATURES or norms not in NORMS:
        raise ValueError(f"feature must be in {FEATURES} and norms in {NORMS}, got {feature!r}, {norms!r}")
    block_of = [i // d if orthogonal else i for i in range(m)]
    cache: dict = {}
    out = []
    for k in range(1, 5):
        total = 0.0
        for index in itertools.product(range(m), repeat=k):
            key = _pattern(index, block_of)
            if key not in cache:
                cache[key] = math.prod(block_factor(feature, norms, x, y, d, powers) for powers in key)
            total += cache[key]
        out.append(total / m**k)
    return np.array(out)


def _pattern(index, block_of) -> tuple[tuple[int, ...], ...]:
    """Canonical key of an index tuple: per block, the sorted multiplicities of its distinct rows."""
    blocks: dict = {}
    for i in index:
        blocks.setdefault(block_of[i], {}).setdefault(i, 0)
        blocks[block_of[i]][i] += 1
    return tuple(sorted(tuple(sorted(rows.values())) for rows in blocks.values()))


def squared_error_moments(feature: str, norms: str, x, y, d: int, m: int, *, orthogonal: bool):
    """(E(K̂ − μ)², Var (K̂ − μ)²) with μ = E K̂, from the raw moments of :func:`raw_moments`."""
    r1, r2, r3, r4 = raw_moments(feature, norms, x, y, d, m, orthogonal=orthogonal)
    second = r2 - r1**2
    fourth = r4 - 4 * r3 * r1 + 6 * r2 * r1**2 - 3 * r1**4
    return second, fourth - second**2
