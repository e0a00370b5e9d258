"""Triton kernels of the fused FAVOR attention (see :mod:`estimators.triton_favor` for the algebra).

Tile conventions: ``BLOCK_L`` positions × ``BLOCK_M`` feature rows × ``D`` head dimensions; feature
rows are the scaled projection W_s (padded to NJB·BLOCK_M rows, padded rows masked by ``M``);
log-amplitudes a = W_s q (queries) and b = W_s k − ‖k‖²·NORM (keys, NORM = 1/(2√d)); all states fp32.
"""

from __future__ import annotations

import triton
import triton.language as tl

NEG_INIT = -1.0e30
NEG_INIT_K = tl.constexpr(NEG_INIT)  # the same constant inside kernels


@triton.jit
def _key_state_kernel(
    k_ptr,
    v_ptr,
    w_ptr,
    s_ptr,
    z_ptr,
    t_ptr,
    rho_ptr,
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
    NORM: tl.constexpr,
    PREC: tl.constexpr,
    STORE_ROW_MAX: tl.constexpr,
):
    """S_seg = Σ_l exp(b_l − t) v_lᵀ, z_seg = Σ_l exp(b_l − t) over one segment and feature block.

    t is the running maximum of b over the segment and the block (online rescaling); it is stored so
    the host can bring all segments to one shift. STORE_ROW_MAX: each key's largest log-amplitude
    ρ_l = max_j b_lj is merged into ``rho_ptr`` (B·H×L, fp32, filled with −inf) by an atomic maximum
    over the feature blocks (exact, so independent of their order).
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
        row_ok = rows < stop  # a segment need not be a multiple of BLOCK_L
        pointers = base + rows[:, None].to(tl.int64) * D + offs_d[None, :]
        kt = tl.load(k_ptr + pointers, mask=row_ok[:, None], other=0.0)
        vt = tl.load(v_ptr + pointers, mask=row_ok[:, None], other=0.0)
        kf = kt.to(tl.float32)
        half_sq_norm = tl.sum(kf * kf, axis=1) * NORM
        logits = tl.dot(kt, tl.trans(w), input_precision=PREC) - half_sq_norm[:, None]
        logits = tl.where(row_ok[:, None] & feature_ok[None, :], logits, -float("inf"))
        row_max = tl.max(logits, axis=1)
        if STORE_ROW_MAX:
            tl.atomic_max(rho_ptr + bh.to(tl.int64) * L + rows, row_max, mask=row_ok)
        tile_max = tl.max(row_max, axis=0)
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
    REVERSE: tl.constexpr,
):
    """In place: group sums (frame t_g) → exclusive prefix states (frame c_g), c_{g+1} = max(c_g, t_g).

    H_0 = 0; H_{g+1} = H_g·exp(c_g − c_{g+1}) + ΔS_g·exp(t_g − c_{g+1}); every factor is ≤ 1.
    REVERSE: exclusive suffix states, last group first: slot g receives the state of groups > g in
    frame c_{g+1}, then H ← H·exp(c_{g+1} − c_g) + ΔS_g·exp(t_g − c_g) (the caller's frames make
    these factors ≤ 1).
    """
    bh = tl.program_id(0)
    jb = tl.program_id(1)
    db = tl.program_id(2)
    offs_m = jb * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = db * BLOCK_D + tl.arange(0, BLOCK_D)
    state = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    zstate = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for step in range(n_groups):
        if REVERSE:
            g = n_groups - 1 - step
            c_now = tl.load(c_ptr + bh * (n_groups + 1) + g + 1)
            c_next = tl.load(c_ptr + bh * (n_groups + 1) + g)
        else:
            g = step
            c_now = tl.load(c_ptr + bh * (n_groups + 1) + g)
            c_next = tl.load(c_ptr + bh * (n_groups + 1) + g + 1)
        row = (bh * n_groups + g).to(tl.int64) * (NJB * BLOCK_M)
        pointers = s_ptr + (row + offs_m)[:, None] * D + offs_d[None, :]
        delta = tl.load(pointers)
        tl.store(pointers, state)
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
def _query_features(qt, w, r, feature_ok, PREC: tl.constexpr):
    """Q'_ij = exp(a_ij − r_i), a = q W_sᵀ (BLOCK_L×BLOCK_M, fp32); padded feature rows give 0."""
    logits = tl.dot(qt, tl.trans(w), input_precision=PREC) - r[:, None]
    return tl.exp(tl.where(feature_ok[None, :], logits, -float("inf")))


