"""The check set: one place for every check of favor-bench's claims, run on any adapter.

It runs on favor-bench's own registry rows through their adapter (CI's Tier 1), on the planted
adapters of :mod:`studies.audit.planted` (power), over fresh seeds (the Tier 2 calibration of
:mod:`studies.audit.calibration`) and on third-party adapters (``python -m studies audit``).

Families: projections (the law of W and its draws in ``projection_law``; coordinates and
directions in ``projections``, row norms in ``projection_norms``), ``kernels`` (mean, zero-variance
points and MSE of K̂; the causes of a bias in ``bias_diagnosis``), ``heads`` (repeats and
independence across heads and redraws) and attention, one module per job over the calls and
references of ``attention_calls``: ``attention_semantics`` (same map, causality, masks),
``dense_reference``, ``attention_delta`` (the delta method's mean and error), ``convergence_exact``
and ``dtype_overflow`` (reduced precision).
Each check's docstring states its null, its α (family 0.01 per check, Bonferroni over its cells),
its power against a stated effect, or, for deterministic checks, its round-off tolerance.
"""

from __future__ import annotations

import time

from . import (
    attention_delta,
    attention_semantics,
    convergence_exact,
    dense_reference,
    dtype_overflow,
    heads,
    kernels,
    projection_norms,
    projections,
)
from .core import FAMILY_ALPHA, Check, CheckResult, Settings, not_applicable

_SAMPLER = ("sample_projection",)
_KERNEL = ("sample_projection", "kernel_estimate")
_ATTENTION = ("sample_projection", "attention")

CHECKS = {
    check.name: check
    for check in (
        Check("projection-moments", projections.check_moments, _SAMPLER, "projections", "14"),
        Check("projection-norms", projection_norms.check_norms, _SAMPLER, "projections", "13, 14"),
        Check("projection-directions", projections.check_directions, _SAMPLER, "projections", "14"),
        Check("projection-orthogonality", projections.check_orthogonality, _SAMPLER, "projections", "7, 14"),
        Check("norm-direction", projection_norms.check_norm_direction, _SAMPLER, "projections", "14"),
        Check("unbiased-kernel", kernels.check_unbiased, _KERNEL, "kernels", "1, 13, 14, 27"),
        Check("zero-variance", kernels.check_zero_variance, _KERNEL, "kernels", "5"),
        Check("mse-closed-form", kernels.check_mse, _KERNEL, "kernels", "2, 3, 4, 7, 9, 10, 13"),
        Check(
            "head-independence",
            heads.check_head_independence,
            ("head_projections", "kernel_estimate"),
            "heads",
        ),
        Check(
            "redraw-independence",
            heads.check_redraw_independence,
            ("redraw_projections", "kernel_estimate"),
            "heads",
        ),
        Check("data-redraws", heads.check_data_redraws, ("data_projections", "kernel_estimate"), "heads"),
        Check(
            "same-projection",
            attention_semantics.check_same_projection,
            ("sample_projection", "features"),
            "attention",
        ),
        Check("dense-reference", dense_reference.check_dense_reference, _ATTENTION, "attention", "15, 16"),
        Check("causal-future", attention_semantics.check_causal_future, _ATTENTION, "attention", "18"),
        Check("mask-semantics", attention_semantics.check_mask, _ATTENTION, "attention"),
        Check("attention-delta", attention_delta.check_attention_delta, _ATTENTION, "attention", "17"),
        Check(
            "attention-convergence",
            attention_delta.check_attention_convergence,
            _ATTENTION,
            "attention",
            "17, 28, 29",
        ),
        Check("convergence-exact", convergence_exact.check_convergence, _ATTENTION, "attention", "17"),
        Check("dtype-overflow", dtype_overflow.check_dtype, _ATTENTION, "attention"),
    )
}


def enable_jax_float64() -> None:
    """Turn on JAX's float64 mode when JAX is installed (adapters of JAX libraries then compute in
    the float64 the audit hands them instead of silently truncating to float32)."""
    try:
        import jax
    except ImportError:
        return
    jax.config.update("jax_enable_x64", True)


def run_check(name: str, adapter, settings: Settings) -> CheckResult:
    """Run check ``name``: n-a (with the missing capability) when the adapter lacks one it needs,
    ``error`` (with the exception) when the implementation raises; ``seconds`` records its time."""
    if name not in CHECKS:
        raise ValueError(f"name must be one of {tuple(CHECKS)}, got {name!r}")
    check = CHECKS[name]
    missing = [need for need in check.needs if not adapter.has(need)]
    if missing:
        return not_applicable(name, name, f"the adapter provides no {', '.join(missing)}")
    enable_jax_float64()
    start = time.perf_counter()
    try:
        result = check.function(adapter, settings)
    except Exception as error:  # a third-party implementation may raise anything; the report says what
        result = CheckResult(name, name, "error", reason=f"{type(error).__name__}: {error}")
    result.seconds = time.perf_counter() - start
    return result


__all__ = ["CHECKS", "FAMILY_ALPHA", "Check", "CheckResult", "Settings", "enable_jax_float64", "run_check"]
