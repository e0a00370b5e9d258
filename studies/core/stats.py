"""Statistics for studies and statistical tests: estimates with confidence intervals, z-tests on a
theoretical variance, Bonferroni, power and sample size (scipy.stats based; host float64).

Conventions. ``n`` is the number of independent replicates, ``variance`` the variance of ONE
replicate (σ², e.g. the closed-form MSE of one estimate from ``estimators.theory``), ``effect`` a
shift δ of the mean. The sample mean of n replicates has standard error σ/√n.

* Point estimates with intervals (:func:`mean_ci`, :func:`mse_ci`) use the sample standard error and
  the Student-t / normal quantile: fine for plotting empirical points over theory curves, NOT for
  tests. Positive random features are heavy-tailed (the variance of exp(ωᵀz) involves exp(2‖z‖²)),
  and tests built on the sample SD had real false-positive rates of 0.3-0.9 at nominal 0.01.
* Tests (:func:`z_test`) standardize by the THEORETICAL variance:
  ``z = (mean − μ₀) / sqrt(σ²/n)``, two-sided p = 2(1 − Φ(|z|)) (CLT; Lehmann & Romano,
  *Testing Statistical Hypotheses*, §11.1).
* Bonferroni (:func:`bonferroni`): k tests at α/k each keep the family-wise error ≤ α
  (Boole's inequality).
* Power of the two-sided z-test at shift δ (:func:`power`):
  ``1 − β = Φ(δ√n/σ − z_{1−α/2}) + Φ(−δ√n/σ − z_{1−α/2})``; the sample size for power 1 − β
  (:func:`required_samples`) uses the standard one-tail approximation
  ``n = ⌈((z_{1−α/2} + z_{1−β}) σ / δ)²⌉`` (exact up to the ignored far tail Φ(−δ√n/σ − z_{1−α/2})),
  and :func:`detectable_effect` inverts it: ``δ = (z_{1−α/2} + z_{1−β}) σ / √n``.
* Binomial rates (:func:`binomial_ci`): Clopper-Pearson exact interval, used to compare a measured
  false-positive rate with its stated α.

Every function accepts numpy, torch or jax arrays (moved to host float64) and returns numpy arrays
or Python floats.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats as sps

from estimators.backends import host_float64


class Interval(NamedTuple):
    """An estimate with a two-sided confidence interval (arrays or floats of one shape)."""

    estimate: object
    low: object
    high: object


class ZTest(NamedTuple):
    """Result of :func:`z_test`: statistic, two-sided p-value, critical value and decision."""

    z: object
    p_value: object
    critical: float
    reject: object


def host(x) -> np.ndarray:
    """``x`` (numpy, torch, jax array or array-like) as a float64 numpy array
    (:func:`estimators.backends.host_float64`)."""
    return host_float64(x)


def _check_probability(value, name: str) -> float:
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), got {value}")
    return value


def _check_positive(value, name: str) -> np.ndarray:
    value = host(value)
    if not np.all(np.isfinite(value)) or np.any(value <= 0):
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return value


def _check_samples(samples, axis) -> np.ndarray:
    samples = host(samples)
    if samples.ndim == 0 or samples.shape[axis] < 2:
        raise ValueError(f"samples need at least 2 replicates along axis {axis}, got shape {samples.shape}")
    if not np.all(np.isfinite(samples)):
        raise ValueError("samples contain NaN or Inf values")
    return samples


def critical_value(alpha: float, *, two_sided: bool = True) -> float:
    """z_{1−α/2} (two-sided) or z_{1−α} (one-sided): the standard-normal rejection threshold."""
    alpha = _check_probability(alpha, "alpha")
    return float(sps.norm.isf(alpha / 2 if two_sided else alpha))


def mean_ci(samples, *, confidence: float = 0.95, axis: int = 0) -> Interval:
    """Sample mean with a Student-t interval ``x̄ ± t_{n−1, 1−(1−c)/2} s/√n`` along ``axis``.

    For plots and summaries only (sample SD; heavy tails make it optimistic, see module docstring).
    """
    confidence = _check_probability(confidence, "confidence")
    samples = _check_samples(samples, axis)
    n = samples.shape[axis]
    mean = samples.mean(axis=axis)
    half = sps.t.isf((1 - confidence) / 2, n - 1) * samples.std(axis=axis, ddof=1) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half)


def mse_ci(estimates, truth, *, confidence: float = 0.95, axis: int = 0) -> Interval:
    """MSE = mean((K̂ − K)²) over replicates along ``axis`` with a t interval on the squared errors.

    ``truth`` broadcasts against ``estimates`` with ``axis`` removed. The low end is clipped at 0.
    For plots only: the variance of a squared error is a 4th moment, and for exp features the sample
    version is unreliable, so tests compare MSEs through :func:`z_test` with a closed-form variance.
    """
    estimates = _check_samples(estimates, axis)
    errors = estimates - np.expand_dims(host(truth), axis)
    mse, low, high = mean_ci(errors**2, confidence=confidence, axis=axis)
    return Interval(mse, np.maximum(low, 0.0), high)


def z_statistic(sample_mean, null_mean, variance, n: int):
    """z = (x̄ − μ₀)/sqrt(σ²/n), σ² the THEORETICAL single-replicate variance (arrays broadcast)."""
    n = _check_count(n, "n")
    variance = _check_positive(variance, "variance")
    return (host(sample_mean) - host(null_mean)) / np.sqrt(variance / n)


def z_test(sample_mean, null_mean, variance, n: int, *, alpha: float, two_sided: bool = True) -> ZTest:
    """Test H0: E[X] = μ₀ with the sample mean of n iid replicates of variance σ² (known, theoretical).

    Rejects where |z| > z_{1−α/2} (two-sided) or z > z_{1−α} (one-sided, H1: E[X] > μ₀); the
    p-value is 2Φ(−|z|) or Φ(−z). Arrays broadcast, one test per element: apply :func:`bonferroni`
    to ``alpha`` for a family.
    """
    z = z_statistic(sample_mean, null_mean, variance, n)
    critical = critical_value(alpha, two_sided=two_sided)
    if two_sided:
        p_value, reject = 2 * sps.norm.sf(np.abs(z)), np.abs(z) > critical
    else:
        p_value, reject = sps.norm.sf(z), z > critical
    return ZTest(z, p_value, critical, reject)


def bonferroni(family_alpha: float, n_tests: int) -> float:
    """Per-test α = α_family / k: the family-wise error rate of k tests is then ≤ α_family."""
    family_alpha = _check_probability(family_alpha, "family_alpha")
    return family_alpha / _check_count(n_tests, "n_tests")


def power(effect, n: int, alpha: float, variance, *, two_sided: bool = True):
    """Probability that the z-test rejects when the true mean is shifted by ``effect`` (δ).

    Two-sided: Φ(δ√n/σ − z_{1−α/2}) + Φ(−δ√n/σ − z_{1−α/2}); one-sided: Φ(δ√n/σ − z_{1−α}).
    """
    shift = host(effect) * math.sqrt(_check_count(n, "n")) / np.sqrt(_check_positive(variance, "variance"))
    critical = critical_value(alpha, two_sided=two_sided)
    result = sps.norm.cdf(shift - critical)
    if two_sided:
        result = result + sps.norm.cdf(-shift - critical)
    return result


def required_samples(effect, alpha: float, power: float, variance, *, two_sided: bool = True):
    """Smallest n with which the z-test at level α detects a mean shift δ with probability ≥ power.

    ``n = ⌈((z_{1−α/2} + z_{power}) σ / |δ|)²⌉`` (two-sided; z_{1−α} one-sided), σ² the variance
    of one replicate. Returns an int for scalar inputs, an int array otherwise.
    """
    effect = _check_positive(np.abs(host(effect)), "effect")
    power = _check_probability(power, "power")
    quantiles = critical_value(alpha, two_sided=two_sided) + float(sps.norm.ppf(power))
    n = np.ceil((quantiles**2) * _check_positive(variance, "variance") / effect**2 - 1e-9)
    n = np.maximum(n, 1).astype(np.int64)
    return int(n) if n.ndim == 0 else n


def detectable_effect(n: int, alpha: float, power: float, variance, *, two_sided: bool = True):
    """Smallest shift δ the z-test detects with probability ≥ power from n replicates of variance σ².

    ``δ = (z_{1−α/2} + z_{power}) σ / √n``, the inverse of :func:`required_samples`.
    """
    power = _check_probability(power, "power")
    quantiles = critical_value(alpha, two_sided=two_sided) + float(sps.norm.ppf(power))
    n = _check_count(n, "n")
    return quantiles * np.sqrt(_check_positive(variance, "variance") / n)


def binomial_ci(successes, trials: int, *, confidence: float = 0.99) -> Interval:
    """Rate k/n with its Clopper-Pearson interval (exact; Clopper & Pearson 1934).

    low = Beta_{(1−c)/2}(k, n − k + 1), high = Beta_{1−(1−c)/2}(k + 1, n − k), with low = 0 at
    k = 0 and high = 1 at k = n.
    """
    confidence = _check_probability(confidence, "confidence")
    trials = _check_count(trials, "trials")
    k = host(successes)
    if np.any(k < 0) or np.any(k > trials) or np.any(k != np.round(k)):
        raise ValueError(f"successes must be integers in [0, {trials}], got {k}")
    tail = (1 - confidence) / 2
    low = np.where(k > 0, sps.beta.ppf(tail, np.maximum(k, 1), trials - k + 1), 0.0)
    high = np.where(k < trials, sps.beta.isf(tail, k + 1, np.maximum(trials - k, 1)), 1.0)
    return Interval(k / trials, low, high)


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an integer >= 1, got {value!r}")
    if int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value}")
    return int(value)


__all__ = [
    "Interval",
    "ZTest",
    "binomial_ci",
    "bonferroni",
    "critical_value",
    "detectable_effect",
    "host",
    "mean_ci",
    "mse_ci",
    "power",
    "required_samples",
    "z_statistic",
    "z_test",
]
