"""Planted bugs: broken versions of the estimators that the Tier 1 battery must reject.

Each mutant is the :class:`~tests.statistical.battery.Reference` implementation with one realistic
mistake, and names the checks meant to catch it (``caught_by``). CI asserts that each of those checks
rejects the mutant at its fixed seed; the Tier 2 calibration measures the power of each of those
checks against the mutant over fresh seeds (required: ≥ 0.99). ``caught_by`` lists the checks the
claim rests on, not every check that happens to reject (the squared-error check, for one, also
rejects most kernel bugs, since it measures the error around the theoretical mean).
"""

from __future__ import annotations

import numpy as np

from estimators import attention, projections
from tests.statistical.battery import Reference


def _scaled(a):
    return a * a.shape[-1] ** -0.25


def _half_sq_norm(x):
    return np.sum(x * x, axis=-1, keepdims=True) / 2


class NoSignFix(Reference):
    """Orthogonal blocks from Householder QR without folding sign(diag R) into Q: not Haar, biased
    at axis-aligned inputs (theory.md §5.1, claim 14)."""

    name = "qr-no-sign-fix"
    caught_by = ("unbiased", "haar_directions")

    def draw(self, row, m, d, n, seed):
        if row.projection != "orthogonal":
            return super().draw(row, m, d, n, seed)
        return projections.orthogonal(
            m,
            d,
            norms=row.norms,
            sign_fix=False,
            batch_shape=(n,),
            seed=seed,
            backend="numpy",
            dtype="float64",
        )


class MissingHalfNorm(Reference):
    """Exponential features without their ±‖x‖²/2 term: positive φ = m^{-1/2} exp(Wx), trig without
    e^{‖x‖²/2} (Performers Lemma 1 / §2.3)."""

    name = "missing-half-norm"
    caught_by = ("zero_variance", "attention_delta")
    feature_bug = True

    def features(self, feature, x, W):
        phi = super().features(feature, x, W)
        if feature in ("positive", "hyperbolic"):
            return phi * np.exp(_half_sq_norm(x))
        if feature == "trig":
            return phi * np.exp(-_half_sq_norm(x))
        return phi


class ScaleOff(Reference):
    """Feature scale off by 3% (e.g. a wrong m in m^{-1/2}): every kernel estimate 6.1% too large.
    It cancels in normalized attention, so only the kernel checks can see it."""

    name = "scale-3pct"
    caught_by = ("unbiased", "zero_variance")
    feature_bug = True

    def features(self, feature, x, W):
        return 1.03 * super().features(feature, x, W)


class FixedNormsAsChi(Reference):
    """√d row norms presented as χ(d): the rows are uniform on √d·S^{d−1}, so the "softmax" rows
    estimate SMREG, biased low by 1 − ₀F₁(; d/2; d t/4) e^{−t/2} (theory.md §6, claim 13)."""

    name = "fixed-norms-as-chi"
    caught_by = ("unbiased",)

    def draw(self, row, m, d, n, seed):
        if row.norms != "chi":
            return super().draw(row, m, d, n, seed)
        W = super().draw(row, m, d, n, seed)
        return W * (d**0.5 / np.linalg.norm(W, axis=-1, keepdims=True))


class CosWithoutSin(Reference):
    """Trigonometric features with the sin half dropped: φ = e^{‖x‖²/2} m^{-1/2} cos(Wx), whose mean
    is e^{(‖x‖²+‖y‖²)/2} (e^{−s/2} + e^{−t/2})/2 instead of exp(xᵀy)."""

    name = "cos-without-sin"
    caught_by = ("unbiased", "zero_variance")

    def features(self, feature, x, W):
        phi = super().features(feature, x, W)
        if feature != "trig":
            return phi
        m = W.shape[-2]
        return phi[..., :m]


class DroppedNormalizer(Reference):
    """FAVOR returning the numerator Q'((K')ᵀV) without D̂⁻¹ (Performers Eq. 4)."""

    name = "dropped-normalizer"
    caught_by = ("attention_delta", "favor_algebra")

    def favor(self, q, k, v, W, *, causal, stabilizer="auto", eps=0.0):
        phi_q, phi_k = self.features("positive", _scaled(q), W), self.features("positive", _scaled(k), W)
        gram = phi_q @ np.swapaxes(phi_k, -1, -2)
        return (np.tril(gram) if causal else gram) @ v


class OffByOnePrefix(Reference):
    """Causal prefix sums read one position too far: query i uses Σ_{j ≤ i+1} (App. B.1, Eq. 11)."""

    name = "off-by-one-prefix"
    caught_by = ("attention_delta", "favor_algebra", "causal_no_future")

    def favor(self, q, k, v, W, *, causal, stabilizer="auto", eps=0.0):
        if not causal:
            return super().favor(q, k, v, W, causal=causal, stabilizer=stabilizer, eps=eps)
        phi_q, phi_k = self.features("positive", _scaled(q), W), self.features("positive", _scaled(k), W)
        gram = np.tril(phi_q @ np.swapaxes(phi_k, -1, -2), k=1)
        return (gram @ v) / gram.sum(axis=-1, keepdims=True)


