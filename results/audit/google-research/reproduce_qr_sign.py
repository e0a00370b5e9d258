"""google-research fast_attention.py: GaussianOrthogonalRandomMatrix takes Q from jnp.linalg.qr
without the sign(diag R) correction, so its blocks are not Haar (every block's first row starts
with a negative coordinate). Positive features are not even in w, so FAVOR+'s K̂ is biased.

Run: python results/audit/google-research/reproduce_qr_sign.py /path/to/fast_attention.py
Second computation: the library's own rows with independent random signs (Haar blocks) are unbiased.
"""

import importlib.util
import sys

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
spec = importlib.util.spec_from_file_location("fast_attention", sys.argv[1])
fast_attention = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fast_attention)

d, n = 4, 5000
keys = jax.random.split(jax.random.PRNGKey(0), n)
W = np.stack([fast_attention.GaussianOrthogonalRandomMatrix(d, d, key).get_2d_array() for key in keys])
x = np.zeros((1, 1, 1, d))
x[..., 0] = 0.5  # K(x, x) = exp(1/4)


def kernel(w):
    """K̂(x, x) through the library's feature map (eps = 0, its per-row max multiplied back)."""
    phi = fast_attention.nonnegative_softmax_kernel_feature_creator(
        x, w, (2,), (0, 1), None, True, normalize_data=False, eps=0.0
    )
    return float(np.sum(np.asarray(phi) ** 2) * np.exp(2 * np.max(x @ w.T)))


estimates = np.array([kernel(w) for w in W]) / np.exp(0.25)
signs = np.random.default_rng(1).choice([-1.0, 1.0], size=(n, d, 1))
fixed = np.array([kernel(w) for w in W * signs]) / np.exp(0.25)
print(f"P(W[0, 0] < 0) = {np.mean(W[:, 0, 0] < 0):.3f} (Haar: 0.5)")
print(f"E[K̂]/K at x = y = e₁/2, d = m = {d}: {estimates.mean():.3f} ± {2 * estimates.std() / np.sqrt(n):.3f}")
print(f"same rows, random signs:             {fixed.mean():.3f} ± {2 * fixed.std() / np.sqrt(n):.3f}")
