"""Attention semantics, checked exactly: one feature map for queries and keys, causal outputs blind
to later positions, and padding masks that remove keys from numerator and denominator.

Each compares calls of the library on inputs that must give the same output (or, for the feature
map, features that must agree row by row) within the round-off bound of
:mod:`~studies.audit.checks.attention_calls`.
"""

from __future__ import annotations

import numpy as np

from studies.core import stats

from .attention_calls import (
    attention_features,
    attention_inputs,
    call_attention,
    dense_reference,
    draw_projection,
    no_features,
    roundoff_bound,
)
from .core import Settings, not_applicable, read_only, rng_for, verdict


def check_same_projection(adapter, settings: Settings):
    """Queries and keys use the same W and the same map: φ_query(x) ∝ φ_key(x) row by row.

    Performers Eq. 3-4: K̂ = φ(q)ᵀφ(k) with ONE φ; with independent W for q and k, E[K̂] = 1 for every
    pair instead of exp(qᵀk). The per-row Pearson correlation over features of the library's query
    and key features of the same inputs is 1 when the maps agree up to a per-row stabilizer and an ε
    floor (ε ≤ 1e-3 next to features of order m^{-1/2} moves it by < 1e-3), and ≈ 0 ± m^{-1/2} = 0.18
    with independent W; pass when the smallest correlation is ≥ 0.99 (d = 8, m = 32, L = 16 rows).
    """
    name, title = "same-projection", "Same W and feature map for queries and keys"
    if not adapter.accepts_projection(32, 8):
        return not_applicable(name, title, "the adapter does not build m = 32, d = 8 projections")
    x = rng_for(settings, name).standard_normal((1, 16, 8))
    W = draw_projection(adapter, settings, name, 32, 8)
    (x_read, W_read) = read_only(x, W)
    query, key = (stats.host(adapter.features(x_read, W_read, role))[0] for role in ("query", "key"))
    correlation = min(float(np.corrcoef(a, b)[0, 1]) for a, b in zip(query, key, strict=True))
    return verdict(
        name,
        title,
        correlation >= 0.99,
        1 - correlation,
        statistic=f"min row correlation φ_q vs φ_k = {correlation:.6f}",
        effect=f"{1 - correlation:.2e} below 1",
        tolerance="≥ 0.99: an ε floor moves it by < 1e-3, independent maps give 0 ± 0.18",
    )


def check_causal_future(adapter, settings: Settings):
    """Causal outputs at positions ≤ i do not depend on keys or values after i (claim 18).

    A global key max with ε > 0 leaks the future (theory.md §8). Same W; keys and values after
    i₀ = L/2 are redrawn with 3× larger keys, and the key at i₀ + 1 is set to x = w_l (scaled), the
    row of W of largest norm: its feature exponent ‖w_l‖²/2 is the largest that wᵀx − ‖x‖²/2 can
    take over any row and input, so it moves any maximum over the sequence and the features. Pass
    when max_{i ≤ i₀} |Δo_i| is within twice the round-off bound of one call (two runs of the same
    implementation on inputs that agree up to i₀).
    """
    name, title = "causal-future", "Causal attention ignores the future"
    if not adapter.causal:
        return not_applicable(name, title, "the adapter declares no causal mode")
    rng = rng_for(settings, name)
    q, k, v = attention_inputs(rng)
    m = attention_features(adapter, q.shape[-1])
    if m is None:
        return no_features(name, title, q.shape[-1])
    W = draw_projection(adapter, settings, name, m, q.shape[-1])
    split = q.shape[-2] // 2
    k2, v2 = k.copy(), v.copy()
    k2[..., split + 1 :, :] = 3 * rng.standard_normal(k2[..., split + 1 :, :].shape)
    k2[..., split + 1, :] = W[int(np.argmax(np.linalg.norm(W, axis=-1)))] * q.shape[-1] ** 0.25
    v2[..., split + 1 :, :] = rng.uniform(-1, 1, v2[..., split + 1 :, :].shape)
    before = call_attention(adapter, q, k, v, W, causal=True)
    after = call_attention(adapter, q, k2, v2, W, causal=True)
    _, gram = dense_reference(
        adapter.claims, q, np.concatenate([k, k2], axis=-2), np.concatenate([v, v2], axis=-2), W
    )
    bound, precision = roundoff_bound(adapter, before, q, k2, v, W, gram)
    leak = np.abs(after - before)[..., : split + 1, :].max(axis=(0, 1, 3))
    return verdict(
        name,
        title,
        float(leak.max()) <= 2 * bound,
        float(leak.max()) / float(np.max(np.abs(v))),
        statistic=f"max |Δo_i| over i ≤ {split} = {leak.max():.2e} (bound {2 * bound:.1e}, {precision})",
        effect=f"leak {leak.max():.2e} (worst at position {int(np.argmax(leak))})",
        tolerance="twice the round-off bound of one call: both runs agree exactly in real arithmetic",
        power=f"detects any leak above {2 * bound:.1e} (smaller ones are below this precision's round-off)",
        details=["|Δo_i| by position i ≤ i₀: " + ", ".join(f"{value:.1e}" for value in leak)],
        data={"leak": leak.tolist()},
    )


