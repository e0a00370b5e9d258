"""The fused Triton FAVOR kernels against the float64 reference ``favor(..., impl="reference")``.

Without CUDA the kernels run through Triton's interpreter (``TRITON_INTERPRET=1``, set here before
Triton is imported) on CPU tensors at small sizes; with CUDA the same checks run on the GPU, plus the
``gpu``-marked ones at large sizes. All checks are exact identities (Tier 0): the kernels compute
the same function as the reference given the same W, so the only tolerance is rounding — float32
work lands under 1e-5 relative (5e-5 for gradients), fp16/bf16 operands under 3e-3 / 1.5e-2.
"""

from __future__ import annotations

import math
import os

import pytest

from tests.conftest import cuda_available

if not cuda_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

torch = pytest.importorskip("torch")
triton = pytest.importorskip("triton")

import triton.language as tl  # noqa: E402

from estimators.attention import favor  # noqa: E402
from estimators.triton_favor import favor_triton, host, kernels, supports, unsupported_reason  # noqa: E402

ON_GPU = cuda_available()
DEVICE = "cuda" if ON_GPU else "cpu"
INTERPRETED = type(kernels._key_state_kernel).__name__ == "InterpretedFunction"
pytestmark = pytest.mark.skipif(
    not ON_GPU and not INTERPRETED, reason="needs CUDA or kernels decorated under TRITON_INTERPRET=1"
)


def gpu(test):
    """Large sizes: marked ``gpu`` and skipped without a CUDA device."""
    return pytest.mark.gpu(pytest.mark.skipif(not ON_GPU, reason="needs a CUDA device")(test))


FP32_TOLERANCE = 1e-5
GRAD_TOLERANCE = 5e-5  # gradients subtract O(1) terms (dO·v_l − dO·out_i), amplifying float32 rounding
HALF_TOLERANCE = {torch.float16: 3e-3, torch.bfloat16: 1.5e-2, torch.float32: 1e-5}


def make_inputs(seed, B=1, H=2, L=150, d=32, m=24, per_head=True, scale=1.0, dtype=torch.float32):
    """q, k, v (B, H, L, d) and Gaussian W ((H, m, d) or (m, d)), float64 on DEVICE, then ``dtype``."""
    generator = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, L, d, generator=generator, dtype=torch.float64) for _ in range(3))
    W = torch.randn(*((H,) if per_head else ()), m, d, generator=generator, dtype=torch.float64)
    return [x.to(DEVICE) for x in (q * scale, k * scale, v)], W.to(DEVICE)


def relative_error(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


def reference(q, k, v, W, feature, causal):
    return favor(q.double(), k.double(), v.double(), W.double(), feature, causal, impl="reference")


def reference_grads(q, k, v, W, feature, causal, grad_out):
    leaves = [x.double().detach().requires_grad_() for x in (q, k, v)]
    reference(*leaves, W, feature, causal).backward(grad_out.double())
    return [x.grad for x in leaves]


def kernel_grads(q, k, v, W, feature, causal, grad_out):
    leaves = [x.detach().requires_grad_() for x in (q, k, v)]
    favor_triton(*leaves, W, feature, causal).backward(grad_out)
    return [x.grad for x in leaves]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("feature", ["positive", "hyperbolic"])
@pytest.mark.parametrize("per_head", [True, False])
def test_forward_equals_reference_favor(causal, feature, per_head):
    """L = 150 spans three 64-row tiles with a ragged end; causal uses several groups of chunks."""
    (q, k, v), W = make_inputs(1, per_head=per_head)
    out = favor_triton(q.float(), k.float(), v.float(), W.float(), feature, causal)
    assert out.dtype == torch.float32 and out.shape == q.shape and out.device.type == DEVICE
    assert relative_error(out, reference(q, k, v, W, feature, causal)) < FP32_TOLERANCE


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("feature", ["positive", "hyperbolic"])
def test_gradients_equal_reference_autograd(causal, feature):
    (q, k, v), W = make_inputs(2, L=130, m=20)
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(3)).to(DEVICE)
    got = kernel_grads(q.float(), k.float(), v.float(), W.float(), feature, causal, grad_out)
    want = reference_grads(q, k, v, W, feature, causal, grad_out)
    for name, a, b in zip("qkv", got, want, strict=True):
        assert relative_error(a, b) < GRAD_TOLERANCE, name


