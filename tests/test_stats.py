"""studies.core.stats: intervals, z-tests, Bonferroni, power and sample sizes against scipy and closed
forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from studies.core import stats


def test_critical_value_matches_normal_quantiles():
    assert stats.critical_value(0.05) == pytest.approx(1.959964, abs=1e-6)
    assert stats.critical_value(0.05, two_sided=False) == pytest.approx(1.644854, abs=1e-6)


def test_mean_ci_equals_scipy_t_interval():
    samples = np.random.default_rng(0).normal(size=(50, 3))
    mean, low, high = stats.mean_ci(samples, confidence=0.9)
    for j in range(3):
        ref = sps.t.interval(0.9, 49, loc=samples[:, j].mean(), scale=sps.sem(samples[:, j]))
        np.testing.assert_allclose([low[j], high[j]], ref, rtol=1e-12)
    np.testing.assert_allclose(mean, samples.mean(axis=0))


def test_mse_ci_is_mean_squared_error_clipped_at_zero():
    estimates = np.array([[1.0, 2.0], [3.0, 2.0], [2.0, 2.0]])
    mse, low, high = stats.mse_ci(estimates, np.array([2.0, 2.0]))
    np.testing.assert_allclose(mse, [2 / 3, 0.0])
    assert np.all(low >= 0) and np.all(high >= mse)


def test_z_test_uses_the_given_variance_not_the_sample():
    result = stats.z_test(1.1, 1.0, variance=0.25, n=100, alpha=0.01)
    assert result.z == pytest.approx(2.0)
    assert result.p_value == pytest.approx(2 * sps.norm.sf(2.0))
    assert not result.reject
    assert stats.z_test(1.2, 1.0, variance=0.25, n=100, alpha=0.01).reject


def test_one_sided_z_test_rejects_only_upward():
    up = stats.z_test(1.15, 1.0, variance=0.25, n=100, alpha=0.01, two_sided=False)
    down = stats.z_test(0.7, 1.0, variance=0.25, n=100, alpha=0.01, two_sided=False)
    assert up.reject and not down.reject


def test_bonferroni_divides_alpha():
    assert stats.bonferroni(0.01, 20) == pytest.approx(5e-4)


@pytest.mark.parametrize("two_sided", [True, False])
def test_required_samples_is_the_smallest_n_with_the_power(two_sided):
    effect, alpha, variance = 0.1, 1e-3, 2.0
    n = stats.required_samples(effect, alpha, 0.99, variance, two_sided=two_sided)
    assert stats.power(effect, n, alpha, variance, two_sided=two_sided) >= 0.99
    assert stats.power(effect, n - 1, alpha, variance, two_sided=two_sided) < 0.99


def test_detectable_effect_inverts_required_samples():
    n = stats.required_samples(0.05, 0.01, 0.99, 1.0)
    assert stats.detectable_effect(n, 0.01, 0.99, 1.0) <= 0.05
    assert stats.detectable_effect(n - 1, 0.01, 0.99, 1.0) > 0.05


def test_required_samples_vectorizes():
    n = stats.required_samples(np.array([0.1, 0.2]), 0.01, 0.9, 1.0)
    assert n.dtype == np.int64 and n[0] > n[1]


def test_power_at_zero_effect_is_alpha():
    assert stats.power(0.0, 10, 0.02, 1.0) == pytest.approx(0.02)


def test_binomial_ci_matches_clopper_pearson():
    for k in (0, 3, 200):
        ref = sps.binomtest(k, 200).proportion_ci(confidence_level=0.99, method="exact")
        rate, low, high = stats.binomial_ci(k, 200, confidence=0.99)
        assert rate == pytest.approx(k / 200)
        np.testing.assert_allclose([low, high], [ref.low, ref.high], rtol=1e-9, atol=1e-15)


def test_accepts_torch_arrays():
    torch = pytest.importorskip("torch")
    samples = torch.arange(10, dtype=torch.float64)
    mean, _, _ = stats.mean_ci(samples)
    assert isinstance(mean, np.floating | np.ndarray) and mean == pytest.approx(4.5)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: stats.z_test(0.0, 0.0, variance=-1.0, n=5, alpha=0.01), "variance"),
        (lambda: stats.z_test(0.0, 0.0, variance=1.0, n=0, alpha=0.01), "n"),
        (lambda: stats.bonferroni(1.5, 3), "family_alpha"),
        (lambda: stats.required_samples(0.0, 0.01, 0.99, 1.0), "effect"),
        (lambda: stats.required_samples(0.1, 0.01, 1.0, 1.0), "power"),
        (lambda: stats.mean_ci(np.ones(1)), "samples"),
        (lambda: stats.mean_ci(np.array([1.0, np.nan])), "samples"),
        (lambda: stats.binomial_ci(5, 3), "successes"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_count_must_be_an_integer():
    with pytest.raises(TypeError, match="n_tests"):
        stats.bonferroni(0.01, 2.5)
