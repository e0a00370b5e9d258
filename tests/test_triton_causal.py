"""The causal Triton kernels' chunked scans against the float64 reference, at small sizes.

The causal forward scans each head's chunks in groups with a carried prefix state, the backward
adds suffix states carried between groups in reverse; every key is carried in its own running-maximum
frame. Checked here, on chunks pinned to the half-precision geometry (:func:`chunk_geometry`): the
gradients for several groupings, an outlier key mid-chunk (b ≈ 150, exp overflows float32) in the
forward and the gradients, outputs that ignore later positions, and planted bugs in the reverse group
scan and the frames that these checks reject by far.
"""

from __future__ import annotations

import math

import pytest

from .triton_support import (
    FP32_TOLERANCE,
    GRAD_TOLERANCE,
    INTERPRETED,
    REQUIRES_KERNELS,
    causal_gradient_errors,
    favor_triton,
    host,
    kernels,
    make_causal_inputs,
    pin_chunks,
    reference,
    relative_error,
    tl,
    torch,
    triton,
)

pytestmark = REQUIRES_KERNELS

OUTLIER_ROW = 200  # inside forward chunk 128–255 and backward chunk 192–255, after keys of the same chunk


@pytest.fixture
def chunk_geometry(monkeypatch):
    pin_chunks(monkeypatch)


CAUSAL_GRADIENT_CASES = [  # the backward's chunk is 64 rows; L is never a multiple of it
    pytest.param(dict(d=16, m=40, L=400, programs=4), id="d16-positive-per_head-2_groups_of_4_3_chunks"),
    pytest.param(
        dict(d=32, m=70, L=300, programs=6, feature="hyperbolic", per_head=False),
        id="d32-hyperbolic-shared-3_groups_of_2_2_1_chunks-3_feature_blocks",
    ),
    pytest.param(
        dict(d=32, m=24, L=150, programs=2, per_head=False), id="d32-positive-shared-1_group_of_3_chunks"
    ),
    pytest.param(
        dict(d=16, m=20, L=270, programs=8, feature="hyperbolic", B=2), id="d16-hyperbolic-B2-2_groups_of_3_2"
    ),
    pytest.param(dict(d=128, m=20, L=200, programs=8), id="d128-positive-per_head-4_groups_of_1_chunk"),
]


@pytest.mark.parametrize("case", CAUSAL_GRADIENT_CASES)
def test_causal_gradients_equal_reference_autograd(monkeypatch, case):
    """The Triton causal backward (forward scan, suffix states by group, reverse scan) is exact."""
    errors = causal_gradient_errors(monkeypatch, 20, **case)
    for name in "qkv":
        assert errors[name] < GRAD_TOLERANCE, (name, errors)


def outlier_gradient_errors(monkeypatch):
    """:func:`causal_gradient_errors`, outlier key at row 200: L = 400, groups of two 64-row chunks."""
    return causal_gradient_errors(monkeypatch, 21, 8, L=400, m=16, w_scale=3.0, outlier=OUTLIER_ROW)


def test_causal_gradients_survive_an_outlier_key_mid_chunk(monkeypatch):
    """A key with b ≈ 150 (exp overflows float32) at row 200, mid-chunk: the gradients stay exact.

    Every key is carried in its own running-maximum frame c_l (the largest ρ up to l) and queries reach
    it through factors exp(c_l − c_i) ≤ 1: no exponent is positive, and the jump of c at the outlier
    flushes neither the earlier keys of its chunk nor the gradients of earlier rows (queries before it
    see the earlier, smaller frames). Rows after the outlier have dq and dk of ~1e-13 (saturated
    attention), compared in the whole-tensor error only.
    """
    errors = outlier_gradient_errors(monkeypatch)
    assert errors["finite"]
    for name in ("q", "k", "v", "q before", "k before", "v before"):
        assert errors[name] < GRAD_TOLERANCE, (name, errors)


def _zero_suffix_states(scan):
    def planted(s, z, t, frames, plan, reverse):
        scan(s, z, t, frames, plan, reverse)
        if reverse:
            s.zero_(), z.zero_()

    return planted


def _unscaled_suffix_frames(scan):
    def planted(s, z, t, frames, plan, reverse):
        scan(s, z, torch.zeros_like(t) if reverse else t, torch.zeros_like(frames) if reverse else frames,
             plan, reverse)  # fmt: skip

    return planted


@pytest.mark.parametrize(
    ("plant", "outlier"),
    [
        pytest.param(_zero_suffix_states, None, id="suffix_state_not_carried_across_groups"),
        pytest.param(_zero_suffix_states, OUTLIER_ROW, id="suffix_state_not_carried_across_groups-outlier"),
        pytest.param(
            _unscaled_suffix_frames, OUTLIER_ROW, id="suffix_states_summed_without_frame_factors-outlier"
        ),
    ],
)
def test_causal_gradient_check_catches_planted_bugs(monkeypatch, plant, outlier):
    """The gradient comparison above fails, by far, when the reverse group scan is broken.

    Frame factors matter only where the running key maximum rises between groups: the outlier (row 200,
    in chunk 3 of 0..6, groups of two chunks) lifts the frames of the groups after it far above the
    frames of those before it.
    """
    monkeypatch.setattr(host, "_scan_groups", plant(host._scan_groups))
    sizes = dict(L=400, m=16) if outlier is None else dict(L=400, m=16, w_scale=3.0, outlier=outlier)
    errors = causal_gradient_errors(monkeypatch, 21, 8, **sizes)
    assert not errors["finite"] or max(errors["k"], errors["v"]) > 100 * GRAD_TOLERANCE, errors


