"""Planted adapters: favor-bench's own adapter with one realistic defect each, and correct
reduced-precision implementations. Like a real adapter, each one's ``features`` is the map its
attention uses, or is absent. The check set must reject every defect through the checks named
in ``caught_by`` (CI asserts it at the fixed seed; the Tier 2 calibration measures the power over
fresh seeds) and pass the correct ones on every check.

Each is an audit target: ``python -m studies audit --target planted:<name>``. ``caught_by`` lists the
checks the claim rests on, not every check that happens to reject.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from estimators import attention as attention_maps
from estimators import projections
from studies import stats

from .adapters import favor_bench
from .protocol import Adapter

LEAK = 1e-10
LEAK_BELOW_FLOAT32 = 1e-9


@dataclass(frozen=True)
class Planted:
    """One planted adapter: ``build()`` returns it; ``caught_by`` names the checks that must reject."""

    name: str
    description: str
    caught_by: tuple[str, ...]
    build: Callable[[], Adapter]


def _control(row: str) -> Adapter:
    return favor_bench.adapter(row)


def _replace(row: str, name: str, **changes) -> Adapter:
    return dataclasses.replace(_control(row), name=f"planted:{name}", **changes)


def _with_sampler(row: str, name: str, draw: Callable) -> Adapter:
    """The control with its sampler replaced by ``draw(m, d, count, seed) -> (count, m, d)``
    (heads and redraws included)."""

    def one(m, d, seed):
        return draw(m, d, 1, seed)[0]

    return _replace(
        row,
        name,
        sample_projection=one,
        sample_projections=draw,
        head_projections=draw,
        redraw_projections=draw,
    )


def _scaled(a):
    return np.asarray(a) * np.shape(a)[-1] ** -0.25


def _favor(row: str, **options) -> Callable:
    """favor-bench FAVOR of ``row`` on host float64 with extra options (stabilizer, eps)."""

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        keep = None if mask is None else np.array(mask, dtype=bool)[:, None, :]
        arrays = (np.array(a) for a in (q, k, v, W))
        return stats.host(
            attention_maps.favor(*arrays, feature=row, causal=causal, key_padding_mask=keep, **options)
        )

    return attend


def _positive(x, W):
    """Unshifted positive features exp(Wx − ‖x‖²/2)/√m of scaled inputs x (…, L, d), W (m, d)."""
    return np.exp(x @ W.T - np.sum(x * x, axis=-1, keepdims=True) / 2) / np.sqrt(W.shape[-2])


def _dense(phi_q, phi_k, v, causal, offset=0):
    gram = phi_q @ np.swapaxes(phi_k, -1, -2)
    if causal:
        gram = np.tril(gram, k=offset)
    return (gram @ v) / gram.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------- projection defects


def _no_sign_fix():
    def draw(m, d, count, seed):
        return projections.orthogonal(m, d, sign_fix=False, batch_shape=(int(count),), seed=int(seed))

    return _with_sampler("positive-ort", "qr-no-sign-fix", draw)


def _fixed_norms_as_chi():
    def draw(m, d, count, seed):
        W = projections.orthogonal(m, d, batch_shape=(int(count),), seed=int(seed))
        return W * (np.sqrt(d) / np.linalg.norm(W, axis=-1, keepdims=True))

    return _with_sampler("positive-ort", "fixed-norms-as-chi", draw)


def _iid_as_orthogonal():
    def draw(m, d, count, seed):
        return projections.iid(m, d, batch_shape=(int(count),), seed=int(seed))

    return _with_sampler("trig-ort", "iid-as-orthogonal", draw)


def _orthogonal_as_iid():
    def draw(m, d, count, seed):
        return projections.orthogonal(m, d, batch_shape=(int(count),), seed=int(seed))

    return _with_sampler("trig-iid", "orthogonal-as-iid", draw)


def _wrong_norm_law():
    """Norms with the right E‖w‖² = d but ‖w‖² ~ Gamma(d, 1) instead of χ²_d = Gamma(d/2, 2)."""

    def draw(m, d, count, seed):
        W = projections.orthogonal(m, d, norms="fixed", batch_shape=(int(count),), seed=int(seed)) / np.sqrt(
            d
        )
        rng = np.random.default_rng(int(seed) + 1)
        return W * np.sqrt(rng.gamma(d, 1.0, size=(int(count), m, 1)))

    return _with_sampler("positive-ort", "wrong-norm-law", draw)


def _simplex_chi1_norms():
    """SimRF with each row's norm √(χ²₁) instead of χ(d): favor-bench's simplex directions, E‖w‖² = 1."""

    def draw(m, d, count, seed):
        W = projections.simplex(m, d, norms="fixed", batch_shape=(int(count),), seed=int(seed)) / np.sqrt(d)
        rng = np.random.default_rng(int(seed) + 1)
        return W * np.sqrt(rng.chisquare(1, size=(int(count), m, 1)))

    return _with_sampler("positive-simplex", "simplex-chi1-norms", draw)


def _orthogonal_as_simplex():
    """Block-orthogonal rows (Gram I within a block) presented as simplex rows (Gram −1/(d − 1))."""

    def draw(m, d, count, seed):
        return projections.orthogonal(m, d, batch_shape=(int(count),), seed=int(seed))

    return _with_sampler("positive-simplex", "orthogonal-as-simplex", draw)


def _wrong_variance():
    def draw(m, d, count, seed):
        return 1.1 * projections.orthogonal(m, d, batch_shape=(int(count),), seed=int(seed))

    return _with_sampler("positive-ort", "wrong-coordinate-variance", draw)


def _norms_follow_directions():
    """Each block's χ(d) norms handed out in the order of |u_i1|: the norm law and the directions are
    right, their independence is not."""

    def draw(m, d, count, seed):
        W = projections.orthogonal(m, d, batch_shape=(int(count),), seed=int(seed))
        norms = np.linalg.norm(W, axis=-1)
        directions = W / norms[..., None]
        out = np.empty_like(W)
        for start in range(0, m, d):
            block = slice(start, min(start + d, m))
            rank = np.argsort(np.argsort(np.abs(directions[:, block, 0]), axis=-1), axis=-1)
            ordered = np.sort(norms[:, block], axis=-1)
            out[:, block] = directions[:, block] * np.take_along_axis(ordered, rank, axis=-1)[..., None]
        return out

    return _with_sampler("positive-ort", "norms-follow-directions", draw)


def _shared_heads():
    control = _control("positive-ort")

    def shared(m, d, count, seed):
        return np.repeat(control.sample_projection(m, d, seed)[None], int(count), axis=0)

    return _replace("positive-ort", "shared-heads", head_projections=shared)


def _cycling_redraw():
    control = _control("positive-ort")

    def cycle(m, d, count, seed):
        three = control.sample_projections(m, d, 3, seed)
        return three[np.arange(int(count)) % 3]

    return _replace("positive-ort", "cycling-redraw", redraw_projections=cycle)


def _redraw_reuses_norms():
    """Redraws with fresh Haar directions and the row norms of one fixed draw (seed 0), as an
    unseeded redraw whose norms come from a fixed seed does."""
    control = _control("positive-ort")

    def reuse(m, d, count, seed):
        W = control.sample_projections(m, d, count, seed)
        norms = np.linalg.norm(control.sample_projection(m, d, 0), axis=-1)
        return W / np.linalg.norm(W, axis=-1, keepdims=True) * norms[:, None]

    return _replace("positive-ort", "redraw-reuses-norms", redraw_projections=reuse)


def _colliding_data_seed():
    """A redraw seeded from the data by a weak hash: the sign of the batch sum (two seeds)."""
    control = _control("positive-ort")

    def from_data(m, d, inputs):
        return np.stack([control.sample_projection(m, d, int(np.sum(x) > 0)) for x in np.asarray(inputs)])

    return _replace("positive-ort", "colliding-data-seed", data_projections=from_data)


INT32 = np.iinfo(np.int32)


def _saturating_data_seed():
    """A redraw seeded by int32(ceil(sum(batch)·1e7)), saturating at the int32 limits: every batch
    with |sum| > 214.75 gets one of two seeds."""
    control = _control("positive-ort")

    def from_data(m, d, inputs):
        seeds = np.clip(np.ceil(np.sum(np.asarray(inputs), axis=(-2, -1)) * 1e7), INT32.min, INT32.max)
        return np.stack([control.sample_projection(m, d, int(seed) % 2**32) for seed in seeds])

    return _replace("positive-ort", "saturating-data-seed", data_projections=from_data)


def _hashed_data_seed():
    """A correct redraw seeded from the data: the CRC-32 of the batch's float64 bytes (distinct
    batches give distinct seeds at every scale, up to 2^-32 collisions)."""
    control = _control("positive-ort")

    def from_data(m, d, inputs):
        batches = np.ascontiguousarray(inputs, dtype=np.float64)
        return np.stack([control.sample_projection(m, d, zlib.crc32(x.tobytes())) for x in batches])

    return _replace("positive-ort", "hashed-data-seed", data_projections=from_data)


# ----------------------------------------------------------------------------- feature defects


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
        phi_q, phi_k = (np.exp(_scaled(a) @ np.asarray(W).T) for a in (q, k))
        return _dense(phi_q, phi_k, np.asarray(v), causal)

    def features(x, W, role):
        return np.exp(_scaled(x) @ np.asarray(W).T)

    return _replace(
        "positive-iid",
        "missing-half-norm",
        kernel_estimate=_kernel_from(features_of),
        features=features,
        attention=attend,
    )


def _scale_off():
    control = _control("positive-ort")

    def scaled(x, y, W):
        return 1.03**2 * control.kernel_estimate(x, y, W)

    return _replace("positive-ort", "scale-3pct", kernel_estimate=scaled)


def _cos_without_sin():
    def features_of(x, W):
        return np.exp(np.sum(x * x) / 2) * np.cos(W @ x) / np.sqrt(W.shape[-2])

    return _replace("trig-iid", "cos-without-sin", kernel_estimate=_kernel_from(features_of))


def _different_w():
    control = _control("positive-iid")

    def features(x, W, role):
        return control.features(x, W[::-1] if role == "key" else W, role)

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        W = np.asarray(W)
        return _dense(_positive(_scaled(q), W), _positive(_scaled(k), W[::-1]), np.asarray(v), causal)

    return _replace("positive-iid", "different-w-qk", features=features, attention=attend)


# ----------------------------------------------------------------------------- attention defects


def _dropped_normalizer():
    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        phi_q, phi_k = (_positive(_scaled(a), np.asarray(W)) for a in (q, k))
        gram = phi_q @ np.swapaxes(phi_k, -1, -2)
        return (np.tril(gram) if causal else gram) @ np.asarray(v)

    return _replace("positive-iid", "dropped-normalizer", attention=attend)


def _off_by_one_prefix():
    control = _control("positive-iid")

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        if not causal:
            return control.attention(q, k, v, W, causal=False, mask=mask, dtype=dtype)
        phi_q, phi_k = (_positive(_scaled(a), np.asarray(W)) for a in (q, k))
        return _dense(phi_q, phi_k, np.asarray(v), True, offset=1)

    return _replace("positive-iid", "off-by-one-prefix", attention=attend)


def _future_stabilizer():
    return _replace(
        "positive-iid",
        "future-stabilizer",
        attention=_favor("positive-iid", stabilizer="global", eps=1e-3),
        features=None,
    )


def _per_key_stabilizer():
    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        phi_q, phi_k = (_positive(_scaled(a), np.asarray(W)) for a in (q, k))
        return _dense(phi_q, phi_k / phi_k.max(axis=-1, keepdims=True), np.asarray(v), causal)

    def features(x, W, role):
        phi = _positive(_scaled(x), np.asarray(W))
        return phi / phi.max(axis=-1, keepdims=True) if role == "key" else phi

    return _replace("positive-iid", "per-key-stabilizer", features=features, attention=attend)


def _half_the_features():
    control = _control("positive-iid")

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        W = np.asarray(W)
        return control.attention(q, k, v, W[: W.shape[0] // 2], causal=causal, mask=mask, dtype=dtype)

    def features(x, W, role):
        W = np.asarray(W)
        return control.features(x, W[: W.shape[0] // 2], role)

    return _replace("positive-iid", "half-the-features", attention=attend, features=features)


def _exact_denominator():
    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        x, y = _scaled(q), _scaled(k)
        phi_q, phi_k = (_positive(a, np.asarray(W)) for a in (x, y))
        gram, exact = phi_q @ np.swapaxes(phi_k, -1, -2), np.exp(x @ np.swapaxes(y, -1, -2))
        if causal:
            gram, exact = np.tril(gram), np.tril(exact)
        return (gram @ np.asarray(v)) / exact.sum(axis=-1, keepdims=True)

    return _replace("positive-iid", "exact-denominator", attention=attend)


def _mask_zeroes_values():
    control = _control("positive-ort")

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        if mask is not None:
            v = np.asarray(v) * np.asarray(mask, dtype=np.float64)[:, None, :, None]
        return control.attention(q, k, v, W, causal=causal, dtype=dtype)

    return _replace("positive-ort", "mask-zeroes-values", attention=attend)


def _unshifted_half():
    control = _control("positive-ort")

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        if dtype == "float64":
            return control.attention(q, k, v, W, causal=causal, mask=mask)
        q, k, v, W = (np.asarray(a).astype(dtype) for a in (q, k, v, W))
        with np.errstate(over="ignore", invalid="ignore"):
            phi_q, phi_k = (_positive(_scaled(a), W) for a in (q, k))
            return _dense(phi_q, phi_k, v, causal).astype(np.float64)

    return _replace("positive-ort", "unshifted-half", attention=attend, dtypes=("float16",))


def _leak(row: str, name: str, size: float, base: Callable, **changes) -> Adapter:
    """``base`` attention plus ``size`` times the mean of ALL values in causal mode (a leak)."""

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        out = base(q, k, v, W, causal=causal, mask=mask, dtype=dtype)
        if causal:
            out = out + size * np.mean(np.asarray(v), axis=-2, keepdims=True)
        return out

    return _replace(row, name, attention=attend, **changes)


def _causal_eps():
    return _replace("positive-iid", "causal-eps", attention=_favor("positive-iid", eps=1e-3), features=None)


def _tiny_leak():
    return _leak("positive-iid", "tiny-causal-leak", LEAK, _control("positive-iid").attention)


# ----------------------------------------------------------------------------- correct, reduced precision


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
    control = _control("positive-ort")

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
        x = _scaled(np.asarray(x, dtype=np.float32))
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
    return _leak(
        "positive-ort",
        "leak-below-float32",
        LEAK_BELOW_FLOAT32,
        low_precision_attention,
        precision="float32",
        dtypes=(),
    )


PLANTED = {
    p.name: p
    for p in (
        Planted(
            "qr-no-sign-fix",
            "orthogonal blocks from QR without folding sign(diag R) into Q: not Haar (theory.md §5.1)",
            ("projection-directions", "unbiased-kernel", "convergence-exact"),
            _no_sign_fix,
        ),
        Planted(
            "fixed-norms-as-chi",
            "√d row norms presented as χ(d): the softmax rows estimate SMREG (claim 13)",
            ("projection-norms", "unbiased-kernel"),
            _fixed_norms_as_chi,
        ),
        Planted(
            "iid-as-orthogonal",
            "'orthogonal' trig rows drawn iid: unbiased, but with the iid MSE, 35-45% above the claimed one "
            "(claims 7, 10)",
            ("projection-orthogonality", "mse-closed-form"),
            _iid_as_orthogonal,
        ),
        Planted(
            "orthogonal-as-iid",
            "'iid' trig rows drawn block-orthogonal: an MSE about 45% BELOW the claimed one (the MSE "
            "check is two-sided)",
            ("mse-closed-form",),
            _orthogonal_as_iid,
        ),
        Planted(
            "wrong-norm-law",
            "‖w‖² ~ Gamma(d, 1): E‖w‖² = d and E[W_ij²] = 1 are right, the χ(d) law is not",
            ("projection-norms",),
            _wrong_norm_law,
        ),
        Planted(
            "simplex-chi1-norms",
            "simplex rows with norms √(χ²₁) instead of χ(d): E‖w‖² = 1, not d",
            ("projection-norms",),
            _simplex_chi1_norms,
        ),
        Planted(
            "orthogonal-as-simplex",
            "block-orthogonal rows presented as simplex rows: the block Gram is I, not the simplex Gram",
            ("projection-orthogonality",),
            _orthogonal_as_simplex,
        ),
        Planted(
            "wrong-coordinate-variance",
            "W scaled by 1.1: per-coordinate variance 1.21",
            ("projection-moments", "projection-norms"),
            _wrong_variance,
        ),
        Planted(
            "norms-follow-directions",
            "each block's χ(d) norms assigned in the order of |u_i1|",
            ("norm-direction",),
            _norms_follow_directions,
        ),
        Planted(
            "shared-heads", "one W repeated over the heads of a layer", ("head-independence",), _shared_heads
        ),
        Planted(
            "cycling-redraw",
            "redraws cycle through three matrices",
            ("redraw-independence",),
            _cycling_redraw,
        ),
        Planted(
            "redraw-reuses-norms",
            "redraws with new directions and the same row norms every time",
            ("redraw-independence",),
            _redraw_reuses_norms,
        ),
        Planted(
            "colliding-data-seed",
            "redraw seeded from the sign of the batch sum: two matrices in all",
            ("data-redraws",),
            _colliding_data_seed,
        ),
        Planted(
            "saturating-data-seed",
            "redraw seeded by int32(ceil(sum(batch)·1e7)): saturates for |sum| > 214.75, so large "
            "batches share two matrices",
            ("data-redraws",),
            _saturating_data_seed,
        ),
        Planted(
            "hashed-data-seed",
            "a correct redraw seeded from the CRC-32 of the batch's bytes: it passes data-redraws",
            (),
            _hashed_data_seed,
        ),
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
            f"float64 causal FAVOR plus {LEAK:g} × the mean of all values: "
            "a leak far below float32 round-off",
            ("causal-future",),
            _tiny_leak,
        ),
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
}
DEFECTS = tuple(name for name, planted in PLANTED.items() if planted.caught_by)


def adapter(name: str) -> Adapter:
    """The planted adapter ``name`` (target ``planted:<name>``)."""
    if name not in PLANTED:
        raise ValueError(f"planted adapter must be one of {tuple(PLANTED)}, got {name!r}")
    return PLANTED[name].build()
