"""favor_prefixes: one feature computation gives the FAVOR output of every prefix of W.

Each yielded output must equal ``attention.favor(q, k, v, W[..., :m', :])``. Both compute
N_i / D_i from the same terms φ(q_i)_f φ(k_j)_f [v_j | 1] (shifted differently, summed in another
order), so |ΔN_i| and |ΔD_i| are at most c·(m + M + d)·ε·T_i with T_i = Σ_j Σ_f |φ_f(q_i) φ_f(k_j)|
(1 + |v_j|), and the outputs differ by at most (|ΔN_i| + |o_i| |ΔD_i|)/|D_i|. The test uses
c = 8 and float64; trigonometric denominators that nearly cancel get a proportionally wider bound,
never a constant picked to pass (a row with D_i = 0 exactly, ReLU features with one projection, is
zero on both paths: ``denominator="zero"``). A block boundary off by one projection or a wrong feature layout
fails it.
"""

from __future__ import annotations

import numpy as np
import pytest

from estimators import attention, features, registry
from estimators import favor_prefixes as favor_prefixes_module
from estimators.favor_prefixes import favor_prefixes
from tests.conftest import to_numpy

EPS = np.finfo(np.float64).eps
ROWS = ("positive-iid", "trig-iid", "hyperbolic-iid", "relu-iid", "oprf-iid", "poisson-iid")
MS = [1, 3, 4, 9, 20]


def _inputs(name):
    """q, k (2 batches, 7 rows, d = 4), v (7, 3) and a W of 20 rows drawn by registry row ``name``."""
    rng = np.random.default_rng(11)
    q, k = rng.standard_normal((2, 2, 7, 4)) * 0.5
    v = rng.standard_normal((2, 7, 3))
    return q, k, v, registry.get(name).draw(20, 4, seed=5)


def _bound(row, q, k, v, W, size):
    """8·(m + M + d)·ε·(T_i + |o_i|·T⁰_i)/|D_i| per row (module docstring), from float64 features."""
    name = registry.get(row).feature
    scale = q.shape[-1] ** -0.25
    x, y = q * scale, k * scale
    truncated = W[..., :size, :]
    x_options, y_options = features.data_options(name, x, y)
    phi_q = features.feature_map(name)(x, truncated, **x_options)
    phi_k = features.feature_map(name)(y, truncated, **y_options)
    gram = phi_q @ np.swapaxes(phi_k, -1, -2)
    absolute = np.abs(phi_q) @ np.swapaxes(np.abs(phi_k), -1, -2)
    denominator = gram.sum(axis=-1)[..., None]
    defined = denominator != 0
    out = np.where(defined, gram @ v, 0.0) / np.where(defined, denominator, 1.0)
    numerator_terms = absolute @ np.abs(v)
    denominator_terms = absolute.sum(axis=-1)[..., None]
    size_factor = 8 * (W.shape[-2] + k.shape[-2] + q.shape[-1]) * EPS
    spread = numerator_terms + np.abs(out) * denominator_terms
    return np.where(defined, size_factor * spread / np.where(defined, np.abs(denominator), 1.0), np.inf)


@pytest.mark.parametrize("key_chunk", [None, 3], ids=["one-key-chunk", "keys-in-chunks-of-3"])
@pytest.mark.parametrize("name", ROWS)
def test_every_prefix_equals_favor_on_the_first_rows(name, key_chunk, backend, to_backend, monkeypatch):
    """With the default key chunk (larger than the 7 keys) and with chunks of 3 keys (three chunks,
    the key shift rescaled between them, as on long sequences)."""
    if key_chunk is not None:
        monkeypatch.setattr(favor_prefixes_module, "BIDIRECTIONAL_CHUNK_SIZE", key_chunk)
    q, k, v, W = _inputs(name)
    yielded = list(
        favor_prefixes(
            to_backend(q), to_backend(k), to_backend(v), to_backend(W), MS, name, denominator="zero"
        )
    )
    assert [size for size, _ in yielded] == MS
    for size, out in yielded:
        reference = attention.favor(q, k, v, W[..., :size, :], name, denominator="zero")
        assert out.shape == reference.shape
        difference = np.abs(to_numpy(out) - reference)
        assert np.all(difference <= _bound(name, q, k, v, W, size)), (name, size, difference.max())


def test_float32_stays_float32_and_bad_denominators_raise(to_backend):
    q, k, v, W = _inputs("trig-iid")
    out = [
        o
        for _, o in favor_prefixes(
            *(a.astype(np.float32) for a in (q, k, v, W)), [4, 20], "trig", denominator="zero"
        )
    ]
    assert all(o.dtype == np.float32 for o in out)
    with pytest.raises(attention.DenominatorError):
        list(favor_prefixes(q * 40, k * 40, v, W, [1, 20], "trig"))


def test_bad_arguments_name_what_was_expected():
    q, k, v, W = _inputs("positive-iid")
    with pytest.raises(ValueError, match="ascending"):
        list(favor_prefixes(q, k, v, W, [4, 2]))
    with pytest.raises(ValueError, match=r"\[1, 20\]"):
        list(favor_prefixes(q, k, v, W, [0, 21]))
    with pytest.raises(ValueError, match="per-projection layout"):
        list(favor_prefixes(q, k, v, W, [4], "hybrid"))
    with pytest.raises(ValueError, match="stabilizer must be one of"):
        list(favor_prefixes(q, k, v, W, [4], stabilizer="global"))
