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
* keys, causal: per-key running-maximum frames, as the reference (:mod:`estimators.causal`). With
  ρ_l = max_j b_lj (the key's largest log-amplitude over all feature rows) key l has the frame
  c_l = max_{l'≤l} ρ_l' and the features K̃_l = exp(b_l − c_l) ≤ 1; query i combines key l ≤ i of its
  chunk with the factor exp(c_l − c_i) ≤ 1 and the state carried into the chunk (in the frame F of
  the previous chunk's last key) with exp(F − c_i) ≤ 1, so row i is formed in its own frame c_i,
  which cancels in num_i/den_i. Every exponent is ≤ 0 and no shift depends on a later position: a
  later key, however large, changes no earlier output, and a key far above the earlier keys of its
  chunk leaves their rows exact (a chunk-wide shift would flush their denominators to 0 past a jump
  of b by ≳ 87, the float32 exponent range).

Algorithms (per head; M = r feature rows, tiles of ``BLOCK_M`` features and ``BLOCK_L`` positions):

* bidirectional forward: a key pass accumulating S = K'ᵀV (M×d) and z = K'ᵀ1 in fp32 over segments
  of the sequence in parallel (each segment with its own running shift), a merge kernel bringing
  them to the one key shift c and dividing S and z by a = max(|S|, z) (a key constant, which cancels;
  it lets S enter the query pass in the input's half type), then a query pass out_i = Q'_i S / Q'_i z.
* causal forward: chunked scan (App. B.1, Eq. 11). A key pass gives the state of each group of
  chunks and ρ (its feature-block programs merge their row maxima by an atomic maximum, L floats per
  head); a cumulative maximum gives the frames c (L floats per head), a scan over groups the prefix
  states; then one program per group walks its chunks:
  out_i = (e^{F−c_i} Q'_i S_prev + Σ_{l≤i} e^{c_l−c_i}(Q'_i·K̃_l) v_l) / (the same with z_prev and 1),
  quadratic inside a chunk, carrying the M×(d+1) fp32 state in the frame of the chunk's last key
  (through L2, one feature block at a time).
* backward (g_i = dO_i/den_i, e_i = −g_i·out_i; features recomputed tile by tile, never stored):
  bidirectional with three kernels (dS = Σ_i Q'_i g_iᵀ and dz = Σ_i Q'_i e_i; dq; dk, dv). Causal
  (chunks of C' = ``grad_chunk`` rows, groups as in the forward) with three kernels and a scan:
  1. a forward scan per group from the prefix states: per chunk num, den and r as in the forward,
     then dQ'_i = S_i g_i + z_i e_i (the carried state, times e^{F−c_i}, plus
     Σ_{l≤i} A_il e^{c_l−c_i} K̃_l in the chunk, with A_il = g_i·v_l + e_i) and
     dq_i = Σ_j Q'_ij dQ'_ij w_j; it stores r_i, den_i and δ_i = dO_i·out_i;
  2. per group the suffix increment Σ_{i∈g} Q'_i g_iᵀ, Σ_{i∈g} Q'_i e_i (one program per feature
     block, as dS, dz bidirectionally), and a reverse scan over groups giving the suffix state U, u of
     the queries after each group;
  3. a reverse scan per group, last chunk first, carrying U, u (M×(d+1), fp32):
     d logit_l = K'_l ⊙ (U v_l + u) + K̃_l ⊙ Σ_{i≥l} A_il e^{c_l−c_i} Q'_i,
     dv_l = Uᵀ K'_l + Σ_{i≥l} e^{c_l−c_i} (Q'_i·K̃_l) g_i, dk_l = Σ_j d logit_lj (w_j − k_l/√d),
     then U += Σ_{i∈chunk} Q'_i g_iᵀ, u += Σ Q'_i e_i (with the frame factors below).
  Shifts are constants of the chain rule (d logit = dφ ⊙ φ); the query's −‖q‖²/2 term drops out
  exactly (Σ_j Q'_ij dQ'_ij = g_i·num_i + e_i den_i = 0). Between forward and backward only q, k, v
  (and, bidirectionally, O(L + m·d) floats) are kept; the causal backward adds 5L floats (r, den,
  δ, ρ, c) and O(groups·M·d) states.

  Frames of the causal backward: the forward's row frames c_i, recomputed by the same key pass
  (they depend on no chunk length, so C' ≠ C changes nothing) and stop-gradient constants. The
  exact pair term of key l and query i ≥ l is
  exp(b_l)·exp(a_i)/den_true_i = exp(b_l − c_i)·Q'_i/den_i, with den_i the forward's denominator in
  the query's frame c_i ≥ c_l: a key is seen in the frame of the later query. Inside a chunk this is
  K̃_l·e^{c_l − c_i}, as in the forward. Across chunks the suffix state entering chunk n is kept in
  the frame c_n of that chunk's last key, U_n = Σ_{i after chunk n} exp(c_n − c_i) Q'_i g_iᵀ, and
  pairs with K' = exp(b − c_n) ≤ 1; it moves to chunk n−1 by exp(c_{n−1} − c_n) ≤ 1 while chunk n's
  queries join with weights exp(c_{n−1} − c_i) ≤ 1, group increments are formed in the frame before
  the group (row weights exp(c_g − c_i) ≤ 1) and the reverse group scan rescales by
  exp(c_g − c_{g+1}) ≤ 1. Every exponent is ≤ 0, so nothing can overflow; a large key late in the
  sequence only shrinks, towards 0, the terms between earlier keys and the queries after it, which
  are as negligible in exact arithmetic (their denominators hold that key), while earlier rows'
  gradients are formed in their own, earlier frames. The opposite choice (suffix states in the frame
  of the latest query) would need factors exp(c_i − c_n) ≥ 1 and overflows past such a key. The dq
  scan uses the forward's frames unchanged.

Precision: half-precision inputs use fp16/bf16 tensor-core products (projections, Q'K'ᵀ, K'ᵀV, the
bidirectional Q'S) with fp32 accumulation, and tf32 products against the unnormalized fp32 causal
state; fp32 inputs use exact fp32 products. Shifts are stop-gradient constants (exact: the output
does not depend on them). W is a constant (random projections are drawn, not trained): a W that
requires grad is rejected by :func:`supports`.

Launch parameters (:data:`estimators.triton_favor.plan.CONFIG`) were chosen from H100 timings of
``python scripts/gpu_compare.py`` for half-precision inputs with d ≤ 64; results/gpu_speed_memory/
holds the measured table, whose causal rows predate the per-row frames. The causal backward's
(``grad_chunk``, and ``grad_warps`` shared with the bidirectional backward) are not timed yet.
:func:`~estimators.triton_favor.plan.launch_config` adapts them to d = 128, float32 inputs and GPUs
with less shared memory per block (sm_86/89), and states a register ceiling below sm_90 and for float32
inputs, without which ptxas spills at 32 registers; ``python scripts/kernel_resources.py`` compiles every
launch for sm_80, sm_86 and sm_90 without a GPU (:mod:`.resources`) and reports registers, spills and
shared memory against each architecture's limit.
"""

from __future__ import annotations

from .host import FEATURES, HEAD_DIMS, MAX_PROJECTIONS, favor_triton, supports, unsupported_reason

__all__ = ["FEATURES", "HEAD_DIMS", "MAX_PROJECTIONS", "favor_triton", "supports", "unsupported_reason"]
