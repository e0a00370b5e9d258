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

Launch parameters (:data:`estimators.triton_favor.host.CONFIG`) were chosen from H100 timings of
``python scripts/gpu_compare.py``; results/gpu_speed_memory/ holds the measured table.
"""

from __future__ import annotations

from .host import FEATURES, HEAD_DIMS, MAX_PROJECTIONS, favor_triton, supports, unsupported_reason

__all__ = ["FEATURES", "HEAD_DIMS", "MAX_PROJECTIONS", "favor_triton", "supports", "unsupported_reason"]
