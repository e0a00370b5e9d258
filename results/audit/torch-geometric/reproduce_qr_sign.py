"""torch-geometric 2.8.1: orthogonal_matrix takes Q from torch.linalg.qr without the sign(diag R)
correction, so its blocks are not Haar: the first coordinate of each block's first row is negative
far more often than not. ReLU features are not even in w, so K̂ is biased, most at axis-aligned inputs.

Run: python results/audit/torch-geometric/reproduce_qr_sign.py (needs torch-geometric==2.8.1).
Second computation: the library's own rows with independent random signs (which makes each block
Haar, Mezzadri 2007 §5) give an unbiased K̂.
"""

import numpy as np
import torch
from torch_geometric.nn.attention.performer import generalized_kernel, orthogonal_matrix

d, n = 4, 5000
torch.manual_seed(0)
W = torch.stack([orthogonal_matrix(d, d) for _ in range(n)]).double()
x = torch.zeros(1, 1, 1, d, dtype=torch.float64)
x[..., 0] = 0.5
# arc-cosine kernel of order 1 at x = y for unit-norm rows: E[ReLU(u·x)²] = ‖x‖²/(2d)
truth = 0.25 / (2 * d)


def kernel(w):
    """K̂(x, x)/m through the library's feature map with epsilon = 0."""
    return float((generalized_kernel(x, w, epsilon=0.0) ** 2).sum() / w.shape[0])


estimates = np.array([kernel(w) for w in W])
signs = torch.from_numpy(np.random.default_rng(1).choice([-1.0, 1.0], size=(n, d, 1)))
fixed = np.array([kernel(w) for w in W * signs])
print(f"P(W[0, 0] < 0) = {float((W[:, 0, 0] < 0).double().mean()):.3f} (Haar: 0.5)")
print(
    f"E[K̂]/K at x = y = e₁/2, d = m = {d}: {estimates.mean() / truth:.3f} ± "
    f"{2 * estimates.std() / np.sqrt(n) / truth:.3f}"
)
print(
    f"same rows, random signs:             {fixed.mean() / truth:.3f} ± "
    f"{2 * fixed.std() / np.sqrt(n) / truth:.3f}"
)
