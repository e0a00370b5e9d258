"""favor-bench's own estimators as an audit target: the control, on which every check must pass.

``adapter(row)`` wraps registry row ``row`` (default ``positive-ort``, FAVOR+): Haar block-orthogonal
projections with χ(d) norms, :func:`estimators.attention.favor` with its default stabilizers (per-row
query shift; one key shift bidirectionally, a running key maximum causally), ε = 0, padding masks
that remove keys from numerator and denominator, half precision accumulated in float32, and an
independent W per head and per redraw.

``adapter("<row>@<dtype>")`` (target ``favor-bench:positive-ort@float32``) computes its attention in
``dtype`` (float32 or float16) even when asked for float64, and declares that working precision: the
control for the round-off tolerances of reduced-precision implementations.
"""

from __future__ import annotations

import numpy as np

from estimators import attention as attention_maps
from estimators import features as feature_maps
from estimators import registry
from estimators.backends import resolve_target
from studies.core.stats import host

from ..protocol import Adapter

_STABILIZER = {"query": "row", "key": "global"}


def adapter(row: str = "positive-ort") -> Adapter:
    """The control adapter for registry row ``row`` (host float64 numpy in and out), optionally
    ``<row>@<dtype>`` to compute its attention in ``dtype``."""
    name = "favor-bench" if row == "positive-ort" else f"favor-bench:{row}"
    row, _, compute = row.partition("@")
    if compute not in ("", "float32", "float16"):
        raise ValueError(f"the dtype after '@' must be float32 or float16, got {compute!r}")
    estimator = registry.get(row)

    def sample_projection(m, d, seed):
        return estimator.draw(m, d, seed=int(seed))

    def many_projections(m, d, count, seed):
        return estimator.draw(m, d, batch_shape=(int(count),), seed=int(seed))

    def kernel_estimate(x, y, W):
        return estimator.estimate(np.asarray(x), np.asarray(y), np.asarray(W))

    def features(x, W, role):
        options = {} if estimator.feature in ("trig", "generalized") else {"stabilizer": _STABILIZER[role]}
        if estimator.feature in feature_maps.SIDED:
            options["side"] = role
        return estimator.features(np.asarray(x), np.asarray(W), scale_inputs=True, **options)

    def attention(q, k, v, W, causal=False, mask=None, dtype="float64"):
        dtype = compute if compute and dtype == "float64" else dtype
        target = resolve_target(backend="torch" if dtype == "bfloat16" else "numpy", dtype=dtype)
        keep = None if mask is None else _keep_mask(target, mask)
        out = attention_maps.favor(
            *(target.asarray(np.array(a)) for a in (q, k, v, W)),
            feature=row,
            causal=causal,
            key_padding_mask=keep,
        )
        return host(out)

    return Adapter(
        name=name,
        claims=row,
        layout="(…, L, d) arrays on numpy, torch or jax",
        version=_version(),
        sample_projection=sample_projection,
        sample_projections=many_projections,
        head_projections=many_projections,
        redraw_projections=many_projections,
        kernel_estimate=kernel_estimate,
        features=features,
        attention=attention,
        dtypes=("float32", "float16", "bfloat16"),
        precision=compute or "float64",
        accumulation="float32",
        notes=(f"registry row {row!r}: {estimator.description}",),
    )


def _keep_mask(target, mask):
    """A (B, L) keep-mask as a (B, 1, L) boolean array of ``target``'s backend (broadcast over heads)."""
    keep = np.array(mask, dtype=bool)[:, None, :]
    if target.backend == "torch":
        import torch

        return torch.from_numpy(keep)
    return keep


def _version() -> str:
    import estimators

    return estimators.__version__
