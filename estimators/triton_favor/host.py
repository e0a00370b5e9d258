"""Host side of the fused FAVOR kernels: launch plans, forward and backward, the autograd Function.

The public API and the algorithms are described in :mod:`estimators.triton_favor`.
"""

from __future__ import annotations

import math
import os

import torch
import triton

from .kernels import (
    NEG_INIT,
    _bidirectional_output_kernel,
    _causal_key_grad_kernel,
    _causal_output_kernel,
    _causal_query_grad_kernel,
    _group_scan_kernel,
    _key_grad_kernel,
    _key_state_kernel,
    _merge_segments_kernel,
    _query_grad_kernel,
    _query_grad_state_kernel,
)
from .plan import Plan, segments

FEATURES = ("positive", "hyperbolic")
HEAD_DIMS = (16, 32, 64, 128)
MAX_PROJECTIONS = 512
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _key_states(k, v, plan, block_l, seg_len, n_seg, key_max=None):
    """Per-segment key states S (BH, n_seg, M̄, d), z, and their shifts t (BH, n_seg, NJB).

    ``key_max`` (BH, L), filled with −inf, receives each key's largest log-amplitude ρ_l = max_j b_lj.
    """
    s = plan.state(plan.BH, n_seg)
    z = plan.vector(plan.BH, n_seg, plan.njb * plan.block_m)
    t = plan.vector(plan.BH, n_seg, plan.njb)
    _key_state_kernel[(plan.njb, n_seg, plan.BH)](
        k, v, plan.w, s, z, t, t if key_max is None else key_max,
        plan.L, plan.H, plan.M, plan.w_head_stride, n_seg, seg_len,
        BLOCK_L=block_l, NORM=plan.norm, PREC=plan.prec, STORE_ROW_MAX=key_max is not None,
        **plan.common(), **plan.launch("key"),
    )  # fmt: skip
    return s, z, t


def _bidirectional_forward(q, k, v, plan):
    block_l = plan.config["key_block_l"]
    seg_len, n_seg = segments(plan, block_l, plan.njb)
    s_parts, z_parts, t = _key_states(k, v, plan, block_l, seg_len, n_seg)
    s, z, key_shift = plan.state(plan.BH), plan.vector(plan.BH, plan.njb * plan.block_m), plan.vector(plan.BH)
    s_low = s if plan.dtype == torch.float32 else torch.empty_like(s, dtype=plan.dtype)
    _merge_segments_kernel[(plan.BH,)](
        s_parts, z_parts, t, s, z, s_low, key_shift, n_seg,
        NT=triton.next_power_of_2(n_seg * plan.njb), **plan.common(),
    )  # fmt: skip
    out = torch.empty_like(q)
    rows, den = plan.vector(plan.BH, plan.L), plan.vector(plan.BH, plan.L)
    block_l = plan.config["out_block_l"]
    _bidirectional_output_kernel[(triton.cdiv(plan.L, block_l), plan.BH)](
        q, plan.w, s_low, z, out, rows, den, plan.L, plan.H, plan.M, plan.w_head_stride,
        BLOCK_L=block_l, PREC=plan.prec, **plan.common(), **plan.launch("out"),
    )  # fmt: skip
    return out, (s, z, key_shift, rows, den)


