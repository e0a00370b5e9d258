"""Planted bugs: the Tier 1 battery rejects every mutant, through each check meant to catch it."""

from __future__ import annotations

import pytest

from tests.statistical import battery, mutants
from tests.statistical.test_tier1 import SEED


@pytest.fixture(scope="module")
def checks():
    return {check.name: check for check in battery.checks()}


def test_there_are_at_least_eight_distinct_mutants():
    names = [mutant.name for mutant in mutants.MUTANTS]
    assert len(set(names)) == len(names) >= 8


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=lambda mutant: mutant.name)
def test_battery_rejects_mutant(mutant, checks):
    """Each check in ``mutant.caught_by`` rejects it at the CI seed (its power is measured in Tier 2)."""
    assert mutant.caught_by and set(mutant.caught_by) <= set(checks)
    accepted = [name for name in mutant.caught_by if not checks[name].run(mutant, SEED).reject]
    assert not accepted, f"{mutant.name} passed {accepted}"


def test_every_check_is_shown_able_to_fail(checks):
    """Each check is meant to catch at least one planted bug, so none of them passes everything."""
    caught = {name for mutant in mutants.MUTANTS for name in mutant.caught_by}
    assert caught == set(checks)
