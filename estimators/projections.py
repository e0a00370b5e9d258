"""Random projection matrices W of shape (*batch_shape, m, d).

* :func:`iid`: rows ω_i ~ N(0, I_d) independently (Performers, Lemma 1 / Eq. 7).
* :func:`orthogonal`: block-orthogonal random features (Performers §2.4, App. B.2; Yu et al. 2016).
  Rows within a block of d are exactly orthogonal with Haar-distributed directions; blocks are
  independent; for m > d, ceil(m/d) blocks are stacked and the last one truncated. Row norms are
  either iid χ(d) (``norms="chi"``: each row is marginally N(0, I_d), so every softmax estimator
  stays unbiased) or all √d (``norms="fixed"``: rows uniform on √d·S^{d−1}, which estimates the
  regularized kernel SMREG instead, theory.md §6).

Haar directions need care: LAPACK-style Householder QR does not make diag(R) positive, and the
resulting Q is *not* Haar (for d = 8, E[(Qᵀ)_ii] ≈ −0.29 … +0.22; positive features then are biased
at axis-aligned inputs, theory.md §5.1). We fold sign(diag R) into Q (Mezzadri 2007), which makes
the factorization unique and Q exactly Haar. ``sign_fix=False`` reproduces the common bug, for
studies and audits only.

Randomness: ``seed`` is an int / ``SeedSequence`` / numpy ``Generator`` (portable path: drawn and
factorized on the host in float64, then moved, so every backend gets the same W), or a
``torch.Generator`` / ``jax.random`` key (native path: drawn and factorized on that device).
``like`` (an array) or ``backend`` / ``device`` / ``dtype`` say where the result lives.
"""

from __future__ import annotations

import math

from .backends import make_rng, namespace, resolve_target
from .validation import check_choice, check_positive_int

NORMS = ("chi", "fixed")


def iid(m, d, *, batch_shape=(), seed=None, like=None, backend=None, device=None, dtype=None):
    """W with iid N(0, 1) entries, shape (*batch_shape, m, d)."""
    m, d, batch_shape = _check_sizes(m, d, batch_shape)
    rng, target = _rng_and_target(seed, like, backend, device, dtype)
    W = rng.normal((*batch_shape, m, d))
    return _place(W, rng, target)


def orthogonal(
    m,
    d,
    *,
    norms="chi",
    sign_fix=True,
    batch_shape=(),
    seed=None,
    like=None,
    backend=None,
    device=None,
    dtype=None,
):
    """Block-orthogonal W of shape (*batch_shape, m, d) with Haar blocks.

    Parameters
    ----------
    m, d : int
        Number of projections (rows) and input dimension.
    norms : {"chi", "fixed"}
        Row norms iid χ(d) (unbiased for the softmax kernel) or all √d (estimates SMREG).
    sign_fix : bool
        Fold sign(diag R) into Q so that blocks are Haar. ``False`` reproduces the biased
        construction of the public Performer code; never use it for estimation.
    batch_shape : tuple of int
        Leading shape of independent matrices (per head, per Monte Carlo replicate), drawn in one
        vectorized call.

    Returns
    -------
    W : array of shape (*batch_shape, m, d)
        Rows ``b·d … b·d + d − 1`` form block b: ``W_block = diag(norms) · Qᵀ`` with Q Haar.
    """
    m, d, batch_shape = _check_sizes(m, d, batch_shape)
    check_choice(norms, "norms", NORMS)
    rng, target = _rng_and_target(seed, like, backend, device, dtype)
    n_blocks = math.ceil(m / d)
    gaussian = rng.normal((*batch_shape, n_blocks, d, d))
    directions = haar_rows(gaussian, sign_fix=sign_fix)
    xp = namespace(directions)
    directions = xp.reshape(directions, (*batch_shape, n_blocks * d, d))[..., :m, :]
    if norms == "chi":
        row_norms = xp.linalg.vector_norm(rng.normal((*batch_shape, m, d)), axis=-1)
    else:
        row_norms = xp.full((*batch_shape, m), math.sqrt(d), dtype=directions.dtype)
    W = directions * row_norms[..., None]
    return _place(W, rng, target)


