"""Planted defects of the projection sampler: the law of W (QR without the sign fix, wrong norms,
iid and orthogonal rows swapped, a scaled W, norms tied to directions), W shared across heads or
reused across redraws, and redraws seeded from the data by a colliding hash, with a correct
data-seeded redraw next to them.
"""

from __future__ import annotations

import zlib

import numpy as np

from estimators import projections

from .planting import Planted, control_adapter, replaced, with_sampler


def _no_sign_fix():
    def draw(m, d, count, seed):
        return projections.orthogonal(m, d, sign_fix=False, batch_shape=(int(count),), seed=int(seed))

    return with_sampler("positive-ort", "qr-no-sign-fix", draw)


def _fixed_norms_as_chi():
    def draw(m, d, count, seed):
        W = projections.orthogonal(m, d, batch_shape=(int(count),), seed=int(seed))
        return W * (np.sqrt(d) / np.linalg.norm(W, axis=-1, keepdims=True))

    return with_sampler("positive-ort", "fixed-norms-as-chi", draw)


def _iid_as_orthogonal():
    def draw(m, d, count, seed):
        return projections.iid(m, d, batch_shape=(int(count),), seed=int(seed))

    return with_sampler("trig-ort", "iid-as-orthogonal", draw)


def _orthogonal_as_iid():
    def draw(m, d, count, seed):
        return projections.orthogonal(m, d, batch_shape=(int(count),), seed=int(seed))

    return with_sampler("trig-iid", "orthogonal-as-iid", draw)


def _wrong_norm_law():
    """Norms with the right E‖w‖² = d but ‖w‖² ~ Gamma(d, 1) instead of χ²_d = Gamma(d/2, 2)."""

    def draw(m, d, count, seed):
        W = projections.orthogonal(m, d, norms="fixed", batch_shape=(int(count),), seed=int(seed)) / np.sqrt(
            d
        )
        rng = np.random.default_rng(int(seed) + 1)
        return W * np.sqrt(rng.gamma(d, 1.0, size=(int(count), m, 1)))

    return with_sampler("positive-ort", "wrong-norm-law", draw)


def _simplex_chi1_norms():
    """SimRF with each row's norm √(χ²₁) instead of χ(d): favor-bench's simplex directions, E‖w‖² = 1."""

    def draw(m, d, count, seed):
        W = projections.simplex(m, d, norms="fixed", batch_shape=(int(count),), seed=int(seed)) / np.sqrt(d)
        rng = np.random.default_rng(int(seed) + 1)
        return W * np.sqrt(rng.chisquare(1, size=(int(count), m, 1)))

    return with_sampler("positive-simplex", "simplex-chi1-norms", draw)


def _orthogonal_as_simplex():
    """Block-orthogonal rows (Gram I within a block) presented as simplex rows (Gram −1/(d − 1))."""

    def draw(m, d, count, seed):
        return projections.orthogonal(m, d, batch_shape=(int(count),), seed=int(seed))

    return with_sampler("positive-simplex", "orthogonal-as-simplex", draw)


def _wrong_variance():
    def draw(m, d, count, seed):
        return 1.1 * projections.orthogonal(m, d, batch_shape=(int(count),), seed=int(seed))

    return with_sampler("positive-ort", "wrong-coordinate-variance", draw)


def _norms_follow_directions():
    """Each block's χ(d) norms handed out in the order of |u_i1|: the norm law and the directions are
    right, their independence is not."""

    def draw(m, d, count, seed):
        W = projections.orthogonal(m, d, batch_shape=(int(count),), seed=int(seed))
        norms = np.linalg.norm(W, axis=-1)
        directions = W / norms[..., None]
        out = np.empty_like(W)
        for start in range(0, m, d):
            block = slice(start, min(start + d, m))
            rank = np.argsort(np.argsort(np.abs(directions[:, block, 0]), axis=-1), axis=-1)
            ordered = np.sort(norms[:, block], axis=-1)
            out[:, block] = directions[:, block] * np.take_along_axis(ordered, rank, axis=-1)[..., None]
        return out

    return with_sampler("positive-ort", "norms-follow-directions", draw)


def _shared_heads():
    control = control_adapter("positive-ort")

    def shared(m, d, count, seed):
        return np.repeat(control.sample_projection(m, d, seed)[None], int(count), axis=0)

    return replaced("positive-ort", "shared-heads", head_projections=shared)


def _cycling_redraw():
    control = control_adapter("positive-ort")

    def cycle(m, d, count, seed):
        three = control.sample_projections(m, d, 3, seed)
        return three[np.arange(int(count)) % 3]

    return replaced("positive-ort", "cycling-redraw", redraw_projections=cycle)


def _redraw_reuses_norms():
    """Redraws with fresh Haar directions and the row norms of one fixed draw (seed 0), as an
    unseeded redraw whose norms come from a fixed seed does."""
    control = control_adapter("positive-ort")

    def reuse(m, d, count, seed):
        W = control.sample_projections(m, d, count, seed)
        norms = np.linalg.norm(control.sample_projection(m, d, 0), axis=-1)
        return W / np.linalg.norm(W, axis=-1, keepdims=True) * norms[:, None]

    return replaced("positive-ort", "redraw-reuses-norms", redraw_projections=reuse)


