"""Fused Triton kernels for FAVOR attention, bidirectional and causal, with gradients (torch only).

:func:`favor_triton` computes the same normalized output as
``estimators.attention.favor(q, k, v, W, feature, causal, impl="reference")`` for positive and
hyperbolic features, without ever writing the L×r feature matrices to device memory: projection,
‖x‖²/2, stabilizer and exponential are computed tile by tile in registers (Performers Eq. 4,
Algorithm 1 of App. B; theory.md §2, §8).

Shapes: ``q, k, v`` (B, H, L, d) with d ∈ {16, 32, 64, 128}; ``W`` (m, d) shared by the heads or
(H, m, d); m ≤ 512. Hyperbolic features are positive features of the stacked projection [W; −W]
(their common factor (2m)^{-1/2} cancels), so both run on r = m or 2m "feature rows" w_j of
W_s = d^{-1/4}·W, with log-amplitudes

    query: a_ij = w_j·q_i            (the −‖x_i‖²/2 term is a per-row constant and cancels),
    key:   b_lj = w_j·k_l − ‖k_l‖²/(2√d).

Stabilizers (theory.md §8), all cancelling exactly in the normalized output:

* query rows: Q'_ij = exp(a_ij − max_j a_ij), the row maximum taken online over feature blocks
  (flash-attention-style rescaling of the running numerator and denominator);
* keys, bidirectional: K'_lj = exp(b_lj − c) with c = max over all keys and features of one head
  (as the public code);
* keys, causal: c_n = running maximum over the keys of chunks 0..n (chunk length C), the carried state
  rescaled by exp(c_{n−1} − c_n) ≤ 1. No output depends on a later chunk; inside a chunk the shift
  uses the chunk's own keys, which changes rounding only (the value cancels exactly).

Algorithms (per head; M = r feature rows, tiles of ``BLOCK_M`` features and ``BLOCK_L`` positions):

* bidirectional forward: a key pass accumulating S = K'ᵀV (M×d) and z = K'ᵀ1 in fp32 over segments
  of the sequence in parallel (each segment with its own running shift), a merge kernel bringing
  them to the one key shift c and dividing S and z by a = max(|S|, z) (a key constant, which cancels;
  it lets S enter the query pass in the input's half type), then a query pass out_i = Q'_i S / Q'_i z.
* causal forward: chunked scan (App. B.1, Eq. 11). A key pass gives the state of each group of
  chunks and each chunk's key maximum; a scan over groups turns them into prefix states; then one
  program per group walks its chunks: out = (Q' S_prev + tril(Q'K'ᵀ) V) / (Q' z_prev + tril(Q'K'ᵀ) 1),
  quadratic inside a chunk, carrying the M×(d+1) fp32 state (through L2, one feature block at a time).
* backward: bidirectional with three kernels that recompute the features (dS, dz; dQ; dK, dV);
  causal by segments in PyTorch: the segment-start states come from the forward kernels, each
  segment's features are recomputed and differentiated, and the state gradient is carried backwards.
  Between forward and backward only q, k, v (and, bidirectionally, O(L + m·d) floats) are kept;
  the causal backward holds one segment's features (about 2^24 floats) at a time.

Precision: half-precision inputs use fp16/bf16 tensor-core products (projections, Q'K'ᵀ, K'ᵀV, the
bidirectional Q'S) with fp32 accumulation, and tf32 products against the unnormalized fp32 causal
state; fp32 inputs use exact fp32 products. Shifts are stop-gradient constants (exact: the output
does not depend on them). W is a constant (random projections are drawn, not trained): a W that
requires grad is rejected by :func:`supports`.

Launch parameters (:data:`CONFIG`) were chosen from H100 timings of
``python scripts/gpu_compare.py``; results/gpu_speed_memory/ holds the measured table.
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

FEATURES = ("positive", "hyperbolic")
HEAD_DIMS = (16, 32, 64, 128)
MAX_PROJECTIONS = 512
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
NEG_INIT = -1.0e30
NEG_INIT_K = tl.constexpr(NEG_INIT)  # the same constant inside kernels


# ----------------------------------------------------------------------------------------------
# kernels
# ----------------------------------------------------------------------------------------------


@triton.jit
def _key_state_kernel(
    k_ptr,
    v_ptr,
    w_ptr,
    s_ptr,
    z_ptr,
    t_ptr,
    cmax_ptr,
    L,
    H,
    M,
    w_head_stride,
    n_seg,
    n_chunks,
    seg_len,
    BLOCK_L: tl.constexpr,
    BLOCK_M: tl.constexpr,
    D: tl.constexpr,
    NJB: tl.constexpr,
    NORM: tl.constexpr,
    PREC: tl.constexpr,
    STORE_CHUNK_MAX: tl.constexpr,
):
    """S_seg = Σ_l exp(b_l − t) v_lᵀ, z_seg = Σ_l exp(b_l − t) over one segment and feature block.

    t is the running maximum of b over the segment and the block (online rescaling); it is stored so
    the host can bring all segments to one shift. Optionally stores each BLOCK_L tile's maximum.
    """
    jb = tl.program_id(0)
    seg = tl.program_id(1)
    bh = tl.program_id(2)
    offs_l = tl.arange(0, BLOCK_L)
    offs_m = jb * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, D)
    feature_ok = offs_m < M
    w = tl.load(w_ptr + (bh % H) * w_head_stride + offs_m[:, None] * D + offs_d[None, :])
    acc = tl.zeros((BLOCK_M, D), dtype=tl.float32)
    zacc = tl.zeros((BLOCK_M,), dtype=tl.float32)
    t = tl.full((), NEG_INIT_K, tl.float32)
    base = bh.to(tl.int64) * L * D
    start = seg * seg_len
    stop = tl.minimum(start + seg_len, L)
    for tile in range(start, stop, BLOCK_L):
        rows = tile + offs_l
        row_ok = rows < L
        pointers = base + rows[:, None].to(tl.int64) * D + offs_d[None, :]
        kt = tl.load(k_ptr + pointers, mask=row_ok[:, None], other=0.0)
        vt = tl.load(v_ptr + pointers, mask=row_ok[:, None], other=0.0)
        kf = kt.to(tl.float32)
        half_sq_norm = tl.sum(kf * kf, axis=1) * NORM
        logits = tl.dot(kt, tl.trans(w), input_precision=PREC) - half_sq_norm[:, None]
        logits = tl.where(row_ok[:, None] & feature_ok[None, :], logits, -float("inf"))
        tile_max = tl.max(tl.max(logits, axis=1), axis=0)
        if STORE_CHUNK_MAX:
            tl.store(cmax_ptr + (bh * n_chunks + tile // BLOCK_L) * NJB + jb, tile_max)
        t_new = tl.maximum(t, tile_max)
        alpha = tl.exp(t - t_new)
        p = tl.exp(logits - t_new)
        acc = acc * alpha + tl.dot(tl.trans(p.to(vt.dtype)), vt, input_precision=PREC)
        zacc = zacc * alpha + tl.sum(p, axis=0)
        t = t_new
    out = (bh * n_seg + seg).to(tl.int64) * (NJB * BLOCK_M)
    tl.store(s_ptr + (out + offs_m)[:, None] * D + offs_d[None, :], acc)
    tl.store(z_ptr + out + offs_m, zacc)
    tl.store(t_ptr + (bh * n_seg + seg) * NJB + jb, t)


@triton.jit
def _merge_segments_kernel(
    s_ptr,
    z_ptr,
    t_ptr,
    out_s_ptr,
    out_z_ptr,
    out_s_low_ptr,
    shift_ptr,
    n_seg,
    BLOCK_M: tl.constexpr,
    D: tl.constexpr,
    NJB: tl.constexpr,
    NT: tl.constexpr,
):
    """One head: S = Σ_seg S_seg·exp(t_seg − T), z likewise, T = max of all t (one key shift).

    S and z are then divided by a = max(|S|, z) (a key factor, which cancels) so that S fits the
    input's half-precision type for the query pass; the shift stored is T + log a.
    """
    bh = tl.program_id(0)
    offs_t = tl.arange(0, NT)
    all_t = tl.load(t_ptr + bh * n_seg * NJB + offs_t, mask=offs_t < n_seg * NJB, other=NEG_INIT_K)
    shift = tl.max(all_t, axis=0)
    offs_d = tl.arange(0, D)
    row = bh.to(tl.int64) * (NJB * BLOCK_M)
    largest = tl.full((), 0.0, tl.float32)
    for jb in range(NJB):
        offs_m = jb * BLOCK_M + tl.arange(0, BLOCK_M)
        acc = tl.zeros((BLOCK_M, D), dtype=tl.float32)
        zacc = tl.zeros((BLOCK_M,), dtype=tl.float32)
        for seg in range(n_seg):
            part = (bh * n_seg + seg).to(tl.int64) * (NJB * BLOCK_M)
            weight = tl.exp(tl.load(t_ptr + (bh * n_seg + seg) * NJB + jb) - shift)
            acc += tl.load(s_ptr + (part + offs_m)[:, None] * D + offs_d[None, :]) * weight
            zacc += tl.load(z_ptr + part + offs_m) * weight
        tl.store(out_s_ptr + (row + offs_m)[:, None] * D + offs_d[None, :], acc)
        tl.store(out_z_ptr + row + offs_m, zacc)
        largest = tl.maximum(
            largest, tl.maximum(tl.max(tl.max(tl.abs(acc), axis=1), axis=0), tl.max(zacc, axis=0))
        )
    tl.debug_barrier()
    largest = tl.maximum(largest, 1.0e-30)
    for jb in range(NJB):
        offs_m = jb * BLOCK_M + tl.arange(0, BLOCK_M)
        pointers = (row + offs_m)[:, None] * D + offs_d[None, :]
        acc = tl.load(out_s_ptr + pointers) / largest
        tl.store(out_s_ptr + pointers, acc)
        tl.store(out_s_low_ptr + pointers, acc.to(out_s_low_ptr.dtype.element_ty))
        tl.store(out_z_ptr + row + offs_m, tl.load(out_z_ptr + row + offs_m) / largest)
    tl.store(shift_ptr + bh, shift + tl.log(largest))


@triton.jit
def _group_scan_kernel(
    s_ptr,
    z_ptr,
    t_ptr,
    c_ptr,
    n_groups,
    BLOCK_M: tl.constexpr,
    D: tl.constexpr,
    BLOCK_D: tl.constexpr,
    NJB: tl.constexpr,
):
    """In place: group sums (frame t_g) → exclusive prefix states (frame c_g), c_{g+1} = max(c_g, t_g).

    H_0 = 0; H_{g+1} = H_g·exp(c_g − c_{g+1}) + ΔS_g·exp(t_g − c_{g+1}); every factor is ≤ 1.
    """
    bh = tl.program_id(0)
    jb = tl.program_id(1)
    db = tl.program_id(2)
    offs_m = jb * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = db * BLOCK_D + tl.arange(0, BLOCK_D)
    state = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    zstate = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for g in range(n_groups):
        row = (bh * n_groups + g).to(tl.int64) * (NJB * BLOCK_M)
        pointers = s_ptr + (row + offs_m)[:, None] * D + offs_d[None, :]
        delta = tl.load(pointers)
        tl.store(pointers, state)
        c_now = tl.load(c_ptr + bh * (n_groups + 1) + g)
        c_next = tl.load(c_ptr + bh * (n_groups + 1) + g + 1)
        t_g = tl.load(t_ptr + (bh * n_groups + g) * NJB + jb)
        keep = tl.exp(c_now - c_next)
        add = tl.exp(t_g - c_next)
        state = state * keep + delta * add
        if db == 0:
            zdelta = tl.load(z_ptr + row + offs_m)
            tl.store(z_ptr + row + offs_m, zstate)
            zstate = zstate * keep + zdelta * add


@triton.jit
def _bidirectional_output_kernel(
    q_ptr,
    w_ptr,
    s_ptr,
    z_ptr,
    o_ptr,
    r_ptr,
    den_ptr,
    L,
    H,
    M,
    w_head_stride,
    BLOCK_L: tl.constexpr,
    BLOCK_M: tl.constexpr,
    D: tl.constexpr,
    NJB: tl.constexpr,
    PREC: tl.constexpr,
):
    """out_i = Σ_j Q'_ij S_j / Σ_j Q'_ij z_j, the query row maximum taken online over feature blocks."""
    lb = tl.program_id(0)
    bh = tl.program_id(1)
    offs_l = lb * BLOCK_L + tl.arange(0, BLOCK_L)
    offs_d = tl.arange(0, D)
    row_ok = offs_l < L
    pointers = bh.to(tl.int64) * L * D + offs_l[:, None].to(tl.int64) * D + offs_d[None, :]
    qt = tl.load(q_ptr + pointers, mask=row_ok[:, None], other=0.0)
    acc = tl.zeros((BLOCK_L, D), dtype=tl.float32)
    den = tl.zeros((BLOCK_L,), dtype=tl.float32)
    r = tl.full((BLOCK_L,), NEG_INIT_K, tl.float32)
    state = bh.to(tl.int64) * (NJB * BLOCK_M)
    for jb in range(NJB):
        offs_m = jb * BLOCK_M + tl.arange(0, BLOCK_M)
        w = tl.load(w_ptr + (bh % H) * w_head_stride + offs_m[:, None] * D + offs_d[None, :])
        s = tl.load(s_ptr + (state + offs_m)[:, None] * D + offs_d[None, :])
        z = tl.load(z_ptr + state + offs_m)
        logits = tl.dot(qt, tl.trans(w), input_precision=PREC)
        logits = tl.where((offs_m < M)[None, :], logits, -float("inf"))
        r_new = tl.maximum(r, tl.max(logits, axis=1))
        alpha = tl.exp(r - r_new)
        p = tl.exp(logits - r_new[:, None])
        acc = acc * alpha[:, None] + tl.dot(p.to(s.dtype), s, input_precision=PREC)
        den = den * alpha + tl.sum(p * z[None, :], axis=1)
        r = r_new
    out = acc / den[:, None]
    tl.store(o_ptr + pointers, out.to(o_ptr.dtype.element_ty), mask=row_ok[:, None])
    rows = bh.to(tl.int64) * L + offs_l
    tl.store(r_ptr + rows, r, mask=row_ok)
    tl.store(den_ptr + rows, den, mask=row_ok)


@triton.jit
def _causal_output_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    w_ptr,
    s_ptr,
    z_ptr,
    cg_ptr,
    cc_ptr,
    o_ptr,
    L,
    H,
    M,
    w_head_stride,
    n_groups,
    n_chunks,
    chunks_per_group,
    BLOCK_L: tl.constexpr,
    BLOCK_M: tl.constexpr,
    D: tl.constexpr,
    NJB: tl.constexpr,
    NORM: tl.constexpr,
    PREC: tl.constexpr,
    STATE_PREC: tl.constexpr,
):
    """One group of CPG chunks of one head: the chunked causal scan from the group's prefix state.

    The state (M×d and M, fp32, frame c) lives in this group's slot of ``s_ptr``/``z_ptr`` and is
    updated chunk by chunk, one feature block at a time.
    """
    bh = tl.program_id(0)
    g = tl.program_id(1)
    offs_i = tl.arange(0, BLOCK_L)
    offs_d = tl.arange(0, D)
    state = (bh * n_groups + g).to(tl.int64) * (NJB * BLOCK_M)
    c_prev = tl.load(cg_ptr + bh * (n_groups + 1) + g)
    base = bh.to(tl.int64) * L * D
    for chunk in range(g * chunks_per_group, tl.minimum(g * chunks_per_group + chunks_per_group, n_chunks)):
        rows = chunk * BLOCK_L + offs_i
        row_ok = rows < L
        pointers = base + rows[:, None].to(tl.int64) * D + offs_d[None, :]
        qt = tl.load(q_ptr + pointers, mask=row_ok[:, None], other=0.0)
        kt = tl.load(k_ptr + pointers, mask=row_ok[:, None], other=0.0)
        vt = tl.load(v_ptr + pointers, mask=row_ok[:, None], other=0.0)
        kf = kt.to(tl.float32)
        half_sq_norm = tl.sum(kf * kf, axis=1) * NORM
        c_now = tl.load(cc_ptr + bh * n_chunks + chunk)
        beta = tl.exp(c_prev - c_now)
        acc = tl.zeros((BLOCK_L, D), dtype=tl.float32)
        den = tl.zeros((BLOCK_L,), dtype=tl.float32)
        scores = tl.zeros((BLOCK_L, BLOCK_L), dtype=tl.float32)
        r = tl.full((BLOCK_L,), NEG_INIT_K, tl.float32)
        for jb in range(NJB):
            offs_m = jb * BLOCK_M + tl.arange(0, BLOCK_M)
            feature_ok = offs_m < M
            w = tl.load(w_ptr + (bh % H) * w_head_stride + offs_m[:, None] * D + offs_d[None, :])
            s_pointers = s_ptr + (state + offs_m)[:, None] * D + offs_d[None, :]
            s = tl.load(s_pointers) * beta
            z = tl.load(z_ptr + state + offs_m) * beta
            q_logits = tl.dot(qt, tl.trans(w), input_precision=PREC)
            q_logits = tl.where(feature_ok[None, :], q_logits, -float("inf"))
            r_new = tl.maximum(r, tl.max(q_logits, axis=1))
            alpha = tl.exp(r - r_new)
            p = tl.exp(q_logits - r_new[:, None])
            k_logits = tl.dot(kt, tl.trans(w), input_precision=PREC) - half_sq_norm[:, None]
            k_logits = tl.where(row_ok[:, None] & feature_ok[None, :], k_logits, -float("inf"))
            kp = tl.exp(k_logits - c_now).to(vt.dtype)
            acc = acc * alpha[:, None] + tl.dot(p, s, input_precision=STATE_PREC)
            den = den * alpha + tl.sum(p * z[None, :], axis=1)
            scores = scores * alpha[:, None] + tl.dot(p.to(vt.dtype), tl.trans(kp), input_precision=PREC)
            s = s + tl.dot(tl.trans(kp), vt, input_precision=PREC)
            z = z + tl.sum(kp.to(tl.float32), axis=0)
            tl.store(s_pointers, s)
            tl.store(z_ptr + state + offs_m, z)
            r = r_new
        scores = tl.where(offs_i[:, None] >= offs_i[None, :], scores, 0.0)
        acc = acc + tl.dot(scores.to(vt.dtype), vt, input_precision=PREC)
        den = den + tl.sum(scores, axis=1)
        tl.store(o_ptr + pointers, (acc / den[:, None]).to(o_ptr.dtype.element_ty), mask=row_ok[:, None])
        c_prev = c_now
        tl.debug_barrier()


@triton.jit
def _query_grad_state_kernel(
    q_ptr,
    w_ptr,
    do_ptr,
    r_ptr,
    den_ptr,
    out_ptr,
    s_ptr,
    z_ptr,
    L,
    H,
    M,
    w_head_stride,
    n_seg,
    seg_len,
    BLOCK_L: tl.constexpr,
    BLOCK_M: tl.constexpr,
    D: tl.constexpr,
    NJB: tl.constexpr,
    PREC: tl.constexpr,
    GRAD_PREC: tl.constexpr,
):
    """dS_j = Σ_i Q'_ij dO_i / D_i and dz_j = −Σ_i Q'_ij (dO_i·out_i) / D_i over one segment."""
    bh = tl.program_id(0)
    seg = tl.program_id(1)
    jb = tl.program_id(2)
    offs_l = tl.arange(0, BLOCK_L)
    offs_m = jb * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, D)
    feature_ok = offs_m < M
    w = tl.load(w_ptr + (bh % H) * w_head_stride + offs_m[:, None] * D + offs_d[None, :])
    acc = tl.zeros((BLOCK_M, D), dtype=tl.float32)
    zacc = tl.zeros((BLOCK_M,), dtype=tl.float32)
    base = bh.to(tl.int64) * L
    start = seg * seg_len
    for tile in range(start, tl.minimum(start + seg_len, L), BLOCK_L):
        rows = tile + offs_l
        row_ok = rows < L
        pointers = (base + rows)[:, None] * D + offs_d[None, :]
        qt = tl.load(q_ptr + pointers, mask=row_ok[:, None], other=0.0)
        dn = tl.load(do_ptr + pointers, mask=row_ok[:, None], other=0.0).to(tl.float32)
        ot = tl.load(out_ptr + pointers, mask=row_ok[:, None], other=0.0).to(tl.float32)
        r = tl.load(r_ptr + base + rows, mask=row_ok, other=0.0)
        den = tl.load(den_ptr + base + rows, mask=row_ok, other=1.0)
        dd = -tl.sum(dn * ot, axis=1) / den
        dn = dn / den[:, None]
        logits = tl.dot(qt, tl.trans(w), input_precision=PREC) - r[:, None]
        p = tl.exp(tl.where(row_ok[:, None] & feature_ok[None, :], logits, -float("inf")))
        acc += tl.dot(tl.trans(p), dn, input_precision=GRAD_PREC)
        zacc += tl.sum(p * dd[:, None], axis=0)
    out = (bh * n_seg + seg).to(tl.int64) * (NJB * BLOCK_M)
    tl.store(s_ptr + (out + offs_m)[:, None] * D + offs_d[None, :], acc)
    tl.store(z_ptr + out + offs_m, zacc)


@triton.jit
def _query_grad_kernel(
    q_ptr,
    w_ptr,
    do_ptr,
    r_ptr,
    den_ptr,
    out_ptr,
    s_ptr,
    z_ptr,
    dq_ptr,
    L,
    H,
    M,
    w_head_stride,
    BLOCK_L: tl.constexpr,
    BLOCK_M: tl.constexpr,
    D: tl.constexpr,
    NJB: tl.constexpr,
    PREC: tl.constexpr,
    GRAD_PREC: tl.constexpr,
):
    """dq_i = Σ_j Q'_ij (dN_i·S_j + dD_i z_j) w_j with dN = dO/D, dD = −(dO·out)/D (bidirectional)."""
    bh = tl.program_id(0)
    lb = tl.program_id(1)
    offs_l = lb * BLOCK_L + tl.arange(0, BLOCK_L)
    offs_d = tl.arange(0, D)
    row_ok = offs_l < L
    rows = bh.to(tl.int64) * L + offs_l
    pointers = rows[:, None] * D + offs_d[None, :]
    qt = tl.load(q_ptr + pointers, mask=row_ok[:, None], other=0.0)
    r = tl.load(r_ptr + rows, mask=row_ok, other=0.0)
    den = tl.load(den_ptr + rows, mask=row_ok, other=1.0)
    dn = tl.load(do_ptr + pointers, mask=row_ok[:, None], other=0.0).to(tl.float32)
    ot = tl.load(out_ptr + pointers, mask=row_ok[:, None], other=0.0).to(tl.float32)
    dd = -tl.sum(dn * ot, axis=1) / den
    dn = dn / den[:, None]
    dq = tl.zeros((BLOCK_L, D), dtype=tl.float32)
    state = bh.to(tl.int64) * (NJB * BLOCK_M)
    for jb in range(NJB):
        offs_m = jb * BLOCK_M + tl.arange(0, BLOCK_M)
        w = tl.load(w_ptr + (bh % H) * w_head_stride + offs_m[:, None] * D + offs_d[None, :])
        s = tl.load(s_ptr + (state + offs_m)[:, None] * D + offs_d[None, :])
        z = tl.load(z_ptr + state + offs_m)
        logits = tl.dot(qt, tl.trans(w), input_precision=PREC) - r[:, None]
        p = tl.exp(tl.where((offs_m < M)[None, :], logits, -float("inf")))
        dp = tl.dot(dn, tl.trans(s), input_precision=GRAD_PREC) + dd[:, None] * z[None, :]
        dq += tl.dot(dp * p, w.to(tl.float32), input_precision=GRAD_PREC)
    tl.store(dq_ptr + pointers, dq.to(dq_ptr.dtype.element_ty), mask=row_ok[:, None])


