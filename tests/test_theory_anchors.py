"""theory.md's quoted numbers (§4, §11, Appendix A) reproduced from the closed forms: the utility ratio
of Fig. 2 (claim 6), and the NUM:orf, NUM:lemma2, NUM:smreg and NUM:simrf values (a pair geometry is
fitted to some quoted numbers, the others are predicted).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from estimators import theory
from tests.theory_support import pair_at_angle, pair_with


def test_utility_ratio_anchor_values():
    """Claim 6 and §4 values at l = 1 (Fig. 2), the limits at φ → 0, π, and m-independence."""
    anchors = {  # φ: (quoted value, half a unit of its last quoted digit)
        0.5: (7.2e-4, 5e-6),
        1.0: (0.0218, 5e-5),
        1.5: (0.30, 5e-3),
        math.pi / 2: (0.4323, 5e-5),
        2.0: (3.396, 5e-4),
        2.5: (35.5, 5e-2),
        3.0: (1275, 1.0),
        3.1: (1.5e4, 500),
    }
    for phi, (value, half_unit) in anchors.items():
        assert theory.utility_ratio(phi, 1.0) == pytest.approx(value, abs=half_unit)
    assert theory.utility_ratio(math.pi, 1.0) == np.inf and theory.utility_ratio(0.0, 1.0) == 0
    x, y = pair_at_angle(1.0, 1.0, 2.2, 5)
    for m in (1, 7):
        ratio = theory.mse("trig-iid", x, y, m) / theory.mse("positive-iid", x, y, m)
        assert ratio == pytest.approx(theory.utility_ratio(2.2, 1.0), rel=1e-12)


def test_appendix_a_orf_numbers_are_reproduced():
    """NUM:orf (d = 8): (t, s) is fitted to two of the eleven quoted numbers; the rest are predicted."""

    def residual(log_ts):
        x, y = pair_with(*np.exp(log_ts), 8)
        return [
            math.log(theory.mse("positive-ort", x, y, 4) / 0.2262),
            math.log(theory.mse("trig-ort", x, y, 4) / 2.921e-2),
        ]

    x, y = pair_with(*np.exp(optimize.fsolve(residual, [0.0, 0.0], xtol=1e-13)), 8)
    predictions = {
        ("hyperbolic-ort", 4): 4.29e-2,
        ("positive-ort", 8): 0.1031,
        ("trig-ort", 16): 2.711e-3,
        ("positive-ort", 16): 5.154e-2,
        ("hyperbolic-ort", 16): 5.72e-3,
    }
    for (name, m), value in predictions.items():
        assert theory.mse(name, x, y, m) == pytest.approx(value, rel=2e-3), name
    assert theory.theorem2_bound(x, y, 4) == pytest.approx(0.2290, abs=6e-5)
    assert theory.theorem2_openreview_bound(x, y, 4) == pytest.approx(0.0844, abs=6e-5)
    assert theory.theorem2_bound(x, y, 8) == pytest.approx(0.1064, abs=6e-5)


def test_appendix_a_lemma2_smreg_and_simrf_numbers_are_consistent():
    """NUM:lemma2 (d = 8, m = 4), NUM:smreg (d = 8, m = 4), the ORF half of NUM:simrf (d = m = 6)."""

    def fit(pairs_of_targets, d):
        def residual(log_ts):
            x, y = pair_with(*np.exp(log_ts), d)
            return [math.log(theory.mse(name, x, y, m) / value) for name, m, value in pairs_of_targets]

        return pair_with(*np.exp(optimize.fsolve(residual, [0.0, 0.0], xtol=1e-13)), d)

    x, y = fit([("positive-iid", 4, 0.4608), ("trig-iid", 4, 1.921e-2)], 8)
    assert theory.mse("hyperbolic-iid", x, y, 4) == pytest.approx(0.1347, abs=6e-5)
    t = optimize.brentq(lambda t: theory.smreg_ratio(t, 8) - 0.962, 1e-3, 10)
    s = optimize.brentq(lambda s: theory.mse("positive-iid-fixed", *pair_with(t, s, 8), 4) - 0.5826, 1e-6, 50)
    assert theory.mse("positive-ort-fixed", *pair_with(t, s, 8), 4) == pytest.approx(0.5170, abs=6e-4)
    angle = optimize.brentq(
        lambda a: theory.mse("positive-iid", *pair_at_angle(0.7, 0.6, a, 6), 6) - 0.5601, 0.0, 3.0
    )
    assert theory.mse("positive-ort", *pair_at_angle(0.7, 0.6, angle, 6), 6) == pytest.approx(
        0.4749, abs=6e-5
    )