def outlier_forward_error(feature="positive"):
    """Relative error of the causal forward (float32) against the float64 reference, with the outlier key
    at row 200 (``inf`` where an output is not finite); also over rows 128–199 alone, the rows of its
    chunk before it (a chunk-wide shift flushes their denominators to 0)."""
    (q, k, v), W = make_causal_inputs(21, L=400, m=16, w_scale=3.0, outlier=OUTLIER_ROW)
    out = favor_triton(q, k, v, W.float(), feature, True)
    if not torch.isfinite(out).all():
        return math.inf
    want = reference(q, k, v, W, feature, True)
    return max(
        relative_error(out, want), relative_error(out[:, :, 128:OUTLIER_ROW], want[:, :, 128:OUTLIER_ROW])
    )


@pytest.mark.parametrize("feature", ["positive", "hyperbolic"])
@pytest.mark.usefixtures("chunk_geometry")
def test_causal_outlier_key_mid_chunk_matches_reference(feature):
    assert outlier_forward_error(feature) < FP32_TOLERANCE


def future_change(last=170):
    """Largest relative change of an output row i ≤ ``last`` when every key and value after it changes.

    ``last`` lies mid-way through chunk 128–255; keys and values after it are redrawn, and the new keys
    include the outlier key at row 200 of the same chunk (b ≈ 150, about 140 above every earlier key).
    """
    (q, k, v), W = make_causal_inputs(8, L=300, m=16, w_scale=3.0)
    (_, k_new, v_new), _ = make_causal_inputs(9, L=300, m=16, w_scale=3.0)
    k_new[:, :, : last + 1], v_new[:, :, : last + 1] = k[:, :, : last + 1], v[:, :, : last + 1]
    k_new[:, :, OUTLIER_ROW] = W[:, 0].float() * q.shape[-1] ** 0.25
    before = favor_triton(q, k, v, W.float(), "positive", True)
    after = favor_triton(q, k_new, v_new, W.float(), "positive", True)
    change = (after - before)[:, :, : last + 1].norm(dim=-1) / before[:, :, : last + 1].norm(dim=-1)
    return change.nan_to_num(math.inf).max().item()


@pytest.mark.usefixtures("chunk_geometry")
def test_causal_output_ignores_later_positions():
    """No frame looks past its row: outputs at i ≤ 170 stay put (float32 rounding at most) when later keys
    and values change, one of them an outlier key later in the same chunk."""
    assert future_change() < 1e-6


def _chunk_wide_frames(monkeypatch):
    """Planted: every key of a chunk shifted by the chunk's key maximum, later keys included."""
    prefix_states = host._prefix_states

    def planted(k, v, plan, chunk, chunks_per_group):
        s, z, (group_frames, chunk_frames, _) = prefix_states(k, v, plan, chunk, chunks_per_group)
        rows = chunk_frames.repeat_interleave(chunk, dim=1)[:, : plan.L].contiguous()
        return s, z, (group_frames, chunk_frames, rows)

    monkeypatch.setattr(host, "_prefix_states", planted)


@triton.jit
def _mask_without_frames(c_rows, BLOCK_L: tl.constexpr):
    """The causal mask alone, in place of :func:`estimators.triton_favor.kernels._frame_factors`."""
    offs = tl.arange(0, BLOCK_L)
    return tl.where(offs[:, None] >= offs[None, :], 1.0, 0.0) + 0.0 * c_rows[None, :]


def _no_frame_factors(monkeypatch):
    """Planted: in-chunk keys enter in their own frames, without the factor exp(c_l − c_i)."""
    monkeypatch.setattr(kernels, "_frame_factors", _mask_without_frames)


INTERPRETER_ONLY = pytest.mark.skipif(
    not INTERPRETED, reason="swaps a Triton function that kernels compile in"
)
FRAME_PLANTS = [  # (plant, check, the check's tolerance)
    pytest.param(_chunk_wide_frames, outlier_forward_error, FP32_TOLERANCE, id="chunk_wide_shift-outlier"),
    pytest.param(_chunk_wide_frames, future_change, 1e-6, id="chunk_wide_shift-future"),
    pytest.param(
        _no_frame_factors,
        outlier_forward_error,
        FP32_TOLERANCE,
        id="no_frame_factor-outlier",
        marks=INTERPRETER_ONLY,
    ),
]


@pytest.mark.filterwarnings("ignore:.*encountered in divide:RuntimeWarning")  # the planted NaNs
@pytest.mark.parametrize(("plant", "check", "tolerance"), FRAME_PLANTS)
@pytest.mark.usefixtures("chunk_geometry")
def test_causal_frame_checks_catch_planted_bugs(monkeypatch, plant, check, tolerance):
    """The checks above fail, by far, for the chunk-wide shift this code had (NaN on rows 128–199, and
    rows before a later outlier of their chunk change) and for a missing in-chunk frame factor."""
    plant(monkeypatch)
    assert check() > 100 * tolerance


@INTERPRETER_ONLY
def test_causal_gradient_check_catches_a_missing_frame_factor(monkeypatch):
    _no_frame_factors(monkeypatch)
    errors = outlier_gradient_errors(monkeypatch)
    assert not errors["finite"] or max(errors["q"], errors["k"], errors["v"]) > 100 * GRAD_TOLERANCE, errors
