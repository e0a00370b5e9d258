"""Distribution-free comparisons of estimators: stratified Mann–Whitney tests, Holm's step-down
correction, and bootstrap intervals for Kendall's τ between two rankings (host float64 numpy).

Why rank tests. Attention-level errors (KL, total variation, top-k misses) have no closed-form
variance, and the per-draw kernel MSE of exponential features is heavy-tailed, so a z-test on the
sample SD would not keep its level (``studies.core.stats``: 0.3–0.9 for a nominal 0.01). The tests here
use only ranks within each stratum.

* :func:`stratified_mann_whitney`: van Elteren's stratified Wilcoxon–Mann–Whitney test (van
  Elteren 1960, *Bull. Inst. Internat. Statist.* 37; Lehmann, *Nonparametrics*, 1975, §3.3). Samples
  a (S, n_a) and b (S, n_b), S strata (input draws) with independent draws inside each. Null H₀: in
  every stratum a and b have the same distribution. Statistic ``z = Σ_s w_s (U_s − n_a n_b/2) /
  √(Σ_s w_s² Var₀ U_s)`` with ``U_s = #{(i, j): b_sj > a_si} + ½ #{ties}`` and the tie-corrected null
  variance ``Var₀ U_s = n_a n_b/12 · (N + 1 − Σ_t (t³ − t)/(N(N − 1)))``, N = n_a + n_b,
  w_s = 1/(N + 1); z > 0 means a tends to be smaller (better). Two-sided p = 2Φ(−|z|) (normal
  approximation, accurate for n_a, n_b ≥ 10 per stratum).
* Power: with n = S·n_a = S·n_b draws per side, E z ≈ (p − ½)√(12 n²/(2n + 1)) against the effect
  p = P(a < b) (:func:`mann_whitney_power`; Noether 1987, *JASA* 82).
* :func:`holm`: Holm (1979, *Scand. J. Statist.* 6) step-down; family-wise error ≤ α for any
  dependence between the tests.
* :func:`kendall_tau` (τ-a, no ties among means) and :func:`tau_interval`: percentile interval of τ
  between the rankings of two metrics by their means (Efron & Tibshirani, *An Introduction to the
  Bootstrap*, 1993, §13.3), from :func:`bootstrap_means`, which resamples draws with replacement
  inside each stratum; one draw keeps its values of every metric (they come from the same W).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats


def _strata(samples, name) -> np.ndarray:
    array = np.asarray(samples, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 1:
        raise ValueError(f"{name} must be a (strata, draws) array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or Inf values; rank tests need finite samples")
    return array


def stratified_mann_whitney(a, b) -> float:
    """van Elteren's z (module docstring) of samples a (S, n_a) and b (S, n_b); > 0: a smaller."""
    a, b = _strata(a, "a"), _strata(b, "b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have the same number of strata, got {a.shape[0]} and {b.shape[0]}")
    n_a, n_b = a.shape[1], b.shape[1]
    total = n_a + n_b
    u = np.sum(b[:, None, :] > a[:, :, None], axis=(1, 2)) + 0.5 * np.sum(
        b[:, None, :] == a[:, :, None], axis=(1, 2)
    )
    pooled = np.concatenate([a, b], axis=1)
    tie_sizes = np.sum(pooled[:, :, None] == pooled[:, None, :], axis=-1)
    ties = np.sum(tie_sizes.astype(np.float64) ** 2 - 1, axis=-1)  # Σ_t (t³ − t) over tie groups
    variance = n_a * n_b / 12 * (total + 1 - ties / (total * (total - 1)))
    weight = 1 / (total + 1)
    spread = math.sqrt(float(np.sum(weight**2 * variance)))
    if spread == 0:
        return 0.0
    return float(np.sum(weight * (u - n_a * n_b / 2)) / spread)


def two_sided_p(z):
    """2Φ(−|z|), elementwise."""
    return 2 * special.ndtr(-np.abs(z))


def holm(p_values, alpha: float) -> np.ndarray:
    """Holm's step-down rejections (bool, input order) at family-wise level ``alpha``."""
    p = np.asarray(p_values, dtype=np.float64)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    order = np.argsort(p, kind="stable")
    thresholds = alpha / (p.size - np.arange(p.size))
    passed = p[order] <= thresholds
    stop = int(np.argmin(passed)) if not passed.all() else p.size
    rejected = np.zeros(p.size, dtype=bool)
    rejected[order[:stop]] = True
    return rejected


def mann_whitney_power(effect: float, n: int, alpha: float) -> float:
    """Approximate two-sided power of the test with n draws per side against p = P(a < b) = ``effect``."""
    shift = (effect - 0.5) * math.sqrt(12 * n * n / (2 * n + 1))
    critical = stats.norm.isf(alpha / 2)
    return float(stats.norm.sf(critical - shift) + stats.norm.cdf(-critical - shift))


def kendall_tau(x, y) -> float:
    """Kendall's τ-a between score vectors x and y (E,): mean of sign(x_i − x_j)·sign(y_i − y_j)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    upper = np.triu_indices(x.shape[-1], 1)
    dx = (x[..., :, None] - x[..., None, :])[..., upper[0], upper[1]]
    dy = (y[..., :, None] - y[..., None, :])[..., upper[0], upper[1]]
    return np.mean(np.sign(dx) * np.sign(dy), axis=-1)


def bootstrap_means(samples, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Bootstrap means (B, …) of ``samples`` (…, S, n): draws resampled with replacement inside each
    stratum, the same draw positions for every leading index. Valid when the draws at one position
    are an iid tuple across the leading indices: independent estimators, or metrics of one W."""
    samples = np.asarray(samples, dtype=np.float64)
    strata, n = samples.shape[-2:]
    picks = rng.integers(0, n, size=(resamples, strata, n))
    gathered = samples[..., np.arange(strata)[:, None], picks]  # (…, B, S, n)
    return np.moveaxis(gathered.mean(axis=(-2, -1)), -1, 0)


def tau_interval(first, second, confidence: float = 0.99) -> tuple[float, float]:
    """Percentile interval of Kendall's τ between bootstrap means ``first``, ``second`` (B, E)."""
    taus = kendall_tau(first, second)
    tail = (1 - confidence) / 2
    return float(np.quantile(taus, tail)), float(np.quantile(taus, 1 - tail))


__all__ = [
    "bootstrap_means",
    "holm",
    "kendall_tau",
    "mann_whitney_power",
    "stratified_mann_whitney",
    "tau_interval",
    "two_sided_p",
]
