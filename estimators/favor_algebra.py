"""The FAVOR algebra behind :func:`estimators.attention.favor`: stabilized features, the chunked
sums of :mod:`estimators.bidirectional` and :mod:`estimators.causal`, and the normalization
``D̂⁻¹ (Q'((K')ᵀ V))`` (Performers Eq. 4, App. B.1 Eq. 11).

Shapes as in :mod:`estimators.attention`: queries (…, L, d), keys (…, M, d), values (…, M, d_v),
keep masks (…, M, 1); outputs (…, L, d_v). A feature map is a hashable object
(:class:`FeatureMap`, :class:`GivenFeatures`) with its arrays in :class:`Constants`, so one jitted
JAX graph serves every call with the same options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from .attention_inputs import check_finite_inputs
from .backends import dtype_name, framework, is_tracer, namespace
from .bidirectional import bidirectional_sums
from .causal import prefix_sums
from .feature_parts import FeatureParts, assemble, row_shift, row_stabilized
from .features import feature_parts
from .validation import LOW_PRECISION

DEFAULT_CHUNK_SIZE = 64


BIDIRECTIONAL_CHUNK_SIZE = 1024


class DenominatorError(FloatingPointError):
    """A FAVOR denominator D̂_i of a row with visible keys underflowed, was not positive or not finite."""


class Constants(NamedTuple):
    """Arrays a feature map reads (traced under ``jax.jit``): the projection, the array-valued
    feature options of each side, and the key shift of ``stabilizer="global"`` in causal mode."""

    W: object
    query_options: dict | None = None
    key_options: dict | None = None
    global_log_scale: object = None


@dataclass(frozen=True)
class FeatureMap:
    """Stabilized FAVOR features of raw rows. Hashable (the scalar options are sorted item tuples;
    array options travel in :class:`Constants`), so a jitted JAX graph is reused across calls.

    The features of each side are φ/s, without the map's constant scale s (m^{-1/2} for the positive
    map): normalized attention cancels it, as it cancels the shifts, and the exponent then costs one
    subtraction per entry. ``eps`` is added to φ/s after the shift, so the features are
    ``(φ·e^{−shift} + eps·s)/s``, the public code's ``φ·e^{−shift} + eps·s`` up to the constant.
    """

    name: str
    stabilizer: str = "auto"
    eps: float = 0.0
    query_options: tuple = ()
    key_options: tuple = ()

    def queries(self, constants, rows):
        """φ(q d^{-1/4})/s (…, L, r), each row shifted by its largest log-amplitude (unless "none")."""
        parts = self._parts(constants.W, rows, self.query_options, constants.query_options)
        shift = None
        if self.stabilizer != "none" and parts.log_amplitude is not None:
            parts, shift = row_stabilized(parts)
        return assemble(parts, shift, self.eps, keep_float32=True, overwrite=True)

    def keys(self, constants, rows):
        """Key parts and per-key log scales ρ (…, M, 1) (zero for "none" and maps without exponentials)."""
        parts = self._parts(constants.W, rows, self.key_options, constants.key_options)
        log_scale = _key_log_scale(parts, self.stabilizer)
        if constants.global_log_scale is not None:
            log_scale = namespace(log_scale).zeros_like(log_scale) + constants.global_log_scale
        return parts, log_scale

    def _parts(self, W, rows, static, arrays):
        options = {**dict(static), **(arrays or {})}
        parts = feature_parts(
            self.name, rows, W, scale_inputs=True, validate=False, defer_row_offset=True, **options
        )
        return parts._replace(scale=1.0)


@dataclass(frozen=True)
class GivenFeatures:
    """Precomputed features used as they are (no stabilizer, no eps)."""

    stabilizer: str = "none"
    eps: float = 0.0

    def queries(self, constants, rows):
        return working_dtype(namespace(rows), rows)

    def keys(self, constants, rows):
        xp = namespace(rows)
        rows = working_dtype(xp, rows)
        zeros = xp.zeros((*rows.shape[:-1], 1), dtype=rows.dtype, device=device_of(rows))
        return FeatureParts(None, rows, 1.0, dtype_name(rows)), zeros


def run(featurizer, constants, queries, keys, v, keep, causal, chunk_size, denominator, compiled=False):
    """FAVOR output (…, L, d_v); raises :class:`DenominatorError` per ``denominator`` outside tracing.

    JAX runs one jitted graph per (featurizer, shapes, options): op-by-op dispatch would compile every
    primitive separately. ``compiled`` compiles each chunk or block step where the framework can
    (``framework(v).compiled_step``: ``torch.compile`` for torch).
    """
    core = framework(v).compiled(_favor_arrays, (0, 6, 7, 8, 9)) if is_hashable(featurizer) else _favor_arrays
    out, bad = core(featurizer, constants, queries, keys, v, keep, causal, chunk_size, denominator, compiled)
    check_denominators(bad, denominator, queries, keys, v)
    return out


def check_denominators(bad, denominator, queries, keys, v):
    """Raise :class:`DenominatorError` (or the inputs' own non-finite error) when ``denominator`` is
    ``"raise"`` and ``bad`` (a count from :func:`normalize`) is positive; nothing under tracing."""
    if denominator == "raise" and not is_tracer(bad) and int(bad) > 0:
        check_finite_inputs(queries, keys, v)
        raise DenominatorError(
            f"{int(bad)} attention row(s) have a FAVOR denominator that underflowed, is not positive "
            "or not finite, or a non-finite numerator (trigonometric features can give D̂ ≤ 0; "
            "huge-norm inputs can underflow or overflow); use positive features or smaller inputs, "
            "or pass denominator='zero' or 'raw'"
        )


def _favor_arrays(featurizer, constants, queries, keys, v, keep, causal, chunk_size, denominator, compiled):
    """(output (…, L, d_v) guarded per ``denominator``, number of visible rows with a bad D̂)."""
    xp = namespace(v)
    dtype = dtype_name(v)
    v = working_dtype(xp, v)
    if causal:
        if featurizer.stabilizer == "global":
            constants = constants._replace(
                global_log_scale=_global_log_scale(featurizer, constants, keys, keep)
            )
        chunk = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
        numerator, total = prefix_sums(
            featurizer, constants, queries, keys, v, keep, chunk_size=chunk, compiled=compiled
        )
        visible = None if keep is None else _seen_any(xp, keep)
    else:
        chunk = BIDIRECTIONAL_CHUNK_SIZE if chunk_size is None else chunk_size
        numerator, total = bidirectional_sums(
            featurizer, constants, queries, keys, v, keep, chunk_size=chunk, compiled=compiled
        )
        visible = None if keep is None else xp.any(keep, axis=-2)
    out, bad = normalize(xp, numerator, total, visible, denominator)
    return restore_dtype(xp, out, dtype), bad


def _global_log_scale(featurizer, constants, k, keep):
    """The public code's key shift: one maximum over the whole sequence (…, 1, 1) — it sees the future."""
    xp = namespace(k)
    _, log_scale = featurizer.keys(constants, k)
    if keep is not None:
        log_scale = xp.where(keep, log_scale, -math.inf)
    return xp.max(log_scale, axis=-2, keepdims=True)


def _key_log_scale(parts, stabilizer):
    """ρ_j (…, M, 1): the key's largest log-amplitude (not differentiated), or 0 without a stabilizer."""
    if parts.log_amplitude is None or stabilizer == "none":
        rows = parts.factor if parts.log_amplitude is None else parts.log_amplitude
        xp = namespace(rows)
        return xp.zeros((*rows.shape[:-1], 1), dtype=rows.dtype, device=device_of(rows))
    shift = row_shift(parts)
    return framework(shift).stop_gradient(shift)


def is_hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def normalize(xp, numerator, total, visible, denominator):
    """``numerator / total`` row by row, zero for rows without a visible key, and the number of
    visible rows whose ``total`` is not a positive finite number or whose ``numerator`` is not finite
    (zero rows unless ``"raw"``)."""
    valid = (total > 0) & xp.isfinite(total)
    needed = xp.ones_like(valid) if visible is None else visible
    finite_rows = _finite_rows(xp, numerator)
    bad = xp.sum(xp.astype(needed & ~(valid & finite_rows), xp.int32))
    if denominator == "raw":
        out = numerator / xp.where(needed, total, 1.0)[..., None]
        return xp.where(needed[..., None], out, 0.0), bad
    out = numerator / xp.where(valid, total, 1.0)[..., None]
    rows = valid & needed
    if _all_on_host(xp, rows):
        return out, bad
    return xp.where(rows[..., None], out, 0.0), bad


def _finite_rows(xp, numerator):
    """(…, L): whether every entry of each row is finite. A row whose sum is finite has only finite
    entries, so the entrywise test (several passes over the rows) runs only when some row sum is not
    finite (an overflow of finite entries, or a non-finite entry), and always under tracing."""
    row_sums_finite = xp.isfinite(xp.sum(numerator, axis=-1))
    if _all_on_host(xp, row_sums_finite):
        return row_sums_finite
    return xp.all(xp.isfinite(numerator), axis=-1)


def _all_on_host(xp, mask):
    """True when ``mask`` is a concrete array (not traced) and all of it is True: a shortcut may then
    skip work that only matters for False entries."""
    return not is_tracer(mask) and bool(xp.all(mask))


def _seen_any(xp, keep):
    """(…, L): whether any key at positions ≤ i is kept."""
    counts = xp.cumulative_sum(xp.astype(keep[..., 0], xp.int32), axis=-1)
    return counts > 0


def keep_rows(mask):
    return None if mask is None else mask[..., :, None]


def working_dtype(xp, a):
    """``a`` in its working dtype: float32 for half precision, else unchanged."""
    return xp.astype(a, xp.float32) if dtype_name(a) in LOW_PRECISION else a


def restore_dtype(xp, out, dtype):
    return xp.astype(out, getattr(xp, dtype)) if dtype in LOW_PRECISION else out


def device_of(x):
    from array_api_compat import device

    return device(x)


def allowed_pairs(xp, mask, causal, length, keys, like):
    """Boolean (…, L, M) of visible (query, key) pairs, or None when all are visible."""
    allowed = None
    if causal:
        index = xp.arange(length, device=device_of(like))
        allowed = index[:, None] >= index[None, :]
    if mask is not None:
        keep = mask[..., None, :]
        allowed = keep if allowed is None else allowed & keep
    return allowed


__all__ = [
    "BIDIRECTIONAL_CHUNK_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "Constants",
    "DenominatorError",
    "FeatureMap",
    "GivenFeatures",
    "allowed_pairs",
    "check_denominators",
    "device_of",
    "is_hashable",
    "keep_rows",
    "normalize",
    "restore_dtype",
    "run",
    "working_dtype",
]
