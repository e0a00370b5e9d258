"""Tier 1 (CI): the check set of studies/audit/checks on favor-bench's registry rows and on every
planted adapter, at one fixed seed.

Each (target, check) pair of :mod:`studies.audit.suite` runs once with the seed
:data:`~studies.audit.suite.CI_SEED` (deterministic, any order). The pairs that must pass are the
registry rows' applicable checks and every check on the correct reduced-precision adapters; the
pairs that must fail are each planted defect on the checks its ``caught_by`` names. Every check
states its null, α (0.01 per check, Bonferroni over its cells) and power in its docstring; the Tier 2
calibration (``scripts/calibrate.py``, ``results/calibration/``) measures the real false-positive rate
and power of exactly these pairs over fresh seeds.
"""

from __future__ import annotations

from functools import cache

import pytest

from studies.audit import CHECKS, load_target, run_check, suite
from studies.audit.planted import DEFECTS, PLANTED


@cache
def _adapter(target):
    return load_target(target)


def _run(target, check):
    return run_check(check, _adapter(target), suite.settings())


@pytest.mark.parametrize(("target", "check"), suite.null_pairs())
def test_passes(target, check):
    """A correct implementation passes: the registry rows and the float32/float16 adapters."""
    result = _run(target, check)
    assert result.status == "pass", (
        f"{target} {check}: {result.status} {result.statistic} {result.effect} {result.reason}"
    )


@pytest.mark.parametrize(("target", "check"), suite.defect_pairs())
def test_planted_defect_is_rejected(target, check):
    """Each planted defect fails every check in its ``caught_by``, with a severity."""
    result = _run(target, check)
    assert result.status == "fail", f"{target} passed {check}: {result.statistic}"
    assert result.severity in ("negligible", "minor", "major", "critical")


def test_every_check_is_shown_able_to_fail():
    """Each check is claimed by at least one planted defect, so none of them passes everything."""
    claimed = {check for name in DEFECTS for check in PLANTED[name].caught_by}
    assert claimed == set(CHECKS)


def test_severity_separates_a_negligible_leak_from_a_real_one():
    """A 1e-10 causal leak in float64 fails as negligible; a key maximum over the sequence with ε
    fails as at least minor; the same tiny leak in a float32 implementation is below its round-off."""
    assert _run("planted:tiny-causal-leak", "causal-future").severity == "negligible"
    assert _run("planted:future-stabilizer", "causal-future").severity in ("minor", "major", "critical")
    below = _run("planted:leak-below-float32", "causal-future")
    assert below.status == "pass" and "float32" in below.statistic


def test_diagnosis_blames_the_qr_sign_only_for_odd_feature_maps():
    """The sign test rejects for the unfixed QR; for positive features it is named as the cause of the
    bias, for an even (hyperbolic) map it is explicitly ruled out."""
    import dataclasses

    odd = _run("planted:qr-no-sign-fix", "unbiased-kernel")
    assert any("sign(diag R)" in line for line in odd.diagnosis)
    even = dataclasses.replace(_adapter("planted:qr-no-sign-fix"), even_features=True)
    result = run_check("unbiased-kernel", even, suite.settings())
    assert all("bias K̂" not in line for line in result.diagnosis)


def test_norm_law_diagnosis_states_the_measured_moment():
    """A failed norm law names E‖w‖² with its interval and the expected d."""
    result = _run("planted:wrong-coordinate-variance", "projection-norms")
    assert any("row norms are not χ(8)" in line and "expected 8" in line for line in result.diagnosis)


def test_dense_reference_locates_the_difference():
    """The library's own features place a per-key stabilizer in the feature map and an off-by-one
    prefix sum in the causal attention sums (and nowhere else)."""
    feature_map = _run("planted:per-key-stabilizer", "dense-reference").diagnosis
    assert any("comes from its feature map" in line for line in feature_map)
    sums = _run("planted:off-by-one-prefix", "dense-reference").diagnosis
    assert sums == [line for line in sums if line.startswith("causal")] and "attention sums" in sums[0]


def test_diagnosis_names_reused_norms_only_when_the_norm_subtest_rejects():
    """Redraws with fresh directions and fixed norms are blamed on the norms; the control is not."""
    reused = _run("planted:redraw-reuses-norms", "redraw-independence")
    assert any(line.startswith("redraws reuse the row norms: r = +1.000") for line in reused.diagnosis)
    assert _run("favor-bench:positive-ort", "redraw-independence").diagnosis == []


def test_diagnosis_places_a_saturating_data_seed_at_large_batch_sums():
    """A seed int32(ceil(Σx·1e7)) repeats matrices only for |Σx| beyond 214.75, and the sub-check
    says so."""
    diagnosis = _run("planted:saturating-data-seed", "data-redraws").diagnosis
    assert any(line.startswith("the data-derived seed collapses for large data") for line in diagnosis)
