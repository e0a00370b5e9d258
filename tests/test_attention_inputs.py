"""Attention's inputs: key masks, denominators and argument checks.

Masked keys leave numerator and denominator alike (the masked quadratic form, masked softmax with
exact weights), rows without a visible key are zero; trig denominators <= 0 and underflowing ones
raise unless guarded; NaN inputs, wrong shapes, dtypes, options, a square mask on unbatched inputs
and mixed backends are refused with an error naming the argument.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from estimators import projections
from estimators.attention import DenominatorError, exact, favor, favor_from_features

from .attention_support import (
    DV,
    M_FEATURES,
    B,
    D,
    H,
    L,
    inputs,
    key_mask,
    projection,
    quadratic,
    relative_error,
    unshifted_features,
)
from .conftest import to_numpy

# ---- masks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_mask_removes_keys_from_numerator_and_denominator(to_backend, causal):
    q, k, v = inputs()
    W = projection(per_head=True)
    keep = np.random.default_rng(3).random((B, 1, L)) > 0.4
    keep[..., 0] = True
    phi_q, phi_k = unshifted_features("positive", q, W), unshifted_features("positive", k, W)
    out = favor(
        *map(to_backend, (q, k, v, W)),
        causal=causal,
        key_padding_mask=key_mask(to_backend, keep),
        chunk_size=3,
    )
    assert relative_error(out, quadratic(phi_q, phi_k, v, causal, keep)) < 1e-10


@pytest.mark.parametrize("causal", [False, True])
def test_masked_favor_with_exact_weights_equals_masked_exact(to_backend, causal):
    """With features whose inner products are exactly exp(qᵀk/√d) (rows of A against the identity),
    the masked FAVOR algebra must reproduce masked softmax attention, all-masked rows included."""
    q, k, v = inputs(scale=1.0)
    keep = np.random.default_rng(4).random((B, 1, L)) > 0.5
    keep[0, 0, :] = False
    keep[1, 0, :3] = False
    mask = key_mask(to_backend, keep)
    scores = np.exp(q @ np.swapaxes(k, -1, -2) / math.sqrt(D))
    identity = np.broadcast_to(np.eye(L), scores.shape)
    estimate = favor_from_features(*map(to_backend, (scores, identity, v)), causal, mask, chunk_size=4)
    reference = exact(*map(to_backend, (q, k, v)), causal=causal, key_padding_mask=mask)
    assert relative_error(estimate, to_numpy(reference)) < 1e-12
    assert np.all(to_numpy(reference)[0] == 0)


def test_all_masked_rows_are_zero_in_favor(to_backend):
    q, k, v = inputs()
    keep = np.ones((B, 1, L), dtype=bool)
    keep[0] = False
    keep[1, :, :4] = False
    args = tuple(map(to_backend, (q, k, v, projection())))
    for causal in (False, True):
        out = to_numpy(favor(*args, causal=causal, key_padding_mask=key_mask(to_backend, keep)))
        assert np.all(out[0] == 0) and np.all(np.isfinite(out))
    assert np.all(out[1, :, :4] == 0) and np.all(out[1, :, 4:] != 0)


@pytest.mark.parametrize("denominator", ["raise", "zero", "raw"])
@pytest.mark.parametrize("bad", ["q", "k", "v"])
def test_non_finite_inputs_are_named_in_every_mode(to_backend, bad, denominator):
    """The hot path reads no input in full: with ``denominator="raise"`` a NaN is found through the
    bad rows it causes, then named; the other modes check the inputs first. Either way the error
    names the argument, and no output is silently non-finite."""
    q, k, v = inputs()
    arrays = {"q": q, "k": k, "v": v}
    arrays[bad][0, 1, 3, 0] = np.nan
    args = [to_backend(arrays[name]) for name in ("q", "k", "v")]
    for causal in (False, True):
        with pytest.raises(ValueError, match=f"{bad} contains NaN or Inf"):
            favor(*args, to_backend(projection()), causal=causal, denominator=denominator)


# ---- denominators and bad inputs -----------------------------------------------------------------


def test_nonpositive_trig_denominator_raises_or_is_guarded():
    """Trig features can give D̂_i <= 0 (Performers §2.3): an error by default, zeros on request."""
    q, k, v = inputs(scale=3.0)
    W = projections.iid(2, D, seed=0)
    with pytest.raises(DenominatorError, match="denominator"):
        favor(q, k, v, W, feature="trig")
    guarded = favor(q, k, v, W, feature="trig", denominator="zero")
    assert np.all(np.isfinite(guarded)) and np.any(np.all(guarded == 0, axis=-1))


@pytest.mark.parametrize("causal", [False, True])
def test_a_finite_row_whose_sum_overflows_is_not_a_bad_row(causal, backend, to_backend):
    """Rows are screened by their sums and only a non-finite sum is checked entry by entry: a float32
    row of two finite 3e38 values (sum inf) is a valid output; a numerator that overflows (4 · 3e38)
    is not. A screen that trusted the sum alone would raise on the first."""
    features = to_backend(np.ones((1, 1)), "float32")
    v = to_backend(np.array([[3e38, 3e38]]), "float32")
    out = favor_from_features(features, features, v, causal=causal)
    np.testing.assert_array_equal(to_numpy(out), to_numpy(v))
    with pytest.raises(DenominatorError):
        favor_from_features(features * 4.0, features, v, causal=causal)


def test_underflowing_denominator_raises():
    """A query and its only key pointing in opposite directions with huge norms: D̂ underflows."""
    W = projection(m=8)
    q = np.zeros((1, D))
    k = np.zeros((1, D))
    q[0, 0], k[0, 0] = 1e3, -1e3
    v = np.ones((1, DV))
    np.testing.assert_array_equal(exact(q, k, v), v)
    with pytest.raises(DenominatorError):
        favor(q, k, v, W)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda a: {**a, "k": a["k"][..., :3]}, ValueError, "d=3"),
        (lambda a: {**a, "v": a["v"][..., :5, :]}, ValueError, "same length M"),
        (lambda a: {**a, "q": a["q"][..., :5, :], "causal": True}, ValueError, "L == M"),
        (lambda a: {**a, "W": a["W"][..., :3]}, ValueError, "W has d=3"),
        (lambda a: {**a, "W": np.ones((5, M_FEATURES, D))}, ValueError, "must broadcast"),
        (lambda a: {**a, "v": a["v"].astype(np.float32)}, TypeError, "one dtype"),
        (lambda a: {**a, "key_padding_mask": np.ones(L)}, TypeError, "bool"),
        (lambda a: {**a, "key_padding_mask": np.ones(L - 1, dtype=bool)}, ValueError, "M=11"),
        (lambda a: {**a, "feature": "softmax"}, ValueError, "feature must be one of"),
        (lambda a: {**a, "stabilizer": "row"}, ValueError, "stabilizer"),
        (lambda a: {**a, "eps": -1.0}, ValueError, "eps"),
        (lambda a: {**a, "chunk_size": 0}, ValueError, "chunk_size"),
        (lambda a: {**a, "impl": "cuda"}, ValueError, "impl"),
        (lambda a: {**a, "denominator": "clip"}, ValueError, "denominator"),
        (lambda a: {**a, "causal": 1}, TypeError, "causal"),
        (lambda a: {**a, "k": a["k"][..., :0, :], "v": a["v"][..., :0, :]}, ValueError, "at least one row"),
        (lambda a: {**a, "feature_options": [{}, {}, {}]}, TypeError, "feature_options"),
        (lambda a: {**a, "q": np.full_like(a["q"], np.nan)}, ValueError, "NaN"),
        (lambda a: {**a, "q": a["q"].tolist()}, TypeError, "q must be"),
        (lambda a: {**a, "W": a["W"][:0]}, ValueError, "W must have at least one projection row"),
        (lambda a: {**a, "key_padding_mask": np.ones((5, 1, 1, L), bool)}, ValueError, "grow the batch"),
        (lambda a: {**a, "predict_error": 1}, TypeError, "predict_error must be a bool"),
        (lambda a: {**a, "predict_error": True, "feature": "oprf"}, ValueError, "predict_error needs"),
    ],
)
def test_bad_inputs_name_the_argument(change, error, match):
    q, k, v = inputs()
    arguments = change({"q": q, "k": k, "v": v, "W": projection()})
    with pytest.raises(error, match=match):
        favor(**arguments)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("attend", [exact, favor])
def test_a_square_mask_on_unbatched_inputs_is_refused(attend, causal):
    """2-D q, k, v (L, d) with an (L, L) mask (the shape of PyTorch's attn_mask): broadcasting it as
    a key mask would return an (L, L, d_v) output; it is refused, naming the argument."""
    q, k, v = (a[0, 0] for a in inputs())
    W = () if attend is exact else (projection(),)
    mask = np.tril(np.ones((L, L), dtype=bool))
    with pytest.raises(ValueError, match=r"key_padding_mask has leading dims \(11,\) that would grow"):
        attend(q, k, v, *W, causal=causal, key_padding_mask=mask)


def test_a_key_mask_broadcasting_into_the_batch_is_accepted():
    q, k, v = inputs()
    keep = np.arange(L) % 3 != 0
    for mask in (keep, keep[None, None], np.broadcast_to(keep, (H, L))):
        np.testing.assert_allclose(
            favor(q, k, v, projection(), key_padding_mask=mask),
            favor(q, k, v, projection(), key_padding_mask=np.broadcast_to(keep, (B, H, L))),
            rtol=0,
            atol=0,
        )


def test_mixed_backends_are_rejected():
    torch = pytest.importorskip("torch")
    q, k, v = inputs()
    with pytest.raises(TypeError, match="one backend"):
        exact(q, torch.tensor(k), v)
    with pytest.raises(TypeError, match="W"):
        favor(torch.tensor(q), torch.tensor(k), torch.tensor(v), projection())
