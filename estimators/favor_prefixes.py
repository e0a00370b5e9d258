"""Bidirectional FAVOR outputs for every prefix of W from one feature computation.

For a W whose first m' rows are a draw of m' rows (iid rows, Haar blocks: see
:attr:`estimators.registry.Estimator.nests`), a study of the error against m needs the outputs of
``favor(q, k, v, W[..., :m', :])`` for several m'. Those differ only in which projections enter the
sums: with features laid out as (…, r) = (…, f·m) for f functions of each projection, the key sums
``(K')ᵀ[V | 1]`` (r × (d_v + 1)) are computed once (over chunks of
:data:`~estimators.favor_algebra.BIDIRECTIONAL_CHUNK_SIZE` keys, as in ``favor``), and the
numerators and denominators of every prefix are accumulated block by block over the projections
between consecutive m'. A map's scale m^{-1/2} and the stabilizer shifts cancel in numerator /
denominator (Performers Eq. 4), so each yielded output equals ``favor`` on the truncated W up to
rounding; the cost of all prefixes is about that of one ``favor`` call with every row of W.
"""

from __future__ import annotations

from . import features as feature_maps
from . import registry
from .attention_inputs import check_inputs, check_projection
from .attention_options import feature_map, side_options
from .backends import dtype_name, namespace
from .bidirectional import key_sums
from .chunks import numerators_and_denominators, with_ones
from .favor_algebra import (
    BIDIRECTIONAL_CHUNK_SIZE,
    check_denominators,
    normalize,
    restore_dtype,
    working_dtype,
)
from .validation import check_choice, check_prefix_sizes

STABILIZERS = ("auto", "none")
DENOMINATORS = ("raise", "zero", "raw")


def favor_prefixes(
    q, k, v, W, ms, feature="positive", *, stabilizer="auto", denominator="raise", feature_options=None
):
    """Yield ``(m', output)`` for each m' in ``ms`` (ascending): bidirectional FAVOR with the first m'
    rows of W, output (…, L, d_v).

    Arguments as in :func:`estimators.attention.favor` (bidirectional, no mask, no ``eps``: a constant
    added to each feature would not scale with m'); ``ms`` ascending in [1, m]. Maps whose width is
    not a multiple of m (the hybrid maps) are refused.
    """
    name = registry.feature_map_of(feature)
    check_choice(stabilizer, "stabilizer", STABILIZERS)
    check_choice(denominator, "denominator", DENOMINATORS)
    if name in feature_maps.SIDED:
        raise ValueError(f"feature {name!r} has no per-projection layout (width 4k(n + 1)); use favor")
    check_inputs(q, k, v, None, False, finite=False)
    check_projection(W, q, k)
    m = W.shape[-2]
    ms = check_prefix_sizes(ms, m)
    query_options, key_options = side_options(name, feature_options, q, k, False)
    featurizer, constants = feature_map(name, stabilizer, 0.0, query_options, key_options, W)
    xp = namespace(v)
    dtype = dtype_name(v)
    values = with_ones(xp, working_dtype(xp, v))
    totals = key_sums(featurizer, constants, k, values, chunk_size=BIDIRECTIONAL_CHUNK_SIZE)
    phi_q = featurizer.queries(constants, q)
    by_query = xp.reshape(phi_q, (*phi_q.shape[:-1], -1, m))
    by_key = xp.reshape(totals, (*totals.shape[:-2], -1, m, totals.shape[-1]))
    running, done = 0.0, 0
    for size in ms:
        block_q = by_query[..., done:size]
        block_k = by_key[..., done:size, :]
        running = running + xp.matmul(
            xp.reshape(block_q, (*block_q.shape[:-2], -1)),
            xp.reshape(block_k, (*block_k.shape[:-3], -1, block_k.shape[-1])),
        )
        done = size
        numerator, total = numerators_and_denominators(running)
        out, bad = normalize(xp, numerator, total, None, denominator)
        check_denominators(bad, denominator, q, k, v)
        yield size, restore_dtype(xp, out, dtype)


__all__ = ["favor_prefixes"]
