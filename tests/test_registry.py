"""The registry: every row draws, estimates and agrees across backends."""

from __future__ import annotations

import numpy as np
import pytest

from estimators import backends, features, hybrid_features, kernels, registry
from tests.conftest import to_numpy


def test_names_are_unique_and_get_rejects_unknown_names():
    assert len(set(registry.names())) == len(registry.names())
    with pytest.raises(ValueError, match="estimator must be one of"):
        registry.get("positive-sorf")


@pytest.mark.parametrize("name", registry.names())
def test_rows_estimate_the_same_numbers_on_every_backend(name, backend, to_backend):
    row = registry.get(name)
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((2, 4)) * 0.4
    reference = row.estimate(x, y, row.draw(9, 4, batch_shape=(5,), seed=1))
    W = row.draw(9, 4, batch_shape=(5,), seed=1, backend=backend)
    estimate = row.estimate(to_backend(x), to_backend(y), W)
    assert backends.backend_of(estimate) == backend
    assert estimate.shape == (5,)
    np.testing.assert_allclose(to_numpy(estimate), reference, rtol=1e-12)
    assert np.isfinite(to_numpy(row.exact(to_backend(x), to_backend(y))))


NESTING = [name for name in registry.names() if registry.get(name).nests]


def test_nesting_rows_are_the_independent_row_samplers():
    assert {registry.get(name).projection for name in NESTING} == set(registry.NESTED_PROJECTIONS)
    for name in set(registry.names()) - set(NESTING):
        with pytest.raises(ValueError, match="does not nest"):
            registry.get(name).estimate_prefixes(np.zeros(4), np.zeros(4), np.zeros((4, 4)), [2])


def _abs_gram(row, x, y, W):
    """Σ_f |φ_f(x)||φ_f(y)| (…, L, M): what round-off in any order of the sum scales with."""
    x_options, y_options = features.data_options(row.feature, x, y)
    phi_x, phi_y = np.abs(row.features(x, W, **x_options)), np.abs(row.features(y, W, **y_options))
    return phi_x @ np.swapaxes(phi_y, -1, -2)


def _assert_sums_agree(actual, reference, abs_terms, m):
    """Two orders of the same ≤ 2m-term sum: |difference| ≤ 4·m·ε·Σ|terms|, even under cancellation."""
    bound = 4 * m * np.finfo(np.float64).eps * abs_terms
    assert np.all(np.abs(to_numpy(actual) - reference) <= bound)


def _dyadic(array, bits):
    """``array`` rounded down to multiples of 2^-bits: with x and W so rounded, every projection x·w is
    exact in float64 whatever the order of its terms, so both paths see the same features and differ
    only in how the feature products are summed (the bound of :func:`_assert_sums_agree`)."""
    return np.floor(array * 2.0**bits) / 2.0**bits


@pytest.mark.parametrize("name", NESTING)
def test_prefix_estimates_equal_estimates_from_the_first_rows(name, backend, to_backend):
    """One feature computation gives K̂ for every prefix m' of W; each equals ``estimate`` on W[:m'].
    A layout that pairs the wrong features of a projection (trig, hyperbolic) or a wrong rescale fails."""
    row = registry.get(name)
    m, d, ms = 20, 4, [1, 3, 4, 9, 20]
    rng = np.random.default_rng(7)
    x, y = _dyadic(rng.standard_normal((2, 3, d)) * 0.25, 6)
    W = _dyadic(row.draw(m, d, batch_shape=(5, 1), seed=2), 4)
    prefixes = row.estimate_prefixes(to_backend(x), to_backend(y), to_backend(W), ms)
    assert backends.backend_of(prefixes) == backend
    assert prefixes.shape == (5, 3, len(ms))
    for position, size in enumerate(ms):
        truncated = W[..., :size, :]
        abs_terms = _abs_gram(row, x[..., None, :], y[..., None, :], truncated)[..., 0, 0]
        _assert_sums_agree(prefixes[..., position], row.estimate(x, y, truncated), abs_terms, m)
    with pytest.raises(ValueError, match=r"ascending integers in \[1, 20\]"):
        row.estimate_prefixes(x, y, W, [0, 21])


@pytest.mark.parametrize("name", NESTING)
def test_gram_prefixes_equal_grams_from_the_first_rows(name, backend, to_backend):
    """Each yielded Â equals ``estimate_gram`` on W[:m'] (the same terms summed in blocks); a block
    boundary off by one row or a wrong rescale fails."""
    row = registry.get(name)
    m, d, ms = 20, 4, [1, 3, 4, 9, 20]
    rng = np.random.default_rng(8)
    x, y = _dyadic(rng.standard_normal((2, 2, 5, d)) * 0.25, 6)
    W = _dyadic(row.draw(m, d, batch_shape=(3, 1), seed=4), 4)
    yielded = list(row.gram_prefixes(to_backend(x), to_backend(y), to_backend(W), ms))
    assert [size for size, _ in yielded] == ms
    for size, gram in yielded:
        assert backends.backend_of(gram) == backend
        truncated = W[..., :size, :]
        _assert_sums_agree(gram, row.estimate_gram(x, y, truncated), _abs_gram(row, x, y, truncated), m)
    with pytest.raises(ValueError, match="ascending"):
        list(row.gram_prefixes(x, y, W, [4, 2]))


@pytest.mark.parametrize("name", registry.names())
def test_feature_width_is_r(name):
    row = registry.get(name)
    W = row.draw(7, 3, seed=0)
    x = np.ones((2, 3))
    for options in features.data_options(row.feature, x, x):
        assert row.features(x, W, **options).shape == (2, row.feature_width(7))
    if row.feature not in features.SIDED:
        assert row.feature_width(7) == 7 * row.features_per_projection


