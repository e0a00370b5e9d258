"""The fused Triton FAVOR kernels against the float64 reference ``favor(..., impl="reference")``.

Without CUDA the kernels run through Triton's interpreter on CPU tensors at small sizes (see
:mod:`tests.triton_support`); with CUDA the same checks run on the GPU. Here: forward and gradients,
half-precision inputs, every launch configuration, the stabilizers, and the calls the kernels refuse.
The causal scan's groups of chunks and frames are checked in ``test_triton_causal``, large sizes on a
CUDA device in ``test_triton_gpu``. All checks are exact identities (Tier 0): the kernels compute
the same function as the reference given the same W, so the only tolerance is rounding — float32
work lands under 1e-5 relative (5e-5 for gradients), fp16/bf16 operands under 3e-3 / 1.5e-2.
"""

from __future__ import annotations

import pytest

from .triton_support import (
    DEVICE,
    FP32_TOLERANCE,
    GRAD_TOLERANCE,
    HALF_TOLERANCE,
    INTERPRETED,
    REQUIRES_KERNELS,
    causal_gradient_errors,
    favor_triton,
    kernel_grads,
    make_inputs,
    plan,
    reference,
    reference_grads,
    relative_error,
    supports,
    torch,
    unsupported_reason,
)

pytestmark = REQUIRES_KERNELS


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
    pytest.param(32, torch.float32, plan.LARGE_SHARED_MEMORY, id="d32-float32"),
    pytest.param(128, torch.float32, plan.LARGE_SHARED_MEMORY, id="d128-float32-chunks_of_32"),
    pytest.param(64, torch.float16, SMALL_SHARED_MEMORY, id="d64-half-99KiB"),
    pytest.param(128, torch.float16, SMALL_SHARED_MEMORY, id="d128-half-99KiB"),
]


@pytest.mark.parametrize(("d", "dtype", "shared_limit"), LAUNCH_CONFIGURATIONS)
def test_every_launch_configuration_is_exact(monkeypatch, d, dtype, shared_limit):
    """Every launch configuration ``launch_config`` can choose (smaller feature tiles and chunks for float32
    inputs and for GPUs with less shared memory, causal chunks shorter than the key passes' 64-row tiles)
    computes the reference's output and gradients, run here on float32 inputs: L = 150 gives 5 chunks of
    32 rows in 2 groups, m = 40 two or three feature blocks with padded rows."""
    config = plan.launch_config(d, dtype, shared_limit)
    monkeypatch.setattr(plan, "launch_config", lambda *args: config)
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
