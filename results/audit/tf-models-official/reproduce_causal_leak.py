"""tf-models-official 2.20.0, KernelAttention(feature_transform="exp", use_causal_windowed=True): causal
outputs depend on later keys. The exp transform subtracts one max over the WHOLE sequence (and heads
and features) and the denominator adds 1e-6, so a large later key changes how much 1e-6 weighs in
every earlier output. (chunk length 1 and a window covering the sequence make the windowed path
exact causal attention.)

Run: python results/audit/tf-models-official/reproduce_causal_leak.py
Second computation: the same layer with _NUMERIC_STABLER = 0 has no leak beyond float32 round-off.
"""

import numpy as np
import tensorflow as tf
from official.nlp.modeling.layers import kernel_attention

d, length = 16, 32
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((1, length, 1, d)).astype(np.float32) for _ in range(3))
k_future = k.copy()
k_future[:, 20:] *= 3  # change only keys after position 19
layer = kernel_attention.KernelAttention(
    feature_transform="exp",
    num_random_features=64,
    num_heads=1,
    key_dim=d,
    use_causal_windowed=True,
    causal_chunk_length=1,
    causal_window_length=length,
)


def leak():
    before, after = (
        layer._compute_attention(*map(tf.constant, (q, keys, v)), "exp", False).numpy()
        for keys in (k, k_future)
    )
    return float(np.abs(before - after)[:, :20].max())


default = leak()
kernel_attention._NUMERIC_STABLER = 0.0
without = leak()
print(f"max |Δo_i| over i < 20 when keys after 19 change: {default:.3e} (default _NUMERIC_STABLER = 1e-6)")
print(f"the same with _NUMERIC_STABLER = 0:                {without:.3e}")
