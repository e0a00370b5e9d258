"""Tier 1 statistical tests (CI): each battery check on the shipped estimators, at a fixed seed.

Every test below runs one check of :mod:`tests.statistical.battery` on
:class:`~tests.statistical.battery.Reference` with its own RNG rooted at ``SEED`` (deterministic, any
order) and fails when the check rejects. Numbers quoted in the docstrings (cells, α, n) are what the
check plans from theory; ``test_documented_plans`` keeps them in sync. The real false-positive rate
and power of each test are measured by the Tier 2 calibration (``results/calibration/``).
"""

from __future__ import annotations

import pytest

from tests.statistical import battery

SEED = 20260101
FAMILY_ALPHA = 0.01

DOCUMENTED = {
    "unbiased": (
        100,
        {
            ("iid", "chi"): 8820,
            ("orthogonal", "chi"): 8054,
            ("iid", "fixed"): 2915,
            ("orthogonal", "fixed"): 2536,
        },
    ),
    "squared_error": (
        48,
        {
            ("iid", "chi"): 11267,
            ("orthogonal", "chi"): 13155,
            ("iid", "fixed"): 1872,
            ("orthogonal", "fixed"): 1300,
        },
    ),
    "haar_directions": (128, 1970),
    "attention_delta": (30, 5270),
    "attention_convergence": (16, 499),
}


@pytest.fixture(scope="module")
def checks():
    return {check.name: check for check in battery.checks()}


def _assert_accepts(check):
    outcome = check.run(battery.Reference(), SEED)
    assert not outcome.reject, (
        f"{check.name} rejected the shipped estimators: |z| = {outcome.max_z:.3g} > {outcome.critical:.3g} "
        f"in cell {outcome.worst_cell!r}"
    )


def test_estimators_are_unbiased(checks):
    """Claims 1, 13, 14, 27: E[K̂(x, y)] equals theory.mean (SM, SMREG for √d norms, arc-cosine for ReLU).

    Null: E[K̂] = theory.mean in each of 100 cells (10 core registry rows × m ∈ {3, 6} × 5 pairs, d = 4,
    axis-aligned pairs included, ‖x + y‖² ≤ 1.21). z = (mean − μ₀)/√(theory.mse/n). Family α = 0.01,
    per-test α = 1e−4 (Bonferroni, |z| > 3.89). n = 8820 (iid χ), 8054 (orthogonal χ), 2915 (iid √d),
    2536 (orthogonal √d): required_samples(δ·|μ₀|, 1e−4, 0.99, MSE) maximized over cells, δ = 7%
    (15% for ReLU), so a relative bias δ in any cell is detected with power ≥ 0.99.
    """
    _assert_accepts(checks["unbiased"])


def test_mse_matches_closed_form(checks):
    """Claims 2, 3, 4, 7, 9, 10, 13: MSE of trig, positive, hyperbolic (χ) and positive (√d) features,
    iid and block-orthogonal, m = 3 ≤ d and m = 6 > d, equals theory.mse.

    Null: E[(K̂ − μ)²] = theory.mse in each of 48 cells (8 rows × 2 m × 3 pairs with ‖x + y‖² ≤ 0.5).
    z uses the closed-form Var (K̂ − μ)² = E(K̂ − μ)⁴ − MSE² (tests/statistical/moments.py). Family
    α = 0.01, per-test α = 2.1e−4 (|z| > 3.71). n = 11267 (iid χ), 13155 (orthogonal χ), 1872 (iid √d),
    1300 (orthogonal √d) = required_samples(0.2·MSE, α, 0.99, Var): a 20% error in any MSE (e.g. the
    iid MSE where the orthogonal one is due: 34-39% lower for trig here) is detected with power ≥ 0.99.
    """
    _assert_accepts(checks["squared_error"])


def test_orthogonal_blocks_are_haar(checks):
    """Claim 14: each entry of a block-orthogonal row direction has mean 0 (Haar rows are uniform).

    Null: E u_ij = 0 for the 64 entries of a d = 8 block, χ and √d norms (128 cells), with the exact
    Var u_ij = 1/d. Family α = 0.01, per-test α = 7.8e−5 (|z| > 3.95). n = 1970 =
    required_samples(0.05, α, 0.99, 1/8): any entry mean of ±0.05 is detected with power ≥ 0.99
    (the unfixed QR gives ≈ −0.29 … +0.22).
    """
    _assert_accepts(checks["haar_directions"])


