"""Planted reduced-precision implementations: a correct FAVOR+ computing in float32 (float16 on
request) and a causal leak below its round-off, which must pass, and one that declares float32
accumulation but computes its exponents in float16.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .planting import Planted, control_adapter, scaled_inputs, with_leak

LEAK_BELOW_FLOAT32 = 1e-9


def low_precision_attention(q, k, v, W, causal=False, mask=None, dtype="float64", *, features_in=np.float32):
    """FAVOR+ computed in float32; with ``dtype="float16"`` on float16 inputs and outputs with float32
    accumulation (mixed precision, as half-precision kernels do). Host numpy. ``features_in=np.float16``
    computes the feature exponents and exponentials of a float16 call in float16 instead (the sums stay
    float32): a narrower arithmetic than float32 accumulation.

    Positive features exp(Wx − ‖x‖²/2 − shift)/√m of x = q d^{-1/4} (Performers Lemma 1), the query
    shift its row maximum, the key shift one maximum over the sequence bidirectionally (it cancels in
    D̂⁻¹N̂) and none causally (a maximum over the sequence would read later keys); causal prefix sums
    by a cumulative sum. Keys with ``mask`` False are dropped from both sums.
    """
    storage = np.float16 if dtype == "float16" else np.float32
    features = features_in if dtype == "float16" else np.float32
    q, k, v, W = (np.asarray(a).astype(storage).astype(np.float32) for a in (q, k, v, W))
    scale = np.float32(q.shape[-1] ** -0.25)
    x, y, Wf = (q * scale).astype(features), (k * scale).astype(features), W.astype(features)
    log_q = x @ Wf.T - np.sum(x * x, axis=-1, keepdims=True) / features(2)
    log_k = y @ Wf.T - np.sum(y * y, axis=-1, keepdims=True) / features(2)
    log_q = log_q - log_q.max(axis=-1, keepdims=True)
    if not causal:
        log_k = log_k - log_k.max(axis=(-2, -1), keepdims=True)
    phi_q, phi_k = np.exp(log_q).astype(np.float32), np.exp(log_k).astype(np.float32)
    if mask is not None:
        phi_k = phi_k * np.asarray(mask, dtype=np.float32)[:, None, :, None]
    if causal:
        states = np.cumsum(phi_k[..., :, :, None] * v[..., :, None, :], axis=-3)
        numerator = np.einsum("...lr,...lrc->...lc", phi_q, states)
        denominator = np.einsum("...lr,...lr->...l", phi_q, np.cumsum(phi_k, axis=-2))
    else:
        numerator = phi_q @ (np.swapaxes(phi_k, -1, -2) @ v)
        denominator = (phi_q @ phi_k.sum(axis=-2)[..., None])[..., 0]
    return (numerator / denominator[..., None]).astype(storage).astype(np.float64)


def _low_precision():
    """A correct FAVOR+ that computes in float32 (and float16 when asked): precision detected."""
    control = control_adapter("positive-ort")

    def sample(m, d, seed):
        return control.sample_projection(m, d, seed).astype(np.float32).astype(np.float64)

    def sample_many(m, d, count, seed):
        return control.sample_projections(m, d, count, seed).astype(np.float32).astype(np.float64)

    def kernel_estimate(x, y, W):
        W = np.asarray(W, dtype=np.float32)
        phi_x, phi_y = (
            np.exp(W @ np.asarray(a, dtype=np.float32) - np.float32(np.sum(np.square(a)) / 2))
            / np.float32(np.sqrt(W.shape[-2]))
            for a in (x, y)
        )
        return np.sum(phi_x * phi_y, axis=-1).astype(np.float64)

    def features(x, W, role):
        x = scaled_inputs(np.asarray(x, dtype=np.float32))
        W = np.asarray(W, dtype=np.float32)
        log_phi = x @ W.T - np.sum(x * x, axis=-1, keepdims=True) / np.float32(2)
        return np.exp(log_phi - log_phi.max(axis=-1, keepdims=True)).astype(np.float64)

    return dataclasses.replace(
        control,
        name="planted:float32-float16",
        sample_projection=sample,
        sample_projections=sample_many,
        head_projections=sample_many,
        redraw_projections=sample_many,
        kernel_estimate=kernel_estimate,
        features=features,
        attention=low_precision_attention,
        dtypes=("float16",),
        precision=None,
        accumulation="float32",
        notes=("a correct FAVOR+ computing in float32 (float16 on request); its precision is detected",),
    )


def _half_exponents():
    """Declares float32 accumulation, but computes a float16 call's feature exponents and
    exponentials in float16: relative errors of order (d + 2)·a·2⁻¹¹ instead of 2⁻²⁴."""
    correct = _low_precision()

    def attention(q, k, v, W, causal=False, mask=None, dtype="float64"):
        return low_precision_attention(q, k, v, W, causal, mask, dtype, features_in=np.float16)

    return dataclasses.replace(correct, name="planted:half-exponents", attention=attention)


def _leak_below_float32():
    return with_leak(
        "positive-ort",
        "leak-below-float32",
        LEAK_BELOW_FLOAT32,
        low_precision_attention,
        precision="float32",
        dtypes=(),
    )


PLANTED = (
    Planted(
        "leak-below-float32",
        f"float32 causal FAVOR plus {LEAK_BELOW_FLOAT32:g} × the mean of all values: "
        "below its round-off, "
        "so no check can see it (it passes)",
        (),
        _leak_below_float32,
    ),
    Planted(
        "half-exponents",
        "declares float32 accumulation but computes a float16 call's feature exponents and "
        "exponentials in float16",
        ("dtype-overflow",),
        _half_exponents,
    ),
    Planted(
        "float32-float16",
        "a correct FAVOR+ computing in float32 (float16 inputs and outputs on request): "
        "it passes every check",
        (),
        _low_precision,
    ),
)
"""The reduced-precision adapters, in their order in :data:`studies.audit.planted.PLANTED`."""
