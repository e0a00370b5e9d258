"""Diagnoses name the cause their sub-checks establish, and every such cause.

Each test plants a defect whose cause is known by construction (adapters built here from
favor-bench's own control) and checks the diagnosis against it: a constant ε in the normalizer is
named with its value and the failing cell it explains; inputs scaled twice are named next to a
sampler defect; norms tied to directions are named next to a missing QR sign correction. The
library versions of the same defects are checked when the library is installed.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from estimators import projections
from studies.audit import Settings, load_target
from studies.audit.adapters import favor_bench
from studies.audit.checks import convergence_exact, dense_reference, kernels
from studies.core import stats

QUICK = Settings(quick=True, seed=0)
EPS = 1e-6


def _positive(x, W):
    """Unshifted positive features exp(Wx − ‖x‖²/2)/√m of inputs scaled by d^{-1/4}."""
    x = np.asarray(x) * np.shape(x)[-1] ** -0.25
    return np.exp(x @ np.asarray(W).T - np.sum(x * x, axis=-1, keepdims=True) / 2) / np.sqrt(np.shape(W)[0])


def _denominator_eps_adapter():
    """Dense FAVOR of unshifted positive features with ε = 1e-6 added to the normalizer."""

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        gram = _positive(q, W) @ np.swapaxes(_positive(k, W), -1, -2)
        gram = np.tril(gram) if causal else gram
        return (gram @ np.asarray(v)) / (gram.sum(axis=-1, keepdims=True) + EPS)

    def features(x, W, role):
        return _positive(x, W)

    control = favor_bench.adapter("positive-iid")
    return dataclasses.replace(control, name="denominator-eps", attention=attend, features=features)


def _eps_lines(result):
    return [line for line in result.diagnosis if "constant ε =" in line]


def _fitted_eps(line) -> float:
    return float(re.search(r"constant ε = ([0-9.e+-]+)", line).group(1))


def test_dense_reference_names_a_denominator_eps_with_its_value_and_failing_cell():
    """The ε line quotes the failing cells with their measured differences, gives ε = 1e-6, and the
    constant-values line (which once called this ε a missing normalizer) is not emitted."""
    result = dense_reference.check_dense_reference(_denominator_eps_adapter(), QUICK)
    assert result.status == "fail"
    lines = _eps_lines(result)
    assert lines and all(abs(_fitted_eps(line) / EPS - 1) < 1e-6 for line in lines)
    measured = dict(re.findall(r"(\w+ [\w ]+?): ([0-9.e+-]+)", result.effect))
    for line in lines:
        quoted = re.findall(r"(\w+ (?:plain|key outlier)) \(([0-9.e+-]+), bound", line)
        assert quoted and all(measured[cell] == value for cell, value in quoted)
    assert any(line.startswith("causal") and "causal key outlier (" in line for line in lines)
    assert not any("missing or wrong" in line for line in result.diagnosis)


def test_dense_reference_does_not_call_a_dropped_normalizer_an_eps():
    """The dropped normalizer is named as the whole difference (the reference times the v ≡ 1
    output reproduces it); a normalizer ε is not."""
    result = dense_reference.check_dense_reference(load_target("planted:dropped-normalizer"), QUICK)
    assert any("missing or wrong, and that is the whole difference" in line for line in result.diagnosis)
    assert not _eps_lines(result)


def test_dense_reference_does_not_call_a_shift_in_the_feature_map_an_eps():
    """A per-key stabilizer is reproduced by the library's own features with ε = 0: no ε is named."""
    result = dense_reference.check_dense_reference(load_target("planted:per-key-stabilizer"), QUICK)
    assert any("comes from its feature map" in line for line in result.diagnosis)
    assert not _eps_lines(result)


def _no_sign_fix(m, d, count, seed):
    return projections.orthogonal(m, d, sign_fix=False, batch_shape=(int(count),), seed=int(seed))


def _with_sampler(adapter, name, draw):
    return dataclasses.replace(
        adapter,
        name=name,
        sample_projection=lambda m, d, seed: draw(m, d, 1, seed)[0],
        sample_projections=draw,
    )


def _scaled_twice(row: str, draw=None):
    """favor-bench FAVOR of ``row`` on inputs multiplied by d^{-1/4} before its own d^{-1/4} scaling."""
    control = favor_bench.adapter(row)

    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        scale = np.shape(q)[-1] ** -0.25
        return control.attention(scale * np.asarray(q), scale * np.asarray(k), v, W, causal=causal, mask=mask)

    adapter = dataclasses.replace(control, name="scaled-twice", attention=attend, features=None)
    return adapter if draw is None else _with_sampler(adapter, "scaled-twice-no-sign-fix", draw)


