"""The audit battery: the control passes, planted bugs fail, adapters and reports behave.

Statistical checks inside the audit state their own null, per-test α, family α and power (see
``studies.audit.checks``); these tests run them in ``--quick`` mode at the fixed seed 0. The planted-bug
tests show that each check can fail, on the failure it exists to catch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from estimators import attention, projections
from studies.audit import CHECKS, Adapter, Settings, load_target, main, run_check
from studies.audit.moments import iid_kurtosis, raw_moments
from studies.audit.report import reproduce_command, write_report

QUICK = Settings(quick=True, seed=0)


@pytest.fixture(scope="module")
def control():
    return load_target("favor-bench")


def test_control_passes_every_check(control):
    """favor-bench's own FAVOR+ (positive-ort) passes the whole quick battery at seed 0.

    Each statistical check controls its family error at α = 0.01 (Bonferroni over its cells); the
    deterministic checks compare float64 outputs given the same W to 1e-10.
    """
    results = [run_check(name, control, QUICK) for name in CHECKS]
    failed = {r.name: (r.statistic, r.effect) for r in results if r.status != "pass"}
    assert not failed


def _planted(control, **changes) -> Adapter:
    return dataclasses.replace(control, name="planted", **changes)


def test_non_haar_qr_fails_marginals_and_unbiasedness(control):
    """QR without sign(diag R): rows are not N(0, I) and K̂ is biased at axis-aligned inputs (§5.1)."""

    def unfixed(m, d, seed):
        return projections.orthogonal(m, d, sign_fix=False, seed=int(seed))

    adapter = _planted(control, sample_projection=unfixed)
    assert run_check("projection-marginals", adapter, QUICK).status == "fail"
    assert run_check("unbiased-kernel", adapter, QUICK).status == "fail"


def test_wrong_feature_scale_fails_mse_and_unbiasedness(control):
    """A feature map off by a factor 1.2 (K̂ × 1.44) is caught by the mean and MSE checks."""

    def scaled(x, y, W):
        return 1.44 * control.kernel_estimate(x, y, W)

    adapter = _planted(control, kernel_estimate=scaled)
    assert run_check("unbiased-kernel", adapter, QUICK).status == "fail"
    assert run_check("mse-closed-form", adapter, QUICK).status == "fail"


def test_shared_head_projection_fails_independence(control):
    """One W repeated over heads gives error correlation 1 across heads."""

    def shared(m, d, heads, seed):
        return np.repeat(control.sample_projection(m, d, seed)[None], heads, axis=0)

    def repeated(m, d, count, seed):
        return np.repeat(control.sample_projection(m, d, seed)[None], count, axis=0)

    adapter = _planted(control, head_projections=shared, redraw_projections=repeated)
    assert run_check("head-independence", adapter, QUICK).status == "fail"
    assert run_check("redraw-independence", adapter, QUICK).status == "fail"


def _favor_attention(**options):
    def attend(q, k, v, W, causal=False, mask=None, dtype="float64"):
        keep = None if mask is None else np.asarray(mask, dtype=bool)[:, None, :]
        return attention.favor(
            q, k, v, W, feature="positive-ort", causal=causal, key_padding_mask=keep, **options
        )

    return attend


def test_global_key_max_with_eps_leaks_the_future(control):
    """The public-code stabilizer (one key max over the sequence) with ε > 0 leaks in causal mode."""
    adapter = _planted(control, attention=_favor_attention(stabilizer="global", eps=1e-4))
    assert run_check("causal-future", adapter, QUICK).status == "fail"
    assert run_check("stabilizer-bias", adapter, QUICK).status == "fail"


def test_mask_that_only_zeroes_values_fails(control):
    """Zeroing masked values but keeping their keys in the denominator is not a padding mask."""

    def zero_values(q, k, v, W, causal=False, mask=None, dtype="float64"):
        if mask is not None:
            v = v * np.asarray(mask, dtype=np.float64)[:, None, :, None]
        return attention.favor(q, k, v, W, feature="positive-ort", causal=causal)

    adapter = _planted(control, attention=zero_values)
    assert run_check("mask-semantics", adapter, QUICK).status == "fail"


def test_half_precision_without_stabilizer_overflows(control):
    """Unshifted exponential features computed in float16 overflow on the audit's large-logit inputs."""

    def unshifted_half(q, k, v, W, causal=False, mask=None, dtype="float64"):
        import torch

        q, k, v, W = (torch.from_numpy(np.asarray(a)).to(getattr(torch, dtype)) for a in (q, k, v, W))
        scale = q.shape[-1] ** -0.25
        phi_q, phi_k = (
            torch.exp(scale * a @ W.T - (scale * a).square().sum(-1, keepdim=True) / 2) for a in (q, k)
        )
        out = (phi_q @ (phi_k.transpose(-1, -2) @ v)) / (phi_q @ phi_k.sum(-2)[..., None])
        return out.to(torch.float64).numpy()

    adapter = _planted(control, attention=unshifted_half, dtypes=("float16",))
    assert run_check("dtype-overflow", adapter, QUICK).status == "fail"


