"""Loading an audit target by name: a shipped adapter, ``<shipped name>:<argument>`` or ``module:object``.

The shipped adapters are listed in :data:`studies.audit.adapters.TARGETS` (name → ``module:factory``,
imported only when asked for, so a missing optional library affects only its own target).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from .adapters import TARGETS
from .protocol import Adapter


def _factory(reference: str) -> Callable[..., Adapter]:
    module_name, object_name = reference.split(":", 1)
    return getattr(importlib.import_module(module_name), object_name)


def target_names() -> list[str]:
    """Names of the shipped adapters (``favor-bench[:<registry row>]`` takes any row)."""
    return list(TARGETS)


def load_target(target: str) -> Adapter:
    """The adapter for ``target``: a shipped name, ``<shipped name>:<argument>`` (e.g.
    ``favor-bench:trig-iid``, the factory called with the argument), or ``module:object``.

    ``module:object`` names an :class:`Adapter` instance or a zero-argument callable returning one.
    """
    if not isinstance(target, str) or not target:
        raise TypeError(f"target must be a non-empty string, got {target!r}")
    if target in TARGETS:
        return _checked(target, _factory(TARGETS[target])())
    if ":" not in target:
        raise ValueError(
            f"target must be one of {tuple(TARGETS)}, '<name>:<argument>' or 'module:object', got {target!r}"
        )
    head, tail = target.split(":", 1)
    if head in TARGETS:
        return _checked(target, _factory(TARGETS[head])(tail))
    loaded = getattr(importlib.import_module(head), tail)
    adapter = loaded() if callable(loaded) and not isinstance(loaded, Adapter) else loaded
    return _checked(target, adapter)


def _checked(target: str, adapter) -> Adapter:
    if not isinstance(adapter, Adapter):
        raise TypeError(
            f"target {target!r} must name an Adapter or a callable returning one, "
            f"got {type(adapter).__name__}"
        )
    return adapter
