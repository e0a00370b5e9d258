"""Audit a FAVOR implementation with favor-bench's check set.

``python -m studies.audit --target NAME`` (or ``python -m studies audit --target NAME``) runs every
check of :mod:`studies.audit.checks` on the target's :class:`Adapter` and writes
``results/audit/<target>/report.md``. Targets: ``favor-bench`` (the control),
``favor-bench:<registry row>``, ``planted:<name>`` (the planted defects of
:mod:`studies.audit.planted`), the third-party adapters listed in
:data:`studies.audit.adapters.TARGETS`, or ``module:object`` naming a user's :class:`Adapter`.
"""

from .checks import CHECKS, CheckResult, Settings, run_check
from .cli import main, run_audit
from .protocol import Adapter
from .targets import load_target, target_names

__all__ = [
    "CHECKS",
    "Adapter",
    "CheckResult",
    "Settings",
    "load_target",
    "main",
    "run_audit",
    "run_check",
    "target_names",
]
