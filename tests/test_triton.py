"""The fused Triton FAVOR kernels against the float64 reference ``favor(..., impl="reference")``.

Without CUDA the kernels run through Triton's interpreter (``TRITON_INTERPRET=1``, set here before
Triton is imported) on CPU tensors at small sizes; with CUDA the same checks run on the GPU, plus the
``gpu``-marked ones at large sizes. All checks are exact identities (Tier 0): the kernels compute
the same function as the reference given the same W, so the only tolerance is rounding — float32
work lands under 1e-5 relative (5e-5 for gradients), fp16/bf16 operands under 3e-3 / 1.5e-2.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import cuda_available

if not cuda_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from estimators.attention import favor  # noqa: E402
from estimators.triton_favor import favor_triton, host, kernels, supports, unsupported_reason  # noqa: E402

ON_GPU = cuda_available()
DEVICE = "cuda" if ON_GPU else "cpu"
INTERPRETED = type(kernels._key_state_kernel).__name__ == "InterpretedFunction"
pytestmark = pytest.mark.skipif(
    not ON_GPU and not INTERPRETED, reason="needs CUDA or kernels decorated under TRITON_INTERPRET=1"
)
gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not ON_GPU, reason="needs a CUDA device")

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


def test_causal_backward_carries_state_across_segments(monkeypatch):
    """Backward in several recomputed segments gives the gradients of the one-segment computation."""
    monkeypatch.setattr(host, "CAUSAL_BACKWARD_ELEMENTS", 2 * 64 * 16)
    (q, k, v), W = make_inputs(4, L=200, m=16)
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(5)).to(DEVICE)
    got = kernel_grads(q.float(), k.float(), v.float(), W.float(), "positive", True, grad_out)
    want = reference_grads(q, k, v, W, "positive", True, grad_out)
    for name, a, b in zip("qkv", got, want, strict=True):
        assert relative_error(a, b) < GRAD_TOLERANCE, name


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


@pytest.mark.parametrize("causal", [False, True])
def test_stabilizers_keep_large_inputs_finite(causal):
    """|q·w| up to ~150 overflows an unshifted float32 exp; the shifts cancel and keep it finite."""
    (q, k, v), W = make_inputs(7, L=100, m=16, scale=6.0)
    out = favor_triton(q.float(), k.float(), v.float(), W.float(), "positive", causal)
    assert torch.isfinite(out).all()
    assert relative_error(out, reference(q, k, v, W, "positive", causal)) < 1e-4


def test_causal_output_ignores_later_positions():
    """Rows of chunks before a change are bit-identical, even for a huge later key (no global max)."""
    (q, k, v), W = make_inputs(8, L=200, m=16)
    args = [x.float() for x in (q, k, v)]
    before = favor_triton(*args, W.float(), "positive", True)
    k2, v2 = args[1].clone(), args[2].clone()
    k2[:, :, 150] *= 40.0
    v2[:, :, 130:] += 1.0
    after = favor_triton(args[0], k2, v2, W.float(), "positive", True)
    assert torch.equal(before[:, :, :128], after[:, :, :128])
    assert torch.isfinite(after).all()


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
@needs_cuda
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
@needs_cuda
@pytest.mark.parametrize(("causal", "d"), [(False, 64), (True, 64), (False, 128), (True, 128)])
def test_large_gradients_on_gpu(causal, d):
    (q, k, v), W = make_inputs(12, B=1, H=4, L=3000, d=d, m=128)
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(13)).to(DEVICE)
    got = kernel_grads(q.float(), k.float(), v.float(), W.float(), "positive", causal, grad_out)
    want = reference_grads(q, k, v, W, "positive", causal, grad_out)
    for name, a, b in zip("qkv", got, want, strict=True):
        assert relative_error(a, b) < 1e-4, name


@gpu
@needs_cuda
def test_attention_favor_dispatches_cuda_tensors_to_the_kernels():
    (q, k, v), W = make_inputs(14, L=300)
    args = [x.half() for x in (q, k, v)]
    auto = favor(*args, W.float(), "positive", True)
    assert torch.equal(auto, favor_triton(*args, W.float(), "positive", True))
