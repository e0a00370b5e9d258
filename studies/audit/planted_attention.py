"""Planted defects of the attention computation: a dropped or exact normalizer, causal prefix sums off
by one, stabilizers that leak the future or do not cancel, half the features, masks that only zero
values, float16 without stabilizers, an ε in the normalizer, and a causal leak below round-off.
"""

from __future__ import annotations

import numpy as np

from .planting import (
    Planted,
    control_adapter,
    dense_attention,
    favor_attention,
    positive_features,
    replaced,
    scaled_inputs,
    with_leak,
)

LEAK = 1e-10


def _dropped_normalizer():
    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        phi_q, phi_k = (positive_features(scaled_inputs(a), np.asarray(W)) for a in (q, k))
        gram = phi_q @ np.swapaxes(phi_k, -1, -2)
        return (np.tril(gram) if causal else gram) @ np.asarray(v)

    return replaced("positive-iid", "dropped-normalizer", attention=attend)


def _off_by_one_prefix():
    control = control_adapter("positive-iid")

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        if not causal:
            return control.attention(q, k, v, W, causal=False, mask=mask, dtype=dtype)
        phi_q, phi_k = (positive_features(scaled_inputs(a), np.asarray(W)) for a in (q, k))
        return dense_attention(phi_q, phi_k, np.asarray(v), True, offset=1)

    return replaced("positive-iid", "off-by-one-prefix", attention=attend)


def _future_stabilizer():
    return replaced(
        "positive-iid",
        "future-stabilizer",
        attention=favor_attention("positive-iid", stabilizer="global", eps=1e-3),
        features=None,
    )


def _per_key_stabilizer():
    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        phi_q, phi_k = (positive_features(scaled_inputs(a), np.asarray(W)) for a in (q, k))
        return dense_attention(phi_q, phi_k / phi_k.max(axis=-1, keepdims=True), np.asarray(v), causal)

    def features(x, W, role):
        phi = positive_features(scaled_inputs(x), np.asarray(W))
        return phi / phi.max(axis=-1, keepdims=True) if role == "key" else phi

    return replaced("positive-iid", "per-key-stabilizer", features=features, attention=attend)


def _half_the_features():
    control = control_adapter("positive-iid")

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        W = np.asarray(W)
        return control.attention(q, k, v, W[: W.shape[0] // 2], causal=causal, mask=mask, dtype=dtype)

    def features(x, W, role):
        W = np.asarray(W)
        return control.features(x, W[: W.shape[0] // 2], role)

    return replaced("positive-iid", "half-the-features", attention=attend, features=features)


def _exact_denominator():
    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        x, y = scaled_inputs(q), scaled_inputs(k)
        phi_q, phi_k = (positive_features(a, np.asarray(W)) for a in (x, y))
        gram, exact = phi_q @ np.swapaxes(phi_k, -1, -2), np.exp(x @ np.swapaxes(y, -1, -2))
        if causal:
            gram, exact = np.tril(gram), np.tril(exact)
        return (gram @ np.asarray(v)) / exact.sum(axis=-1, keepdims=True)

    return replaced("positive-iid", "exact-denominator", attention=attend)


def _mask_zeroes_values():
    control = control_adapter("positive-ort")

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        if mask is not None:
            v = np.asarray(v) * np.asarray(mask, dtype=np.float64)[:, None, :, None]
        return control.attention(q, k, v, W, causal=causal, dtype=dtype)

    return replaced("positive-ort", "mask-zeroes-values", attention=attend)


def _unshifted_half():
    control = control_adapter("positive-ort")

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        if dtype == "float64":
            return control.attention(q, k, v, W, causal=causal, mask=mask)
        q, k, v, W = (np.asarray(a).astype(dtype) for a in (q, k, v, W))
        with np.errstate(over="ignore", invalid="ignore"):
            phi_q, phi_k = (positive_features(scaled_inputs(a), W) for a in (q, k))
            return dense_attention(phi_q, phi_k, v, causal).astype(np.float64)

    return replaced("positive-ort", "unshifted-half", attention=attend, dtypes=("float16",))


def _causal_eps():
    return replaced(
        "positive-iid", "causal-eps", attention=favor_attention("positive-iid", eps=1e-3), features=None
    )


def _tiny_leak():
    return with_leak("positive-iid", "tiny-causal-leak", LEAK, control_adapter("positive-iid").attention)


PLANTED = (
    Planted(
        "dropped-normalizer",
        "FAVOR returning Q'((K')ᵀV) without D̂⁻¹ (Performers Eq. 4)",
        ("dense-reference", "attention-delta"),
        _dropped_normalizer,
    ),
    Planted(
        "off-by-one-prefix",
        "causal prefix sums one position too far (query i uses keys j ≤ i + 1)",
        ("causal-future", "dense-reference"),
        _off_by_one_prefix,
    ),
    Planted(
        "future-stabilizer",
        "causal FAVOR with one key maximum over the sequence and ε = 1e-3: leaks the future",
        ("causal-future", "dense-reference"),
        _future_stabilizer,
    ),
    Planted(
        "per-key-stabilizer",
        "each key divided by its own largest feature: a shift that does not cancel",
        ("dense-reference",),
        _per_key_stabilizer,
    ),
    Planted(
        "half-the-features",
        "attention using the first half of W's rows: consistent, with twice the error",
        ("attention-convergence",),
        _half_the_features,
    ),
    Planted(
        "exact-denominator",
        "FAVOR numerator over the exact softmax row sum: lacks the O(1/m) ratio bias",
        ("attention-delta",),
        _exact_denominator,
    ),
    Planted(
        "mask-zeroes-values",
        "masked values zeroed, masked keys kept in the denominator",
        ("mask-semantics",),
        _mask_zeroes_values,
    ),
    Planted(
        "unshifted-half",
        "float16 FAVOR without stabilizers: exp overflows at large logits",
        ("dtype-overflow",),
        _unshifted_half,
    ),
    Planted(
        "causal-eps",
        "favor-bench FAVOR with ε = 1e-3: biased by ε, yet its running key maximum keeps causal "
        "outputs blind to the future (claim 18: it passes causal-future)",
        ("dense-reference",),
        _causal_eps,
    ),
    Planted(
        "tiny-causal-leak",
        f"float64 causal FAVOR plus {LEAK:g} × the mean of all values: a leak far below float32 round-off",
        ("causal-future",),
        _tiny_leak,
    ),
)
"""The attention defects, in their order in :data:`studies.audit.planted.PLANTED`."""