OUTLIER_ROW = 200  # inside forward chunk 128–255 and backward chunk 192–255, after keys of the same chunk


def pin_chunks(monkeypatch):
    """The causal chunks the rows of the tests below are laid out for, whatever the input dtype: those of
    half-precision inputs, 128 forward rows (64 for d = 128) and 64 backward rows (``launch_config``
    halves them for float32 inputs on a GPU; :func:`test_every_launch_configuration_is_exact` runs those)."""
    launch_config = host.launch_config

    def pinned(D, dtype, *device):
        half = launch_config(D, torch.float16)
        return {
            **launch_config(D, dtype, *device),
            **{key: half[key] for key in ("chunk", "grad_chunk")},
        }

    monkeypatch.setattr(host, "launch_config", pinned)


@pytest.fixture
def chunk_geometry(monkeypatch):
    pin_chunks(monkeypatch)


def make_causal_inputs(seed, dtype=torch.float32, w_scale=1.0, outlier=None, **sizes):
    """:func:`make_inputs` (per-head W for an outlier) with W scaled by ``w_scale``, in ``dtype``; W float64.

    Row ``outlier`` of k becomes W[:, 0]·d^{1/4}, the key of largest log-amplitude b = ‖w_0‖²/2 for
    feature 0: b ≈ 150 at w_scale = 3 (exp overflows float32), about 140 above the other keys.
    """
    (q, k, v), W = make_inputs(seed, **sizes)
    W = W * w_scale
    if outlier is not None:
        k[:, :, outlier] = W[:, 0] * q.shape[-1] ** 0.25
    return [x.to(dtype) for x in (q, k, v)], W


def causal_gradient_errors(monkeypatch, seed, programs, feature="positive", dtype=torch.float32, **sizes):
    """Relative errors of the kernels' causal (dq, dk, dv) against float64 reference autograd.

    ``programs`` sets ``causal_programs_per_sm``: on CPU (one "SM") the B·H heads then scan
    cdiv(programs, B·H) groups of chunks (fewer when there are fewer chunks), each with its carried
    prefix state forwards and suffix state backwards. ``sizes`` go to :func:`make_causal_inputs`;
    "<name> before" compares the rows before the outlier only.
    """
    monkeypatch.setitem(host.CONFIG, "causal_programs_per_sm", programs)
    pin_chunks(monkeypatch)
    (q, k, v), W = make_causal_inputs(seed, dtype, **sizes)
    outlier = sizes.get("outlier")
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(seed + 1)).to(DEVICE, dtype)
    got = kernel_grads(q, k, v, W.float(), feature, True, grad_out)
    want = reference_grads(q, k, v, W, feature, True, grad_out)
    errors = {"finite": all(bool(torch.isfinite(a).all()) for a in got)}
    for name, a, b in zip("qkv", got, want, strict=True):
        errors[name] = relative_error(a, b)
        errors[f"{name} before"] = relative_error(a[:, :, :outlier], b[:, :, :outlier])
    return errors


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


BF16_INTERPRETED = pytest.mark.skipif(
    INTERPRETED, reason="Triton's interpreter multiplies bfloat16 matrices wrongly (numpy has no bfloat16)"
)


