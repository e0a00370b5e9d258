"""The adapter protocol: how an outside FAVOR implementation shows the audit what it has and what it
cannot do.

An :class:`Adapter` wraps one implementation. Every capability is optional; a check runs only when
the capabilities it needs are present and is reported as n-a (with the reason) otherwise. The
declarations below say what the library cannot do; checks adapt their parameters to them where they
can (a square projection, a length mask, float32 tolerances) and report n-a with the reason where
they cannot.

Layout: the audit speaks float64 numpy on the host. Queries, keys and values are (B, H, L, d)
(batch, heads, sequence, head dimension), projections are (m, d), feature rows are (…, L, r).
The adapter converts to and from its library's own tensors and layout (``layout`` records the
library's native one, for the report). The audit hands every capability read-only arrays, so an
implementation that writes into its inputs raises instead of corrupting the next check.

Capabilities
------------
sample_projection(m, d, seed) -> (m, d)
    One projection W drawn by the library's own sampler, reproducibly from the int ``seed``.
sample_projections(m, d, count, seed) -> (count, m, d)
    ``count`` independent draws at once (a faster path for samplers that batch; without it the
    audit calls ``sample_projection`` once per draw with seeds derived from ``seed``).
head_projections(m, d, heads, seed) -> (heads, m, d)
    The projections the library gives each head of one attention layer.
redraw_projections(m, d, count, seed) -> (count, m, d)
    Successive projections from the library's redraw mechanism (``count`` redraws).
data_projections(m, d, inputs) -> (count, m, d)
    For libraries whose redraw seed is derived from the data (e.g. a hash of the batch): the
    projection drawn for each of ``count`` input batches, ``inputs`` (count, L, d).
kernel_estimate(x, y, W) -> (...)
    K̂(x, y) = φ(x)ᵀφ(y) for pairs x, y (…, d) as the library's feature map computes it, with any
    stabilizer shift that only scales whole rows undone and ``eps`` set to 0. W may carry batch
    dimensions (…, m, d) that broadcast against the pairs. Inputs are used as given (the audit
    applies the d^{-1/4} scaling itself).
features(x, W, role) -> (…, L, r)
    The library's feature map exactly as its attention uses it (stabilizer and ε included),
    ``role`` in {"query", "key"}; raw (unscaled) inputs (…, L, d).
attention(q, k, v, W, causal, mask, dtype) -> (B, H, L, d_v)
    The library's attention output on raw q, k (B, H, L, d), v (B, H, L, d_v), one W shared by the
    call; ``mask`` is None or a boolean (B, L) array marking the keys to keep; ``dtype`` is the
    name of the dtype the library computes in (inputs are cast to it; the output is float64).

Declarations (all optional; the defaults describe a library that can do everything in float64)
----------------------------------------------------------------------------------------------
claims
    The favor-bench registry row the implementation says it is (its kernel estimate must have that
    row's mean and MSE, its projections that row's law).
precision
    The working precision of a ``dtype="float64"`` call: the dtype whose rounding its arithmetic
    incurs (``"float32"`` for a library that computes in float32 whatever it is given). ``None``
    (default): the audit detects it from the outputs (values on the float32 or float16 grid).
    Deterministic checks derive their tolerance from it and from the size of the computation.
dtypes
    Further dtypes ``attention`` accepts through ``dtype=`` (among float32, float16, bfloat16);
    each is audited for overflow and accuracy.
accumulation
    The precision a call in one of ``dtypes`` computes in (``"float32"`` for mixed precision: half
    inputs and outputs, float32 arithmetic, as favor-bench and most half-precision kernels do).
    With it, the reduced-precision error bound is that precision's worst-case bound plus the
    rounding of the output to the dtype, which detects arithmetic done in a narrower type. ``None``
    (default): every operation is assumed to round to the dtype, a bound that can exceed the values
    themselves for float16 and bfloat16 (then only overflow is tested).
mask
    Key-mask support: ``"arbitrary"`` (default; any boolean keep-mask), ``"length"`` (only masks
    that keep a prefix of each sequence: padding at the end) or ``"none"`` (no mask argument).
causal
    False when the library has no causal (autoregressive) mode.
square_only
    True when the library only builds projections with m = d (one orthogonal block).
head_dims
    The head dimensions d the library accepts (``None``: any).
even_features
    Whether K̂(x, y; W) = K̂(x, y; −W) (a feature map even in each row w). ``None``: taken from the
    claimed row (trig and hyperbolic maps are even, positive and ReLU maps are not). The sign of
    orthogonal blocks can bias only an estimator that is not even.

A user's adapter, run with ``python -m studies audit --target my_package.audit:adapter``::

    import numpy as np
    from studies.audit import Adapter

    def sample_projection(m, d, seed):
        return np.asarray(my_library.draw_projection(m, d, seed=seed), dtype=np.float64)

    def attention(q, k, v, W, causal=False, mask=None, dtype="float64"):
        out = my_library.favor(q.astype(dtype), k.astype(dtype), v.astype(dtype), W, causal=causal,
                               lengths=None if mask is None else mask.sum(-1))
        return np.asarray(out, dtype=np.float64)

    adapter = Adapter("my-library", claims="positive-ort", sample_projection=sample_projection,
                      attention=attention, dtypes=("float16",), precision="float32", mask="length")

Checks needing a capability the adapter lacks (here the kernel estimate, heads, redraws and the
feature map) are reported as n-a with the missing capability named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CAPABILITIES = (
    "sample_projection",
    "sample_projections",
    "head_projections",
    "redraw_projections",
    "data_projections",
    "kernel_estimate",
    "features",
    "attention",
)
PRECISIONS = ("float64", "float32", "float16", "bfloat16")
LOW_PRECISION_DTYPES = ("float32", "float16", "bfloat16")
MASKS = ("arbitrary", "length", "none")


@dataclass(frozen=True)
class Adapter:
    """One implementation under audit: a name, the estimator it claims to be, its capabilities and
    what it cannot do.

    See the module docstring for each capability's signature and shapes (host float64 numpy) and
    for the meaning of each declaration.
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
    data_projections: Callable[..., Any] | None = None
    precision: str | None = None
    accumulation: str | None = None
    mask: str = "arbitrary"
    causal: bool = True
    square_only: bool = False
    head_dims: tuple[int, ...] | None = None
    even_features: bool | None = None
    sample_projections: Callable[..., Any] | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.claims, str) or not self.claims:
            raise TypeError(f"claims must be a registry row name, got {self.claims!r}")
        for field_name in ("precision", "accumulation"):
            value = getattr(self, field_name)
            if value is not None and value not in PRECISIONS:
                raise ValueError(f"{field_name} must be None or one of {PRECISIONS}, got {value!r}")
        unknown = [dtype for dtype in self.dtypes if dtype not in LOW_PRECISION_DTYPES]
        if unknown:
            raise ValueError(f"dtypes must be among {LOW_PRECISION_DTYPES}, got {tuple(self.dtypes)!r}")
        if self.mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {self.mask!r}")
        if self.head_dims is not None and not all(int(d) >= 1 for d in self.head_dims):
            raise ValueError(f"head_dims must be None or positive ints, got {self.head_dims!r}")

    def has(self, *capabilities: str) -> bool:
        """True when every named capability is provided."""
        for capability in capabilities:
            if capability not in CAPABILITIES:
                raise ValueError(f"capability must be one of {CAPABILITIES}, got {capability!r}")
        return all(getattr(self, capability) is not None for capability in capabilities)

    def accepts_dim(self, d: int) -> bool:
        """True when the library accepts head dimension ``d``."""
        return self.head_dims is None or int(d) in self.head_dims

    def accepts_projection(self, m: int, d: int) -> bool:
        """True when the library builds an (m, d) projection (``square_only`` needs m = d)."""
        return self.accepts_dim(d) and (not self.square_only or int(m) == int(d))
