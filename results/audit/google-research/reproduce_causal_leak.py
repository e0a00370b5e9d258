"""google-research fast_attention.py: causal (unidirectional) outputs depend on later keys. Key
features are shifted by one max over the WHOLE sequence and features before ε is added, so a large
later key changes how much ε weighs in every earlier prefix sum.

Run: python results/audit/google-research/reproduce_causal_leak.py /path/to/fast_attention.py
Second computation: the same call with numerical_stabilizer = 0 (the features' ε) has no leak
beyond float64 round-off.
"""

import importlib.util
import sys

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
spec = importlib.util.spec_from_file_location("fast_attention", sys.argv[1])
fast_attention = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fast_attention)

rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((1, 32, 1, 16)) for _ in range(3))  # [batch, length, heads, d]
k_future = k.copy()
k_future[:, 20:] *= 3  # change only keys after position 19


def leak(stabilizer):
    attention = fast_attention.make_fast_softmax_attention(
        16, nb_features=64, redraw_features=False, unidirectional=True, numerical_stabilizer=stabilizer
    )
    before, after = (np.asarray(attention(q, keys, v)) for keys in (k, k_future))
    return float(np.abs(before - after)[:, :20].max())


print(
    f"max |Δo_i| over i < 20 when keys after 19 change: {leak(1e-6):.3e} (default "
    f"numerical_stabilizer = 1e-6)"
)
print(f"the same with numerical_stabilizer = 0:            {leak(0.0):.3e}")
