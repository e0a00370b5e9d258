"""pytorch-fast-transformers 0.4.0: Favor(n_dims=r) with r odd builds r//2 projections, i.e. r − 1
features, but scales them by r^{-1/2}: K̂ is multiplied by (r − 1)/r. The default n_dims is the
head dimension, so any odd head dimension is affected (attention divides the factor out; the kernel
estimate, and any use of φ(q)ᵀφ(k) as a kernel, keeps it).

Run: python results/audit/pytorch-fast-transformers/reproduce_odd_n_dims.py
Second computation: the same projections as an even map (n_dims = r − 1) give the unbiased value.
"""

import numpy as np
import torch
from fast_transformers.feature_maps import Favor

d, r, n = 4, 5, 20000
torch.manual_seed(0)
odd = Favor(d, n_dims=r, softmax_temp=1.0)
even = Favor(d, n_dims=r - 1, softmax_temp=1.0)
x = torch.full((d,), 0.25, dtype=torch.float64)  # K(x, x) = exp(1/4)
estimates, reference = [], []
for _ in range(n):
    odd.new_feature_map("cpu")
    odd.omega = odd.omega.double()
    even.omega = odd.omega
    estimates.append(float((odd(x) ** 2).sum()))
    reference.append(float((even(x) ** 2).sum()))
estimates, reference = np.array(estimates) / np.exp(0.25), np.array(reference) / np.exp(0.25)
print(f"features returned by Favor(n_dims={r}): {odd(x).shape[-1]}")
print(
    f"E[K̂]/K with n_dims = {r}: {estimates.mean():.3f} ± "
    f"{2 * estimates.std() / np.sqrt(n):.3f} ((r − 1)/r = {(r - 1) / r})"
)
print(f"same ω, n_dims = {r - 1}:  {reference.mean():.3f} ± {2 * reference.std() / np.sqrt(n):.3f}")