def haar_rows(gaussian, *, sign_fix=True):
    """Rows of a Haar-distributed orthogonal matrix from a Gaussian stack (…, d, d).

    Q R = G by Householder QR; with ``sign_fix`` Q ← Q·diag(sign(diag R)) (Mezzadri 2007, "How to
    generate random matrices from the classical compact groups"), which is Haar. Returns Qᵀ, whose
    rows are the orthonormal directions.
    """
    xp = namespace(gaussian)
    q, r = xp.linalg.qr(gaussian)
    if sign_fix:
        signs = xp.sign(xp.linalg.diagonal(r))
        signs = xp.where(signs == 0, xp.ones_like(signs), signs)
        q = q * signs[..., None, :]
    return xp.matrix_transpose(q)


def _check_sizes(m, d, batch_shape):
    m = check_positive_int(m, "m")
    d = check_positive_int(d, "d")
    if isinstance(batch_shape, int):
        batch_shape = (batch_shape,)
    try:
        batch_shape = tuple(int(n) for n in batch_shape)
    except TypeError:
        raise TypeError(f"batch_shape must be a tuple of ints, got {batch_shape!r}") from None
    if any(n < 0 for n in batch_shape):
        raise ValueError(f"batch_shape must hold non-negative ints, got {batch_shape}")
    return m, d, batch_shape


def _rng_and_target(seed, like, backend, device, dtype):
    """The random source for ``seed`` and where its draw goes.

    A native generator with no ``like``/``backend`` given places the result on its own device.
    Native draws happen in float32 or float64 (QR is unreliable in half precision).
    """
    rng = make_rng(seed)
    if rng.native and like is None and backend is None:
        backend, device = rng.space.backend, rng.space.device
        dtype = dtype or "float32"
    target = resolve_target(like=like, backend=backend, device=device, dtype=dtype)
    rng = make_rng(seed, dtype="float64" if target.dtype == "float64" else "float32")
    return rng, target


def _place(W, rng, target):
    """Move a draw to ``target``: host arrays are converted, native ones cast in place."""
    if not rng.native:
        return target.asarray(W)
    if (rng.space.backend, rng.space.device) != (target.backend, target.device):
        raise ValueError(
            f"seed is a {rng.space.backend}:{rng.space.device} generator but the target is "
            f"{target.backend}:{target.device}; pass a generator on the target device or an int"
        )
    return namespace(W).astype(W, target.native_dtype, copy=False)


# --- Beyond block-orthogonal: simplex, structured (SORF), quasi-Monte Carlo and uniform draws ---


def simplex(
    m, d, *, norms="chi", batch_shape=(), seed=None, like=None, backend=None, device=None, dtype=None
):
    """Simplex random features W (*batch_shape, m, d) (Reid et al., ICML 2023; theory.md §10.4).

    Each block of d rows is ``ω_i = ρ_i R s_i``: ``s_1 … s_d`` the unit vertices of a regular simplex
    centred at 0 (``s_iᵀs_j = −1/(d−1)``, ``s_i ∝ e_i − 1/d``), ``R`` a Haar rotation (QR with the sign
    fix) and ``ρ_i`` iid χ(d) (``norms="chi"``: every row is marginally N(0, I_d), so every softmax
    estimator stays unbiased) or √d (``"fixed"``). Blocks are independent; the last is truncated.
    Needs d ≥ 2 (one vector has no simplex partner).
    """
    m, d, batch_shape = _check_sizes(m, d, batch_shape)
    check_choice(norms, "norms", NORMS)
    if d < 2:
        raise ValueError(f"d must be >= 2 for simplex features (a simplex needs two vertices), got {d}")
    rng, target = _rng_and_target(seed, like, backend, device, dtype)
    n_blocks = math.ceil(m / d)
    rotations = haar_rows(rng.normal((*batch_shape, n_blocks, d, d)))
    xp = namespace(rotations)
    vertices = xp.asarray(simplex_vertices(d), dtype=rotations.dtype, device=_device_of(rotations))
    directions = xp.matmul(vertices, rotations)
    directions = xp.reshape(directions, (*batch_shape, n_blocks * d, d))[..., :m, :]
    W = directions * _row_norms(rng, norms, batch_shape, m, d, directions)[..., None]
    return _place(W, rng, target)


