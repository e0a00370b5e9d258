"""tf-models-official 2.20.0: create_projection_matrix(m, d) without a seed (the path the layer
takes on every training step with redraw=True) draws new orthogonal directions but takes the row
norms from tf.random.stateless_normal with the fixed dummy seed [0, 1] (``if stateful is None`` is
never true), so every redraw has the same row norms.

Run: python results/audit/tf-models-official/reproduce_redraw_norms.py
Second computation: the norms equal those of stateless_normal((m, d), seed=[0, 1]) computed directly.
"""

import numpy as np
import tensorflow as tf
from official.nlp.modeling.layers import kernel_attention

m, d = 16, 8
tf.random.set_seed(0)
draws = np.stack([kernel_attention.create_projection_matrix(m, d).numpy() for _ in range(5)])
norms = np.linalg.norm(draws, axis=-1)
directions_differ = not np.allclose(draws[0], draws[1])
dummy = np.linalg.norm(tf.random.stateless_normal((m, d), seed=[0, 1]).numpy(), axis=-1)
print(
    f"5 redraws: directions differ: {directions_differ}; largest spread of a row's norm across "
    f"redraws: {np.ptp(norms, axis=0).max():.1e}"
)
print(f"largest |norm − norm of stateless_normal(seed=[0, 1])|: {np.abs(norms - dummy).max():.1e}")