def _prefix_states(k, v, plan, chunk, chunks_per_group):
    """Exclusive prefix states of each group of chunks, with frames: (s, z, (group, chunk, row frames)).

    row_frames[l] = c_l = max_{l'≤l} ρ_l' (BH, L), the running maximum of the keys' largest
    log-amplitudes ρ_l = max_j b_lj: key l's frame, which never depends on a later key.
    chunk_frames[n] (BH, n_chunks) is the frame of chunk n's last key, in which the state after the
    chunk is carried; group_frames[g] (BH, G + 1) that of the last key before group g (−1e30 for the
    first group), the frame of group g's prefix state.
    """
    block_l = plan.config["key_block_l"]
    n_chunks = triton.cdiv(plan.L, chunk)
    n_groups = triton.cdiv(n_chunks, chunks_per_group)
    key_max = torch.full((plan.BH, plan.L), -math.inf, device=k.device)
    s, z, t = _key_states(k, v, plan, block_l, chunks_per_group * chunk, n_groups, key_max)
    row_frames = torch.cummax(key_max, dim=1).values.contiguous()
    chunk_ends = (torch.arange(1, n_chunks + 1, device=k.device) * chunk - 1).clamp_max(plan.L - 1)
    chunk_frames = row_frames[:, chunk_ends].contiguous()
    ends = (torch.arange(1, n_groups + 1, device=k.device) * chunks_per_group - 1).clamp_max(n_chunks - 1)
    first = torch.full((plan.BH, 1), NEG_INIT, device=k.device, dtype=torch.float32)
    group_frames = torch.cat([first, chunk_frames[:, ends]], dim=1).contiguous()
    _scan_groups(s, z, t, group_frames, plan, reverse=False)
    return s, z, (group_frames, chunk_frames, row_frames)


