"""torch-geometric 2.8.1: generalized_kernel adds epsilon = 0.001 to every ReLU feature, so
PerformerAttention's weights are (ReLU(Wq) + ε)ᵀ(ReLU(Wk) + ε), not the arc-cosine kernel estimate
ReLU(Wq)ᵀReLU(Wk): every key gets an extra weight m·ε² + ε·ΣReLU, pulling outputs towards the plain
mean of the values; most for queries whose ReLU features are small.

Run: python results/audit/torch-geometric/reproduce_feature_eps.py (needs torch-geometric==2.8.1).
Second computation: dense ReLU-feature attention from the same W with ε = 0 and with ε = 0.001.
"""

import torch
from torch_geometric.nn.attention.performer import PerformerProjection

torch.manual_seed(0)
projection = PerformerProjection(num_cols=8).double()
W = projection.projection_matrix
q, k, v = (torch.randn(1, 1, 16, 8, dtype=torch.float64) for _ in range(3))


def dense(eps):
    phi_q, phi_k = torch.relu(q @ W.T) + eps, torch.relu(k @ W.T) + eps
    weights = phi_q @ phi_k.transpose(-1, -2)
    return (weights @ v) / weights.sum(-1, keepdim=True)


with torch.no_grad():
    out = projection(q, k, v)
print(f"max |o − dense ReLU attention, ε = 0|     = {float((out - dense(0.0)).abs().max()):.3e}")
print(f"max |o − dense ReLU attention, ε = 0.001| = {float((out - dense(1e-3)).abs().max()):.3e}")