def test_zero_variance_points(checks):
    """Claim 5 (exact): positive and hyperbolic K̂(x, −x) and trig K̂(x, x) equal SM for every draw.

    Exact identity, 64 draws × 3 inputs × 6 rows; tolerance 1e−10 relative; no false-positive rate.
    """
    _assert_accepts(checks["zero_variance"])


def test_attention_output_follows_delta_method(checks):
    """Claim 17: E[ô_i] = o_i + delta-method bias (theory.md §7.1), bidirectional and causal FAVOR+.

    Null: mean of ô_i,c = o_i,c + bias_i,c in 30 cells (8 + 7 query rows × 2 value coordinates, L = 8,
    d = 4, m = 64, iid positive features, max ‖x_i + y_j‖² ≤ 1.21). z uses the delta-method variance
    Cov(ô_i)_cc. Family α = 0.01, per-test α = 3.3e−4 (|z| > 3.59). n = 5270: the larger of the n
    detecting an output shift of 1% of the value spread in every cell and the n detecting the predicted
    O(1/m) ratio bias itself (bias vs no bias) in its most visible cell, each with power ≥ 0.99.
    """
    _assert_accepts(checks["attention_delta"])


def test_favor_converges_at_the_delta_method_rate(checks):
    """Claims 17, 28, 29: E‖ô_i − o_i‖² = tr Cov(ô_i) + ‖bias_i‖² (delta method) at m = 128 and 512.

    Null: the mean squared output error of each of 8 query rows equals the delta-method value at each
    m (16 cells; bidirectional FAVOR+, iid positive features, L = 8, d = 4). z uses the variance of the
    Gaussian limit, 2 tr C² + 4 bᵀCb. Family α = 0.01, per-test α = 6.25e−4 (|z| > 3.42). n = 499 =
    max over cells of required_samples(0.3·E S_i, α, 0.99, Var S_i): a 30% error in any row's mean
    squared error is detected with power ≥ 0.99. Regime restricted to m ≥ 128, where the neglected
    O(1/m) terms are small against the standard error (at m = 64 they bias z by about −0.7).
    """
    _assert_accepts(checks["attention_convergence"])


def test_favor_algebra_is_exact(checks):
    """Claim 15 (exact): FAVOR and causal prefix-sum FAVOR equal D̂⁻¹ Â V (causal: tril Â) from the
    same features; 16 draws, L = 40; tolerance 1e−10 × max |v|; no false-positive rate.
    """
    _assert_accepts(checks["favor_algebra"])


def test_stabilizers_cancel(checks):
    """Claim 16 (exact): the "auto" stabilizer leaves FAVOR outputs unchanged (eps = 0), bidirectional
    and causal; 16 draws, L = 40, large inputs; tolerance 1e−9 × max |v|; no false-positive rate.
    """
    _assert_accepts(checks["stabilizer_cancels"])


def test_causal_outputs_ignore_the_future(checks):
    """Claim 18 (exact): with eps = 1e−3, causal outputs at positions ≤ i are unchanged when keys and
    values after i change (an outlier key included); tolerance 1e−12 × max |v|; no false-positive rate.
    """
    _assert_accepts(checks["causal_no_future"])


def test_documented_plans(checks):
    """The cells and sample sizes quoted above are the ones the checks plan from theory."""
    for name, (cells, n) in DOCUMENTED.items():
        assert len(checks[name].cells) == cells
        assert checks[name].n == n
        assert checks[name].family_alpha == FAMILY_ALPHA


def test_every_check_can_fail(checks):
    """A check with an impossible null must reject: its statistic reaches the decision."""

    class Shifted(battery.Reference):
        def terms(self, row, x, y, W):
            return 1.5 * super().terms(row, x, y, W)

    assert checks["unbiased"].run(Shifted(), SEED).reject