def test_different_projection_for_keys_fails(control):
    """Key features from an independent W are uncorrelated with the query features."""

    def two_maps(x, W, role):
        if role == "key":
            W = control.sample_projection(W.shape[0], W.shape[1], 12345)
        return control.features(x, W, role)

    assert run_check("same-projection", _planted(control, features=two_maps), QUICK).status == "fail"


def test_trig_at_equal_inputs_is_exact_and_passes():
    """Trig features have zero variance at x = y (theory.md claim 5): the zero-variance branch passes."""
    adapter = load_target("favor-bench:trig-iid")
    assert run_check("unbiased-kernel", adapter, QUICK).status == "pass"


def test_raising_implementation_is_reported_as_error(control):
    def broken(q, k, v, W, causal=False, mask=None, dtype="float64"):
        raise RuntimeError("kernel crashed")

    result = run_check("mask-semantics", _planted(control, attention=broken), QUICK)
    assert result.status == "error"
    assert "kernel crashed" in result.effect


def test_missing_capability_is_skipped(control):
    adapter = _planted(control, attention=None)
    result = run_check("causal-future", adapter, QUICK)
    assert result.status == "skip"
    assert "attention" in result.details[0]


def test_quadrature_moments_match_lognormal_closed_form():
    """E[(Λ e^{ωᵀz})^k] = Λ^k e^{k²‖z‖²/2} for k = 1..4 (Gauss–Hermite, 64 nodes per axis)."""
    x, y = np.array([0.3, 0.2, -0.4, 0.1]), np.array([0.1, -0.5, 0.2, 0.3])
    t, lam = np.sum((x + y) ** 2), np.exp(-(x @ x + y @ y) / 2)
    expected = [lam**k * np.exp(k * k * t / 2) for k in (1, 2, 3, 4)]
    np.testing.assert_allclose(raw_moments("positive-iid", x, y), expected, rtol=1e-12)
    assert iid_kurtosis("positive-iid", x, y, 10**6) == pytest.approx(3.0, abs=1e-4)


def test_quadrature_variance_matches_theory_for_trig():
    from estimators import registry

    x, y = np.array([0.5, 0.0, 0.0]), np.array([0.1, -0.3, 0.2])
    mean, second = raw_moments("trig-iid", x, y, orders=(1, 2))
    assert mean == pytest.approx(np.exp(x @ y), rel=1e-12)
    assert second - mean**2 == pytest.approx(float(registry.get("trig-iid").theory_mse(x, y, 1)), rel=1e-10)


def test_module_object_target_and_bad_targets():
    adapter = load_target("studies.audit.adapters.favor_bench:adapter")
    assert adapter.claims == "positive-ort"
    assert load_target("favor-bench:trig-iid").claims == "trig-iid"
    with pytest.raises(ValueError, match="target"):
        load_target("no-such-library")
    with pytest.raises(TypeError, match="target"):
        load_target("numpy:pi")
    with pytest.raises(ValueError, match="capability"):
        adapter.has("teleport")


def test_report_lists_checks_and_reproduces_failures(control, tmp_path):
    passed = run_check("same-projection", control, QUICK)
    failed = dataclasses.replace(passed, name="causal-future", status="fail")
    report = write_report(control, "favor-bench", [passed, failed], QUICK, tmp_path, 1.0).read_text()
    assert "| [same-projection](#same-projection) | PASS |" in report
    assert reproduce_command("favor-bench", "causal-future", QUICK) in report
    assert report.count("Reproduce:") == 1
    assert (tmp_path / "results.json").exists()


def test_cli_runs_one_check(tmp_path, capsys):
    status = main(
        ["--target", "favor-bench", "--check", "same-projection", "--quick", "--out", str(tmp_path)]
    )
    assert status == 0
    assert "PASS  same-projection" in capsys.readouterr().out
    assert (tmp_path / "report.md").exists()


def test_cli_rejects_unknown_target_in_one_line(capsys):
    assert main(["--target", "no-such-library"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_performer_adapter_is_faithful_to_the_library():
    """The SelfAttention-based adapter reproduces FastAttention bit for bit (bidirectional and causal)."""
    torch = pytest.importorskip("torch")
    library = pytest.importorskip("performer_pytorch.performer_pytorch")
    from studies.audit.adapters import performer_pytorch as adapter

    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 8, 4)) for _ in range(3))
    W = adapter.sample_projection(6, 4, 1)
    for causal in (False, True):
        module = library.FastAttention(4, nb_features=6, causal=causal)
        module.projection_matrix.copy_(torch.from_numpy(W))
        expected = module.double()(*(torch.from_numpy(a) for a in (q, k, v))).numpy()
        np.testing.assert_array_equal(adapter.attention(q, k, v, W, causal=causal), expected)
