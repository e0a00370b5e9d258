"""Captions computed from a study's rows: each sentence comes with the test that decided it.

A study's ``claims(rows)`` returns :class:`Claim` objects; its plot writes them to
``<name>_claims.md`` next to the figure (:func:`save_claims`), and the gallery quotes the sentences.
The tests below compare Monte Carlo estimates whose 99% intervals are ``ci99`` half-widths of a
normal approximation (``ci99 = 2.576·se``):

- :func:`inside`: a closed form lies inside the 99% interval (two-sided, α = 0.01 per point);
- :func:`lower`: one-sided z-test that ``a < b``, z = (b − a)/√(se_a² + se_b²) > 2.326 (α = 0.01 per
  comparison, independent estimates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .records import write_atomic

Z99_TWO_SIDED = 2.5758293035489004
Z99_ONE_SIDED = 2.3263478740408408


@dataclass(frozen=True)
class Claim:
    """One caption sentence computed from a study's rows, with the test that decided it.

    ``sentence`` is what the caption says; ``test`` states the test (null, statistic, threshold);
    ``numbers`` are the test's inputs and outcome; ``holds`` tells whether the paper's claim held
    (``None`` where the sentence only describes the data).
    """

    sentence: str
    test: str
    numbers: dict = field(default_factory=dict)
    holds: bool | None = None


def inside(value: float, estimate: float, ci99: float) -> bool:
    """Whether ``value`` lies in ``estimate ± ci99`` (a NaN value or interval never does)."""
    return bool(abs(value - estimate) <= ci99)


def z_lower(a: float, ci_a: float, b: float, ci_b: float) -> float:
    """z statistic of ``a < b`` from two independent estimates with 99% half-widths."""
    se = math.hypot(ci_a, ci_b) / Z99_TWO_SIDED
    return (b - a) / se if se > 0 else math.copysign(math.inf, b - a) if b != a else 0.0


def lower(a: float, ci_a: float, b: float, ci_b: float) -> bool:
    """One-sided test at α = 0.01 that ``a < b``."""
    return bool(z_lower(a, ci_a, b, ci_b) > Z99_ONE_SIDED)


def count_phrase(count: int, total: int) -> str:
    """ "all 8", "none of 8" or "5 of 8"."""
    if total and count == total:
        return f"all {total}"
    if count == 0:
        return f"none of {total}"
    return f"{count} of {total}"


def markdown(title: str, claims) -> str:
    """The caption file: each sentence, then its test and the test's numbers."""
    lines = [f"# {title}: computed caption", ""]
    for claim in claims:
        lines.append(f"- {claim.sentence}")
        numbers = ", ".join(f"{key} = {_short(value)}" for key, value in claim.numbers.items())
        lines.append(f"  - test: {claim.test}" + (f" ({numbers})" if numbers else ""))
    return "\n".join(lines) + "\n"


def caption(claims) -> str:
    """The caption: the claims' sentences, joined."""
    return " ".join(claim.sentence for claim in claims)


def save_claims(stem: Path, title: str, claims) -> Path:
    """Write ``<stem>_claims.md`` (the computed caption) atomically."""
    path = Path(stem).with_name(f"{Path(stem).name}_claims.md")
    write_atomic(path, markdown(title, claims))
    return path


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


def bonferroni_z(tests: int, family_alpha: float = 0.01) -> float:
    """Two-sided critical |z| for ``tests`` z-tests at family-wise level ``family_alpha``."""
    from scipy import stats

    return float(stats.norm.isf(family_alpha / (2 * max(tests, 1))))


def listing(names) -> str:
    """Names joined with commas, or "none"."""
    names = list(names)
    return ", ".join(names) if names else "none"


def agreement(rows, value: str, ci: str, theory: str, what: str, label, *, shared_draws=False) -> Claim:
    """Closed form against Monte Carlo over ``rows`` (those with a finite closed form).

    Per point: the closed form lies inside ``value ± ci`` (two-sided, α = 0.01). The verdict:

    * independent points (no two share draws of W): the count of misses against its 99% quantile
      under the null that every closed form is right, Binomial(n, 0.01);
    * ``shared_draws`` (points computed from the same draws, e.g. every m of one draw, or two input
      pairs of one draw): misses can cluster, so the count test's false-alarm rate can exceed 1%;
      the verdict is Bonferroni instead, every closed form inside its ``1 − 0.01/n`` interval
      (``ci`` rescaled by ``bonferroni_z(n) / z₀.₉₉₅``), family-wise α = 0.01 under any dependence.

    ``label(row)`` names a missed point.
    """
    from scipy import stats

    checked = [r for r in rows if math.isfinite(r[theory])]
    misses = [r for r in checked if not inside(r[theory], r[value], r[ci])]
    sentence = (
        f"The closed form lies inside the 99% interval of the Monte Carlo {what} at "
        f"{count_phrase(len(checked) - len(misses), len(checked))} points"
    )
    if misses:
        shown = ", ".join(label(r) for r in misses[:4]) + (", …" if len(misses) > 4 else "")
        sentence += f" (outside: {shown})"
    if shared_draws:
        widen = bonferroni_z(len(checked)) / Z99_TWO_SIDED
        outside = [r for r in checked if not inside(r[theory], r[value], widen * r[ci])]
        holds = not outside
        if holds:
            verdict = "every closed form lies inside its Bonferroni-adjusted interval"
        elif len(outside) == 1:
            verdict = f"1 of {len(checked)} closed forms lies outside its Bonferroni-adjusted interval"
        else:
            verdict = (
                f"{len(outside)} of {len(checked)} closed forms lie outside their Bonferroni-adjusted "
                "intervals"
            )
        sentence += f"; {verdict} (family-wise α = 0.01; points share draws of W)."
        return Claim(
            sentence,
            "closed form inside Monte Carlo ± ci99 per point (α = 0.01, descriptive); verdict: every "
            "point inside its Bonferroni interval (family-wise α = 0.01 under any dependence)",
            {"points": len(checked), "misses": len(misses), "outside_bonferroni": len(outside)},
            holds=holds,
        )
    allowed = int(stats.binom.ppf(0.99, len(checked), 0.01))
    holds = len(misses) <= allowed
    count = "1 miss is" if len(misses) == 1 else f"{len(misses)} misses are"
    sentence += (
        f"; {count} {'within' if holds else 'more than'} the {allowed} that chance allows "
        "(99% quantile of Binomial(n, 0.01))."
    )
    return Claim(
        sentence,
        "closed form inside Monte Carlo ± ci99 per point (α = 0.01); misses against the 99% quantile "
        "of Binomial(points, 0.01)",
        {"points": len(checked), "misses": len(misses), "allowed": allowed},
        holds=holds,
    )
