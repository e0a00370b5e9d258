"""Feature options of an attention call: which parameters each side's feature map gets.

:func:`side_options` resolves ``feature_options`` (None, one dict, or a ``(query, key)`` pair) and
the data-tuned maps' attention rules; :func:`feature_map` turns them into the hashable
:class:`~estimators.favor_algebra.FeatureMap` and its array :class:`~estimators.favor_algebra.Constants`.
"""

from __future__ import annotations

from . import features as feature_maps
from .favor_algebra import Constants, FeatureMap


def side_options(name, feature_options, q, k, causal):
    """(query_options, key_options) of feature map ``name`` (see :func:`estimators.attention.favor`)."""
    return _side_options(_default_options(name, feature_options, q, k, causal))


def feature_map(name, stabilizer, eps, query_options, key_options, W):
    """(:class:`FeatureMap`, :class:`Constants`): scalar options in the map, array options and W in
    the constants (so one jitted graph serves every call with the same scalars)."""
    query_static, query_arrays = _split_options(query_options)
    key_static, key_arrays = _split_options(key_options)
    return FeatureMap(name, stabilizer, eps, query_static, key_static), Constants(W, query_arrays, key_arrays)


def _default_options(name, feature_options, q, k, causal):
    """``feature_options``, or for a data-tuned map given None, its attention rules (bidirectional);
    a hybrid map's two sides always get their ``side`` (their query and key features differ)."""
    if name in feature_maps.SIDED:
        query, key = _side_options(feature_options)
        return {**query, "side": "query"}, {**key, "side": "key"}
    if feature_options is not None or name not in feature_maps.DATA_TUNED:
        return feature_options
    if causal:
        raise ValueError(
            f"feature {name!r} has data-tuned parameters and causal=True: pass feature_options "
            "explicitly (features.data_options on the whole sequence reads later positions; "
            "{} gives the plain defaults)"
        )
    return feature_maps.data_options(name, q, k, scale_inputs=True)


def _side_options(feature_options):
    """(query_options, key_options) from None, one dict for both sides, or a pair of dicts."""
    if feature_options is None:
        return {}, {}
    if isinstance(feature_options, dict):
        return dict(feature_options), dict(feature_options)
    if isinstance(feature_options, (tuple, list)) and len(feature_options) == 2:
        if all(isinstance(options, dict) for options in feature_options):
            return dict(feature_options[0]), dict(feature_options[1])
    raise TypeError(
        "feature_options must be None, a dict, or a (query_options, key_options) pair of dicts, "
        f"got {type(feature_options).__name__}"
    )


def _split_options(options):
    """(sorted item tuple of the scalar options, dict of the array-valued ones)."""
    arrays = {name: value for name, value in options.items() if hasattr(value, "shape")}
    scalars = tuple(sorted((name, value) for name, value in options.items() if name not in arrays))
    return scalars, arrays