@pytest.mark.parametrize("dtype", [torch.float16, pytest.param(torch.bfloat16, marks=BF16_INTERPRETED)])
@pytest.mark.parametrize("causal", [False, True])
def test_half_precision_inputs_accumulate_in_float32(dtype, causal):
    (q, k, v), W = make_inputs(6, L=140, d=32, m=32)
    out = favor_triton(q.to(dtype), k.to(dtype), v.to(dtype), W.float(), "positive", causal)
    assert out.dtype == dtype
    want = reference(q.to(dtype), k.to(dtype), v.to(dtype), W, "positive", causal)
    assert relative_error(out, want) < HALF_TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [torch.float16, pytest.param(torch.bfloat16, marks=BF16_INTERPRETED)])
def test_causal_gradients_of_half_precision_inputs(monkeypatch, dtype):
    errors = causal_gradient_errors(monkeypatch, 22, 4, dtype=dtype, L=200, d=32, m=32)
    for name in "qkv":
        assert errors[name] < HALF_TOLERANCE[dtype], (name, errors)


SMALL_SHARED_MEMORY = 99 * 1024  # sm_86, sm_89
LAUNCH_CONFIGURATIONS = [  # (d, the input dtype and shared memory per block the launch parameters are for)
    pytest.param(32, torch.float32, host.LARGE_SHARED_MEMORY, id="d32-float32"),
    pytest.param(128, torch.float32, host.LARGE_SHARED_MEMORY, id="d128-float32-chunks_of_32"),
    pytest.param(64, torch.float16, SMALL_SHARED_MEMORY, id="d64-half-99KiB"),
    pytest.param(128, torch.float16, SMALL_SHARED_MEMORY, id="d128-half-99KiB"),
]


@pytest.mark.parametrize(("d", "dtype", "shared_limit"), LAUNCH_CONFIGURATIONS)
def test_every_launch_configuration_is_exact(monkeypatch, d, dtype, shared_limit):
    """Every launch configuration ``launch_config`` can choose (smaller feature tiles and chunks for float32
    inputs and for GPUs with less shared memory, causal chunks shorter than the key passes' 64-row tiles)
    computes the reference's output and gradients, run here on float32 inputs: L = 150 gives 5 chunks of
    32 rows in 2 groups, m = 40 two or three feature blocks with padded rows."""
    config = host.launch_config(d, dtype, shared_limit)
    monkeypatch.setattr(host, "launch_config", lambda *args: config)
    (q, k, v), W = make_inputs(31, L=150, d=d, m=40)
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(32)).to(DEVICE)
    for causal in (False, True):
        out = favor_triton(q.float(), k.float(), v.float(), W.float(), "positive", causal)
        assert relative_error(out, reference(q, k, v, W, "positive", causal)) < FP32_TOLERANCE, causal
        got = kernel_grads(q.float(), k.float(), v.float(), W.float(), "positive", causal, grad_out)
        want = reference_grads(q, k, v, W, "positive", causal, grad_out)
        for name, a, b in zip("qkv", got, want, strict=True):
            assert relative_error(a, b) < GRAD_TOLERANCE, (causal, name)


@pytest.mark.parametrize("causal", [False, True])
def test_stabilizers_keep_large_inputs_finite(causal):
    """|q·w| up to ~150 overflows an unshifted float32 exp; the shifts cancel and keep it finite."""
    (q, k, v), W = make_inputs(7, L=100, m=16, scale=6.0)
    out = favor_triton(q.float(), k.float(), v.float(), W.float(), "positive", causal)
    assert torch.isfinite(out).all()
    assert relative_error(out, reference(q, k, v, W, "positive", causal)) < 1e-4


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


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (dict(feature="trig"), "feature"),
        (dict(key_padding_mask=True), "key_padding_mask"),
        (dict(d=48), "head dimension d"),
        (dict(m=513), "rows"),
        (dict(W_grad=True), "W must not require grad"),
        (dict(v_dtype=torch.float64), "dtype"),
    ],
)
def test_unsupported_calls_are_refused_with_a_reason(change, needle):
    d = change.get("d", 32)
    (q, k, v), W = make_inputs(9, L=16, d=d, m=change.get("m", 8))
    q, k, W = q.float(), k.float(), W.float().requires_grad_(change.get("W_grad", False))
    v = v.to(change.get("v_dtype", torch.float32))
    mask = torch.ones(q.shape[:2] + q.shape[2:3], dtype=torch.bool) if "key_padding_mask" in change else None
    feature = change.get("feature", "positive")
    assert not supports(q, k, v, W, feature, False, mask)
    assert needle in unsupported_reason(q, k, v, W, feature, False, mask)
    if mask is None:
        with pytest.raises(ValueError, match=needle):
            favor_triton(q, k, v, W, feature)


