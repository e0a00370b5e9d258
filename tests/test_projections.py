"""Projections: exact orthogonality, the law of the norms, batching, seeds, Haar-ness, errors.

Statistical checks here use fixed seeds and state their error rates; each is shown to reject a
planted defect (QR without the sign fix, fixed norms passed off as χ(d), a batch that repeats).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from estimators import backends, projections
from tests.conftest import to_numpy


@pytest.mark.parametrize(("m", "d"), [(3, 5), (5, 5), (12, 5), (16, 4)])
def test_every_block_is_orthonormal_up_to_norms(m, d, backend):
    W = to_numpy(projections.orthogonal(m, d, batch_shape=(3,), seed=0, backend=backend))
    directions = W / np.linalg.norm(W, axis=-1, keepdims=True)
    for start in range(0, m, d):
        block = directions[:, start : start + d]
        gram = block @ np.swapaxes(block, -1, -2)
        np.testing.assert_allclose(gram, np.broadcast_to(np.eye(len(block[0])), gram.shape), atol=1e-12)


def test_fixed_norms_are_exactly_sqrt_d():
    W = projections.orthogonal(10, 4, norms="fixed", seed=1)
    np.testing.assert_allclose(np.linalg.norm(W, axis=-1), 2.0, rtol=1e-14)


def _chi_norm_pvalue(W, d):
    return stats.kstest(np.linalg.norm(W, axis=-1).ravel() ** 2, stats.chi2(d).cdf).pvalue


def test_chi_norms_follow_chi_d():
    """KS test of ‖w_i‖² against χ²_d over 4000 rows at α = 1e-3.

    Null: norms are iid χ(d). False-positive rate 1e-3 (fixed seed: deterministic). Against
    fixed √d norms the KS statistic is ≈ 0.5 at n = 4000 (p ≈ 0), which the planted check shows.
    """
    d = 6
    W = projections.orthogonal(12, d, batch_shape=(333,), seed=2)
    assert _chi_norm_pvalue(W, d) > 1e-3
    fixed = projections.orthogonal(12, d, norms="fixed", batch_shape=(333,), seed=2)
    assert _chi_norm_pvalue(fixed, d) < 1e-3


def _cross_batch_z(W):
    """z for E[W_b[0,0] W_{b+1}[0,0]] = 0 over disjoint pairs of batch elements (unit variance)."""
    first = W[0::2, 0, 0]
    second = W[1::2, 0, 0]
    products = first * second
    return products.sum() / np.sqrt(len(products))


def test_batched_draws_are_independent():
    """z-test of zero correlation between neighbouring batch elements, two-sided α = 1e-3.

    Each entry is marginally N(0, 1), so for independent elements the products have mean 0 and
    variance 1 exactly; n = 2000 pairs detect a correlation of 0.1 with power > 0.99. A batch that
    repeats one matrix (correlation 1) is rejected.
    """
    W = projections.orthogonal(4, 4, batch_shape=(4000,), seed=3)
    critical = stats.norm.isf(1e-3 / 2)
    assert abs(_cross_batch_z(W)) < critical
    repeated = np.repeat(W[:2000], 2, axis=0)
    assert abs(_cross_batch_z(repeated)) > critical


def _diagonal_mean_z(d, replicates, sign_fix):
    gaussian = np.random.default_rng(4).standard_normal((replicates, d, d))
    directions = projections.haar_rows(gaussian, sign_fix=sign_fix)
    diagonal = np.diagonal(directions, axis1=-2, axis2=-1)
    return diagonal.sum(axis=0) / np.sqrt(replicates / d)


def test_haar_sign_pattern_has_mean_zero():
    """Entries of a Haar orthogonal matrix have mean 0 and variance exactly 1/d.

    Null: E[(Qᵀ)_ii] = 0 for each of the d diagonal entries; z = Σ_r (Qᵀ)_ii / sqrt(R/d).
    Per-entry two-sided α = 1e-3/d (Bonferroni), family α = 1e-3. R = 4000 at d = 4 detects a mean
    of 0.05 with power 0.99 ((z_{1−α/2} + z_{0.99})²/(d·0.05²) = 3590). Unfixed QR has means near
    −0.3 (theory.md §5.1, claim 14) and is rejected.
    """
    d, replicates = 4, 4000
    critical = stats.norm.isf(1e-3 / (2 * d))
    assert np.all(np.abs(_diagonal_mean_z(d, replicates, sign_fix=True)) < critical)
    assert np.any(np.abs(_diagonal_mean_z(d, replicates, sign_fix=False)) > critical)


def _axis_aligned_positive_z(sign_fix, replicates=40_000):
    d = m = 4
    x = y = np.array([0.5, 0.0, 0.0, 0.0])
    W = projections.orthogonal(m, d, sign_fix=sign_fix, batch_shape=(replicates,), seed=5)
    t = float(np.sum((x + y) ** 2))
    sm = float(np.exp(x @ y))
    estimates = np.exp(-0.5 * (x @ x + y @ y)) * np.exp(W @ (x + y)).mean(axis=-1)
    iid_variance = sm**2 * (np.exp(t) - 1) / m
    return (estimates.mean() - sm) / np.sqrt(iid_variance / replicates), sm, iid_variance


def test_positive_features_unbiased_at_axis_aligned_inputs():
    """Positive ORF features at x = y = e₁/2, d = m = 4, are unbiased for SM = e^{1/4}.

    Null: E[K̂] = SM. z uses the iid variance SM²(e^t − 1)/m (Lemma 2), an upper bound on the
    ORF variance by Theorem 2, so the test is conservative: α ≤ 1e-3 (two-sided). With R = 40 000
    replicates it detects a relative bias of 2% with power ≥ 0.99. Unfixed QR (which puts
    E[exp(ω₁ᵀz)] far below e^{t/2}, theory.md §5.1) is rejected.
    """
    critical = stats.norm.isf(1e-3 / 2)
    z, sm, variance = _axis_aligned_positive_z(sign_fix=True)
    required = (critical + stats.norm.isf(0.01)) ** 2 * variance / (0.02 * sm) ** 2
    assert required <= 40_000
    assert abs(z) < critical
    z_unfixed, _, _ = _axis_aligned_positive_z(sign_fix=False)
    assert abs(z_unfixed) > critical


def test_seeds_reproduce_and_backends_get_the_same_matrix(backend):
    reference = projections.orthogonal(7, 3, seed=11)
    W = projections.orthogonal(7, 3, seed=11, backend=backend)
    np.testing.assert_array_equal(to_numpy(W), reference)
    assert not np.array_equal(reference, projections.orthogonal(7, 3, seed=12))


def test_native_generators_place_draws_on_their_device(backend):
    target = backends.resolve_target(backend=backend, dtype="float32")
    seed = backends.native_rng(0, target)
    W = projections.orthogonal(6, 3, seed=seed, like=target.asarray(np.zeros(1)))
    assert backends.backend_of(W) == backend
    assert backends.dtype_name(W) == "float32"
    directions = to_numpy(W) / np.linalg.norm(to_numpy(W), axis=-1, keepdims=True)
    np.testing.assert_allclose(directions[:3] @ directions[:3].T, np.eye(3), atol=1e-5)


def test_like_sets_backend_and_dtype(backend, to_backend):
    like = to_backend(np.zeros(2), dtype="float32")
    W = projections.iid(5, 3, seed=0, like=like)
    assert backends.backend_of(W) == backend
    assert backends.dtype_name(W) == "float32"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: projections.iid(0, 3), ValueError, "m must be an integer >= 1"),
        (lambda: projections.iid(2.5, 3), TypeError, "m must be an integer"),
        (lambda: projections.orthogonal(3, 0), ValueError, "d must be an integer >= 1"),
        (lambda: projections.orthogonal(3, 3, norms="unit"), ValueError, "norms must be one of"),
        (lambda: projections.iid(3, 3, batch_shape=(-1,)), ValueError, "batch_shape"),
        (lambda: projections.iid(3, 3, seed="x"), TypeError, "seed must be"),
        (lambda: projections.iid(3, 3, seed=-3), ValueError, "seed must be an int >= 0.*got -3"),
        (lambda: projections.orthogonal(3, 3, seed=np.int64(-1)), ValueError, "seed must be an int >= 0"),
        (lambda: projections.uniform(3, 3, seed=-3), ValueError, "seed must be an int >= 0"),
        (lambda: projections.iid(3, 3, seed=True), TypeError, "seed must be an int >= 0.*bool"),
    ],
)
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()
