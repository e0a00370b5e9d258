"""srf-attention 1.0.16: simplex_random_matrix draws row norms sqrt(Chi2(df=1)) instead of χ(d),
so φ(x)ᵀφ(y) does not estimate exp(xᵀy) (SimRF rows need χ(d) norms: Reid et al. 2023, §3).

Run: python results/audit/srf-attention/reproduce_norms.py (needs srf-attention==1.0.16).
Second computation: the library's own rows with their norms redrawn from χ(d) (directions kept).
"""

import numpy as np
import torch
from srf_attention import simplex_random_matrix, softmax_kernel_bhld

d, n = 8, 4000
torch.manual_seed(0)
W = torch.stack([simplex_random_matrix(nb_rows=d, nb_columns=d) for _ in range(n)]).double()
mean_square_norm = float((W**2).sum(-1).mean())

x = torch.zeros(1, 1, 1, d, dtype=torch.float64)
x[..., 0] = 0.5  # K(x, x) = exp(xᵀx) = exp(1/4)


def kernel(w):
    """K̂(x, x) through the library's feature map (eps = 0, its per-row max multiplied back)."""
    phi = softmax_kernel_bhld(x, projection_matrix=w, is_query=True, normalize_data=False, eps=0.0)
    return float((phi**2).sum() * torch.exp(2 * (x @ w.T).max()))


ratio = np.mean([kernel(w) for w in W]) / np.exp(0.25)
norms = torch.from_numpy(np.sqrt(np.random.default_rng(1).chisquare(d, (n, d, 1))))
rescaled = W / W.norm(dim=-1, keepdim=True) * norms
ratio_chi = np.mean([kernel(w) for w in rescaled]) / np.exp(0.25)
standard_error = np.std([kernel(w) for w in rescaled]) / np.sqrt(n) / np.exp(0.25)
print(f"E‖w‖² = {mean_square_norm:.3f} over {n} draws (χ(d) gives d = {d})")
print(f"E[K̂]/K at x = y = e₁/2, d = {d}, m = d: {ratio:.3f} (library)")
print(f"same directions, χ(d) norms:            {ratio_chi:.3f} ± {2 * standard_error:.3f}")
