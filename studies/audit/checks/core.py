"""What every check shares: settings, the verdict it returns, seeds, severities and the family α.

A check is a function ``(adapter, settings) -> CheckResult``. Its verdict says what was measured:

* ``status``: ``pass``, ``fail``, ``n-a`` (the adapter lacks a capability or declares a constraint
  the check cannot work around; ``reason`` says which) or ``error`` (the implementation raised);
* ``effect``: the measured effect with its 95% confidence interval (statistical checks) or the
  largest deviation (deterministic checks);
* ``tolerance``: the threshold the decision used and why (the Bonferroni critical value of the
  family α, or the round-off bound of the working precision and computation size);
* ``severity`` of a failure, from its effect relative to the natural scale of the quantity
  (:func:`severity`), so a 1e-7 bias and a 0.3 bias do not read the same;
* ``diagnosis``: causes established by targeted sub-checks (never a fixed sentence);
* ``alpha``: the family false-positive rate the decision allows (0 for deterministic checks);
* ``power``: what the check can detect at its sample size (quick mode: power ≥ 0.9 against the
  stated effect, full mode ≥ 0.99; where a constraint prevents it the detectable effect is stated).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

FAMILY_ALPHA = 0.01
STATUSES = ("pass", "fail", "n-a", "error")
SEVERITY_BOUNDS = ((1e-4, "negligible"), (1e-2, "minor"), (1e-1, "major"))


@dataclass(frozen=True)
class Settings:
    """Audit sizes: ``quick`` plans every statistical check for power 0.9 against its stated effect
    (CI), full mode for power 0.99; ``seed`` roots every draw."""

    quick: bool = False
    seed: int = 0

    @property
    def power(self) -> float:
        """The power each statistical check is planned for."""
        return 0.9 if self.quick else 0.99

    def size(self, quick: int, full: int) -> int:
        """A replicate count for checks whose size is not planned from a power target."""
        return quick if self.quick else full


@dataclass
class CheckResult:
    """Outcome of one check, as it appears in the report table and its section."""

    name: str
    title: str
    status: str
    statistic: str = ""
    p_value: float | None = None
    effect: str = ""
    tolerance: str = ""
    severity: str = ""
    reason: str = ""
    power: str = ""
    diagnosis: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    seconds: float = 0.0
    alpha: float = 0.0

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")


@dataclass(frozen=True)
class Check:
    """A registered check: its function, the capabilities it needs, its family and the claims
    (theory.md §11 numbers) it covers."""

    name: str
    function: Callable
    needs: tuple[str, ...]
    family: str
    claims: str = ""


def severity(relative_effect: float) -> str:
    """Severity of a failure whose effect is ``relative_effect`` times the natural scale of the
    quantity (the exact value, or the spread of the outputs): negligible below 1e-4, minor below
    1e-2, major below 0.1, critical from 0.1 and for non-finite effects."""
    if not math.isfinite(relative_effect):
        return "critical"
    for bound, word in SEVERITY_BOUNDS:
        if abs(relative_effect) < bound:
            return word
    return "critical"


def verdict(name: str, title: str, passed: bool, relative_effect: float, **fields) -> CheckResult:
    """A pass or fail result; a failure carries the severity of ``relative_effect``."""
    status = "pass" if passed else "fail"
    return CheckResult(name, title, status, severity="" if passed else severity(relative_effect), **fields)


def bonferroni_verdict(
    name: str, title: str, z_values, p_values, critical: float, relative_effect: float, *, note="", **fields
) -> CheckResult:
    """The verdict of a family of z-tests (one per cell): pass when every |z| ≤ the Bonferroni
    ``critical`` value of :data:`FAMILY_ALPHA`; reports the largest |z|, the family p-value and the
    tolerance. ``z_values`` and ``p_values`` are sequences of arrays (concatenated); ``note`` is added
    to the statistic (e.g. the sample size)."""
    z = np.abs(np.concatenate([np.ravel(values) for values in z_values]))
    return verdict(
        name,
        title,
        float(z.max()) <= critical,
        relative_effect,
        alpha=FAMILY_ALPHA,
        statistic=f"max |z| = {z.max():.2f} over {z.size} cells (critical {critical:.2f}){note}",
        p_value=family_p_value(np.concatenate([np.ravel(values) for values in p_values])),
        tolerance=f"Bonferroni critical |z| {critical:.2f} (family α {FAMILY_ALPHA}, "
        f"two-sided per-cell α {2 * sps.norm.sf(critical):.1e})",
        **fields,
    )


def not_applicable(name: str, title: str, reason: str) -> CheckResult:
    """An n-a result with its reason."""
    return CheckResult(name, title, "n-a", reason=reason)


def seeds_for(settings: Settings, label: str, count: int) -> list[int]:
    """``count`` int seeds for ``label``: SeedSequence(seed, spawn_key=(crc32(label),))."""
    sequence = np.random.SeedSequence(settings.seed, spawn_key=(zlib.crc32(label.encode()),))
    return [int(s) for s in sequence.generate_state(count)]


def rng_for(settings: Settings, label: str) -> np.random.Generator:
    """A generator of its own for ``label`` (inputs, bootstrap)."""
    return np.random.default_rng(seeds_for(settings, label, 1)[0])


def family_p_value(p_values) -> float:
    """Bonferroni-adjusted family p-value: min(1, k · min p)."""
    p_values = np.asarray(p_values, dtype=np.float64).ravel()
    return float(min(1.0, p_values.size * p_values.min()))


def read_only(*arrays):
    """float64 copies of ``arrays`` that an implementation cannot write into."""
    copies = []
    for array in arrays:
        copy = np.array(array, dtype=np.float64)
        copy.setflags(write=False)
        copies.append(copy)
    return copies
