"""The Triton kernels at large sizes on a CUDA device (``gpu``-marked, skipped without one).

L up to 5000 with B = 2, H = 4, feature maps of up to 512 rows, half precision and float32, causal
and not; the causal gradients with the launch configuration's own groups of chunks, one case with an
outlier key; and ``favor`` dispatching CUDA tensors to the kernels.
"""

from __future__ import annotations

import pytest

from .triton_support import (
    DEVICE,
    HALF_TOLERANCE,
    REQUIRES_KERNELS,
    causal_gradient_errors,
    favor,
    favor_triton,
    gpu,
    kernel_grads,
    make_inputs,
    plan,
    reference,
    reference_grads,
    relative_error,
    torch,
)

pytestmark = REQUIRES_KERNELS


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
    programs = plan.CONFIG["causal_programs_per_sm"]
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
