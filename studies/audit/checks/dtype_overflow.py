"""The dtype-overflow check: in each reduced precision the adapter declares, FAVOR neither overflows
nor loses more than the round-off of the precision it computes in, at logits large enough to
overflow float16's exp.
"""

from __future__ import annotations

import math

import numpy as np

from .attention_calls import (
    attention_inputs,
    bound_per_roundoff,
    call_attention,
    dense_reference,
    draw_projection,
    roundoff_bound,
)
from .core import Settings, not_applicable, rng_for, verdict
from .precision import UNIT_ROUNDOFF, round_to

ALIGNMENT = 1.2


def check_dtype(adapter, settings: Settings):
    """Reduced precision neither overflows nor loses more than its round-off (the adapter's dtypes).

    Inputs with large logits (N(0, 3²) entries, d = 16, L = 32, m = 32: logits qᵀk/√d up to ≈ 33,
    while exp overflows float16 above 11.1), the first 8 queries and keys set to x = 1.2·w_l (rows of
    W): the unshifted feature exponent wᵀx − ‖x‖²/2 = 0.48‖w‖² then reaches ≈ 12 (‖w‖ ≈ 5), past
    float16's overflow. Inputs are rounded to the dtype first; the reference is the same
    library in float64 on those rounded inputs and W, so only the arithmetic differs. Pass when every
    output is finite and max |o − o_ref| is within the bound below plus that of the float64 call's
    working precision:

    * declared ``accumulation`` (e.g. float32 for half inputs): the worst-case bound of the module
      precision at that precision's u, plus u_dtype·max|o| for rounding the output to the dtype. A
      library that computes in a narrower type than it declares exceeds it.
    * undeclared: the worst-case bound with every operation rounding to the dtype, plus the output
      rounding. For float16 and bfloat16 it can reach 2·max|v| (the output is a convex combination of
      values, so no error can exceed that): the error part is then vacuous and the verdict says so;
      only overflow (non-finite outputs) is tested.
    """
    name, title = "dtype-overflow", "Reduced precision: no overflow, error within round-off"
    if not adapter.dtypes:
        return not_applicable(name, title, "the adapter declares no dtype besides float64")
    if not adapter.accepts_projection(32, 16):
        return not_applicable(name, title, "the adapter does not build m = 32, d = 16 projections")
    q, k, v = attention_inputs(rng_for(settings, name), length=32, d=16, scale=3.0)
    W = draw_projection(adapter, settings, name, 32, 16)
    aligned = ALIGNMENT * W[:8] * 16**0.25
    q[..., :8, :], k[..., :8, :] = aligned, aligned
    effects, ratios, lines, vacuous_dtypes = {}, [], [], []
    for dtype in adapter.dtypes:
        rounded = [round_to(a, dtype) for a in (q, k, v, W)]
        out = call_attention(adapter, *rounded, dtype=dtype)
        reference = call_attention(adapter, *rounded, dtype="float64")
        _, gram = dense_reference(adapter.claims, *rounded)
        base, _ = roundoff_bound(adapter, reference, *rounded, gram)
        per_roundoff = bound_per_roundoff(adapter, *rounded, gram)
        arithmetic = UNIT_ROUNDOFF[adapter.accumulation or dtype]
        bound = base + per_roundoff * arithmetic + float(np.max(np.abs(reference))) * UNIT_ROUNDOFF[dtype]
        finite = bool(np.all(np.isfinite(out)))
        error = float(np.abs(out - reference).max()) if finite else math.inf
        vacuous = bound >= 2 * float(np.max(np.abs(v)))
        effects[dtype] = error
        ratios.append(0.0 if finite and vacuous else error / bound)
        computed = f"computed in {adapter.accumulation}" if adapter.accumulation else "every operation in it"
        lines.append(
            f"{dtype} ({computed}): "
            + (
                f"max |o − o_ref| = {error:.2e} (bound {bound:.1e}"
                + (", ≥ 2·max|v|: vacuous, only overflow tested)" if vacuous else ")")
                if finite
                else f"non-finite outputs: {np.mean(~np.isfinite(out)):.0%}"
            )
        )
        if vacuous:
            vacuous_dtypes.append(dtype)
    worst = max(ratios)
    return verdict(
        name,
        title,
        worst <= 1,
        max(effects.values()) / float(np.max(np.abs(v))),
        statistic=f"largest error / round-off bound = {worst:.2f}",
        effect="; ".join(lines),
        tolerance="worst-case round-off bound at the declared accumulation precision (else the dtype's), "
        "plus the output's rounding to the dtype, plus the float64 call's bound",
        power=(
            f"error part vacuous for {', '.join(vacuous_dtypes)} (no accumulation declared): overflow only"
            if vacuous_dtypes
            else "detects any error above the bound, and any non-finite output"
        ),
        details=lines,
    )