@triton.jit
def _key_grad_kernel(
    k_ptr,
    v_ptr,
    w_ptr,
    ds_ptr,
    dz_ptr,
    c_ptr,
    dk_ptr,
    dv_ptr,
    L,
    H,
    M,
    w_head_stride,
    BLOCK_L: tl.constexpr,
    BLOCK_M: tl.constexpr,
    D: tl.constexpr,
    NJB: tl.constexpr,
    NORM: tl.constexpr,
    PREC: tl.constexpr,
    GRAD_PREC: tl.constexpr,
):
    """dK'_lj = dS_j·v_l + dz_j; dk_l = Σ_j K'_lj dK'_lj (w_j − 2·NORM·k_l); dv_l = Σ_j K'_lj dS_j."""
    bh = tl.program_id(0)
    lb = tl.program_id(1)
    offs_l = lb * BLOCK_L + tl.arange(0, BLOCK_L)
    offs_d = tl.arange(0, D)
    row_ok = offs_l < L
    pointers = (bh.to(tl.int64) * L + offs_l)[:, None] * D + offs_d[None, :]
    kt = tl.load(k_ptr + pointers, mask=row_ok[:, None], other=0.0)
    vt = tl.load(v_ptr + pointers, mask=row_ok[:, None], other=0.0).to(tl.float32)
    kf = kt.to(tl.float32)
    half_sq_norm = tl.sum(kf * kf, axis=1) * NORM
    c = tl.load(c_ptr + bh)
    dk = tl.zeros((BLOCK_L, D), dtype=tl.float32)
    dv = tl.zeros((BLOCK_L, D), dtype=tl.float32)
    dlogit_sum = tl.zeros((BLOCK_L,), dtype=tl.float32)
    state = bh.to(tl.int64) * (NJB * BLOCK_M)
    for jb in range(NJB):
        offs_m = jb * BLOCK_M + tl.arange(0, BLOCK_M)
        w = tl.load(w_ptr + (bh % H) * w_head_stride + offs_m[:, None] * D + offs_d[None, :])
        ds = tl.load(ds_ptr + (state + offs_m)[:, None] * D + offs_d[None, :])
        dz = tl.load(dz_ptr + state + offs_m)
        logits = tl.dot(kt, tl.trans(w), input_precision=PREC) - half_sq_norm[:, None] - c
        kp = tl.exp(tl.where(row_ok[:, None] & (offs_m < M)[None, :], logits, -float("inf")))
        dkp = tl.dot(vt, tl.trans(ds), input_precision=GRAD_PREC) + dz[None, :]
        dlogit = dkp * kp
        dk += tl.dot(dlogit, w.to(tl.float32), input_precision=GRAD_PREC)
        dlogit_sum += tl.sum(dlogit, axis=1)
        dv += tl.dot(kp, ds, input_precision=GRAD_PREC)
    dk = dk - (2.0 * NORM) * kf * dlogit_sum[:, None]
    tl.store(dk_ptr + pointers, dk.to(dk_ptr.dtype.element_ty), mask=row_ok[:, None])
    tl.store(dv_ptr + pointers, dv.to(dv_ptr.dtype.element_ty), mask=row_ok[:, None])


