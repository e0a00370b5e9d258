"""The adapter protocol: how an outside FAVOR implementation shows the audit what it has.

An :class:`Adapter` wraps one implementation. Every capability is optional; a check runs only when
the capabilities it needs are present and is reported as skipped otherwise.

Layout: the audit speaks float64 numpy on the host. Queries, keys and values are (B, H, L, d)
(batch, heads, sequence, head dimension), projections are (m, d), feature rows are (…, L, r).
The adapter converts to and from its library's own tensors and layout (``layout`` records the
library's native one, for the report).

Capabilities
------------
sample_projection(m, d, seed) -> (m, d)
    One projection W drawn by the library's own sampler, reproducibly from the int ``seed``.
head_projections(m, d, heads, seed) -> (heads, m, d)
    The projections the library gives each head of one attention layer.
redraw_projections(m, d, count, seed) -> (count, m, d)
    Successive projections from the library's redraw mechanism (``count`` redraws).
kernel_estimate(x, y, W) -> (...)
    K̂(x, y) = φ(x)ᵀφ(y) for pairs x, y (…, d) as the library's feature map computes it, with any
    stabilizer shift that only scales whole rows undone and ``eps`` set to 0.
    Inputs are used as given (the audit applies the d^{-1/4} scaling itself).
features(x, W, role) -> (…, L, r)
    The library's feature map exactly as its attention uses it (stabilizer and ε included),
    ``role`` in {"query", "key"}; raw (unscaled) inputs (…, L, d).
attention(q, k, v, W, causal, mask, dtype) -> (B, H, L, d_v)
    The library's attention output on raw q, k (B, H, L, d), v (B, H, L, d_v), one W shared by the
    call; ``mask`` is None or a boolean (B, L) array marking the keys to keep; ``dtype`` is the
    name of the dtype the library computes in (inputs are cast to it; the output is float64).

``claims`` names the favor-bench registry row the implementation says it is (its kernel estimate
must have that row's mean and MSE); ``dtypes`` lists the low-precision dtypes worth auditing.

A user's adapter, run with ``python -m studies audit --target my_package.audit:adapter``::

    import numpy as np
    from studies.audit import Adapter

    def sample_projection(m, d, seed):
        return np.asarray(my_library.draw_projection(m, d, seed=seed), dtype=np.float64)

    def attention(q, k, v, W, causal=False, mask=None, dtype="float64"):
        out = my_library.favor(q.astype(dtype), k.astype(dtype), v.astype(dtype), W, causal=causal,
                               key_mask=mask)
        return np.asarray(out, dtype=np.float64)

    adapter = Adapter("my-library", claims="positive-ort", sample_projection=sample_projection,
                      attention=attention, dtypes=("float16",))

Checks needing a capability the adapter lacks (here the kernel estimate, heads, redraws and the
feature map) are reported as skipped.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CAPABILITIES = (
    "sample_projection",
    "head_projections",
    "redraw_projections",
    "kernel_estimate",
    "features",
    "attention",
)


@dataclass(frozen=True)
class Adapter:
    """One implementation under audit: a name, the estimator it claims to be and its capabilities.

    See the module docstring for each capability's signature and shapes (host float64 numpy).
    """

    name: str
    claims: str
    layout: str = "(B, H, L, d)"
    version: str = "unknown"
    sample_projection: Callable[..., Any] | None = None
    head_projections: Callable[..., Any] | None = None
    redraw_projections: Callable[..., Any] | None = None
    kernel_estimate: Callable[..., Any] | None = None
    features: Callable[..., Any] | None = None
    attention: Callable[..., Any] | None = None
    dtypes: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def has(self, *capabilities: str) -> bool:
        """True when every named capability is provided."""
        for capability in capabilities:
            if capability not in CAPABILITIES:
                raise ValueError(f"capability must be one of {CAPABILITIES}, got {capability!r}")
        return all(getattr(self, capability) is not None for capability in capabilities)


def _builtin_targets() -> dict[str, Callable[[], Adapter]]:
    from .adapters import favor_bench, performer_pytorch

    return {"favor-bench": favor_bench.adapter, "performer-pytorch": performer_pytorch.adapter}


def target_names() -> list[str]:
    """Names of the shipped adapters (``favor-bench[:<registry row>]`` takes any row)."""
    return list(_builtin_targets())


def load_target(target: str) -> Adapter:
    """The adapter for ``target``: a shipped name, ``favor-bench:<row>``, or ``module:object``.

    ``module:object`` names an :class:`Adapter` instance or a zero-argument callable returning one.
    """
    if not isinstance(target, str) or not target:
        raise TypeError(f"target must be a non-empty string, got {target!r}")
    builtins = _builtin_targets()
    if target in builtins:
        return builtins[target]()
    if target.startswith("favor-bench:"):
        from .adapters import favor_bench

        return favor_bench.adapter(target.split(":", 1)[1])
    if ":" not in target:
        raise ValueError(
            f"target must be one of {tuple(builtins)}, 'favor-bench:<row>' or 'module:object', got {target!r}"
        )
    module_name, object_name = target.split(":", 1)
    loaded = getattr(importlib.import_module(module_name), object_name)
    adapter = loaded() if callable(loaded) and not isinstance(loaded, Adapter) else loaded
    if not isinstance(adapter, Adapter):
        raise TypeError(
            f"target {target!r} must name an Adapter or a callable returning one, "
            f"got {type(adapter).__name__}"
        )
    return adapter
