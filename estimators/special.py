"""Special functions in float64 (numpy/scipy only), evaluated without overflow."""

from __future__ import annotations

import numpy as np
from scipy import special


def log_hyp0f1(b, u):
    """log ₀F₁(; b; u) for u ≥ 0, finite for any size of u.

    ₀F₁(; b; u) = Γ(b) u^{(1−b)/2} I_{b−1}(2√u) (DLMF 10.39.9). scipy's ``hyp0f1`` is used where
    it is finite and positive; beyond that the exponentially scaled Bessel function ``ive`` gives
    log ₀F₁ = log Γ(b) + ((1−b)/2) log u + log ive(b−1, 2√u) + 2√u with no overflow.
    This is E[exp(r uᵀv)] for u uniform on S^{d−1} with b = d/2 and u = r²‖v‖²/4 (theory.md §1).
    """
    b = np.asarray(b, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    if np.any(u < 0):
        raise ValueError("u must be >= 0 for log_hyp0f1 (use scipy.special.hyp0f1 for u < 0)")
    b, u = np.broadcast_arrays(b, u)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        direct = special.hyp0f1(b, u)
        out = np.log(direct)
        bad = ~np.isfinite(out) | (direct <= 0)
        if np.any(bad):
            root = 2.0 * np.sqrt(u[bad])
            out[bad] = (
                special.gammaln(b[bad])
                + 0.5 * (1.0 - b[bad]) * np.log(u[bad])
                + np.log(special.ive(b[bad] - 1.0, root))
                + root
            )
    return out[()] if out.ndim == 0 else out
