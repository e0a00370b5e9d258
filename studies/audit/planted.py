"""Planted adapters: favor-bench's own adapter with one realistic defect each, and correct
reduced-precision implementations. Like a real adapter, each one's ``features`` is the map its
attention uses, or is absent. The check set must reject every defect through the checks named
in ``caught_by`` (CI asserts it at the fixed seed; the Tier 2 calibration measures the power over
fresh seeds) and pass the correct ones on every check.

Each is an audit target: ``python -m studies audit --target planted:<name>``. ``caught_by`` lists the
checks the claim rests on, not every check that happens to reject.

Each lives with the part it changes: :mod:`~studies.audit.planted_samplers`,
:mod:`~studies.audit.planted_features`, :mod:`~studies.audit.planted_attention` and
:mod:`~studies.audit.planted_precision`, all built with :mod:`~studies.audit.planting`.
"""

from __future__ import annotations

from . import planted_attention, planted_features, planted_precision, planted_samplers
from .protocol import Adapter

PLANTED = {
    p.name: p
    for module in (planted_samplers, planted_features, planted_attention, planted_precision)
    for p in module.PLANTED
}
DEFECTS = tuple(name for name, planted in PLANTED.items() if planted.caught_by)


def adapter(name: str) -> Adapter:
    """The planted adapter ``name`` (target ``planted:<name>``)."""
    if name not in PLANTED:
        raise ValueError(f"planted adapter must be one of {tuple(PLANTED)}, got {name!r}")
    return PLANTED[name].build()
