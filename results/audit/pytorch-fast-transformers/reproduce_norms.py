"""pytorch-fast-transformers 0.4.0: orthogonal_random_matrix_ scales column j of Q (projection j) by
the norm of ROW j of the same Gaussian block it orthogonalized. That norm shares the entry
block[j, j]·… with the column that defines Q's direction, so norms depend on directions:
E[‖ω_j‖² | ω_j] = d·u_j² + d − 1 for the first column (u = ω_j/‖ω_j‖). Marginally the norms are
χ(d), but exp(ωᵀz) then does not average to exp(‖z‖²/2): Favor's K̂ is biased at axis-aligned inputs.

Run: python results/audit/pytorch-fast-transformers/reproduce_norms.py (fast_transformers 0.4.0
installed, or its unpacked sdist on PYTHONPATH: the feature maps need no compiled code).
Second computation: the library's own directions with independent χ(d) norms give an unbiased K̂
(Favor's map is even in ω, so the missing QR sign correction cannot matter here).
"""

import numpy as np
import torch
from fast_transformers.feature_maps import Favor

d, n = 2, 20000
torch.manual_seed(0)
feature_map = Favor(d, n_dims=2 * d, softmax_temp=1.0)  # m = d projections, 2m features
omegas = []
for _ in range(n):
    feature_map.new_feature_map("cpu")
    omegas.append(feature_map.omega.clone().double())
omegas = torch.stack(omegas)  # (n, d, m): columns are projections
x = torch.zeros(d, dtype=torch.float64)
x[0] = 0.5  # K(x, x) = exp(1/4)


def kernel(omega):
    """K̂(x, x) = φ(x)ᵀφ(x) through the library's Favor.forward with ω = omega."""
    feature_map.omega = omega
    return float((feature_map(x) ** 2).sum())


estimates = np.array([kernel(o) for o in omegas]) / np.exp(0.25)
directions = omegas / omegas.norm(dim=1, keepdim=True)
norms = torch.from_numpy(np.sqrt(np.random.default_rng(1).chisquare(d, (n, 1, d))))
independent = np.array([kernel(o) for o in directions * norms]) / np.exp(0.25)
first = omegas[:, :, 0]
u0_sq = (first[:, 0] / first.norm(dim=-1)) ** 2
aligned = float((first.norm(dim=-1)[u0_sq > 0.9] ** 2).mean())
across = float((first.norm(dim=-1)[u0_sq < 0.1] ** 2).mean())
print(f"E‖ω‖² when ω is within 18° of e₁: {aligned:.2f}; within 18° of e₂: {across:.2f} (χ(d): {d} for both)")
print(f"E[K̂]/K at x = y = e₁/2, d = m = {d}: {estimates.mean():.3f} ± {2 * estimates.std() / np.sqrt(n):.3f}")
print(
    f"same directions, independent χ(d) norms: {independent.mean():.3f} ± "
    f"{2 * independent.std() / np.sqrt(n):.3f}"
)
