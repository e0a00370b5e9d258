"""Caption claims follow the data: each claim function is fed rows where its claim holds and rows where
it does not, and its sentence (and ``holds``) must change accordingly. The gallery quotes the computed
captions verbatim.

The rows are synthetic and deterministic (no random draws) except in the two tests of
:func:`studies.captions.agreement`'s error rates, which use a fixed seed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import studies
from studies import (
    attention_error,
    causal_stability,
    orthogonal_gain,
    unbiasedness,
    uniform_convergence,
)
from studies.core import captions, shootout_claims
from studies.figures import attention_error as attention_error_figures
from studies.figures import estimator_shootout as shootout_figures

ROOT = Path(__file__).resolve().parents[1]
Z99 = captions.Z99_TWO_SIDED


# ---------------------------------------------------------------- the tests themselves


def test_critical_values_are_the_normal_quantiles():
    assert captions.Z99_TWO_SIDED == pytest.approx(stats.norm.isf(0.005), rel=1e-15)
    assert captions.Z99_ONE_SIDED == pytest.approx(stats.norm.isf(0.01), rel=1e-15)
    assert captions.bonferroni_z(1) == pytest.approx(stats.norm.isf(0.005), rel=1e-15)
    assert captions.bonferroni_z(50) == pytest.approx(stats.norm.isf(0.0001), rel=1e-15)


def test_lower_is_a_one_sided_z_test_on_independent_estimates():
    se = 1.0 / Z99  # the standard error of an estimate whose 99% half-width is 1
    boundary = captions.Z99_ONE_SIDED * math.sqrt(2) * se
    assert captions.z_lower(0.0, 1.0, boundary, 1.0) == pytest.approx(captions.Z99_ONE_SIDED)
    assert captions.lower(0.0, 1.0, boundary * 1.01, 1.0)
    assert not captions.lower(0.0, 1.0, boundary * 0.99, 1.0)
    assert not captions.lower(1.0, 0.1, 0.0, 0.1)


def _agreement_rows(rng, points, shift):
    """``points`` Monte Carlo estimates ~ N(theory + shift·se, se²) with their 99% half-widths."""
    se = 0.1
    theory = rng.uniform(1, 2, points)
    value = theory + shift * se + se * rng.standard_normal(points)
    return [{"v": v, "ci": Z99 * se, "t": t} for v, t in zip(value, theory, strict=True)]


def test_agreement_false_alarm_rate_is_at_most_one_percent():
    """Null: every closed form is right. 4000 families of 60 points (seed 0): the claim fails in at most
    1% of them plus 3 binomial standard errors (the count test is conservative: Binomial quantile)."""
    rng = np.random.default_rng(0)
    families = 4000
    failed = sum(
        not captions.agreement(_agreement_rows(rng, 60, 0.0), "v", "ci", "t", "x", str).holds
        for _ in range(families)
    )
    assert failed / families <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / families)


def test_agreement_detects_a_closed_form_off_by_two_standard_errors():
    """Power: a closed form 2 se off at every point misses each 99% interval with probability 0.28, so
    a family of 60 points shows more than the 3 allowed misses with probability 1 − 5e-6; at least 396
    of 400 families (seed 1) must fail."""
    rng = np.random.default_rng(1)
    failed = sum(
        not captions.agreement(_agreement_rows(rng, 60, 2.0), "v", "ci", "t", "x", str).holds
        for _ in range(400)
    )
    assert failed >= 396


def _clustered_rows(rng, blocks, size, shift):
    """``blocks`` groups of ``size`` points that share one draw each (perfectly correlated errors), the
    closed forms ``shift`` standard errors off at the first point only."""
    se = 0.1
    rows = []
    for block in range(blocks):
        common = rng.standard_normal()
        for index in range(size):
            off = shift if block == index == 0 else 0.0
            rows.append({"v": 1.0 + se * (common + off), "ci": Z99 * se, "t": 1.0})
    return rows


def test_shared_draws_need_the_bonferroni_verdict():
    """Null, 6 blocks of 10 points sharing one draw each (4000 families, seed 2): the count test calls
    about 1 − 0.99⁶ ≈ 5.9% of families wrong (misses come 10 at a time), the Bonferroni verdict at most
    1% plus 3 binomial standard errors."""
    rng = np.random.default_rng(2)
    families = [_clustered_rows(rng, 6, 10, 0.0) for _ in range(4000)]
    counted = sum(not captions.agreement(rows, "v", "ci", "t", "x", str).holds for rows in families)
    adjusted = sum(
        not captions.agreement(rows, "v", "ci", "t", "x", str, shared_draws=True).holds for rows in families
    )
    assert counted / len(families) > 0.03
    assert adjusted / len(families) <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / len(families))


def test_shared_draws_verdict_detects_one_closed_form_far_off():
    """Power: with 60 points the Bonferroni |z| is 3.76, so a closed form 6.2 standard errors off is
    outside its interval with probability ≥ P(Z > 2.43) = 0.992; at least 390 of 400 families (seed 3)
    must fail (the expected count is 397, its SD 1.8)."""
    rng = np.random.default_rng(3)
    assert captions.bonferroni_z(60) + 2.43 < 6.2
    failed = sum(
        not captions.agreement(
            _clustered_rows(rng, 6, 10, 6.2), "v", "ci", "t", "x", str, shared_draws=True
        ).holds
        for _ in range(400)
    )
    assert failed >= 390


def test_agreement_sentence_names_the_missed_points():
    rows = [{"v": 1.0, "ci": 0.1, "t": 1.0, "name": f"p{i}"} for i in range(20)]
    good = captions.agreement(rows, "v", "ci", "t", "mean", lambda r: r["name"])
    assert good.holds and "all 20 points" in good.sentence and "outside" not in good.sentence
    rows[3]["t"] = rows[7]["t"] = rows[9]["t"] = 2.0
    bad = captions.agreement(rows, "v", "ci", "t", "mean", lambda r: r["name"])
    assert "17 of 20 points" in bad.sentence and "outside: p3, p7, p9" in bad.sentence
    assert not bad.holds and "more than the 2 that chance allows" in bad.sentence
    shared = captions.agreement(rows, "v", "ci", "t", "mean", lambda r: r["name"], shared_draws=True)
    assert (
        not shared.holds and "3 of 20 closed forms lie outside their Bonferroni-adjusted" in shared.sentence
    )
    rows[3]["t"] = rows[7]["t"] = rows[9]["t"] = 1.12  # outside ± 0.1, inside ± 0.1·3.48/2.576
    shared = captions.agreement(rows, "v", "ci", "t", "mean", lambda r: r["name"], shared_draws=True)
    assert shared.holds and "every closed form lies inside its Bonferroni-adjusted" in shared.sentence


# ---------------------------------------------------------------- attention_error


def _attention_rows(ratio_at):
    """Rows of the attention_error summary: iid rows with a delta line whose Monte Carlo/delta ratio is
    ``ratio_at(m)`` (99% half-width 0.05 of the ratio), orthogonal rows 20% below the delta line; trig
    is half of positive in the isotropic regime, equal to it in the opposed one."""
    rows = []
    for regime in attention_error.REGIMES:
        for name in attention_error.ESTIMATORS:
            for m in (16, 64, 256):
                delta = (0.5 if "trig" in name and regime == "isotropic" else 1.0) / m
                iid = "iid" in name
                mse = delta * (ratio_at(m) if iid else 0.8)
                rows.append(
                    {
                        "regime": regime,
                        "estimator": name,
                        "m": m,
                        "output_mse": mse,
                        "ci99": 0.05 * delta,
                        "delta_method_mse": delta if iid else math.nan,
                        "mc_over_delta": mse / delta,
                        "mc_over_delta_ci99": 0.05,
                        "nonpositive_denominator_rate": 0.0,
                    }
                )
    return rows


def test_delta_claim_says_where_the_first_order_line_holds():
    agree = attention_error_figures.delta_claim(_attention_rows(lambda m: 1.0))
    assert agree.holds and "inside the 99% interval of every iid point" in agree.sentence

    small_m_gap = attention_error_figures.delta_claim(_attention_rows(lambda m: 0.85 if m == 16 else 1.0))
    assert small_m_gap.holds and small_m_gap.numbers["m_star"] == 64
    assert "from m = 64 on" in small_m_gap.sentence and "0.85 [0.80, 0.90]" in small_m_gap.sentence

    never = attention_error_figures.delta_claim(_attention_rows(lambda m: 0.85))
    assert not never.holds and "even at the largest m" in never.sentence


def test_orthogonal_and_feature_claims_follow_the_ordering():
    rows = _attention_rows(lambda m: 1.0)
    assert attention_error_figures.orthogonal_claim(rows).holds
    for r in rows:
        if "ort" in r["estimator"]:
            r["output_mse"] *= 1.5
    flipped = attention_error_figures.orthogonal_claim(rows)
    assert not flipped.holds and "lower MSE than iid in none of" in flipped.sentence

    rows = _attention_rows(lambda m: 1.0)
    for r in rows:
        if r["regime"] == "opposed" and r["estimator"].startswith("trig"):
            r["output_mse"] *= 2.0
    assert attention_error_figures.feature_claim(rows).holds
    for r in rows:
        if r["regime"] == "opposed" and r["estimator"].startswith("trig"):
            r["output_mse"] /= 4.0
    contradicted = attention_error_figures.feature_claim(rows)
    assert not contradicted.holds and "does not hold" in contradicted.sentence


# ---------------------------------------------------------------- uniform_convergence


def _uniform_rows(length_factor, radius_factor):
    """ε = f·m^{-1/2} with 99% intervals ±5%; f grows by ``length_factor`` per L step at R = 2 and by
    ``radius_factor`` per R step at L = 256."""
    rows = []
    points = [(64, 2.0, 1.0), (256, 2.0, length_factor), (1024, 2.0, length_factor**2)]
    points += [(256, 1.0, radius_factor**-1), (256, 3.0, radius_factor)]
    for length, radius, factor in points:
        if length == 256 and radius == 2.0:
            factor = 1.0
        for m in (16, 64, 256):
            value = factor * m**-0.5
            rows.append(
                {
                    "L": length,
                    "R": radius,
                    "d": 16,
                    "m": m,
                    "draws": 24,
                    "sup_error_q90": value,
                    "ci99_low": 0.95 * value,
                    "ci99_high": 1.05 * value,
                }
            )
    return rows


def test_length_claim_says_grows_only_when_the_intervals_separate():
    flat = uniform_convergence.length_claim(_uniform_rows(1.0, 3.0))
    assert flat.holds and "does not grow detectably with L" in flat.sentence
    grows = uniform_convergence.length_claim(_uniform_rows(1.2, 3.0))
    assert grows.holds is False and grows.sentence.startswith("ε grows with L")
    assert grows.numbers["disjoint"] == 3


def test_radius_claim_counts_separated_radii_and_quotes_the_theorem_factor():
    grows = uniform_convergence.radius_claim(_uniform_rows(1.0, 3.0))
    assert grows.holds and "all 6" in grows.sentence
    assert f"×{math.exp((9 - 1) / 4):.1f}" in grows.sentence
    flat = uniform_convergence.radius_claim(_uniform_rows(1.0, 1.02))
    assert not flat.holds and "none of 6" in flat.sentence


def test_slope_claim_reports_the_fitted_slopes():
    claim = uniform_convergence.slope_claim(_uniform_rows(1.0, 3.0))
    assert claim.numbers["slope_min"] == pytest.approx(-0.5)
    assert "-0.50 to -0.50" in claim.sentence


# ---------------------------------------------------------------- unbiasedness, causal, shoot-out


def test_unbiasedness_theory_claim_flags_a_planted_bias():
    rows = [
        {"estimator": name, "z_theory": 0.5, "theory_relative_bias": 0.0, "relative_bias": 0.0, "ci99": 0.1}
        for name in ("positive-iid", "trig-iid")
    ]
    assert unbiasedness.theory_claim(rows).holds
    rows[1]["z_theory"] = 6.0
    planted = unbiasedness.theory_claim(rows)
    assert not planted.holds and "misses its closed form at 1 of 2 points" in planted.sentence
    assert "trig-iid" in planted.sentence


def _causal_rows(auto_leak):
    rows = []
    for stabilizer in causal_stability.STABILIZERS:
        for eps in (0.0, 1e-4):
            for excess in (0.0, 4.0):
                exposed = stabilizer == "global" and eps > 0 and excess > 0
                leak = 0.1 if exposed else (auto_leak if stabilizer == "auto" else 0.0)
                rows.append(
                    {
                        "stabilizer": stabilizer,
                        "eps": eps,
                        "excess": excess,
                        "leak": leak,
                        "leak_ci99": 0.01,
                        "leak_max": leak,
                        "bias": eps,
                        "bias_ci99": eps / 10,
                        "bias_max": eps,
                    }
                )
    return rows


def test_leak_claim_says_exact_zero_only_when_every_draw_is_zero():
    clean = causal_stability.leak_claim(_causal_rows(0.0))
    assert clean.holds and "leaks exactly 0 in every draw" in clean.sentence
    leaking = causal_stability.leak_claim(_causal_rows(1e-17))
    assert not leaking.holds and "leaks in some draw" in leaking.sentence


def test_shootout_order_claims_report_the_monte_carlo_verdict():
    rows = [
        shootout_claims.row("t", "a", t=t, value=v, ci99=0.01, theory=v) for t, v in ((0.5, 1.0), (1.0, 2.0))
    ] + [
        shootout_claims.row("t", "b", t=t, value=v, ci99=0.01, theory=v) for t, v in ((0.5, 2.0), (1.0, 1.0))
    ]
    verdict = shootout_claims.verdict_ordered(
        [r for r in rows if r["estimator"] == "a"], [r for r in rows if r["estimator"] == "b"]
    )
    assert verdict == "holds at t = 0.5; contradicted at t = 1.0"
    claim_row = shootout_claims.row(
        "claim",
        "a < b",
        claim="a beats b",
        source="t-grid",
        theory_verdict="fails",
        empirical_verdict=verdict,
    )
    (claim,) = shootout_figures.order_claims([*rows, claim_row])
    assert not claim.holds and "contradicted at t = 1.0" in claim.sentence
    assert shootout_figures.contradicted([claim_row], "t") == ["a beats b (contradicted at t = 1.0)"]
    assert shootout_figures.closed_form_claim(rows).holds
    rows[0]["theory"] = 1.5
    below = shootout_figures.closed_form_claim(rows)
    assert not below.holds and "1 of the 1 misses lie below the line (heavy tails" in below.sentence
    rows[0]["theory"] = 0.5
    above = shootout_figures.closed_form_claim(rows)
    assert not above.holds and "0 of the 1 misses" in above.sentence and "heavy tails" not in above.sentence


def test_orthogonal_gain_bound_claim_counts_points_above_the_bound():
    row = {"theory_ratio": 0.8, "theorem2_ratio_bound": 0.9, "ratio": 0.82, "ci99": 0.05}
    assert orthogonal_gain.bound_claim([row]).holds
    against = orthogonal_gain.bound_claim([{**row, "ratio": 1.0}])
    assert not against.holds and "wholly above it at all 1" in against.sentence


# ---------------------------------------------------------------- gallery


def _claims_sentences(name: str) -> list[str]:
    text = (ROOT / "results" / name / f"{name}_claims.md").read_text()
    return [line[2:] for line in text.splitlines() if line.startswith("- ")]


@pytest.mark.parametrize("name", studies.ORDER)
def test_gallery_quotes_the_computed_caption(name):
    """Every study's gallery entry contains its committed computed caption, sentence for sentence."""
    gallery = (ROOT / "results" / "README.md").read_text()
    sentences = _claims_sentences(name)
    assert sentences
    for sentence in sentences:
        assert sentence in gallery, f"{name}: gallery lacks {sentence!r}"


def test_gallery_states_no_timing_a_rerun_would_not_show():
    """Wall times live in each study's meta.json; the gallery points there instead of quoting one."""
    gallery = (ROOT / "results" / "README.md").read_text()
    assert not re.search(r"\d+(\.\d+)?\s*s wall", gallery)