def simplex_vertices(d):
    """The d unit vertices (d, d) of a regular simplex centred at 0: rows ``(e_i − 1/d)/‖e_i − 1/d‖``.

    Their Gram matrix is ``(d/(d−1)) I − (1/(d−1)) 11ᵀ`` (theory.md claim 25).
    """
    import numpy as np

    vertices = np.eye(d) - 1.0 / d
    return vertices / np.linalg.norm(vertices, axis=-1, keepdims=True)


def sorf(m, d, *, norms="fixed", batch_shape=(), seed=None, like=None, backend=None, device=None, dtype=None):
    """Structured orthogonal random features W (*batch_shape, m, d) (Yu et al., NeurIPS 2016, §4).

    Each block of n = 2^⌈log₂ d⌉ directions is ``H D₁ H D₂ H D₃`` (H the normalized n×n Walsh–Hadamard
    matrix, D_k diagonal Rademacher signs), built with the fast transform :func:`fwht`; inputs with
    d < n are implicitly zero-padded, so a block keeps its first d columns, renormalized to unit
    rows. Row norms are √d (``norms="fixed"``, the published construction: *biased* for the softmax
    kernel, its mean is close to SMREG; theory.md §10.1) or re-randomized iid χ(d) (``"chi"``: the
    rows' second moments match N(0, I_d) but their directions are not exactly uniform, so a small
    bias remains; there is no closed form). :func:`sorf_project` applies a block to inputs in
    O(n log n) per row instead of O(n·d).
    """
    m, d, batch_shape = _check_sizes(m, d, batch_shape)
    check_choice(norms, "norms", NORMS)
    rng, target = _rng_and_target(seed, like, backend, device, dtype)
    n = sorf_width(d)
    n_blocks = math.ceil(m / n)
    signs = rademacher(rng, (*batch_shape, n_blocks, 3, n))
    xp = namespace(signs)
    identity = xp.eye(n, dtype=signs.dtype, device=_device_of(signs))
    blocks = sorf_project(identity, signs[..., None, :, :])
    directions = xp.matrix_transpose(blocks)[..., :d]
    directions = directions / xp.linalg.vector_norm(directions, axis=-1, keepdims=True)
    directions = xp.reshape(directions, (*batch_shape, n_blocks * n, d))[..., :m, :]
    W = directions * _row_norms(rng, norms, batch_shape, m, d, directions)[..., None]
    return _place(W, rng, target)


def sorf_width(d):
    """Block width n = 2^⌈log₂ d⌉ of SORF (the Walsh–Hadamard transform needs a power of two)."""
    return 1 << (int(d) - 1).bit_length()


def rademacher(rng, shape):
    """±1 signs of ``shape`` from a random source (uniform draws thresholded at 1/2)."""
    uniform = rng.uniform(shape)
    xp = namespace(uniform)
    return xp.where(uniform < 0.5, -xp.ones_like(uniform), xp.ones_like(uniform))