def test_fixed_norm_rows_have_sqrt_d_rows():
    for name in ("positive-iid-fixed", "positive-ort-fixed"):
        W = registry.get(name).draw(10, 4, seed=3)
        np.testing.assert_allclose(np.linalg.norm(W, axis=-1), 2.0, rtol=1e-14)


@pytest.mark.parametrize("name", registry.names())
def test_rows_estimate_under_jax_jit(name):
    """Every row's estimate traces under ``jax.jit`` (parameter checks must not read traced values)
    and gives the numpy numbers."""
    jax = pytest.importorskip("jax")
    row = registry.get(name)
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((2, 4)) * 0.4
    W = row.draw(9, 4, batch_shape=(5,), seed=1)
    jitted = jax.jit(row.estimate)(*(jax.numpy.asarray(a) for a in (x, y, W)))
    np.testing.assert_allclose(np.asarray(jitted), row.estimate(x, y, W), rtol=1e-12)


def test_a_new_row_reaches_the_studies_the_check_set_and_the_benchmarks(monkeypatch):
    """One row added to the registry and its closed forms added to the theory table, and no other
    edit (the two files a new row with existing feature code touches): it gets cells in the studies
    that cover every estimator (unbiasedness, the shoot-out and its family panel, attention_metrics),
    closed forms from every theory entry point, check-set targets whose unbiasedness and MSE checks
    use them, and asv parameters. Modules that read the registry at import are reloaded, as a fresh
    process would."""
    import dataclasses
    import importlib

    from estimators import theory
    from favor_bench import accuracy, throughput
    from studies import attention_metrics, estimator_shootout, unbiasedness
    from studies.audit import load_target, run_check
    from studies.audit.checks import Settings
    from studies.figures import estimator_shootout as shootout_figures

    new = dataclasses.replace(registry.get("positive-iid"), name="throwaway-iid", family="couplings")
    monkeypatch.setattr(registry, "_ROWS", [*registry.rows(), new])
    monkeypatch.setattr(registry, "_REGISTRY", {row.name: row for row in [*registry.rows(), new]})
    monkeypatch.setitem(theory.ROW_THEORY, "throwaway-iid", theory.ROW_THEORY["positive-iid"])
    modules = (accuracy, throughput, estimator_shootout, unbiasedness)
    try:
        for module in modules:
            importlib.reload(module)
        assert any(cell["estimator"] == "throwaway-iid" for cell in unbiasedness.cells("quick"))
        kinds = {c["kind"] for c in estimator_shootout.cells("quick") if c["estimator"] == "throwaway-iid"}
        assert kinds == {"t", "m", "attention"}
        assert any(cell["estimator"] == "throwaway-iid" for cell in attention_metrics.cells("quick"))
        panels = shootout_figures.groups(estimator_shootout.estimators())
        assert "throwaway-iid" in panels[registry.FAMILIES["couplings"]]
        assert "throwaway-iid" in accuracy.AttentionAccuracy.params[1]
        assert "throwaway-iid" in throughput.MonteCarloThroughput.params[1]
        x, y = np.full(4, 0.3), np.full(4, -0.2)
        assert theory.mse("throwaway-iid", x, y, 8) == theory.mse("positive-iid", x, y, 8)
        adapter = load_target("favor-bench:throwaway-iid")
        settings = Settings(quick=True, seed=1)
        for check in ("projection-norms", "unbiased-kernel", "mse-closed-form"):
            assert run_check(check, adapter, settings).status == "pass", check
    finally:
        monkeypatch.undo()
        for module in modules:
            importlib.reload(module)


def test_a_row_must_name_a_known_family(monkeypatch):
    import dataclasses

    bad = dataclasses.replace(registry.get("positive-iid"), name="lost-iid", family="no-such-family")
    monkeypatch.setattr(registry, "_ROWS", [*registry.rows(), bad])
    with pytest.raises(ValueError, match="family must be one of"):
        registry.check_families()


@pytest.mark.parametrize("name", registry.names())
def test_pairs_sharing_a_draw_estimate_what_separate_feature_calls_give(name, backend, to_backend):
    """``estimate`` on pairs (P, d) with W (n, 1, m, d) gives, bit for bit on numpy, φ(x_p)ᵀφ(y_p) from
    one feature call per side and pair (data-dependent parameters per pair, though x and y go through
    one call where their options agree); hybrid rows, their direct form of each pair alone
    (:func:`estimators.hybrid_features.gram`). Other backends: the same to float64 rounding."""
    row = registry.get(name)
    rng = np.random.default_rng(12)
    x, y = 0.4 * rng.standard_normal((2, 5, 4))
    W = to_backend(row.draw(8, 4, batch_shape=(6,), seed=3))
    together = to_numpy(row.estimate(to_backend(x), to_backend(y), W[:, None]))
    separate = []
    for p in range(5):
        x_p, y_p = to_backend(x[p : p + 1]), to_backend(y[p : p + 1])
        if row.feature in hybrid_features.ORIENTATION:
            separate.append(to_numpy(hybrid_features.gram(row.feature, x_p, y_p, W)[..., 0, 0]))
            continue
        x_options, y_options = features.data_options(row.feature, x_p, y_p)
        phi_x, phi_y = row.features(x_p, W, **x_options), row.features(y_p, W, **y_options)
        separate.append(to_numpy(kernels.estimate(phi_x, phi_y)[..., 0]))
    separate = np.stack(separate, axis=-1)
    assert together.shape == (6, 5)
    if backend == "numpy":
        np.testing.assert_array_equal(together, separate)
    else:
        np.testing.assert_allclose(together, separate, rtol=1e-12, atol=1e-14)
