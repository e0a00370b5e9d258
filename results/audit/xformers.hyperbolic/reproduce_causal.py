"""xformers 0.0.20, FavorAttention(causal=True): _causal_attention forms per-token products and then
takes cumsum over dim 2 of (batch, length, embedding) tensors, the EMBEDDING axis, not the sequence.
Output i is then the running mean of token i's own value coordinates, whatever the queries and keys.

Run: python results/audit/xformers.hyperbolic/reproduce_causal.py (xformers 0.0.20, --no-deps).
Second computation: causal FAVOR with the layer's own features, Σ_{j≤i} φ(q_i)ᵀφ(k_j) v_j /
Σ_{j≤i} φ(q_i)ᵀφ(k_j), computed directly.
"""

import torch
from xformers.components.attention.favor import FavorAttention
from xformers.components.attention.feature_maps import FeatureMapType

torch.manual_seed(0)
layer = FavorAttention(causal=True, dim_features=64, feature_map_type=FeatureMapType.SMHyp).eval()
q, k, v = (torch.randn(1, 16, 8, dtype=torch.float64) for _ in range(3))
with torch.no_grad():
    out = layer(q, k, v)
    phi_k, phi_q = layer.feature_map(k), layer.feature_map(q)
    weights = torch.tril(phi_q @ phi_k.transpose(-1, -2))
    causal_favor = (weights @ v) / weights.sum(-1, keepdim=True)
running_mean = v.cumsum(-1) / torch.arange(1, 9, dtype=torch.float64)
print(f"max |o − causal FAVOR with the same features| = {float((out - causal_favor).abs().max()):.3e}")
print(f"max |o − running mean of v_i's coordinates|   = {float((out - running_mean).abs().max()):.3e}")
