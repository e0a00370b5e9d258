"""google-research performer/fast_attention/jax/fast_attention.py: with redraw_features=True (the
default) each call seeds its projection with int32(ceil(sum(query)·1e7)). Once |sum(query)| exceeds
2^31/1e7 ≈ 214.7 the conversion saturates, so almost every batch of a realistic size gets one of two
fixed matrices: the "redraw" stops redrawing.

Run: python results/audit/google-research/reproduce_redraw_seed.py /path/to/fast_attention.py
(needs jax, gin-config, absl-py). Second computation: the seeds computed directly.
"""

import importlib.util
import sys

import jax
import jax.numpy as jnp
import numpy as np

spec = importlib.util.spec_from_file_location("fast_attention", sys.argv[1])
fast_attention = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fast_attention)

attention = fast_attention.make_fast_softmax_attention(qkv_dim=64, nb_features=128)
rng = np.random.default_rng(0)
batches = [rng.standard_normal((4, 256, 4, 64)).astype(np.float32) for _ in range(20)]
drawn = []
for query in batches:
    attention(query, query, query)
    drawn.append(np.asarray(attention.__self__.projection_matrix).tobytes())
seeds = [int(jax.lax.convert_element_type(jnp.ceil(jnp.sum(q) * 1e7), jnp.int32)) for q in batches]
distinct_matrices = len(set(drawn))
saturated = sum(abs(s) >= 2**31 - 1 for s in seeds)
print(f"20 batches (4 × 256 tokens × 4 heads × 64): {distinct_matrices} distinct projection matrices")
print(f"seeds at int32 saturation (±2^31): {saturated} of 20; distinct seeds: {len(set(seeds))}")
