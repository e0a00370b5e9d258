"""tf-models-official 2.20.0, feature_transform="expplus" (FAVOR++): with an attention_mask the
masked keys are removed from the attention sums, but expplus computes its coefficients A, B, D from
sums of squares and sums over ALL positions of the queries and keys, masked ones included, so the
masked output is not the output on the kept tokens.

Run: python results/audit/tf-models-official.expplus/reproduce_mask.py
Second computation: the layer's own transform on the whole sequence (A from every position), the
masked keys then dropped from both sums by hand, reproduces the masked output; the same layer on the
kept tokens alone (A from the kept positions) is what a mask should give.
"""

import numpy as np
import tensorflow as tf
from official.nlp.modeling.layers import kernel_attention

d, length, m = 8, 16, 64
rng = np.random.default_rng(0)
q, k, v = (tf.constant(rng.standard_normal((1, length, 2, d)), tf.float32) for _ in range(3))
keep = np.ones((1, length), dtype=np.float32)
keep[0, [3, 7, 12]] = 0
kept = keep[0] > 0
layer = kernel_attention.KernelAttention(
    feature_transform="expplus", num_random_features=m, num_heads=2, key_dim=d
)
W = layer._projection_matrix
masked = layer._compute_attention(q, k, v, "expplus", False, attention_mask=tf.constant(keep)).numpy()[
    0, kept
]
deleted = layer._compute_attention(
    *(tf.boolean_mask(a, kept, axis=1) for a in (q, k, v)), "expplus", False
).numpy()[0]

scale = d**-0.25  # _compute_attention's (1/√d)^{1/2} on queries and keys
expplus = kernel_attention._TRANSFORM_MAP["expplus"]
phi_k = expplus(k * scale, q * scale, False, W).numpy()[0][kept]  # A from every position
phi_q = expplus(q * scale, k * scale, True, W).numpy()[0][kept]
numerator = np.einsum("tnh,snh,snd->tnd", phi_q, phi_k, v.numpy()[0][kept])
denominator = np.einsum("tnh,snh->tn", phi_q, phi_k)[..., None] + 1e-6
by_hand = numerator / denominator
print(f"max |masked − kept tokens alone| = {np.abs(masked - deleted).max():.3e}")
print(
    "max |masked − A from all positions, masked keys dropped (by hand)| = "
    f"{np.abs(masked - by_hand).max():.3e}"
)