def check_mask(adapter, settings: Settings):
    """A padding mask removes keys: masked output at kept positions = output on the kept tokens alone.

    Exact attention with a key padding mask drops masked keys from numerator AND denominator, so the
    kept rows must equal attention over the sequence with the masked tokens deleted. Same W,
    bidirectional and (when supported) causal; 3 of L = 16 keys masked: positions 3, 7, 12 for
    arbitrary masks, the last 3 for length masks. Pass within twice the round-off bound of one call.
    Diagnosis (sub-check): when the masked output equals attention with the masked VALUES set to 0
    and their keys kept, the mask is reported as zeroing values only.
    """
    name, title = "mask-semantics", "Padding mask removes keys from numerator and denominator"
    if adapter.mask == "none":
        return not_applicable(name, title, "the adapter declares no key mask")
    q, k, v = attention_inputs(rng_for(settings, name))
    m = attention_features(adapter, q.shape[-1])
    if m is None:
        return no_features(name, title, q.shape[-1])
    W = draw_projection(adapter, settings, name, m, q.shape[-1])
    length = q.shape[-2]
    keep = np.ones((1, length), dtype=bool)
    keep[0, [3, 7, 12] if adapter.mask == "arbitrary" else [13, 14, 15]] = False
    kept = np.flatnonzero(keep[0])
    effects, ratios, lines, diagnosis = {}, [], [], []
    for causal in (False, True) if adapter.causal else (False,):
        masked = call_attention(adapter, q, k, v, W, causal=causal, mask=keep)[..., kept, :]
        removed = call_attention(adapter, q[..., kept, :], k[..., kept, :], v[..., kept, :], W, causal=causal)
        _, gram = dense_reference(adapter.claims, q, k, v, W, causal)
        bound, precision = roundoff_bound(adapter, removed, q, k, v, W, gram)
        mode = "causal" if causal else "bidirectional"
        effects[mode] = float(np.abs(masked - removed).max())
        ratios.append(effects[mode] / (2 * bound))
        lines.append(
            f"{mode}: max |o_masked − o_removed| = {effects[mode]:.2e} (bound {2 * bound:.1e}, {precision})"
        )
        if effects[mode] > 2 * bound:
            zeroed = call_attention(adapter, q, k, v * keep[:, None, :, None], W, causal=causal)[..., kept, :]
            if float(np.abs(masked - zeroed).max()) <= 2 * bound:
                diagnosis = [
                    "the masked output equals attention with the masked values set to 0: masked keys "
                    "stay in the denominator (only their values are zeroed)"
                ]
    return verdict(
        name,
        title,
        max(ratios) <= 1,
        max(effects.values()) / float(np.max(np.abs(v))),
        statistic=f"largest difference / bound = {max(ratios):.2f}",
        effect=", ".join(f"{mode}: {value:.2e}" for mode, value in effects.items()),
        tolerance="twice the round-off bound of one call",
        diagnosis=diagnosis,
        details=[f"{adapter.mask} mask, kept positions {kept.tolist()}", *lines],
    )
