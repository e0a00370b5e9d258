"""performer-pytorch 1.1.4: Attention.forward applies a padding mask by zeroing the masked tokens'
values; their keys stay, so masked tokens still take attention weight (they stay in the normalizer).

Run: python results/audit/performer-pytorch/reproduce_mask.py (needs performer-pytorch==1.1.4).
Second computation: the same layer on the sequence with the masked tokens deleted gives the output a
mask should give; the masked output instead equals the layer's FastAttention called by hand with the
masked keys kept and their values zeroed.
"""

import torch
from performer_pytorch import SelfAttention

torch.manual_seed(0)
layer = SelfAttention(dim=16, heads=2, dim_head=8, nb_features=32).double().eval()
x = torch.randn(1, 12, 16, dtype=torch.float64)
mask = torch.ones(1, 12, dtype=torch.bool)
mask[0, [3, 7, 9]] = False
kept = mask[0]
with torch.no_grad():
    masked = layer(x, mask=mask)[0, kept]
    deleted = layer(x[:, kept])[0]
    q, k, v = (f(x).reshape(1, 12, 2, 8).transpose(1, 2) for f in (layer.to_q, layer.to_k, layer.to_v))
    by_hand = layer.fast_attention(q, k, v * mask[:, None, :, None])
    by_hand = layer.to_out(by_hand.transpose(1, 2).reshape(1, 12, 16))[0, kept]
print(f"max |masked − masked tokens deleted| = {float((masked - deleted).abs().max()):.3e}")
print(f"max |masked − keys kept, values zeroed (by hand)| = {float((masked - by_hand).abs().max()):.3e}")
