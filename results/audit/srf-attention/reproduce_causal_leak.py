"""srf-attention 1.0.16: causal outputs depend on later keys. The key features are shifted by one
max over the WHOLE sequence (and all features) and then get ε = 1e-4 added, so a large later key
changes the weight ε carries in every earlier prefix sum.

Run: python results/audit/srf-attention/reproduce_causal_leak.py (needs srf-attention==1.0.16).
Second computation: the same features with eps = 0 (the library's softmax_kernel_bhld and
low_mem_attn called directly): the leak vanishes to float32 round-off.
"""

import torch
from srf_attention import Attention, low_mem_attn, softmax_kernel_bhld

torch.manual_seed(0)
layer = Attention(16, causal=True)
q, k, v = (torch.randn(1, 1, 32, 16) for _ in range(3))
k_future = k.clone()
k_future[..., 20:, :] *= 3  # change only keys after position 19


def library(keys):
    return layer(q, keys, v, mode="train", attn_fn="torch")


def without_eps(keys):
    W = layer.projection_matrix
    phi_q = softmax_kernel_bhld(q, W, is_query=True, eps=0.0)
    phi_k, _ = softmax_kernel_bhld(keys, W, is_query=False, eps=0.0)
    return low_mem_attn(phi_q, phi_k, v, None, True, None)


leak = float((library(k) - library(k_future))[..., :20, :].abs().max())
leak_eps0 = float((without_eps(k) - without_eps(k_future))[..., :20, :].abs().max())
print(f"max |Δo_i| over i < 20 when keys after 19 change: {leak:.3e} (library, ε = 1e-4)")
print(f"same features with ε = 0:                         {leak_eps0:.3e}")