# ----------------------------------------------------------------------------------------------
# host side
# ----------------------------------------------------------------------------------------------

CONFIG = {
    "key_block_l": 64,  # rows per tile in the key passes
    "key_warps": 4,
    "key_programs_per_sm": 4,  # segments are chosen so that about this many programs per SM run
    "out_block_l": 64,  # rows per tile in the bidirectional query pass
    "out_warps": 4,
    "chunk": 128,  # causal chunk length C (a multiple of key_block_l)
    "causal_warps": 8,
    "causal_programs_per_sm": 4,
    "grad_block_l": 64,
    "grad_warps": 8,
    "stages": 3,
}
MAX_BLOCK_M = 64
CAUSAL_BACKWARD_ELEMENTS = 1 << 24


class _Plan:
    """Shapes, tile sizes and the stacked, scaled projection shared by all kernels of one call."""

    def __init__(self, q, W, feature):
        self.B, self.H, self.L, self.D = q.shape
        self.BH = self.B * self.H
        w = W.detach().to(device=q.device, dtype=torch.float32)
        if feature == "hyperbolic":
            w = torch.cat([w, -w], dim=-2)
        self.w_float = (w if w.ndim == 3 else w[None]) * self.D**-0.25
        self.M = w.shape[-2]
        largest_block = MAX_BLOCK_M if self.D <= 64 else MAX_BLOCK_M // 2  # d = 128: shared memory
        self.block_m = max(16, min(largest_block, triton.next_power_of_2(self.M)))
        self.njb = triton.cdiv(self.M, self.block_m)
        self.w = torch.zeros(
            self.w_float.shape[0], self.njb * self.block_m, self.D, device=q.device, dtype=q.dtype
        )
        self.w[:, : self.M] = self.w_float
        self.w_head_stride = 0 if self.w.shape[0] == 1 else self.njb * self.block_m * self.D
        self.norm = 0.5 * self.D**-0.5
        self.dtype = q.dtype
        self.prec = "ieee" if q.dtype == torch.float32 else "tf32"
        self.sms = _multiprocessors(q.device)
        self.config = dict(CONFIG)
        if self.D > 64:  # a 128-row chunk of d = 128 needs more shared memory than an SM has
            self.config["chunk"] = min(self.config["chunk"], 64)

    def state(self, *leading):
        size = (*leading, self.njb * self.block_m, self.D)
        return torch.empty(size, device=self.w.device, dtype=torch.float32)

    def vector(self, *shape):
        return torch.empty(*shape, device=self.w.device, dtype=torch.float32)

    def common(self):
        return dict(BLOCK_M=self.block_m, D=self.D, NJB=self.njb)

    def launch(self, kind):
        stages = self.config["stages"] if self.D <= 64 else 1  # d = 128 tiles fill shared memory
        return dict(num_warps=self.config[f"{kind}_warps"], num_stages=stages)


