"""tf-models-official 2.20.0, KernelAttention(feature_transform="expplus") (FAVOR++): queries and keys
are scaled by (1/√d)^{1/2} in _compute_attention and then AGAIN by d^{-1/4} inside expplus
(normalize_data=True), so the layer estimates softmax(qᵀk/d) instead of softmax(qᵀk/√d).

Run: python results/audit/tf-models-official/reproduce_expplus_scaling.py (tensorflow-cpu 2.20,
tf-models-official 2.20 without its dependencies, gin-config).
Second computation: exact attention at both temperatures; with many features the layer's output
converges to the 1/d one. The "exp" (FAVOR+) transform, which does not normalize again, converges
to the 1/√d one.
"""

import numpy as np
import tensorflow as tf
from official.nlp.modeling.layers import kernel_attention

d, length, m = 16, 32, 8192
rng = np.random.default_rng(0)
q, k, v = (tf.constant(rng.standard_normal((1, length, 1, d)), tf.float32) for _ in range(3))


def exact(temperature):
    logits = np.einsum("bthd,bshd->bts", q.numpy(), k.numpy()) / temperature
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    return np.einsum("bts,bshd->bthd", weights / weights.sum(-1, keepdims=True), v.numpy())


for transform in ("expplus", "exp"):
    layer = kernel_attention.KernelAttention(
        feature_transform=transform, num_random_features=m, num_heads=1, key_dim=d
    )
    out = layer._compute_attention(q, k, v, transform, False).numpy()
    for label, temperature in (("softmax(qᵀk/√d)", np.sqrt(d)), ("softmax(qᵀk/d)", d)):
        error = np.abs(out - exact(temperature)).max()
        print(f"{transform:8s} m = {m}: max |o − {label}| = {error:.3f}")
