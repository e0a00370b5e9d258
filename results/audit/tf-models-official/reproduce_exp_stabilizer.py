"""tf-models-official 2.20.0, KernelAttention(feature_transform="exp") (FAVOR+): features are
exp(Wx − max) with ONE max over the whole sequence, all heads and all features, for queries as for
keys, and the denominator gets + 1e-6 (_NUMERIC_STABLER). Each shift alone cancels in the ratio, but
together they make φ(q)ᵀΣφ(k) tiny next to 1e-6 (it carries e^{−2·max}), so outputs are pulled
towards 0; the more features, the larger the max and the worse it gets.

Run: python results/audit/tf-models-official/reproduce_exp_stabilizer.py
Second computation: FAVOR+ with the layer's own W in float64 numpy, no shift and no ε; the layer
with _NUMERIC_STABLER set to 0 agrees with it to float32 round-off.
"""

import numpy as np
import tensorflow as tf
from official.nlp.modeling.layers import kernel_attention

d, length = 16, 32
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((1, length, 1, d)) for _ in range(3))


def favor_plus(W):
    """Unshifted FAVOR+ (Performers Eq. 4 and Lemma 1) in float64 with inputs scaled by d^{-1/4}."""
    x, y = q[0, :, 0] * d**-0.25, k[0, :, 0] * d**-0.25
    phi_q = np.exp(x @ W.T - (x**2).sum(-1, keepdims=True) / 2)
    phi_k = np.exp(y @ W.T - (y**2).sum(-1, keepdims=True) / 2)
    weights = phi_q @ phi_k.T
    return (weights @ v[0, :, 0]) / weights.sum(-1, keepdims=True)


for m in (256, 8192):
    layer = kernel_attention.KernelAttention(
        feature_transform="exp", num_random_features=m, num_heads=1, key_dim=d
    )
    reference = favor_plus(layer._projection_matrix.numpy().astype(np.float64))
    outputs = []
    for stabler in (1e-6, 0.0):
        kernel_attention._NUMERIC_STABLER = stabler
        tensors = (tf.constant(a, tf.float32) for a in (q, k, v))
        outputs.append(layer._compute_attention(*tensors, "exp", False).numpy()[0, :, 0])
    kernel_attention._NUMERIC_STABLER = 1e-6
    default, no_stabler = (np.abs(o - reference).max() for o in outputs)
    print(
        f"m = {m:5d}: max |o − unshifted FAVOR+, same W| = {default:.3f} (default), "
        f"{no_stabler:.1e} (stabler 0)"
    )