class FutureStabilizer(Reference):
    """Causal FAVOR with the public code's key stabilizer: one max over the whole sequence, so with
    eps > 0 outputs at i depend on keys after i (theory.md §8, claim 18)."""

    name = "future-stabilizer"
    caught_by = ("causal_no_future",)

    def favor(self, q, k, v, W, *, causal, stabilizer="auto", eps=0.0):
        if causal and stabilizer == "auto":
            stabilizer = "global"
        return super().favor(q, k, v, W, causal=causal, stabilizer=stabilizer, eps=eps)


class DifferentW(Reference):
    """Queries and keys projected with different random matrices (W for x, an independent W′ for y):
    E[φ(x; W)ᵀφ(y; W′)] = 1 for positive features instead of exp(xᵀy)."""

    name = "different-w-qk"
    caught_by = ("zero_variance", "attention_delta", "attention_convergence", "favor_algebra")

    def terms(self, row, x, y, W):
        n, m, d = W.shape
        flat_x = np.asfortranarray(np.reshape(W, (n * m, d)))
        flat_y = np.asfortranarray(np.reshape(np.roll(W, 1, axis=0), (n * m, d)))
        products = self.features(row.feature, x, flat_x) * self.features(row.feature, y, flat_y)
        per_row = np.reshape(products, (x.shape[0], -1, n, m)).sum(axis=1)
        return n * m * np.moveaxis(per_row, 0, 1)

    def favor(self, q, k, v, W, *, causal, stabilizer="auto", eps=0.0):
        phi_q = self.features("positive", _scaled(q), W)
        phi_k = self.features("positive", _scaled(k), W[..., ::-1, :])
        return attention.favor_from_features(phi_q, phi_k, v, causal)


class IidAsOrthogonal(Reference):
    """ "Orthogonal" rows drawn iid (the orthogonalization skipped): still unbiased, but the MSE is the
    iid one, not V1/m + (P/m²)·Cov_ort (theory.md §5.2, claims 7, 10)."""

    name = "iid-as-orthogonal"
    caught_by = ("squared_error",)

    def draw(self, row, m, d, n, seed):
        if row.projection != "orthogonal":
            return super().draw(row, m, d, n, seed)
        W = projections.iid(m, d, batch_shape=(n,), seed=seed, backend="numpy", dtype="float64")
        if row.norms == "fixed":
            W = W * (d**0.5 / np.linalg.norm(W, axis=-1, keepdims=True))
        return W


class PerKeyStabilizer(Reference):
    """Keys stabilized by their OWN largest log-amplitude: a per-key factor that does not cancel in
    D̂⁻¹N̂ (theory.md §8, claim 16)."""

    name = "per-key-stabilizer"
    caught_by = ("stabilizer_cancels", "attention_delta")

    def favor(self, q, k, v, W, *, causal, stabilizer="auto", eps=0.0):
        if stabilizer == "none":
            return super().favor(q, k, v, W, causal=causal, stabilizer=stabilizer, eps=eps)
        phi_q = self.features("positive", _scaled(q), W)
        phi_k = self.features("positive", _scaled(k), W)
        phi_k = phi_k / np.max(phi_k, axis=-1, keepdims=True)
        return attention.favor_from_features(phi_q, phi_k, v, causal)


class HalfTheFeatures(Reference):
    """FAVOR using only the first half of its projections (a slicing bug, e.g. splitting the 2m
    trig/hyperbolic features at m/2): still consistent, but its output MSE is twice the delta-method
    value for m projections (theory.md §7.1)."""

    name = "half-the-features"
    caught_by = ("attention_convergence",)

    def favor(self, q, k, v, W, *, causal, stabilizer="auto", eps=0.0):
        half = W[..., : W.shape[-2] // 2, :]
        return super().favor(q, k, v, half, causal=causal, stabilizer=stabilizer, eps=eps)


class ExactDenominator(Reference):
    """FAVOR numerator over the EXACT softmax row sum (e.g. a cached normalizer from exact attention):
    N̂_i/D_i is unbiased, so it lacks the O(1/m) bias of the ratio D̂⁻¹N̂ that theory.md §7.1 predicts."""

    name = "exact-denominator"
    caught_by = ("attention_delta",)

    def favor(self, q, k, v, W, *, causal, stabilizer="auto", eps=0.0):
        phi_q, phi_k = self.features("positive", _scaled(q), W), self.features("positive", _scaled(k), W)
        gram = phi_q @ np.swapaxes(phi_k, -1, -2)
        exact = np.exp(_scaled(q) @ _scaled(k).T)
        if causal:
            gram, exact = np.tril(gram), np.tril(exact)
        return (gram @ v) / exact.sum(axis=-1, keepdims=True)


MUTANTS = (
    NoSignFix(),
    MissingHalfNorm(),
    ScaleOff(),
    FixedNormsAsChi(),
    CosWithoutSin(),
    DroppedNormalizer(),
    OffByOnePrefix(),
    FutureStabilizer(),
    DifferentW(),
    IidAsOrthogonal(),
    PerKeyStabilizer(),
    HalfTheFeatures(),
    ExactDenominator(),
)
