"""What the tests of the parameterized feature maps share (GERF/OPRF, SADERF, Poisson/geometric DIRFs;
tests/test_parameterized_features.py, test_gerf_features.py, test_discrete_features.py): the maps and
their options, the ``inputs`` fixture, the projection each map draws from, and theory.md §10.2–10.3's
feature formulas written out directly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from estimators import projections

GAUSSIAN_MAPS = ("oprf", "gerf-trig", "saderf")
DISCRETE_MAPS = ("poisson", "geometric")
MAP_OPTIONS = {
    "oprf": {"A": -0.07},
    "gerf-trig": {"A": 0.04},
    "saderf": {"psi": np.array([[0.5, 1.0, 2.0, 1.5]]), "A": -0.03},
    "poisson": {"rate": 0.7},
    "geometric": {"p": 0.6},
}


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    return rng.standard_normal((2, 5, 4)) * 0.5


def projection_for(name, m=6, d=4, seed=1):
    if name in DISCRETE_MAPS:
        return projections.uniform(m, d, seed=seed)
    return projections.iid(m, d, seed=seed)


def reference_features(name, x, W, options):
    """theory.md §10.2–10.3 feature formulas written out directly (scipy for the discrete laws)."""
    m, d = W.shape
    if name in GAUSSIAN_MAPS:
        A = options["A"]
        x = x * options.get("psi", 1.0)
        B, D = math.sqrt(1 - 4 * A), (1 - 4 * A) ** (d / 4)
        sq_w = (W**2).sum(-1)
        sq_x = (x**2).sum(-1, keepdims=True)
        if name == "gerf-trig":
            amplitude = D * np.exp(A * sq_w + sq_x / 2)
            u = B * x @ W.T
            return np.concatenate([amplitude * np.cos(u), amplitude * np.sin(u)], -1) / math.sqrt(m)
        return D * np.exp(A * sq_w + B * x @ W.T - sq_x / 2) / math.sqrt(m)
    if name == "poisson":
        law = stats.poisson(options["rate"])
        counts = law.ppf(W)
    else:
        law = stats.geom(options["p"], loc=-1)
        counts = law.ppf(W)
    weights = 1 / np.sqrt(special.factorial(counts) * law.pmf(counts))
    powers = x[..., None, :] ** counts
    return np.prod(powers * weights, axis=-1) / math.sqrt(m)
