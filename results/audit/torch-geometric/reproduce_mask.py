"""torch-geometric 2.8.1: PerformerAttention's mask zeroes the masked nodes' values but keeps their
keys, so masked nodes still take attention weight (they stay in the normalizer).

Run: python results/audit/torch-geometric/reproduce_mask.py (needs torch-geometric==2.8.1).
Second computation: the same layer on the graph with the masked nodes deleted gives the output a
mask should give; the masked output instead equals a hand computation that keeps the masked keys
in the denominator with zero values.
"""

import torch
from torch_geometric.nn.attention import PerformerAttention
from torch_geometric.nn.attention.performer import generalized_kernel

torch.manual_seed(0)
layer = PerformerAttention(channels=16, heads=2, head_channels=8).double().eval()
x = torch.randn(1, 12, 16, dtype=torch.float64)
mask = torch.ones(1, 12, dtype=torch.bool)
mask[0, [3, 7, 9]] = False
kept = mask[0]
with torch.no_grad():
    masked = layer(x, mask)[0, kept]
    deleted = layer(x[:, kept])[0]
    q, k, v = (f(x).reshape(1, 12, 2, 8).transpose(1, 2) for f in (layer.q, layer.k, layer.v))
    phi_q, phi_k = (generalized_kernel(t, layer.fast_attn.projection_matrix) for t in (q, k))
    weights = phi_q @ phi_k.transpose(-1, -2)
    by_hand = (weights @ (v * mask[:, None, :, None])) / weights.sum(-1, keepdim=True)
    by_hand = layer.attn_out(by_hand.transpose(1, 2).reshape(1, 12, 16))[0, kept]
print(f"max |masked − masked nodes deleted| = {float((masked - deleted).abs().max()):.3e}")
print(f"max |masked − keys kept, values zeroed (by hand)| = {float((masked - by_hand).abs().max()):.3e}")
