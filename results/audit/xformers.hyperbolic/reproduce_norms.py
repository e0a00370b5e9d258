"""xformers 0.0.20: _get_random_ortho_matrix(norm_distribution=Xi) multiplies the ROWS of each m × m
Haar block by χ(m) norms and keeps the first d rows; the projections are its COLUMNS. So each
projection is ω_j = diag(r)·q_j (coordinate i scaled by r_i), not ρ_j·q_j: its norm is not χ(d) and
its direction is not uniform. Inputs spread over several coordinates see it: the hyperbolic K̂ of
SMHyperbolic (FeatureMapType.SMHyp, [exp(ωᵀx − ‖x‖²/2), exp(−ωᵀx − ‖x‖²/2)]) is biased there.

Run: python results/audit/xformers.hyperbolic/reproduce_norms.py (xformers 0.0.20, --no-deps).
Second computation: the same directions with independent χ(d) norms per projection are unbiased.
"""

import numpy as np
import torch
from xformers.components.attention.feature_maps import SMHyperbolic

d, n = 4, 20000
torch.manual_seed(0)
feature_map = SMHyperbolic(dim_features=2 * d, iter_before_redraw=None, epsilon=0.0, softmax_temp=1.0)
omegas = torch.stack([feature_map._get_feature_map(d, d, "cpu") for _ in range(n)]).double()  # (n, d, m)
x = torch.zeros(1, d, dtype=torch.float64)
x[0] = 1 / d**0.5  # ‖x‖ = 1 along the diagonal: K(x, x) = exp(1)


def kernel(omega):
    """K̂(x, x) = φ(x)ᵀφ(x) through the library's SMHyperbolic.forward with its features set to omega."""
    feature_map.features = omega
    return float((feature_map(x) ** 2).sum())


square_norms = (omegas**2).sum(1)
estimates = np.array([kernel(o) for o in omegas]) / np.e
norms = torch.from_numpy(np.sqrt(np.random.default_rng(1).chisquare(d, (n, 1, d))))
independent = np.array([kernel(o) for o in omegas / omegas.norm(dim=1, keepdim=True) * norms]) / np.e
print(
    f"‖ω‖²: mean {float(square_norms.mean()):.2f}, variance {float(square_norms.var()):.2f} "
    f"(χ²(d): {d}, {2 * d})"
)
print(
    f"E[K̂]/K at x = y = (1, …, 1)/√d, d = m = {d}: {estimates.mean():.3f} ± "
    f"{2 * estimates.std() / np.sqrt(n):.3f}"
)
print(
    f"same directions, independent χ(d) norms: {independent.mean():.3f} ± "
    f"{2 * independent.std() / np.sqrt(n):.3f}"
)
