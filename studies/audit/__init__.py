"""Audit a third-party FAVOR implementation with favor-bench's statistical battery.

``python -m studies.audit --target NAME`` (or ``python -m studies audit --target NAME``) runs every
check that the target's :class:`Adapter` supports and writes ``results/audit/<target>/report.md``.
Targets: ``favor-bench`` (the control), ``favor-bench:<registry row>``, ``performer-pytorch``
(needs the ``audit`` extra) or ``module:object`` naming a user's :class:`Adapter`.
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
