"""pytorch-fast-transformers 0.4.0: LinearAttention and CausalLinearAttention add eps = 1e-6 to the
denominator φ(q_i)ᵀΣ_j φ(k_j). Favor's features are not shifted, so that sum is exp(q_iᵀk_j/√d)
summed over the keys seen: causally, the first positions see one or two keys, and where those give
a small kernel value 1e-6 is not small next to it. Output i then shrinks towards 0.

Run: python results/audit/pytorch-fast-transformers/reproduce_denominator_eps.py (needs the
compiled package: pip install --no-build-isolation pytorch-fast-transformers==0.4.0).
Second computation: causal FAVOR from the layer's own features, Σ_{j≤i} φ(q_i)ᵀφ(k_j) v_j /
Σ_{j≤i} φ(q_i)ᵀφ(k_j), and the layer itself with eps = 0.
"""

import torch
from fast_transformers.attention.causal_linear_attention import CausalLinearAttention
from fast_transformers.feature_maps import Favor
from fast_transformers.masking import LengthMask, TriangularCausalMask

torch.manual_seed(0)
d, length = 8, 16
layer = CausalLinearAttention(d, feature_map=Favor.factory(n_dims=32))
q, k, v = (torch.randn(1, length, 1, d) for _ in range(3))
k[:, 0] *= 4  # one large first key: exp(q_iᵀk_0/√d) is tiny for the queries that point away from it
masks = (TriangularCausalMask(length), LengthMask(torch.tensor([length])), LengthMask(torch.tensor([length])))
with torch.no_grad():
    layer.feature_map.new_feature_map("cpu")
    layer.feature_map.deterministic_eval = True
    layer.eval()
    out = layer(q, k, v, *masks)
    phi_q, phi_k = layer.feature_map(q)[0, :, 0], layer.feature_map(k)[0, :, 0]
    weights = torch.tril(phi_q @ phi_k.T)
    dense = (weights @ v[0, :, 0]) / weights.sum(-1, keepdim=True)
    layer.eps = 0.0
    out_eps0 = layer(q, k, v, *masks)
print(
    f"max |o − causal FAVOR from its own features| = "
    f"{float((out[0, :, 0] - dense).abs().max()):.3e} (eps = 1e-6)"
)
print(f"the same with eps = 0:                        {float((out_eps0[0, :, 0] - dense).abs().max()):.3e}")
