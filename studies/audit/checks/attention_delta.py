"""The delta method of theory.md §7.1 against the library's FAVOR output ô: its mean (the O(1/m)
ratio bias included) and its mean squared error ‖ô_i − o_i‖² at m = 128, 512, on fixed small inputs
of the iid rows the method is derived for.
"""

from __future__ import annotations

import math

import numpy as np

from estimators import theory
from studies.core import stats

from . import draws
from .attention_calls import call_attention
from .core import FAMILY_ALPHA, Settings, bonferroni_verdict, not_applicable, seeds_for

DELTA_M = 64
DELTA_EFFECT = 0.01
CONVERGENCE_MS = (128, 512)
CONVERGENCE_EFFECT = 0.3


def _delta_inputs(length=8, d=4, d_v=2, norm=0.55, seed=20201):
    """Fixed q, k (1, 1, L, d) with ‖q_i d^{-1/4}‖ = norm, ‖k_j d^{-1/4}‖ ≤ norm (max ‖x_i + y_j‖² ≤ 1.21)
    and v (1, 1, L, d) whose first d_v columns are N(0, 1) and the rest 0 (value width = d)."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(length, d))
    k = rng.normal(size=(length, d))
    q *= norm * d**0.25 / np.linalg.norm(q, axis=-1, keepdims=True)
    k *= norm * d**0.25 / np.linalg.norm(k, axis=-1, keepdims=True) * rng.uniform(0.3, 1.0, size=(length, 1))
    v = np.zeros((length, d))
    v[:, :d_v] = rng.normal(size=(length, d_v))
    return q[None, None], k[None, None], v[None, None], d_v


def _delta_guard(adapter, name, title, m):
    if adapter.claims not in theory.DELTA_ROWS:
        return not_applicable(
            name,
            title,
            f"the delta method is derived for the iid rows {theory.DELTA_ROWS}, not {adapter.claims!r}",
        )
    if not adapter.accepts_projection(m, 4):
        return not_applicable(name, title, f"the adapter does not build m = {m}, d = 4 projections")
    return None


def _outputs(adapter, q, k, v, W, causal):
    return np.stack([call_attention(adapter, q, k, v, w, causal=causal)[0, 0] for w in W])


def check_attention_delta(adapter, settings: Settings):
    """E[ô_i] = o_i + delta-method bias (theory.md §7.1, claim 17), bidirectional and causal.

    ô = the library's FAVOR output, o = exact attention with the row's kernel; cells: 8 queries × 2
    value coordinates, bidirectional and causal (query i sees keys j ≤ i), L = 8, d = 4, m = 64,
    inputs with max ‖x_i + y_j‖² ≤ 1.21; the first causal row (ô_0 = v_0 exactly) is excluded.
    A replicate is ô_i,c from a fresh W; its variance is the delta-method Cov(ô_i)_cc. n = the larger
    of the n detecting an output shift of 1% of the value spread in every cell and the n detecting
    the O(1/m) ratio bias itself in its most visible cell, each with the settings' power.
    """
    name, title = "attention-delta", "Mean of ô follows the delta method (bias included)"
    guard = _delta_guard(adapter, name, title, DELTA_M)
    if guard:
        return guard
    q, k, v, d_v = _delta_inputs()
    scale = q.shape[-1] ** -0.25
    x, y = q[0, 0] * scale, k[0, 0] * scale
    modes = (False, True) if adapter.causal else (False,)
    expected, variance, bias, cells = {}, {}, {}, 0
    for causal in modes:
        rows = range(1, x.shape[0]) if causal else range(x.shape[0])
        means, variances, biases = [], [], []
        for i in rows:
            keys = slice(0, i + 1) if causal else slice(None)
            delta = theory.attention_delta(
                adapter.claims, x[i : i + 1], y[keys], v[0, 0, keys, :d_v], DELTA_M
            )
            means.append(delta.output[0] + delta.bias[0])
            biases.append(delta.bias[0])
            variances.append(np.diagonal(delta.covariance[0]))
        expected[causal] = (list(rows), np.array(means))
        variance[causal], bias[causal] = np.array(variances), np.array(biases)
        cells += len(means) * d_v
    alpha = stats.bonferroni(FAMILY_ALPHA, cells)
    critical = stats.critical_value(alpha)
    effect = DELTA_EFFECT * np.std(v[0, 0, :, :d_v], axis=0)
    shift_n = max(np.max(stats.required_samples(effect, alpha, settings.power, variance[c])) for c in modes)
    bias_n = min(
        np.min(stats.required_samples(np.abs(bias[c]), alpha, settings.power, variance[c])) for c in modes
    )
    n = int(max(shift_n, bias_n))
    W = draws.projections(adapter, DELTA_M, 4, n, seeds_for(settings, name, 1)[0])
    z_all, p_all, lines, worst = [], [], [], 0.0
    for causal in modes:
        rows, means = expected[causal]
        out = _outputs(adapter, q, k, v, W, causal)[:, rows, :d_v]
        test = stats.z_test(out.mean(axis=0), means, variance[causal], n, alpha=alpha)
        z_all.append(np.abs(test.z).ravel())
        p_all.append(np.ravel(test.p_value))
        shift = np.abs(out.mean(axis=0) - means)
        worst = max(worst, float(shift.max()))
        lines.append(
            f"{'causal' if causal else 'bidirectional'}: max |mean ô − (o + bias)| = {shift.max():.2e}, "
            f"max |z| = {np.abs(test.z).max():.2f}; predicted bias up to {np.abs(bias[causal]).max():.2e}"
        )
    return bonferroni_verdict(
        name,
        title,
        z_all,
        p_all,
        critical,
        worst / float(np.std(v[0, 0, :, :d_v])),
        note=f", n = {n}",
        effect=f"largest |mean ô − (o + bias)| = {worst:.2e} (95% CI half-width up to "
        f"{stats.critical_value(0.05) * math.sqrt(max(float(np.max(variance[c])) for c in modes) / n):.1e})",
        power=f"power {settings.power} against a shift of {DELTA_EFFECT:.0%} of the value spread in any cell "
        "and against the absence of the predicted bias",
        details=lines,
    )


def check_attention_convergence(adapter, settings: Settings):
    """E‖ô_i − o_i‖² = tr Cov(ô_i) + ‖bias_i‖² from the delta method at m ∈ {128, 512} (claims 17, 28,
    29): FAVOR converges to exact attention at rate 1/m with the predicted constant.

    Cells: 8 query rows × 2 values of m (bidirectional, L = 8, d = 4, max ‖x_i + y_j‖² ≤ 1.21).
    A replicate is S_i = ‖ô_i − o_i‖² from a fresh W; its variance is that of the Gaussian limit,
    Var S_i = 2 tr C_i² + 4 b_iᵀC_i b_i. n = max over cells of required_samples(0.3·E S_i, α, power,
    Var S_i): a 30% error in the mean squared error of any row (half the features used doubles it)
    is detected with the settings' power. m ≥ 128: the neglected O(1/m²) terms bias z by about −0.7
    at m = 64.
    """
    name, title = "attention-convergence", "Output error follows the delta method at m = 128, 512"
    guard = _delta_guard(adapter, name, title, max(CONVERGENCE_MS))
    if guard:
        return guard
    q, k, v, d_v = _delta_inputs()
    scale = q.shape[-1] ** -0.25
    x, y = q[0, 0] * scale, k[0, 0] * scale
    mean, variance = {}, {}
    for m in CONVERGENCE_MS:
        delta = theory.attention_delta(adapter.claims, x, y, v[0, 0, :, :d_v], m)
        covariance, bias = delta.covariance, delta.bias
        output = delta.output
        mean[m] = np.trace(covariance, axis1=-2, axis2=-1) + np.sum(bias**2, axis=-1)
        variance[m] = 2 * np.trace(covariance @ covariance, axis1=-2, axis2=-1) + 4 * np.einsum(
            "ic,icd,id->i", bias, covariance, bias
        )
    cells = len(CONVERGENCE_MS) * x.shape[0]
    alpha = stats.bonferroni(FAMILY_ALPHA, cells)
    critical = stats.critical_value(alpha)
    n = int(
        max(
            np.max(stats.required_samples(CONVERGENCE_EFFECT * mean[m], alpha, settings.power, variance[m]))
            for m in CONVERGENCE_MS
        )
    )
    z_all, p_all, lines, worst = [], [], [], 0.0
    for m in CONVERGENCE_MS:
        W = draws.projections(adapter, m, 4, n, seeds_for(settings, f"{name}/m={m}", 1)[0])
        out = _outputs(adapter, q, k, v, W, False)[:, :, :d_v]
        squared = np.sum((out - output) ** 2, axis=-1)
        test = stats.z_test(squared.mean(axis=0), mean[m], variance[m], n, alpha=alpha)
        z_all.append(np.abs(test.z))
        p_all.append(np.ravel(test.p_value))
        ratio = squared.mean(axis=0) / mean[m]
        worst = max(worst, float(np.abs(ratio - 1).max()))
        lines.append(f"m={m}: measured/predicted E‖ô_i − o_i‖² from {ratio.min():.3f} to {ratio.max():.3f}")
    relative_se = max(float(np.max(np.sqrt(variance[m] / n) / mean[m])) for m in CONVERGENCE_MS)
    half = stats.critical_value(0.05) * relative_se
    return bonferroni_verdict(
        name,
        title,
        z_all,
        p_all,
        critical,
        worst,
        note=f", n = {n}",
        effect=f"largest |measured/predicted − 1| = {worst:.3f} (95% CI half-width up to {half:.3f})",
        power=f"power {settings.power} against a {CONVERGENCE_EFFECT:.0%} error in any row's "
        "mean squared error",
        details=lines,
    )
