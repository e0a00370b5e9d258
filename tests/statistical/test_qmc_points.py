"""Every randomized QMC point is uniform on [0, 1)^d (estimators/qmc_points.py).

Null hypothesis: for each point index i and coordinate j, u_ij over independent randomizations is
Uniform[0, 1). Each (i, j) gets a one-sample Kolmogorov–Smirnov test on n = :data:`RANDOMIZATIONS`
randomizations (fixed seed). The family is every (i, j) of both sequences (2·M·D = 48 tests);
Bonferroni gives per-test α = :data:`FAMILY_ALPHA`/48 ≈ 2.1·10⁻⁴, so a correct sampler fails this
file with probability ≤ 0.01.

Power: the critical KS distance at that α is about 0.015 for n = 20 000. If a point's law is at KS
distance ≥ :data:`EFFECT` = 0.03 from uniform, the empirical CDF must stray ≥ 0.015 from its own
law to pass, which by the Dvoretzky–Kiefer–Wolfowitz inequality has probability ≤ 2e^{−2n·0.015²}
≈ 2·10⁻⁴: power ≥ 0.999 per test. The planted defects (an unscrambled Sobol' set, a Halton scramble
truncated to the digits of m − 1) are at distance ≥ 1/16 and must fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from estimators import qmc_points

FAMILY_ALPHA = 0.01
RANDOMIZATIONS = 20_000
EFFECT = 0.03
M, D = 8, 3
POINT_SETS = {"sobol": qmc_points.scrambled_sobol, "halton": qmc_points.scrambled_halton}
PER_TEST_ALPHA = FAMILY_ALPHA / (len(POINT_SETS) * M * D)


class _NoRandomDigits:
    """A generator whose integers are all 0 and whose uniforms are all 0 (a scramble left out)."""

    def __init__(self, seed):
        self._generator = np.random.default_rng(seed)

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return np.zeros(size, dtype=dtype)

    def random(self, size=None):
        return np.zeros(size)

    def permuted(self, x, axis=None):
        return self._generator.permuted(x, axis=axis)


def uniformity_p_values(points: np.ndarray) -> np.ndarray:
    """KS p-values (M, D) of each point's coordinate against Uniform[0, 1) over axis 0."""
    return np.array(
        [
            [stats.kstest(points[:, i, j], "uniform").pvalue for j in range(points.shape[2])]
            for i in range(points.shape[1])
        ]
    )


def test_the_power_claim_follows_from_the_sample_size():
    critical = stats.kstwo.ppf(1 - PER_TEST_ALPHA, RANDOMIZATIONS)
    margin = EFFECT - critical
    assert margin > 0
    assert 2 * math.exp(-2 * RANDOMIZATIONS * margin**2) <= 1e-3


@pytest.mark.parametrize("sequence", POINT_SETS)
def test_every_randomized_point_is_uniform(sequence):
    points = POINT_SETS[sequence](M, D, RANDOMIZATIONS, np.random.default_rng(20261207))
    assert np.all((points > 0) & (points < 1))
    assert uniformity_p_values(points).min() > PER_TEST_ALPHA


@pytest.mark.parametrize("sequence", POINT_SETS)
def test_a_point_set_without_its_random_digits_fails(sequence):
    points = POINT_SETS[sequence](M, D, RANDOMIZATIONS, _NoRandomDigits(20261207))
    assert uniformity_p_values(points).min() < PER_TEST_ALPHA
