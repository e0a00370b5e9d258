"""Monte Carlo against the closed forms of every core row (Tier 1, fixed seeds, claims 1–4, 7, 13, 27):
the sample mean and the sample MSE of the registry's draws, as z-tests whose variance is the exact
theoretical one (the MSE, and the exact fourth moments for the squared errors), never the sample SD.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from estimators import registry, theory
from estimators.theory.pairs import pair_stats
from tests.theory_support import BASE_ROWS, central_moments_of_pair_mean, pair_raw_moment, relu_product_moment

# ----------------------------------------------------------------------------------------------
# Monte Carlo with the exact variance (Tier 1, fixed seeds)
#
# Family: 30 mean tests + 10 MSE tests = 40 two-sided z-tests, family α = 0.01 (Bonferroni),
# per-test α = 2.5e-4, critical |z| = 3.66. Every z uses the THEORETICAL variance: Var K̂ = MSE for
# the mean tests, Var (K̂ − μ)² = E e⁴ − MSE² (exact fourth moments below) for the MSE tests.

CRITICAL_Z = float(special.ndtri(1 - 2.5e-4 / 2))
MC_D = 6


def mc_pair():
    rng = np.random.default_rng(2024)
    x, y = rng.normal(size=MC_D), rng.normal(size=MC_D)
    return 0.55 * x / np.linalg.norm(x), 0.45 * y / np.linalg.norm(y)


def draw_estimates(name, x, y, m, reps, seed):
    row = registry.get(name)
    W = row.draw(m, MC_D, batch_shape=(reps,), seed=seed)
    return np.asarray(row.estimate(x[None], y[None], W), dtype=np.float64)


@pytest.mark.parametrize("name", BASE_ROWS)
def test_monte_carlo_mean_with_exact_variance(name):
    """Claim 1 (unbiasedness) for every row, m ∈ {3, 6, 9} (9 = one full and one partial block).

    H0: E K̂ = mean(name); z = (K̂‾ − mean)/√(MSE/N) with the exact MSE, N = 4000, per-test α = 2.5e-4
    (family α = 0.01 over 40 tests). Power: a relative bias of 5 SE (≈ 4% for positive features at
    ‖x + y‖² ≈ 0.6, m = 3) is detected with probability > 0.9.
    """
    x, y = mc_pair()
    mu = theory.mean(name, x, y)
    for k, m in enumerate((3, 6, 9)):
        estimates = draw_estimates(name, x, y, m, 4000, seed=100 + k)
        z = (estimates.mean() - mu) / math.sqrt(theory.mse(name, x, y, m) / estimates.size)
        assert abs(z) < CRITICAL_Z, (name, m, z)


def iid_fourth_moment(name, x, y, m):
    """(MSE, E e⁴) of the mean of m iid terms: E e⁴ = (μ₄ + 3(m − 1) V1²)/m³, raw moments exact."""
    if name == "relu-iid":
        stats = pair_stats(x, y)
        norms = math.sqrt(float(stats.sq_x)), math.sqrt(float(stats.sq_y))
        raw = [relu_product_moment(*norms, float(stats.angle), k) for k in range(5)]
    else:
        raw = [pair_raw_moment(name, x, y, k, 0, "iid") for k in range(5)]
    mu = raw[1]
    v1 = raw[2] - mu**2
    mu4 = raw[4] - 4 * mu * raw[3] + 6 * mu**2 * raw[2] - 3 * mu**4
    return v1 / m, (mu4 + 3 * (m - 1) * v1**2) / m**3


def relu_parallel_pair_moments(x, y, d):
    """(MSE, E e⁴) for relu-ort, m = 2, x ∥ y: g = c ReLU(ωᵀx)² and the orthogonal pair moments
    E[a^{2i} b^{2j}] = E ρ^{2i} E ρ^{2j} (2i−1)!!(2j−1)!!/(d(d+2)···(d+2i+2j−2)), each ReLU keeping ½."""
    scale = float(np.linalg.norm(x) * np.linalg.norm(y))

    def rising(start, count):
        return math.prod(d + 2 * k for k in range(start, start + count))

    def moment(i, j):
        odd = math.prod(range(2 * i - 1, 0, -2)) * math.prod(range(2 * j - 1, 0, -2))
        sphere = odd / rising(0, i + j)
        signs = 0.5 ** ((i > 0) + (j > 0))
        return scale ** (i + j) * rising(0, i) * rising(0, j) * sphere * signs

    mu = moment(1, 0)
    sums = [sum(math.comb(n, i) * moment(i, n - i) for i in range(n + 1)) for n in range(5)]
    centred = [sum(math.comb(k, n) * sums[n] * (-2 * mu) ** (k - n) for n in range(k + 1)) for k in (2, 4)]
    return centred[0] / 4, centred[1] / 16


def exact_mse_and_fourth(name, x, y):
    if name.endswith("iid") or name == "positive-iid-fixed":
        return iid_fourth_moment(name, x, y, 3), 3
    if name == "relu-ort":
        return relu_parallel_pair_moments(x, y, MC_D), 2
    return central_moments_of_pair_mean(name, x, y, "orthogonal"), 2


@pytest.mark.parametrize("name", BASE_ROWS)
def test_monte_carlo_mse_with_exact_fourth_moment(name):
    """Claims 2–4, 7, 13, 27: the sample MSE against the exact MSE.

    iid rows use m = 3, orthogonal rows m = 2 (one pair, whose fourth moments are exact by the χ²
    quadrature; relu-ort at x ∥ y, where they are rational). H0: E (K̂ − μ)² = MSE;
    z = (e²‾ − MSE)/√((E e⁴ − MSE²)/N), N = 20000, per-test α = 2.5e-4. Power: the same draws must
    reject a planted 25% MSE error (e.g. a wrong constant in V1 or Cov_ort); checked below.
    """
    x, y = mc_pair()
    if name == "relu-ort":
        y = 0.8 * x
    (mse, fourth), m = exact_mse_and_fourth(name, x, y)
    assert theory.mse(name, x, y, m) == pytest.approx(mse, rel=1e-8)
    errors = (draw_estimates(name, x, y, m, 20000, seed=7) - theory.mean(name, x, y)) ** 2
    se = math.sqrt((fourth - mse**2) / errors.size)
    assert abs(errors.mean() - mse) / se < CRITICAL_Z, name
    planted = 1.25 * mse
    assert abs(errors.mean() - planted) / se > CRITICAL_Z, (name, "no power against a 25% MSE error")