@triton.jit
def _key_logits(kt, w, half_sq_norm, row_ok, feature_ok, PREC: tl.constexpr):
    """b_lj = w_j·k_l − ‖k_l‖²·NORM (BLOCK_L×BLOCK_M, fp32); −inf on padded rows and feature rows."""
    logits = tl.dot(kt, tl.trans(w), input_precision=PREC) - half_sq_norm[:, None]
    return tl.where(row_ok[:, None] & feature_ok[None, :], logits, -float("inf"))


@triton.jit
def _row_frames(rf_row_ptr, rows, row_ok, c_now):
    """The keys' running-maximum frames c_l = max_{l'≤l} ρ_l' of one chunk's rows (``rf_row_ptr``: one head's
    L frames); padded rows get the chunk's frame c_now, so that every exponent below stays finite."""
    return tl.where(row_ok, tl.load(rf_row_ptr + rows, mask=row_ok, other=0.0), c_now)


@triton.jit
def _frame_factors(c_rows, BLOCK_L: tl.constexpr):
    """E_il = exp(c_l − c_i) ≤ 1 for l ≤ i and 0 above the diagonal (BLOCK_L×BLOCK_L, fp32).

    Brings key l of a chunk, whose features exp(b_l − c_l) are in its own frame, to the frame c_i of a
    query i ≥ l of the same chunk: the causal mask and the frame change in one factor.
    """
    offs = tl.arange(0, BLOCK_L)
    lower = offs[:, None] >= offs[None, :]
    return tl.exp(tl.where(lower, c_rows[None, :] - c_rows[:, None], -float("inf")))


@triton.jit
def _advance_state(s_pointers, z_pointers, s, z, k_logits, c_prev, c_now, vt, PREC: tl.constexpr):
    """Stores one feature block of the state after a chunk, in the frame c_now of its last key.

    S ← S·e^{c_prev − c_now} + K'ᵀV and z ← z·e^{c_prev − c_now} + K'ᵀ1 with K' = exp(b − c_now) ≤ 1
    (``s``, ``z``: the state before the chunk, frame c_prev ≤ c_now; ``k_logits``: the chunk's b).
    """
    beta = tl.exp(c_prev - c_now)
    kp = tl.exp(k_logits - c_now).to(vt.dtype)
    tl.store(s_pointers, s * beta + tl.dot(tl.trans(kp), vt, input_precision=PREC))
    tl.store(z_pointers, z * beta + tl.sum(kp.to(tl.float32), axis=0))


@triton.jit
def _load_chunk(
    q_ptr,
    k_ptr,
    v_ptr,
    cc_ptr,
    rf_ptr,
    bh,
    chunk,
    n_chunks,
    L,
    BLOCK_L: tl.constexpr,
    D: tl.constexpr,
    NORM: tl.constexpr,
):
    """Chunk ``chunk`` of head ``bh``: rows, row_ok, the BLOCK_L×D element offsets, the q, k, v tiles
    (zero past L), ‖k‖²·NORM, the frame c_n of the chunk's last key and the keys' frames c_l."""
    base = bh.to(tl.int64) * L
    rows = chunk * BLOCK_L + tl.arange(0, BLOCK_L)
    row_ok = rows < L
    pointers = (base + rows)[:, None] * D + tl.arange(0, D)[None, :]
    qt = tl.load(q_ptr + pointers, mask=row_ok[:, None], other=0.0)
    kt = tl.load(k_ptr + pointers, mask=row_ok[:, None], other=0.0)
    vt = tl.load(v_ptr + pointers, mask=row_ok[:, None], other=0.0)
    kf = kt.to(tl.float32)
    half_sq_norm = tl.sum(kf * kf, axis=1) * NORM
    c_now = tl.load(cc_ptr + bh * n_chunks + chunk)
    c_rows = _row_frames(rf_ptr + base, rows, row_ok, c_now)
    return rows, row_ok, pointers, qt, kt, vt, half_sq_norm, c_now, c_rows