def _convergence(adapter):
    result = convergence_exact.check_convergence(adapter, QUICK)
    assert result.status == "fail"
    return result.diagnosis


def test_convergence_names_inputs_scaled_twice_and_clears_the_sampler():
    diagnosis = _convergence(_scaled_twice("positive-ort"))
    assert any("inputs scaled once more" in line and "converge" in line for line in diagnosis)
    assert any("numerics are a cause" in line for line in diagnosis)
    assert not any("sampler is a cause" in line for line in diagnosis)


def test_convergence_names_both_the_sampler_and_the_scaling_when_both_are_wrong():
    """The TF FAVOR++ situation: non-Haar blocks AND inputs scaled twice; each is named from its own
    sub-computation (the old diagnosis blamed the sampler alone)."""
    diagnosis = _convergence(_scaled_twice("positive-ort", _no_sign_fix))
    assert any("sampler is a cause" in line for line in diagnosis)
    assert any("inputs scaled once more" in line for line in diagnosis)


def test_convergence_clears_the_numerics_when_only_the_sampler_is_wrong():
    diagnosis = _convergence(_with_sampler(favor_bench.adapter("positive-ort"), "no-sign-fix", _no_sign_fix))
    assert any("sampler is a cause" in line for line in diagnosis)
    assert any("numerics are not a cause" in line for line in diagnosis)
    assert not any("rescal" in line or "scaled by" in line for line in diagnosis)


def _norms_from_the_same_block(m, d, count, seed):
    """pytorch-fast-transformers' construction: Q of an unfixed QR of a Gaussian block, row j of
    the block scaled by the norm of row j of that same Gaussian block."""
    rng = np.random.default_rng(int(seed))
    blocks = -(-m // d)
    gaussian = rng.standard_normal((int(count), blocks, d, d))
    directions = np.swapaxes(np.linalg.qr(gaussian)[0], -1, -2)
    W = directions * np.linalg.norm(gaussian, axis=-1, keepdims=True)
    return W.reshape(int(count), blocks * d, d)[:, :m]


def _contributing(diagnosis, text):
    return any(text in line and line.endswith("a contributing cause") for line in diagnosis)


def test_unbiased_names_the_qr_sign_and_the_norms_when_both_bias_the_estimate():
    """Positive features (odd in w) on the construction above: both defects are repaired on the
    library's draws, both move E[K̂], and with both repaired no bias is left."""
    adapter = _with_sampler(favor_bench.adapter("positive-ort"), "sign-and-norms", _norms_from_the_same_block)
    result = kernels.check_unbiased(adapter, QUICK)
    assert result.status == "fail"
    assert _contributing(result.diagnosis, "sign(diag R)")
    assert _contributing(result.diagnosis, "norms depend on the directions")
    assert "account for it" in result.diagnosis[-1]


def test_unbiased_rules_out_the_sign_for_an_even_map_and_names_the_norms():
    control = favor_bench.adapter("hyperbolic-ort")
    adapter = _with_sampler(control, "norms-even-map", _norms_from_the_same_block)
    result = kernels.check_unbiased(adapter, QUICK)
    assert result.status == "fail"
    assert any("cannot cause this bias" in line for line in result.diagnosis)
    assert not _contributing(result.diagnosis, "sign(diag R)")
    assert _contributing(result.diagnosis, "norms depend on the directions")


def test_fast_transformers_grf_bias_names_both_causes_when_installed():
    pytest.importorskip("fast_transformers.feature_maps")
    result = kernels.check_unbiased(load_target("pytorch-fast-transformers:grf"), QUICK)
    assert _contributing(result.diagnosis, "sign(diag R)")
    assert _contributing(result.diagnosis, "norms depend on the directions")


def test_fast_transformers_dense_reference_names_its_eps_when_installed():
    pytest.importorskip("fast_transformers.feature_maps")
    result = dense_reference.check_dense_reference(load_target("pytorch-fast-transformers"), QUICK)
    lines = _eps_lines(result)
    assert lines and all(abs(_fitted_eps(line) / EPS - 1) < 1e-3 for line in lines)
    assert not any("missing or wrong" in line for line in result.diagnosis)


def test_denominator_eps_fit_recovers_the_constant():
    """The weighted least-squares ε of an exact (Âv)/(D̂ + ε) is that ε."""
    rng = np.random.default_rng(0)
    gram = np.tril(rng.uniform(0.1, 1.0, (1, 1, 12, 12)))
    v = rng.uniform(-1, 1, (1, 1, 12, 3))
    out = (gram @ v) / (gram.sum(axis=-1, keepdims=True) + 0.25)
    assert abs(dense_reference.denominator_eps(gram, v, stats.host(out)) - 0.25) < 1e-12