def test_non_tensor_inputs_raise_type_error():
    (q, k, v), W = make_inputs(10, L=16)
    with pytest.raises(TypeError, match="torch tensors"):
        favor_triton(q.cpu().numpy(), k, v, W)


@gpu
@pytest.mark.parametrize(
    ("d", "m", "feature", "dtype", "causal"),
    [
        (32, 64, "positive", torch.float16, False),
        (64, 256, "positive", torch.float16, True),
        (64, 256, "hyperbolic", torch.bfloat16, False),
        (128, 512, "hyperbolic", torch.float16, True),
        (64, 266, "positive", torch.float32, True),
        (128, 100, "positive", torch.bfloat16, True),
    ],
)
def test_large_sizes_on_gpu(d, m, feature, dtype, causal):
    (q, k, v), W = make_inputs(11, B=2, H=4, L=5000, d=d, m=m, per_head=False)
    out = favor_triton(q.to(dtype), k.to(dtype), v.to(dtype), W.float(), feature, causal)
    want = reference(q.to(dtype), k.to(dtype), v.to(dtype), W, feature, causal)
    assert relative_error(out, want) < HALF_TOLERANCE[dtype]


@gpu
@pytest.mark.parametrize(("causal", "d"), [(False, 64), (True, 64), (False, 128), (True, 128)])
def test_large_gradients_on_gpu(causal, d):
    (q, k, v), W = make_inputs(12, B=1, H=4, L=3000, d=d, m=128)
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(13)).to(DEVICE)
    got = kernel_grads(q.float(), k.float(), v.float(), W.float(), "positive", causal, grad_out)
    want = reference_grads(q, k, v, W, "positive", causal, grad_out)
    for name, a, b in zip("qkv", got, want, strict=True):
        assert relative_error(a, b) < 1e-4, name


@gpu
@pytest.mark.parametrize(
    ("d", "m", "feature", "dtype", "outlier"),
    [
        (64, 256, "positive", torch.float16, None),
        (128, 512, "hyperbolic", torch.float16, None),
        (64, 266, "hyperbolic", torch.bfloat16, None),
        (32, 100, "positive", torch.float32, None),
        (128, 100, "positive", torch.float32, 3000),
    ],
)
def test_large_causal_gradients_on_gpu(monkeypatch, d, m, feature, dtype, outlier):
    """L = 4100 (ragged last chunk), the launch configuration's own groups of chunks; per-head W with the
    outlier key."""
    programs = host.CONFIG["causal_programs_per_sm"]
    sizes = dict(B=2, H=4, L=4100, d=d, m=m, per_head=outlier is not None, feature=feature, dtype=dtype)
    if outlier is not None:
        sizes.update(w_scale=3.0, outlier=outlier)
    errors = causal_gradient_errors(monkeypatch, 23, programs, **sizes)
    tolerance = {**HALF_TOLERANCE, torch.float32: 1e-4}[dtype]
    assert errors["finite"]
    for name in ("q", "k", "v", "q before", "k before", "v before"):
        assert errors[name] < tolerance, (name, errors)


@gpu
def test_attention_favor_dispatches_cuda_tensors_to_the_kernels():
    (q, k, v), W = make_inputs(14, L=300)
    args = [x.half() for x in (q, k, v)]
    auto = favor(*args, W.float(), "positive", True)
    assert torch.equal(auto, favor_triton(*args, W.float(), "positive", True))