def _colliding_data_seed():
    """A redraw seeded from the data by a weak hash: the sign of the batch sum (two seeds)."""
    control = control_adapter("positive-ort")

    def from_data(m, d, inputs):
        return np.stack([control.sample_projection(m, d, int(np.sum(x) > 0)) for x in np.asarray(inputs)])

    return replaced("positive-ort", "colliding-data-seed", data_projections=from_data)


INT32 = np.iinfo(np.int32)


def _saturating_data_seed():
    """A redraw seeded by int32(ceil(sum(batch)·1e7)), saturating at the int32 limits: every batch
    with |sum| > 214.75 gets one of two seeds."""
    control = control_adapter("positive-ort")

    def from_data(m, d, inputs):
        seeds = np.clip(np.ceil(np.sum(np.asarray(inputs), axis=(-2, -1)) * 1e7), INT32.min, INT32.max)
        return np.stack([control.sample_projection(m, d, int(seed) % 2**32) for seed in seeds])

    return replaced("positive-ort", "saturating-data-seed", data_projections=from_data)


def _hashed_data_seed():
    """A correct redraw seeded from the data: the CRC-32 of the batch's float64 bytes (distinct
    batches give distinct seeds at every scale, up to 2^-32 collisions)."""
    control = control_adapter("positive-ort")

    def from_data(m, d, inputs):
        batches = np.ascontiguousarray(inputs, dtype=np.float64)
        return np.stack([control.sample_projection(m, d, zlib.crc32(x.tobytes())) for x in batches])

    return replaced("positive-ort", "hashed-data-seed", data_projections=from_data)


PLANTED = (
    Planted(
        "qr-no-sign-fix",
        "orthogonal blocks from QR without folding sign(diag R) into Q: not Haar (theory.md §5.1)",
        ("projection-directions", "unbiased-kernel", "convergence-exact"),
        _no_sign_fix,
    ),
    Planted(
        "fixed-norms-as-chi",
        "√d row norms presented as χ(d): the softmax rows estimate SMREG (claim 13)",
        ("projection-norms", "unbiased-kernel"),
        _fixed_norms_as_chi,
    ),
    Planted(
        "iid-as-orthogonal",
        "'orthogonal' trig rows drawn iid: unbiased, but with the iid MSE, 35-45% above the claimed one "
        "(claims 7, 10)",
        ("projection-orthogonality", "mse-closed-form"),
        _iid_as_orthogonal,
    ),
    Planted(
        "orthogonal-as-iid",
        "'iid' trig rows drawn block-orthogonal: an MSE about 45% BELOW the claimed one (the MSE "
        "check is two-sided)",
        ("mse-closed-form",),
        _orthogonal_as_iid,
    ),
    Planted(
        "wrong-norm-law",
        "‖w‖² ~ Gamma(d, 1): E‖w‖² = d and E[W_ij²] = 1 are right, the χ(d) law is not",
        ("projection-norms",),
        _wrong_norm_law,
    ),
    Planted(
        "simplex-chi1-norms",
        "simplex rows with norms √(χ²₁) instead of χ(d): E‖w‖² = 1, not d",
        ("projection-norms",),
        _simplex_chi1_norms,
    ),
    Planted(
        "orthogonal-as-simplex",
        "block-orthogonal rows presented as simplex rows: the block Gram is I, not the simplex Gram",
        ("projection-orthogonality",),
        _orthogonal_as_simplex,
    ),
    Planted(
        "wrong-coordinate-variance",
        "W scaled by 1.1: per-coordinate variance 1.21",
        ("projection-moments", "projection-norms"),
        _wrong_variance,
    ),
    Planted(
        "norms-follow-directions",
        "each block's χ(d) norms assigned in the order of |u_i1|",
        ("norm-direction",),
        _norms_follow_directions,
    ),
    Planted(
        "shared-heads", "one W repeated over the heads of a layer", ("head-independence",), _shared_heads
    ),
    Planted(
        "cycling-redraw",
        "redraws cycle through three matrices",
        ("redraw-independence",),
        _cycling_redraw,
    ),
    Planted(
        "redraw-reuses-norms",
        "redraws with new directions and the same row norms every time",
        ("redraw-independence",),
        _redraw_reuses_norms,
    ),
    Planted(
        "colliding-data-seed",
        "redraw seeded from the sign of the batch sum: two matrices in all",
        ("data-redraws",),
        _colliding_data_seed,
    ),
    Planted(
        "saturating-data-seed",
        "redraw seeded by int32(ceil(sum(batch)·1e7)): saturates for |sum| > 214.75, so large "
        "batches share two matrices",
        ("data-redraws",),
        _saturating_data_seed,
    ),
    Planted(
        "hashed-data-seed",
        "a correct redraw seeded from the CRC-32 of the batch's bytes: it passes data-redraws",
        (),
        _hashed_data_seed,
    ),
)
"""The sampler defects, in their order in :data:`studies.audit.planted.PLANTED`."""
