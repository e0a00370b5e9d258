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
    return namespace(W).astype(W, target.native_dtype)
