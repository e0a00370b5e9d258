"""performer-pytorch 1.1.4: orthogonal_matrix_chunk takes Q from torch.linalg.qr without the sign(diag R)
correction, so its blocks are not Haar: the first coordinate of each block's first row is negative far
more often than not. Positive softmax features are not even in w, so K̂ is biased, most at
axis-aligned inputs.

Run: python results/audit/performer-pytorch/reproduce_qr_sign.py (needs performer-pytorch==1.1.4).
Second computation: the library's own rows with independent random signs (which makes each block
Haar, Mezzadri 2007 §5) give an unbiased K̂.
"""

import numpy as np
import torch
from performer_pytorch.performer_pytorch import gaussian_orthogonal_random_matrix, softmax_kernel

d, n = 4, 5000
torch.manual_seed(0)
W = torch.stack([gaussian_orthogonal_random_matrix(d, d) for _ in range(n)]).double()
x = torch.zeros(1, 1, 1, d, dtype=torch.float64)
x[..., 0] = 0.5 * d**0.25  # the map scales inputs by d^{-1/4}: K̂ estimates exp(‖e₁/2‖²)
truth = np.exp(0.25)


def kernel(w):
    """K̂(x, x) through the library's feature map with eps = 0 (its stabilizer shift undone)."""
    phi = softmax_kernel(x, projection_matrix=w, is_query=True, eps=0.0)
    shift = (x * d**-0.25) @ w.T
    return float((phi**2 * torch.exp(2 * shift.max())).sum())


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