def _multiprocessors(device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 1


def _segments(plan, block_l, parallel_per_segment):
    """Segment length (a multiple of block_l) and count, for about key_programs_per_sm programs per SM."""
    tiles = triton.cdiv(plan.L, block_l)
    programs = plan.config["key_programs_per_sm"] * plan.sms
    wanted = max(1, triton.cdiv(programs, plan.BH * parallel_per_segment))
    seg_tiles = triton.cdiv(tiles, wanted)
    return seg_tiles * block_l, triton.cdiv(tiles, seg_tiles)


def _key_states(k, v, plan, block_l, seg_len, n_seg, chunk_max=None):
    """Per-segment key states S (BH, n_seg, M̄, d), z, and their shifts t (BH, n_seg, NJB)."""
    s = plan.state(plan.BH, n_seg)
    z = plan.vector(plan.BH, n_seg, plan.njb * plan.block_m)
    t = plan.vector(plan.BH, n_seg, plan.njb)
    n_chunks = 1 if chunk_max is None else chunk_max.shape[1]
    _key_state_kernel[(plan.njb, n_seg, plan.BH)](
        k, v, plan.w, s, z, t, t if chunk_max is None else chunk_max,
        plan.L, plan.H, plan.M, plan.w_head_stride, n_seg, n_chunks, seg_len,
        BLOCK_L=block_l, NORM=plan.norm, PREC=plan.prec, STORE_CHUNK_MAX=chunk_max is not None,
        **plan.common(), **plan.launch("key"),
    )  # fmt: skip
    return s, z, t


def _bidirectional_forward(q, k, v, plan):
    block_l = plan.config["key_block_l"]
    seg_len, n_seg = _segments(plan, block_l, plan.njb)
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


def _prefix_states(k, v, plan, chunks_per_group):
    """Exclusive prefix states of each group of chunks, with frames: (s, z, group_frames, chunk_frames).

    chunk_frames[n] = max of b over chunks 0..n (running maximum); group_frames[g] is the frame of
    group g's state (the running maximum before it; −1e30 for the first group).
    """
    chunk, block_l = plan.config["chunk"], plan.config["key_block_l"]
    n_chunks = triton.cdiv(plan.L, chunk)
    n_groups = triton.cdiv(n_chunks, chunks_per_group)
    tiles_per_chunk = chunk // block_l
    tile_max = torch.full((plan.BH, n_chunks * tiles_per_chunk, plan.njb), -math.inf, device=k.device)
    s, z, t = _key_states(k, v, plan, block_l, chunks_per_group * chunk, n_groups, tile_max)
    chunk_max = tile_max.view(plan.BH, n_chunks, tiles_per_chunk * plan.njb).amax(dim=2)
    chunk_frames = torch.cummax(chunk_max, dim=1).values.contiguous()
    ends = (torch.arange(1, n_groups + 1, device=k.device) * chunks_per_group - 1).clamp_max(n_chunks - 1)
    first = torch.full((plan.BH, 1), NEG_INIT, device=k.device, dtype=torch.float32)
    group_frames = torch.cat([first, chunk_frames[:, ends]], dim=1).contiguous()
    block_d = min(plan.D, 32)
    _group_scan_kernel[(plan.BH, plan.njb, plan.D // block_d)](
        s, z, t, group_frames, n_groups, BLOCK_M=plan.block_m, D=plan.D, BLOCK_D=block_d, NJB=plan.njb
    )
    return s, z, group_frames, chunk_frames


def _causal_forward(q, k, v, plan):
    chunk = plan.config["chunk"]
    n_chunks = triton.cdiv(plan.L, chunk)
    groups = max(1, triton.cdiv(plan.config["causal_programs_per_sm"] * plan.sms, plan.BH))
    chunks_per_group = triton.cdiv(n_chunks, groups)
    s, z, group_frames, chunk_frames = _prefix_states(k, v, plan, chunks_per_group)
    out = torch.empty_like(q)
    n_groups = group_frames.shape[1] - 1
    _causal_output_kernel[(plan.BH, n_groups)](
        q, k, v, plan.w, s, z, group_frames, chunk_frames, out,
        plan.L, plan.H, plan.M, plan.w_head_stride, n_groups, n_chunks, chunks_per_group,
        BLOCK_L=chunk, NORM=plan.norm, PREC=plan.prec, STATE_PREC=plan.prec,
        **plan.common(), **plan.launch("causal"),
    )  # fmt: skip
    return out


def _bidirectional_backward(grad_out, q, k, v, out, saved, plan):
    s, z, key_shift, rows, den = saved
    grad_out = grad_out.contiguous()
    block_l = plan.config["grad_block_l"]
    seg_len, n_seg = _segments(plan, block_l, plan.njb)
    ds_parts = plan.state(plan.BH, n_seg)
    dz_parts = plan.vector(plan.BH, n_seg, plan.njb * plan.block_m)
    options = dict(
        PREC=plan.prec, GRAD_PREC=plan.prec, BLOCK_L=block_l, **plan.common(), **plan.launch("grad")
    )
    _query_grad_state_kernel[(plan.BH, n_seg, plan.njb)](
        q, plan.w, grad_out, rows, den, out, ds_parts, dz_parts,
        plan.L, plan.H, plan.M, plan.w_head_stride, n_seg, seg_len, **options,
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


def _causal_segment(q, k, v, w, state, c_in, c_out, norm, chunk):
    """Differentiable causal FAVOR on one segment (B, H, Ls, d) in fp32, from a carried state.

    ``state = (S (B, H, M, d), z (B, H, M))`` in frame ``c_in`` (B, H). Returns the segment's output
    and the state after it in frame ``c_out``. The same chunked algebra as the kernels (App. B.1).
    """
    s_in, z_in = state
    q_logits = q @ w.transpose(-1, -2)
    p = torch.exp(q_logits - q_logits.amax(-1, keepdim=True).detach())
    k_logits = k @ w.transpose(-1, -2) - norm * (k * k).sum(-1, keepdim=True)
    frame = torch.maximum(c_in, k_logits.amax(dim=(-1, -2)).detach())
    kp = torch.exp(k_logits - frame[..., None, None])
    carry = torch.exp(c_in - frame)
    s0, z0 = s_in * carry[..., None, None], z_in * carry[..., None]
    length = q.shape[-2]
    n = triton.cdiv(length, chunk)
    pad = n * chunk - length
    pc = torch.nn.functional.pad(p, (0, 0, 0, pad), value=1.0)  # padded queries: positive denominators
    kc, vc = (torch.nn.functional.pad(x, (0, 0, 0, pad)) for x in (kp, v))
    pc, kc, vc = (x.unflatten(-2, (n, chunk)) for x in (pc, kc, vc))
    ds = kc.transpose(-1, -2) @ vc
    dz = kc.sum(-2)
    s_prev = torch.cumsum(ds, dim=2) - ds + s0[:, :, None]
    z_prev = torch.cumsum(dz, dim=2) - dz + z0[:, :, None]
    scores = torch.tril(pc @ kc.transpose(-1, -2))
    num = pc @ s_prev + scores @ vc
    den = (pc @ z_prev[..., None])[..., 0] + scores.sum(-1)
    out = (num / den[..., None]).flatten(2, 3)[:, :, :length]
    factor = torch.exp(frame - c_out)
    return out, (s0 + ds.sum(2)) * factor[..., None, None], (z0 + dz.sum(2)) * factor[..., None]


def _causal_backward(grad_out, q, k, v, plan):
    """Backward by segments, last to first: recompute each segment's features, carry dS, dz back."""
    chunk = plan.config["chunk"]
    seg_chunks = max(1, CAUSAL_BACKWARD_ELEMENTS // (plan.BH * plan.M * chunk))
    s, z, group_frames, _ = _prefix_states(k, v, plan, seg_chunks)
    seg_len = seg_chunks * chunk
    B, H, M = plan.B, plan.H, plan.M
    s = s[:, :, :M].unflatten(0, (B, H))
    z = z[:, :, :M].unflatten(0, (B, H))
    frames = group_frames.unflatten(0, (B, H))
    w = plan.w_float[None]
    grads = [torch.empty_like(x) for x in (q, k, v)]
    ds_next = torch.zeros_like(s[:, :, 0])
    dz_next = torch.zeros_like(z[:, :, 0])
    for seg in reversed(range(s.shape[2])):
        rows = slice(seg * seg_len, min(plan.L, (seg + 1) * seg_len))
        with torch.enable_grad():
            inputs = [x[:, :, rows].detach().float().clone().requires_grad_() for x in (q, k, v)]
            state = [s[:, :, seg].clone().requires_grad_(), z[:, :, seg].clone().requires_grad_()]
            out, s_out, z_out = _causal_segment(
                *inputs, w, state, frames[:, :, seg], frames[:, :, seg + 1], plan.norm, chunk
            )
            torch.autograd.backward([out, s_out, z_out], [grad_out[:, :, rows].float(), ds_next, dz_next])
        for grad, x in zip(grads, inputs, strict=True):
            grad[:, :, rows] = x.grad
        ds_next, dz_next = state[0].grad, state[1].grad
    return tuple(grads)


class _FavorFunction(torch.autograd.Function):
    """FAVOR attention with the fused kernels forward and feature-recomputing backward."""

    @staticmethod
    def forward(ctx, q, k, v, W, feature, causal):
        q, k, v = (x.contiguous() for x in (q, k, v))
        plan = _Plan(q, W, feature)
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
