"""Planted defects of the feature map: a missing −‖x‖²/2, a wrong scale, a dropped sin half, keys
projected with another W than the queries, and the hybrid's angular weight on the wrong estimator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .planting import Planted, control_adapter, dense_attention, positive_features, replaced, scaled_inputs


def _kernel_from(features_of: Callable) -> Callable:
    """kernel_estimate(x, y, W (n, m, d)) = Σ_r φ(x)φ(y) with ``features_of(x (d,), W (n, m, d))``."""

    def estimate(x, y, W):
        return np.sum(
            features_of(np.asarray(x), np.asarray(W)) * features_of(np.asarray(y), np.asarray(W)), axis=-1
        )

    return estimate


def _missing_half_norm():
    def features_of(x, W):
        return np.exp(W @ x) / np.sqrt(W.shape[-2])

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        phi_q, phi_k = (np.exp(scaled_inputs(a) @ np.asarray(W).T) for a in (q, k))
        return dense_attention(phi_q, phi_k, np.asarray(v), causal)

    def features(x, W, role):
        return np.exp(scaled_inputs(x) @ np.asarray(W).T)

    return replaced(
        "positive-iid",
        "missing-half-norm",
        kernel_estimate=_kernel_from(features_of),
        features=features,
        attention=attend,
    )


def _scale_off():
    control = control_adapter("positive-ort")

    def scaled(x, y, W):
        return 1.03**2 * control.kernel_estimate(x, y, W)

    return replaced("positive-ort", "scale-3pct", kernel_estimate=scaled)


def _cos_without_sin():
    def features_of(x, W):
        return np.exp(np.sum(x * x) / 2) * np.cos(W @ x) / np.sqrt(W.shape[-2])

    return replaced("trig-iid", "cos-without-sin", kernel_estimate=_kernel_from(features_of))


def _different_w():
    control = control_adapter("positive-iid")

    def features(x, W, role):
        return control.features(x, W[::-1] if role == "key" else W, role)

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        W = np.asarray(W)
        return dense_attention(
            positive_features(scaled_inputs(q), W),
            positive_features(scaled_inputs(k), W[::-1]),
            np.asarray(v),
            causal,
        )

    return replaced("positive-iid", "different-w-qk", features=features, attention=attend)


def _hybrid_flipped_weight():
    """hybrid-iid's claim with the notebook's orientation: trig weight θ̂/π instead of 1 − θ̂/π."""
    flipped = control_adapter("hybrid-notebook-iid")
    return replaced("hybrid-iid", "hybrid-flipped-weight", kernel_estimate=flipped.kernel_estimate)


PLANTED = (
    Planted(
        "missing-half-norm",
        "positive features without their −‖x‖²/2 term (Performers Lemma 1)",
        ("zero-variance", "unbiased-kernel", "dense-reference"),
        _missing_half_norm,
    ),
    Planted(
        "scale-3pct",
        "features off by 3% (a wrong m in m^{-1/2}): K̂ 6.1% high; cancels in attention",
        ("unbiased-kernel", "zero-variance"),
        _scale_off,
    ),
    Planted(
        "cos-without-sin",
        "trigonometric features with the sin half dropped",
        ("unbiased-kernel", "zero-variance"),
        _cos_without_sin,
    ),
    Planted(
        "different-w-qk",
        "keys projected with the rows of W reversed: another projection than the queries'",
        ("same-projection", "dense-reference", "attention-delta"),
        _different_w,
    ),
    Planted(
        "hybrid-flipped-weight",
        "HRF with the angular weight on the wrong estimator (trig weight θ̂/π, not 1 − θ̂/π): still "
        "unbiased, but no longer exact at x = y and its MSE 358× the claimed one at θ = 0 (d = 4, "
        "theory.md §10.5)",
        ("unbiased-kernel", "mse-closed-form"),
        _hybrid_flipped_weight,
    ),
)
"""The feature-map defects, in their order in :data:`studies.audit.planted.PLANTED`."""