def _scan_groups(s, z, t, frames, plan, reverse):
    """In place: per-group states (BH, G, M̄, d), z (BH, G, M̄) → exclusive prefix (or suffix) states."""
    block_d = min(plan.D, 32)
    _group_scan_kernel[(plan.BH, plan.njb, plan.D // block_d)](
        s, z, t, frames, s.shape[1],
        BLOCK_M=plan.block_m, D=plan.D, BLOCK_D=block_d, NJB=plan.njb, REVERSE=reverse,
    )  # fmt: skip


def _causal_groups(plan, chunk):
    """Chunk count and chunks per group: about causal_programs_per_sm programs per SM over B·H heads."""
    n_chunks = triton.cdiv(plan.L, chunk)
    groups = max(1, triton.cdiv(plan.config["causal_programs_per_sm"] * plan.sms, plan.BH))
    return n_chunks, triton.cdiv(n_chunks, groups)


def _causal_forward(q, k, v, plan):
    chunk = plan.config["chunk"]
    n_chunks, chunks_per_group = _causal_groups(plan, chunk)
    s, z, frames = _prefix_states(k, v, plan, chunk, chunks_per_group)
    out = torch.empty_like(q)
    n_groups = frames[0].shape[1] - 1
    _causal_output_kernel[(plan.BH, n_groups)](
        q, k, v, plan.w, s, z, *frames, out,
        plan.L, plan.H, plan.M, plan.w_head_stride, n_groups, n_chunks, chunks_per_group,
        BLOCK_L=chunk, NORM=plan.norm, PREC=plan.prec, STATE_PREC=plan.prec,
        **plan.common(), **plan.launch("causal"),
    )  # fmt: skip
    return out


def _bidirectional_backward(grad_out, q, k, v, out, saved, plan):
    s, z, key_shift, rows, den = saved
    grad_out = grad_out.contiguous()
    block_l = plan.config["grad_block_l"]
    seg_len, n_seg = segments(plan, block_l, plan.njb)
    ds_parts = plan.state(plan.BH, n_seg)
    dz_parts = plan.vector(plan.BH, n_seg, plan.njb * plan.block_m)
    options = dict(
        PREC=plan.prec, GRAD_PREC=plan.prec, BLOCK_L=block_l, **plan.common(), **plan.launch("grad")
    )
    _query_grad_state_kernel[(plan.BH, n_seg, plan.njb)](
        q, plan.w, grad_out, rows, den, out, ds_parts, dz_parts, rows, rows,
        plan.L, plan.H, plan.M, plan.w_head_stride, n_seg, seg_len, CAUSAL=False, **options,
    )  # fmt: skip
    ds, dz = ds_parts.sum(1).contiguous(), dz_parts.sum(1).contiguous()
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    grid = (plan.BH, triton.cdiv(plan.L, block_l))
    _query_grad_kernel[grid](
        q, plan.w, grad_out, rows, den, out, s, z, dq,
        plan.L, plan.H, plan.M, plan.w_head_stride, **options,
    )  # fmt: skip
    _key_grad_kernel[grid](
        k, v, plan.w, ds, dz, key_shift, dk, dv,
        plan.L, plan.H, plan.M, plan.w_head_stride, NORM=plan.norm, **options,
    )  # fmt: skip
    return dq, dk, dv


def _causal_backward(grad_out, q, k, v, plan):
    """dq, dk, dv of causal FAVOR: a forward scan (dq), suffix states by group, a reverse scan (dk, dv).

    Frames (:mod:`estimators.triton_favor`): the suffix state entering chunk n holds the queries i of
    later chunks weighted by exp(c_n − c_i) ≤ 1 (c_n: the frame of chunk n's last key, c_i: query i's
    row frame); group g's increment is formed in frame c_g (the frame of the last key before the group,
    ``group_frames[:, g]``), and the reverse group scan moves
    states from frame c_{g+1} to c_g by exp(c_g − c_{g+1}) ≤ 1: in the scan kernel's shift
    convention (a state in shift t is multiplied by exp(t − t') to reach shift t') a frame c is the
    shift −c.
    """
    grad_out = grad_out.contiguous()
    chunk = plan.config["grad_chunk"]
    n_chunks, chunks_per_group = _causal_groups(plan, chunk)
    s, z, frames = _prefix_states(k, v, plan, chunk, chunks_per_group)
    group_frames, _, row_frames = frames
    n_groups = group_frames.shape[1] - 1
    row_max, den, delta = (plan.vector(plan.BH, plan.L) for _ in range(3))
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    options = dict(PREC=plan.prec, GRAD_PREC=plan.prec, **plan.common(), **plan.launch("grad"))
    sizes = (plan.L, plan.H, plan.M, plan.w_head_stride)
    counts = (n_groups, n_chunks, chunks_per_group)
    _causal_query_grad_kernel[(plan.BH, n_groups)](
        q, k, v, plan.w, grad_out, s, z, *frames, row_max, den, delta, dq, *sizes, *counts,
        BLOCK_L=chunk, NORM=plan.norm, STATE_PREC=plan.prec, **options,
    )  # fmt: skip
    u, uz = plan.state(plan.BH, n_groups), plan.vector(plan.BH, n_groups, plan.njb * plan.block_m)
    _query_grad_state_kernel[(plan.BH, n_groups, plan.njb)](
        q, plan.w, grad_out, row_max, den, delta, u, uz, group_frames, row_frames, *sizes, n_groups,
        chunks_per_group * chunk, BLOCK_L=plan.config["grad_block_l"], CAUSAL=True, **options,
    )  # fmt: skip
    increment_frames = (-group_frames[:, :n_groups, None]).expand(-1, -1, plan.njb).contiguous()
    _scan_groups(u, uz, increment_frames, (-group_frames).contiguous(), plan, reverse=True)
    _causal_key_grad_kernel[(plan.BH, n_groups)](
        q, k, v, plan.w, grad_out, row_max, den, delta, u, uz, *frames, dk, dv, *sizes, *counts,
        BLOCK_L=chunk, NORM=plan.norm, **options,
    )  # fmt: skip
    return dq, dk, dv


class _FavorFunction(torch.autograd.Function):
    """FAVOR attention with the fused kernels forward and feature-recomputing backward."""

    @staticmethod
    def forward(ctx, q, k, v, W, feature, causal):
        q, k, v = (x.contiguous() for x in (q, k, v))
        plan = Plan(q, W, feature)
        ctx.plan, ctx.causal = plan, causal
        if causal:
            ctx.save_for_backward(q, k, v)
            return _causal_forward(q, k, v, plan)
        out, saved = _bidirectional_forward(q, k, v, plan)
        ctx.save_for_backward(q, k, v, out, *saved)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, *rest = ctx.saved_tensors
        if ctx.causal:
            grads = _causal_backward(grad_out, q, k, v, ctx.plan)
        else:
            grads = _bidirectional_backward(grad_out, q, k, v, rest[0], rest[1:], ctx.plan)
        return (*grads, None, None, None)


def unsupported_reason(q, k, v, W, feature="positive", causal=False, key_padding_mask=None):
    """Why the kernels cannot run this call (a sentence), or None when they can."""
    if not all(isinstance(x, torch.Tensor) for x in (q, k, v, W)):
        return "q, k, v and W must be torch tensors"
    if feature not in FEATURES:
        return f"feature must be one of {FEATURES}, got {feature!r}"
    if key_padding_mask is not None:
        return "key_padding_mask is not supported (must be None)"
    if not isinstance(causal, bool):
        return f"causal must be a bool, got {type(causal).__name__}"
    if q.ndim != 4 or k.shape != q.shape or v.shape != q.shape:
        shapes = ", ".join(str(tuple(x.shape)) for x in (q, k, v))
        return f"q, k, v must share one shape (B, H, L, d), got {shapes}"
    if q.shape[2] < 1:
        return "q must have at least one position (L >= 1)"
    if q.dtype not in DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        dtypes = ", ".join(str(x.dtype) for x in (q, k, v))
        return f"q, k, v must share a dtype among float16, bfloat16, float32, got {dtypes}"
    if not (q.device == k.device == v.device == W.device):
        return "q, k, v and W must be on one device"
    if q.device.type != "cuda" and not _interpreting():
        return "the kernels need CUDA tensors (or TRITON_INTERPRET=1 for CPU tensors)"
    d = q.shape[-1]
    if d not in HEAD_DIMS:
        return f"head dimension d must be one of {HEAD_DIMS}, got {d}"
    if W.ndim not in (2, 3) or W.shape[-1] != d or (W.ndim == 3 and W.shape[0] != q.shape[1]):
        return f"W must be (m, d) or (H, m, d) with d={d} and H={q.shape[1]}, got {tuple(W.shape)}"
    if not 1 <= W.shape[-2] <= MAX_PROJECTIONS:
        return f"W must have 1..{MAX_PROJECTIONS} rows (projections m), got {W.shape[-2]}"
    if W.requires_grad:
        return "W must not require grad (the kernels treat the projection as a constant)"
    if not W.dtype.is_floating_point:
        return f"W must be a floating-point tensor, got {W.dtype}"
    return None


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def supports(q, k, v, W, feature="positive", causal=False, key_padding_mask=None) -> bool:
    """True when :func:`favor_triton` can run this call (see :func:`unsupported_reason`)."""
    return unsupported_reason(q, k, v, W, feature, causal, key_padding_mask) is None


def favor_triton(q, k, v, W, feature="positive", causal=False):
    """FAVOR attention through the fused kernels; differentiable in q, k and v.

    Parameters
    ----------
    q, k, v : torch.Tensor (B, H, L, d)
        float16, bfloat16 or float32, on CUDA (CPU under ``TRITON_INTERPRET=1``); d ∈ {16, 32, 64, 128}.
    W : torch.Tensor (m, d) or (H, m, d)
        Projection rows ω_j (m ≤ 512), shared by all heads or one per head; a constant.
    feature : {"positive", "hyperbolic"}
        φ(x) = m^{-1/2} e^{−‖x‖²/2} exp(Wx), or (2m)^{-1/2} e^{−‖x‖²/2} [exp(Wx), exp(−Wx)]
        (Performers Lemma 1), applied to q·d^{-1/4} and k·d^{-1/4}.
    causal : bool
        Query i sees keys l ≤ i (Performers Eq. 2, App. B.1).

    Returns
    -------
    torch.Tensor (B, H, L, d)
        ``D̂⁻¹ Q'((K')ᵀ V)`` (causal: ``D̃⁻¹ tril(Q'(K')ᵀ) V``) in the dtype of q, accumulated in fp32;
        the same function as ``estimators.attention.favor(..., impl="reference")``.
    """
    reason = unsupported_reason(q, k, v, W, feature, causal, None)
    if reason is not None:
        error = TypeError if "must be torch tensors" in reason or "must be a bool" in reason else ValueError
        raise error(reason)
    return _FavorFunction.apply(q, k, v, W, feature, causal)


__all__ = ["FEATURES", "HEAD_DIMS", "MAX_PROJECTIONS", "favor_triton", "supports", "unsupported_reason"]
