"""What the Triton kernel tests share: the device, the interpreter, inputs, the float64 reference and
its gradients, and the causal gradient comparison on pinned chunks.

Without CUDA the kernels run through Triton's interpreter: ``TRITON_INTERPRET=1`` is set here before
Triton is imported, so every Triton test file imports Triton, torch and the kernels through this
module. Test files skip unless the kernels can run (:data:`REQUIRES_KERNELS`); :func:`gpu` marks the
large-size checks.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import cuda_available

if not cuda_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

torch = pytest.importorskip("torch")
triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")

from estimators.attention import favor  # noqa: E402
from estimators.triton_favor import favor_triton, kernels, plan  # noqa: E402
from estimators.triton_favor import host as host  # noqa: E402
from estimators.triton_favor import supports as supports  # noqa: E402
from estimators.triton_favor import unsupported_reason as unsupported_reason  # noqa: E402

ON_GPU = cuda_available()
DEVICE = "cuda" if ON_GPU else "cpu"
INTERPRETED = type(kernels._key_state_kernel).__name__ == "InterpretedFunction"
REQUIRES_KERNELS = pytest.mark.skipif(
    not ON_GPU and not INTERPRETED, reason="needs CUDA or kernels decorated under TRITON_INTERPRET=1"
)
"""Each Triton test file's ``pytestmark``."""


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


def pin_chunks(monkeypatch):
    """The causal chunks the rows of the causal tests are laid out for, whatever the input dtype: those of
    half-precision inputs, 128 forward rows (64 for d = 128) and 64 backward rows (``launch_config``
    halves them for float32 inputs on a GPU; ``test_every_launch_configuration_is_exact`` in
    ``test_triton`` runs those)."""
    launch_config = plan.launch_config

    def pinned(D, dtype, *device):
        half = launch_config(D, torch.float16)
        return {
            **launch_config(D, dtype, *device),
            **{key: half[key] for key in ("chunk", "grad_chunk")},
        }

    monkeypatch.setattr(plan, "launch_config", pinned)


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
    monkeypatch.setitem(plan.CONFIG, "causal_programs_per_sm", programs)
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