def fwht(x):
    """Normalized fast Walsh–Hadamard transform along the last axis (…, n), n a power of two.

    ``H x`` with ``H = H_n/√n`` orthogonal and symmetric (Sylvester ordering), in n·log₂ n additions:
    each of the log₂ n butterfly stages maps pairs (a, b) at distance h to (a + b, a − b).
    """
    xp = namespace(x)
    n = x.shape[-1]
    if n & (n - 1):
        raise ValueError(f"x must have a power-of-two last dimension (Walsh–Hadamard), got {n}")
    lead = x.shape[:-1]
    h = 1
    while h < n:
        pairs = xp.reshape(x, (*lead, n // (2 * h), 2, h))
        first, second = pairs[..., 0, :], pairs[..., 1, :]
        x = xp.reshape(xp.stack([first + second, first - second], axis=-2), (*lead, n))
        h *= 2
    return x * n**-0.5


def sorf_project(x, signs):
    """Apply SORF blocks ``H D₁ H D₂ H D₃`` to rows: x (…, n) and signs (…, 3, n) → (…, n).

    Row i of the result is ``(H D₁ H D₂ H D₃) x_i``, i.e. x Bᵀ for the block B; O(n log n) per row
    (Yu et al. 2016, §4). Leading dimensions broadcast (e.g. signs (…, blocks, 1, 3, n) against x
    (…, L, n) gives every block's projection).
    """
    for k in (2, 1, 0):
        x = fwht(x * signs[..., k, :])
    return x


def qmc(
    m,
    d,
    *,
    sequence="sobol",
    norms="chi",
    batch_shape=(),
    seed=None,
    like=None,
    backend=None,
    device=None,
    dtype=None,
):
    """Randomized quasi-Monte Carlo Gaussian rows W (*batch_shape, m, d) (Yang et al., ICML 2014).

    ``ω_i = Φ⁻¹(u_i)`` coordinate-wise, with ``u_1 … u_m`` a randomized Sobol' point set (linear
    matrix scramble and digital shift) or Halton point set (random digit permutations), one
    independent randomization per leading index (:mod:`estimators.qmc_points`, all leading indices in
    a few array operations). Each point is uniform on [0, 1)^d, so each row is marginally N(0, I_d)
    and every softmax estimator stays unbiased. No closed-form variance exists for exponential
    features (theory.md §10.6). Sobol' stratification needs m a power of two (other m are valid, just
    less balanced). Only ``norms="chi"`` (Gaussian rows) is offered. Drawn on the host; a native
    generator is refused.
    """
    from scipy import special

    from .qmc_points import scrambled_halton, scrambled_sobol

    m, d, batch_shape = _check_sizes(m, d, batch_shape)
    check_choice(sequence, "sequence", QMC_SEQUENCES)
    check_choice(norms, "norms", ("chi",))
    rng = make_rng(seed)
    if rng.native:
        raise TypeError("seed for qmc must be an int, SeedSequence or numpy Generator (scipy draws on host)")
    target = resolve_target(like=like, backend=backend, device=device, dtype=dtype)
    point_set = scrambled_sobol if sequence == "sobol" else scrambled_halton
    points = point_set(m, d, math.prod(batch_shape), rng.generator)
    W = special.ndtri(points).reshape((*batch_shape, m, d))
    return target.asarray(W)


def uniform(
    m, d, *, norms="chi", batch_shape=(), seed=None, like=None, backend=None, device=None, dtype=None
):
    """iid Uniform[0, 1) variates U (*batch_shape, m, d) for discretely-induced features.

    The Poisson and geometric feature maps turn U into counts ω_il = F⁻¹(U_il) for their current
    rate (inverse-CDF sampling), so the rate can depend on the data (theory.md §10.2, CRT DIRFs).
    ``norms`` is accepted for the registry's uniform call signature and must be ``"chi"``. A host
    draw rounded to a narrower dtype can round up to 1; such a variate becomes the largest value
    below 1 of that dtype (1 − ε/2), so U stays in [0, 1).
    """
    m, d, batch_shape = _check_sizes(m, d, batch_shape)
    check_choice(norms, "norms", ("chi",))
    rng, target = _rng_and_target(seed, like, backend, device, dtype)
    return below_one(_place(rng.uniform((*batch_shape, m, d)), rng, target))


def below_one(U):
    """U with every value ≥ 1 replaced by the largest value below 1 of its dtype, 1 − ε/2."""
    xp = namespace(U)
    return xp.where(U < 1, U, 1 - xp.finfo(U.dtype).eps / 2)


QMC_SEQUENCES = ("sobol", "halton")


def _qmc_halton(m, d, **kwargs):
    return qmc(m, d, sequence="halton", **kwargs)


SAMPLERS = {
    "iid": iid,
    "orthogonal": orthogonal,
    "simplex": simplex,
    "sorf": sorf,
    "qmc": qmc,
    "qmc-halton": _qmc_halton,
    "uniform": uniform,
}


def sampler(name):
    """The projection sampler called ``name`` (a key of :data:`SAMPLERS`)."""
    check_choice(name, "projection", SAMPLERS)
    return SAMPLERS[name]


def _row_norms(rng, norms, batch_shape, m, d, like):
    """Row norms (*batch_shape, m): iid χ(d) (norms of fresh Gaussians) or all √d."""
    xp = namespace(like)
    if norms == "chi":
        return xp.linalg.vector_norm(rng.normal((*batch_shape, m, d)), axis=-1)
    return xp.full((*batch_shape, m), math.sqrt(d), dtype=like.dtype, device=_device_of(like))


def _device_of(x):
    from array_api_compat import device

    return device(x)