@triton.jit
def _causal_chunk(
    qt,
    kt,
    vt,
    half_sq_norm,
    row_ok,
    w_head,
    s_rows,
    z_rows,
    c_rows,
    c_prev,
    c_now,
    M,
    BLOCK_L: tl.constexpr,
    BLOCK_M: tl.constexpr,
    D: tl.constexpr,
    NJB: tl.constexpr,
    PREC: tl.constexpr,
    STATE_PREC: tl.constexpr,
    UPDATE_STATE: tl.constexpr,
):
    """Numerator, denominator and query row maximum r of one chunk (App. B.1, Eq. 11), row i in frame c_i.

    Key l has the frame c_l = max(c_prev, max_{l'≤l} ρ_l') (``c_rows``: the running maximum of the
    keys' largest log-amplitudes ρ_l = max_j b_lj, never looking past l) and features
    K̃_l = exp(b_l − c_l) ≤ 1. With Q' = exp(a − r) (r online over feature blocks) and the carried
    state S, z (rows ``s_rows``/``z_rows``, M̄×d and M̄, fp32, frame c_prev of the previous chunk's last key):

        num_i = e^{c_prev − c_i} Q'_i S + Σ_{l≤i} e^{c_l − c_i} (Q'_i·K̃_l) v_l,
        den_i = e^{c_prev − c_i} Q'_i z + Σ_{l≤i} e^{c_l − c_i} (Q'_i·K̃_l),

    every exponent ≤ 0, and the frames cancel in num_i/den_i. With UPDATE_STATE the state after the
    chunk (frame c_now, its last key's c) is stored in place (:func:`_advance_state`).
    """
    offs_d = tl.arange(0, D)
    acc = tl.zeros((BLOCK_L, D), dtype=tl.float32)
    den = tl.zeros((BLOCK_L,), dtype=tl.float32)
    scores = tl.zeros((BLOCK_L, BLOCK_L), dtype=tl.float32)
    r = tl.full((BLOCK_L,), NEG_INIT_K, tl.float32)
    for jb in range(NJB):
        offs_m = jb * BLOCK_M + tl.arange(0, BLOCK_M)
        feature_ok = offs_m < M
        w = tl.load(w_head + offs_m[:, None] * D + offs_d[None, :])
        s_pointers = s_rows + offs_m[:, None] * D + offs_d[None, :]
        s = tl.load(s_pointers)
        z = tl.load(z_rows + offs_m)
        q_logits = tl.dot(qt, tl.trans(w), input_precision=PREC)
        q_logits = tl.where(feature_ok[None, :], q_logits, -float("inf"))
        r_new = tl.maximum(r, tl.max(q_logits, axis=1))
        alpha = tl.exp(r - r_new)
        p = tl.exp(q_logits - r_new[:, None])
        k_logits = _key_logits(kt, w, half_sq_norm, row_ok, feature_ok, PREC)
        kp = tl.exp(k_logits - c_rows[:, None]).to(vt.dtype)
        acc = acc * alpha[:, None] + tl.dot(p, s, input_precision=STATE_PREC)
        den = den * alpha + tl.sum(p * z[None, :], axis=1)
        scores = scores * alpha[:, None] + tl.dot(p.to(vt.dtype), tl.trans(kp), input_precision=PREC)
        if UPDATE_STATE:
            _advance_state(s_pointers, z_rows + offs_m, s, z, k_logits, c_prev, c_now, vt, PREC)
        r = r_new
    carried = tl.exp(c_prev - c_rows)
    scores = scores * _frame_factors(c_rows, BLOCK_L)
    acc = acc * carried[:, None] + tl.dot(scores.to(vt.dtype), vt, input_precision=PREC)
    den = den * carried + tl.sum(scores, axis=1)
    return acc, den, r


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
    rf_ptr,
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

    The state (M×d and M, fp32) lives in this group's slot of ``s_ptr``/``z_ptr`` in the frame of the
    last key before the chunk (``cg_ptr``: the group's, ``cc_ptr``: each chunk's last key's frame) and
    is updated chunk by chunk, one feature block at a time (:func:`_causal_chunk`); ``rf_ptr`` holds the
    keys' frames c_l (B·H×L).
    """
    bh = tl.program_id(0)
    g = tl.program_id(1)
    state = (bh * n_groups + g).to(tl.int64) * (NJB * BLOCK_M)
    w_head = w_ptr + (bh % H) * w_head_stride
    c_prev = tl.load(cg_ptr + bh * (n_groups + 1) + g)
    for chunk in range(g * chunks_per_group, tl.minimum(g * chunks_per_group + chunks_per_group, n_chunks)):
        _, row_ok, pointers, qt, kt, vt, half_sq_norm, c_now, c_rows = _load_chunk(
            q_ptr, k_ptr, v_ptr, cc_ptr, rf_ptr, bh, chunk, n_chunks, L, BLOCK_L, D, NORM
        )
        acc, den, _ = _causal_chunk(
            qt, kt, vt, half_sq_norm, row_ok, w_head, s_ptr + state * D, z_ptr + state, c_rows, c_prev, c_now,
            M, BLOCK_L, BLOCK_M, D, NJB, PREC, STATE_PREC, True,
        )  # fmt: skip
        tl.store(o_ptr + pointers, (acc / den[:, None]).to(o_ptr.dtype.element_ty), mask=row_ok[:, None])
        c_prev = c_now
        tl.debug_barrier()


@triton.jit
def _causal_query_grad_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    w_ptr,
    do_ptr,
    s_ptr,
    z_ptr,
    cg_ptr,
    cc_ptr,
    rf_ptr,
    r_ptr,
    den_ptr,
    delta_ptr,
    dq_ptr,
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
    GRAD_PREC: tl.constexpr,
):
    """dq of one group of chunks of one head: the forward scan again, then the query chain rule.

    Per chunk (row i in frame c_i): num, den, r as the forward (:func:`_causal_chunk`, state not
    updated), g_i = dO_i/den_i, δ_i = dO_i·out_i, e_i = −δ_i/den_i (r, den, δ stored for the key
    pass), and per feature block dQ'_i = S_i g_i + z_i e_i, the state seen by query i:
    dQ'_i = e^{c_prev − c_i}(S g_i + z e_i) + Σ_{l≤i} A_il e^{c_l − c_i} K̃_l with A_il = g_i·v_l + e_i,
    dq_i = Σ_j Q'_ij dQ'_ij w_j; then the state advances as in the forward.
    """
    bh = tl.program_id(0)
    g = tl.program_id(1)
    offs_d = tl.arange(0, D)
    state = (bh * n_groups + g).to(tl.int64) * (NJB * BLOCK_M)
    w_head = w_ptr + (bh % H) * w_head_stride
    c_prev = tl.load(cg_ptr + bh * (n_groups + 1) + g)
    base = bh.to(tl.int64) * L
    for chunk in range(g * chunks_per_group, tl.minimum(g * chunks_per_group + chunks_per_group, n_chunks)):
        rows, row_ok, pointers, qt, kt, vt, half_sq_norm, c_now, c_rows = _load_chunk(
            q_ptr, k_ptr, v_ptr, cc_ptr, rf_ptr, bh, chunk, n_chunks, L, BLOCK_L, D, NORM
        )
        dn = tl.load(do_ptr + pointers, mask=row_ok[:, None], other=0.0).to(tl.float32)
        num, den, r = _causal_chunk(
            qt, kt, vt, half_sq_norm, row_ok, w_head, s_ptr + state * D, z_ptr + state, c_rows, c_prev, c_now,
            M, BLOCK_L, BLOCK_M, D, NJB, PREC, STATE_PREC, False,
        )  # fmt: skip
        den = tl.where(row_ok, den, 1.0)
        delta = tl.sum(dn * num, axis=1) / den
        dn = dn / den[:, None]
        e = -delta / den
        tl.store(r_ptr + base + rows, r, mask=row_ok)
        tl.store(den_ptr + base + rows, den, mask=row_ok)
        tl.store(delta_ptr + base + rows, delta, mask=row_ok)
        a = tl.dot(dn, tl.trans(vt.to(tl.float32)), input_precision=GRAD_PREC) + e[:, None]
        a = a * _frame_factors(c_rows, BLOCK_L)
        carried = tl.exp(c_prev - c_rows)
        tl.debug_barrier()
        dq = tl.zeros((BLOCK_L, D), dtype=tl.float32)
        for jb in range(NJB):
            offs_m = jb * BLOCK_M + tl.arange(0, BLOCK_M)
            feature_ok = offs_m < M
            w = tl.load(w_head + offs_m[:, None] * D + offs_d[None, :])
            s_pointers = s_ptr + (state + offs_m)[:, None] * D + offs_d[None, :]
            s = tl.load(s_pointers)
            z = tl.load(z_ptr + state + offs_m)
            p = _query_features(qt, w, r, feature_ok, PREC)
            k_logits = _key_logits(kt, w, half_sq_norm, row_ok, feature_ok, PREC)
            dp = tl.dot(dn, tl.trans(s), input_precision=GRAD_PREC) + e[:, None] * z[None, :]
            dp = dp * carried[:, None]
            dp += tl.dot(a, tl.exp(k_logits - c_rows[:, None]), input_precision=GRAD_PREC)
            dq += tl.dot(dp * p, w.to(tl.float32), input_precision=GRAD_PREC)
            _advance_state(s_pointers, z_ptr + state + offs_m, s, z, k_logits, c_prev, c_now, vt, PREC)
        tl.store(dq_ptr + pointers, dq.to(dq_ptr.dtype.element_ty), mask=row_ok[:, None])
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
    cg_ptr,
    rf_ptr,
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
    CAUSAL: tl.constexpr,
):
    """dS_j = Σ_i Q'_ij dO_i / D_i and dz_j = −Σ_i Q'_ij (dO_i·out_i) / D_i over one segment.

    CAUSAL: ``out_ptr`` holds δ_i = dO_i·out_i (L), the segments are the groups of chunks, and row i
    is weighted by exp(c_g − c_i) ≤ 1, with c_i = ``rf_ptr[i]`` its own frame (the running maximum of
    the keys' ρ up to i) and c_g = ``cg_ptr[g]`` the frame of the last key before group g: the group's
    suffix-state increment in frame c_g (see :mod:`.host`).
    """
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
    stop = tl.minimum(start + seg_len, L)
    for tile in range(start, stop, BLOCK_L):
        rows = tile + offs_l
        row_ok = rows < stop  # a segment need not be a multiple of BLOCK_L
        pointers = (base + rows)[:, None] * D + offs_d[None, :]
        qt = tl.load(q_ptr + pointers, mask=row_ok[:, None], other=0.0)
        dn = tl.load(do_ptr + pointers, mask=row_ok[:, None], other=0.0).to(tl.float32)
        r = tl.load(r_ptr + base + rows, mask=row_ok, other=0.0)
        den = tl.load(den_ptr + base + rows, mask=row_ok, other=1.0)
        if CAUSAL:
            c_group = tl.load(cg_ptr + bh * (n_seg + 1) + seg)
            c_row = tl.load(rf_ptr + base + rows, mask=row_ok, other=0.0)
            weight = tl.where(row_ok, tl.exp(tl.minimum(c_group - c_row, 0.0)), 0.0) / den
            dd = -tl.load(out_ptr + base + rows, mask=row_ok, other=0.0) * weight
            dn = dn * weight[:, None]
        else:
            ot = tl.load(out_ptr + pointers, mask=row_ok[:, None], other=0.0).to(tl.float32)
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


@triton.jit
def _causal_key_grad_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    w_ptr,
    do_ptr,
    r_ptr,
    den_ptr,
    delta_ptr,
    u_ptr,
    uz_ptr,
    cg_ptr,
    cc_ptr,
    rf_ptr,
    dk_ptr,
    dv_ptr,
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
    GRAD_PREC: tl.constexpr,
):
    """dk, dv of one group of chunks of one head: the reverse causal scan, last chunk first.

    Query i is in the frame c_i of the forward (``rf_ptr``), key l of chunk n pairs with it through
    exp(b_l − c_i). The carried suffix state entering chunk n, in the frame c_n of the chunk's last
    key, is U = Σ_{i after n} e^{c_n − c_i} Q'_i g_iᵀ, u = Σ_{i after n} e^{c_n − c_i} Q'_i e_i (M̄×d,
    M̄, fp32; at the group's last chunk this group's slot of ``u_ptr``/``uz_ptr``, the queries of later
    groups). Per chunk, with K'_l = exp(b_l − c_n), K̃_l = exp(b_l − c_l) and
    Ã_il = (g_i·v_l + e_i) e^{c_l − c_i} for i ≥ l (:func:`_frame_factors`):
    dlogit_l = K'_l ⊙ (U v_l + u) + K̃_l ⊙ Σ_{i≥l} Ã_il Q'_i,
    dv_l = Uᵀ K'_l + Σ_{i≥l} e^{c_l − c_i} (Q'_i·K̃_l) g_i,  dk_l = Σ_j dlogit_lj (w_j − 2·NORM·k_l);
    then the state moves to the frame c_{n−1} of the previous chunk's last key (the group's frame
    ``cg_ptr[g]`` before its first chunk): U ← e^{c_{n−1} − c_n} U + Σ_{i∈n} e^{c_{n−1} − c_i} Q'_i g_iᵀ,
    u likewise; every factor ≤ 1.
    """
    bh = tl.program_id(0)
    g = tl.program_id(1)
    offs_d = tl.arange(0, D)
    state = (bh * n_groups + g).to(tl.int64) * (NJB * BLOCK_M)
    w_head = w_ptr + (bh % H) * w_head_stride
    c_group = tl.load(cg_ptr + bh * (n_groups + 1) + g)
    base = bh.to(tl.int64) * L
    first = g * chunks_per_group
    last = tl.minimum(first + chunks_per_group, n_chunks) - 1
    for step in range(0, last - first + 1):
        chunk = last - step
        rows, row_ok, pointers, qt, kt, vt, half_sq_norm, c_now, c_rows = _load_chunk(
            q_ptr, k_ptr, v_ptr, cc_ptr, rf_ptr, bh, chunk, n_chunks, L, BLOCK_L, D, NORM
        )
        vf = vt.to(tl.float32)
        r = tl.load(r_ptr + base + rows, mask=row_ok, other=0.0)
        den = tl.load(den_ptr + base + rows, mask=row_ok, other=1.0)
        e = -tl.load(delta_ptr + base + rows, mask=row_ok, other=0.0) / den
        dn = tl.load(do_ptr + pointers, mask=row_ok[:, None], other=0.0).to(tl.float32) / den[:, None]
        c_below = tl.load(cc_ptr + bh * n_chunks + tl.maximum(chunk - 1, 0))
        c_below = tl.where(chunk > first, c_below, c_group)
        beta = tl.exp(c_below - c_now)
        below = tl.exp(c_below - c_rows)
        a = tl.dot(dn, tl.trans(vf), input_precision=GRAD_PREC) + e[:, None]
        a = a * _frame_factors(c_rows, BLOCK_L)
        dk = tl.zeros((BLOCK_L, D), dtype=tl.float32)
        dv = tl.zeros((BLOCK_L, D), dtype=tl.float32)
        dlogit_sum = tl.zeros((BLOCK_L,), dtype=tl.float32)
        scores = tl.zeros((BLOCK_L, BLOCK_L), dtype=tl.float32)
        for jb in range(NJB):
            offs_m = jb * BLOCK_M + tl.arange(0, BLOCK_M)
            feature_ok = offs_m < M
            w = tl.load(w_head + offs_m[:, None] * D + offs_d[None, :])
            u_pointers = u_ptr + (state + offs_m)[:, None] * D + offs_d[None, :]
            u = tl.load(u_pointers)
            uz = tl.load(uz_ptr + state + offs_m)
            p = _query_features(qt, w, r, feature_ok, PREC)
            p = tl.where(row_ok[:, None], p, 0.0)
            k_logits = _key_logits(kt, w, half_sq_norm, row_ok, feature_ok, PREC)
            kp = tl.exp(k_logits - c_now)
            kp_own = tl.exp(k_logits - c_rows[:, None])
            dlogit = (tl.dot(vf, tl.trans(u), input_precision=GRAD_PREC) + uz[None, :]) * kp
            dlogit += tl.dot(tl.trans(a), p, input_precision=GRAD_PREC) * kp_own
            dk += tl.dot(dlogit, w.to(tl.float32), input_precision=GRAD_PREC)
            dlogit_sum += tl.sum(dlogit, axis=1)
            dv += tl.dot(kp, u, input_precision=GRAD_PREC)
            scores += tl.dot(kp_own, tl.trans(p), input_precision=GRAD_PREC)
            p_below = p * below[:, None]
            tl.store(u_pointers, u * beta + tl.dot(tl.trans(p_below), dn, input_precision=GRAD_PREC))
            tl.store(uz_ptr + state + offs_m, uz * beta + tl.sum(p_below * e[:, None], axis=0))
        scores = scores * tl.trans(_frame_factors(c_rows, BLOCK_L))  # recomputed: not held over the loop
        dv += tl.dot(scores, dn, input_precision=GRAD_PREC)
        dk = dk - (2.0 * NORM) * kt.to(tl.float32) * dlogit_sum[:, None]
        tl.store(dk_ptr + pointers, dk.to(dk_ptr.dtype.element_ty), mask=row_ok[:, None])
        tl.store(dv_ptr + pointers, dv.to(dv_ptr.dtype.element_ty), mask=row_ok[:, None])
        tl.debug_barrier()
