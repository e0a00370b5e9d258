"""srf-attention 1.0.16: with redraw_on_call_(True), Attention.forward calls self.redraw_(device=...),
but redraw_() takes no argument, so every forward raises TypeError: redraws on call never happen.

Run: python results/audit/srf-attention/reproduce_redraw_on_call.py (needs srf-attention==1.0.16).
Second computation: redraw_() called by hand does draw a new projection.
"""

import torch
from srf_attention import Attention

torch.manual_seed(0)
layer = Attention(8, causal=False)
q, k, v = (torch.randn(1, 2, 16, 8) for _ in range(3))
layer.redraw_on_call_(True)
try:
    layer(q, k, v, mode="train", attn_fn="torch")
    error = ""
except TypeError as raised:
    error = str(raised)
before = layer.projection_matrix.clone()
layer.redraw_()
redraw_changes_w = bool((layer.projection_matrix != before).any())
print(f"forward with redraw_on_call: TypeError: {error}")
print(f"redraw_() by hand draws a new W: {redraw_changes_w}")
