"""The theory table and its entry points (estimators.theory.table, .quantities): every registry row
has an entry, with closed forms or the reason there are none; input checks name the argument; leading
dimensions and arrays of m broadcast; inputs from any backend give the numpy values; the same-block
pair counts of the block law (theory.md §5.2).
"""

from __future__ import annotations

import numpy as np
import pytest

from estimators import registry, theory
from tests.conftest import to_numpy
from tests.theory_support import BASE_ROWS, random_pairs


def test_every_registry_row_has_mean_and_mse_or_says_why():
    rng = np.random.default_rng(0)
    x, y = random_pairs(rng, 3, 6, 0.3)
    for name in registry.names():
        try:
            values = theory.mse(name, x, y, 4)
        except NotImplementedError as error:
            assert "closed form" in str(error) or "theory" in str(error), name
            continue
        assert values.shape == (3,) and np.all(np.isfinite(values)) and np.all(values >= -1e-15), name
        assert np.all(np.isfinite(theory.mean(name, x, y))), name


@pytest.mark.parametrize("name", BASE_ROWS)
def test_registry_theory_hooks_delegate_to_theory(name):
    rng = np.random.default_rng(1)
    x, y = random_pairs(rng, 4, 5, 0.4)
    row = registry.get(name)
    np.testing.assert_array_equal(row.theory_mean(x, y), theory.mean(name, x, y))
    np.testing.assert_array_equal(row.theory_mse(x, y, 7), theory.mse(name, x, y, 7))
    np.testing.assert_allclose(theory.mean(name, x, y), to_numpy(row.exact(x, y)), rtol=1e-12)


def test_bad_inputs_raise_naming_the_argument():
    x = np.ones((2, 4)) * 0.1
    with pytest.raises(ValueError, match="d=4 but y has d=3"):
        theory.mean("positive-iid", x, np.ones(3))
    with pytest.raises(ValueError, match="x contains NaN"):
        theory.mse("positive-iid", np.full(4, np.nan), x, 2)
    with pytest.raises(ValueError, match="m must be >= 1"):
        theory.mse("trig-ort", x, x, 0)
    with pytest.raises(TypeError, match="m must be an integer"):
        theory.mse("trig-ort", x, x, 2.5)
    with pytest.raises(TypeError, match="m must be an integer"):
        theory.mse("trig-ort", x, x, True)
    with pytest.raises(ValueError, match="name must be an estimator name"):
        theory.mean("no-such-row", x, x)
    with pytest.raises(ValueError, match="target must be one of"):
        theory.mse("positive-iid", x, x, 2, target="cosine")
    with pytest.raises(ValueError, match="needs d >= 2"):
        theory.pair_covariance("positive-ort", np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match="m <= d"):
        theory.theorem2_bound(x, x, 5)
    with pytest.raises(ValueError, match="t = "):
        theory.exp_pair_gap(-1.0, 4)
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        theory.theorem4_features(1.0, 16, 0.0)


def test_rows_without_theory_raise_not_implemented(monkeypatch):
    monkeypatch.setitem(theory.ROW_THEORY, "trig-iid", theory.RowTheory("none", None, reason="planted"))
    with pytest.raises(NotImplementedError, match="planted"):
        theory.mse("trig-iid", np.ones(3), np.ones(3), 2)
    with pytest.raises(NotImplementedError, match="planted"):
        theory.mean("trig-iid", np.ones(3), np.ones(3))


def test_leading_dims_broadcast_and_m_arrays():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 1, 5)) * 0.3
    y = rng.normal(size=(1, 4, 5)) * 0.3
    values = theory.mse("positive-ort", x, y, 7)
    assert values.shape == (3, 4)
    looped = [[theory.mse("positive-ort", x[i, 0], y[0, j], 7) for j in range(4)] for i in range(3)]
    np.testing.assert_allclose(values, looped, rtol=1e-13)
    m = np.array([1, 3, 5, 11])
    by_array = theory.mse("trig-ort", x[0, 0], y[0, :], m)
    np.testing.assert_allclose(by_array, [theory.mse("trig-ort", x[0, 0], y[0, k], m[k]) for k in range(4)])
    assert isinstance(theory.mean("positive-iid", x[0, 0], y[0, 0]), np.floating)


def test_inputs_from_any_backend_give_the_numpy_values(to_backend):
    rng = np.random.default_rng(3)
    x, y = random_pairs(rng, 3, 4, 0.5)
    for name in ("trig-ort", "positive-ort-fixed", "relu-ort"):
        np.testing.assert_allclose(
            theory.mse(name, to_backend(x), to_backend(y), 6), theory.mse(name, x, y, 6), rtol=1e-14
        )


def test_block_pairs_counts_ordered_same_block_pairs():
    table = {(1, 4): 0, (3, 4): 6, (4, 4): 12, (5, 4): 12, (6, 4): 14, (9, 4): 24, (3, 1): 0}
    for (m, d), pairs in table.items():
        assert theory.block_pairs(m, d) == pairs
    m = np.arange(1, 40)
    brute = [sum(n * (n - 1) for n in [5] * (k // 5) + [k % 5]) for k in m]
    np.testing.assert_array_equal(theory.block_pairs(m, 5), brute)


def test_every_registry_row_has_a_theory_entry():
    """The theory answers for every estimator without consulting the registry (no import cycle): the
    one table has exactly the registry's rows, each with closed forms or the reason there are none, in
    a known coupling; an unknown name is a ValueError."""
    assert set(registry.names()) == set(theory.ROW_THEORY)
    for name, row in theory.ROW_THEORY.items():
        assert row.coupling in theory.COUPLINGS, name
        if row.coupling == "none" or row.mean is None:
            assert row.reason, f"{name} lacks a closed form but gives no reason"
    with pytest.raises(ValueError, match="name must be an estimator name"):
        theory.mse("no-such-row", np.ones(2), np.ones(2), 1)
