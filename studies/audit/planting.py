"""How a planted adapter is made: the :class:`Planted` record of one, favor-bench's control adapter
and the ways a defect changes it (fields replaced, the sampler swapped, a causal leak added), and
the host float64 FAVOR pieces the defects are written with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from estimators import attention as attention_maps
from studies.core import stats

from .adapters import favor_bench
from .protocol import Adapter


@dataclass(frozen=True)
class Planted:
    """One planted adapter: ``build()`` returns it; ``caught_by`` names the checks that must reject."""

    name: str
    description: str
    caught_by: tuple[str, ...]
    build: Callable[[], Adapter]


def control_adapter(row: str) -> Adapter:
    """favor-bench's own adapter of registry row ``row``, the correct control every defect changes."""
    return favor_bench.adapter(row)


def replaced(row: str, name: str, **changes) -> Adapter:
    """The control of ``row`` named ``planted:<name>``, with the adapter fields ``changes`` replaced."""
    return dataclasses.replace(control_adapter(row), name=f"planted:{name}", **changes)


def with_sampler(row: str, name: str, draw: Callable) -> Adapter:
    """The control with its sampler replaced by ``draw(m, d, count, seed) -> (count, m, d)``
    (heads and redraws included)."""

    def one(m, d, seed):
        return draw(m, d, 1, seed)[0]

    return replaced(
        row,
        name,
        sample_projection=one,
        sample_projections=draw,
        head_projections=draw,
        redraw_projections=draw,
    )


def scaled_inputs(a):
    """Raw q or k (…, L, d) scaled by d^{-1/4}, as FAVOR scales them."""
    return np.asarray(a) * np.shape(a)[-1] ** -0.25


def favor_attention(row: str, **options) -> Callable:
    """favor-bench FAVOR of ``row`` on host float64 with extra options (stabilizer, eps)."""

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        keep = None if mask is None else np.array(mask, dtype=bool)[:, None, :]
        arrays = (np.array(a) for a in (q, k, v, W))
        return stats.host(
            attention_maps.favor(*arrays, feature=row, causal=causal, key_padding_mask=keep, **options)
        )

    return attend


def positive_features(x, W):
    """Unshifted positive features exp(Wx − ‖x‖²/2)/√m of scaled inputs x (…, L, d), W (m, d)."""
    return np.exp(x @ W.T - np.sum(x * x, axis=-1, keepdims=True) / 2) / np.sqrt(W.shape[-2])


def dense_attention(phi_q, phi_k, v, causal, offset=0):
    """The dense form D̂⁻¹ÂV of features φ(Q), φ(K) (causal: Â lower triangular up to diagonal ``offset``)."""
    gram = phi_q @ np.swapaxes(phi_k, -1, -2)
    if causal:
        gram = np.tril(gram, k=offset)
    return (gram @ v) / gram.sum(axis=-1, keepdims=True)


def with_leak(row: str, name: str, size: float, base: Callable, **changes) -> Adapter:
    """``base`` attention plus ``size`` times the mean of ALL values in causal mode (a leak)."""

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        out = base(q, k, v, W, causal=causal, mask=mask, dtype=dtype)
        if causal:
            out = out + size * np.mean(np.asarray(v), axis=-2, keepdims=True)
        return out

    return replaced(row, name, attention=attend, **changes)
