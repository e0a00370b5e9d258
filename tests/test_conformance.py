"""The conformance matrix's findings on third-party FAVOR implementations, checked in CI.

For each library that installs from PyPI with the ``audit`` extra (srf-attention, torch-geometric,
performer-pytorch):
the adapter computes what the library computes (compared with a direct computation from the
library's own projection), the quick-mode audit (power 0.9, seed 0) gives the verdicts published in
``results/audit/``, and the committed reproducers of its failures still show them. Libraries that
need a source build, a path or TensorFlow are skipped here when absent; their reports are committed
with the commands that regenerate them.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

from studies.audit import Settings, run_audit

RESULTS = Path(__file__).resolve().parent.parent / "results" / "audit"
QUICK = Settings(quick=True, seed=0)


def _verdicts(target: str, checks: list[str]) -> dict[str, str]:
    _, results, _ = run_audit(target, checks=checks, settings=QUICK)
    return {result.name: result.status for result in results}


def _reproduce(target: str, script: str) -> dict:
    """The globals of a committed reproducer after running it as a script."""
    return runpy.run_path(str(RESULTS / target / script), run_name="__main__")


def test_srf_adapter_kernel_is_the_positive_map_of_the_library_projection():
    pytest.importorskip("srf_attention")
    from studies.audit.adapters import srf_attention

    adapter = srf_attention.adapter()
    rng = np.random.default_rng(0)
    x, y = 0.3 * rng.standard_normal((2, 8))
    W = np.stack([adapter.sample_projection(8, 8, seed) for seed in range(3)])
    direct = [np.mean(np.exp(w @ x - x @ x / 2) * np.exp(w @ y - y @ y / 2)) for w in W]
    np.testing.assert_allclose(adapter.kernel_estimate(x, y, W), direct, rtol=1e-12)


def test_srf_attention_verdicts():
    pytest.importorskip("srf_attention")
    checks = ["unbiased-kernel", "zero-variance", "head-independence", "redraw-independence"]
    verdicts = _verdicts("srf-attention", [*checks, "dense-reference", "causal-future"])
    assert verdicts == {
        "unbiased-kernel": "fail",
        "zero-variance": "pass",
        "head-independence": "fail",
        "redraw-independence": "pass",
        "dense-reference": "fail",
        "causal-future": "fail",
    }


def test_srf_attention_reproducers_show_their_defects():
    pytest.importorskip("srf_attention")
    norms = _reproduce("srf-attention", "reproduce_norms.py")
    assert norms["mean_square_norm"] < 1.2  # χ(1) norms: E‖w‖² = 1, not d = 8
    assert norms["ratio"] < 0.8 and abs(norms["ratio_chi"] - 1) < 4 * norms["standard_error"]
    redraw = _reproduce("srf-attention", "reproduce_redraw_on_call.py")
    assert "device" in redraw["error"] and redraw["redraw_changes_w"]
    leak = _reproduce("srf-attention", "reproduce_causal_leak.py")
    assert leak["leak"] > 1e-3 and leak["leak_eps0"] < 1e-5


def test_torch_geometric_adapter_kernel_is_the_relu_map_of_the_library_projection():
    pytest.importorskip("torch_geometric")
    from studies.audit.adapters import torch_geometric

    adapter = torch_geometric.adapter()
    rng = np.random.default_rng(0)
    x, y = 0.5 * rng.standard_normal((2, 8))
    W = np.stack([adapter.sample_projection(12, 8, seed) for seed in range(3)])
    direct = [8 / 12 * np.sum(np.maximum(w @ x, 0) * np.maximum(w @ y, 0)) for w in W]
    np.testing.assert_allclose(adapter.kernel_estimate(x, y, W), direct, rtol=1e-12)


def test_torch_geometric_verdicts():
    pytest.importorskip("torch_geometric")
    verdicts = _verdicts(
        "torch-geometric",
        ["unbiased-kernel", "head-independence", "redraw-independence", "mask-semantics"],
    )
    assert verdicts == {
        "unbiased-kernel": "fail",
        "head-independence": "fail",
        "redraw-independence": "pass",
        "mask-semantics": "fail",
    }


def test_torch_geometric_reproducers_show_their_defects():
    pytest.importorskip("torch_geometric")
    mask = _reproduce("torch-geometric", "reproduce_mask.py")
    assert float((mask["masked"] - mask["deleted"]).abs().max()) > 1e-2
    assert float((mask["masked"] - mask["by_hand"]).abs().max()) < 1e-12
    sign = _reproduce("torch-geometric", "reproduce_qr_sign.py")
    truth, n = sign["truth"], sign["n"]
    library, fixed = sign["estimates"] / truth, sign["fixed"] / truth
    assert library.mean() < 1 - 4 * library.std() / np.sqrt(n)
    assert abs(fixed.mean() - 1) < 4 * fixed.std() / np.sqrt(n)


def test_fast_transformers_adapter_kernel_is_the_hyperbolic_map_when_installed():
    pytest.importorskip("fast_transformers.feature_maps")
    from studies.audit.adapters import fast_transformers

    adapter = fast_transformers.adapter("favor")
    rng = np.random.default_rng(0)
    x, y = 0.3 * rng.standard_normal((2, 8))
    W = np.stack([adapter.sample_projection(12, 8, seed) for seed in range(3)])
    direct = [np.mean(np.cosh(w @ (x + y))) * np.exp(-(x @ x + y @ y) / 2) for w in W]
    np.testing.assert_allclose(adapter.kernel_estimate(x, y, W), direct, rtol=1e-12)


PERFORMER_PYTORCH_VERDICTS = {
    "projection-moments": "fail",
    "projection-norms": "pass",
    "projection-directions": "fail",
    "projection-orthogonality": "pass",
    "norm-direction": "pass",
    "unbiased-kernel": "fail",
    "zero-variance": "pass",
    "mse-closed-form": "fail",
    "head-independence": "fail",
    "redraw-independence": "pass",
    "data-redraws": "n-a",
    "same-projection": "pass",
    "dense-reference": "fail",
    "causal-future": "fail",
    "mask-semantics": "fail",
    "attention-delta": "n-a",
    "attention-convergence": "n-a",
    "convergence-exact": "fail",
    "dtype-overflow": "fail",
}


def test_performer_pytorch_verdicts():
    """Every check's quick verdict is the one its full report publishes."""
    pytest.importorskip("performer_pytorch")
    assert _verdicts("performer-pytorch", list(PERFORMER_PYTORCH_VERDICTS)) == PERFORMER_PYTORCH_VERDICTS


def test_performer_pytorch_reproducers_show_their_defects():
    pytest.importorskip("performer_pytorch")
    sign = _reproduce("performer-pytorch", "reproduce_qr_sign.py")
    truth, n = sign["truth"], sign["n"]
    library, fixed = sign["estimates"] / truth, sign["fixed"] / truth
    assert library.mean() < 1 - 4 * library.std() / np.sqrt(n)
    assert abs(fixed.mean() - 1) < 4 * fixed.std() / np.sqrt(n)
    mask = _reproduce("performer-pytorch", "reproduce_mask.py")
    assert float((mask["masked"] - mask["deleted"]).abs().max()) > 1e-2
    assert float((mask["masked"] - mask["by_hand"]).abs().max()) < 1e-12
