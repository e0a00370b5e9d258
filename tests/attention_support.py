"""What the attention tests share: small inputs and projections, the unshifted features of theory.md
§2, the quadratic form they define, the relative error and key masks on any backend."""

from __future__ import annotations

import numpy as np

from estimators import features, projections

from .conftest import to_numpy

B, H, L, D, DV, M_FEATURES = 2, 2, 11, 4, 3, 6


def inputs(seed=0, scale=0.5, length=L):
    rng = np.random.default_rng(seed)
    q, k = (scale * rng.standard_normal((B, H, length, D)) for _ in range(2))
    v = rng.standard_normal((B, H, length, DV))
    return q, k, v


def projection(per_head=False, m=M_FEATURES, seed=1):
    return projections.orthogonal(m, D, batch_shape=(H,) if per_head else (), seed=seed)


def unshifted_features(name, x, W):
    """Unshifted features φ(x d^{-1/4}) in float64 numpy."""
    return to_numpy(features.feature_map(name)(x, W, scale_inputs=True))


def quadratic(phi_q, phi_k, v, causal=False, keep=None):
    """D̂⁻¹ Â V with Â = Q'K'ᵀ, tril in causal mode, removed keys zeroed (float64 numpy, O(L²))."""
    scores = phi_q @ np.swapaxes(phi_k, -1, -2)
    if causal:
        scores = np.tril(scores)
    if keep is not None:
        scores = scores * keep[..., None, :]
    return scores @ v / scores.sum(-1, keepdims=True)


def relative_error(actual, expected):
    return np.max(np.abs(to_numpy(actual) - expected)) / np.max(np.abs(expected))


def key_mask(to_backend, keep):
    if keep is None:
        return None
    return to_backend(keep.astype(np.float64)) > 0.5
