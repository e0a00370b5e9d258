"""pytorch-fast-transformers 0.4.0: GeneralizedRandomFeatures (ReLU by default) draws ω with
orthogonal_random_matrix_, whose Q comes from torch.qr without the sign(diag R) correction (every
block's first projection starts with a negative coordinate) and whose norms depend on directions
(see reproduce_norms.py). ReLU is not even in ω, so K̂ (the arc-cosine kernel) is biased.

Run: python results/audit/pytorch-fast-transformers/reproduce_grf_bias.py
Second computation, to separate the two causes: the library's own ω with random column signs
(Haar directions, norms still tied to them), then with random signs AND independent χ(d) norms.
"""

import numpy as np
import torch
from fast_transformers.feature_maps import GeneralizedRandomFeatures

d, n = 4, 20000
torch.manual_seed(0)
feature_map = GeneralizedRandomFeatures(d, n_dims=d)  # m = d projections, features ReLU(xᵀω)
omegas = []
for _ in range(n):
    feature_map.new_feature_map("cpu")
    omegas.append(feature_map.omega.clone().double())
omegas = torch.stack(omegas)
x = torch.zeros(d, dtype=torch.float64)
x[0] = 0.5  # arc-cosine kernel of order 1 at x = y: ‖x‖²/2


def kernel(omega):
    """K̂(x, x) = φ(x)ᵀφ(x)/m through the library's forward (its features carry no m^{-1/2})."""
    feature_map.omega = omega
    return float((feature_map(x) ** 2).sum()) / d


truth = 0.25 / 2
rng = np.random.default_rng(1)
signs = torch.from_numpy(rng.choice([-1.0, 1.0], size=(n, 1, d)))
norms = torch.from_numpy(np.sqrt(rng.chisquare(d, (n, 1, d))))
variants = {
    "library": omegas,
    "random column signs": omegas * signs,
    "random signs, independent χ(d) norms": omegas / omegas.norm(dim=1, keepdim=True) * signs * norms,
}
print(f"P(ω[0, 0] < 0) = {float((omegas[:, 0, 0] < 0).double().mean()):.3f} (Haar: 0.5)")
for label, sample in variants.items():
    values = np.array([kernel(o) for o in sample]) / truth
    print(
        f"E[K̂]/K at x = y = e₁/2, d = m = {d}, {label}: {values.mean():.3f} ± "
        f"{2 * values.std() / np.sqrt(n):.3f}"
    )
