"""tf-models-official 2.20.0, feature_transform="expplus" (FAVOR++): its projections come from
create_projection_matrix, whose blocks take Q from tf.linalg.qr without the sign(diag R) correction
(every block's first row starts with a negative coordinate). FAVOR++ features exp(B·wᵀx − ‖x‖²/2 +
A‖w‖²) are not even in w, so K̂ is biased.

Run: python results/audit/tf-models-official.expplus/reproduce_qr_sign.py
Second computation: the library's own rows with independent random signs (Haar blocks) through the
same transform are unbiased.
"""

import numpy as np
import tensorflow as tf
from official.nlp.modeling.layers import kernel_attention

d, n = 4, 4000
W = np.stack(
    [kernel_attention.create_projection_matrix(d, d, seed=tf.constant([s, s + 1])).numpy() for s in range(n)]
)
x = np.zeros((1, 1, 1, d), dtype=np.float32)
x[..., 0] = 0.5 * d**0.25  # expplus scales its inputs by d^{-1/4}: K̂ estimates exp(‖e₁/2‖²)
expplus = kernel_attention._TRANSFORM_MAP["expplus"]
options = {"numerical_stabilizer": 0.0, "numerical_renormalizer": False}


def kernel(w):
    """K̂(x, x) through the layer's expplus transform (x is its own other_data, as in self-attention)."""
    data = tf.constant(x)
    phi = expplus(data, data, True, tf.constant(w), **options).numpy().astype(np.float64)
    return float((phi**2).sum())


estimates = np.array([kernel(w) for w in W]) / np.exp(0.25)
signs = np.random.default_rng(1).choice([-1.0, 1.0], size=(n, d, 1)).astype(np.float32)
fixed = np.array([kernel(w) for w in W * signs]) / np.exp(0.25)
print(f"P(W[0, 0] < 0) = {np.mean(W[:, 0, 0] < 0):.3f} (Haar: 0.5)")
print(f"E[K̂]/K at x = y = e₁/2, d = m = {d}: {estimates.mean():.3f} ± {2 * estimates.std() / np.sqrt(n):.3f}")
print(f"same rows, random signs:             {fixed.mean():.3f} ± {2 * fixed.std() / np.sqrt(n):.3f}")
