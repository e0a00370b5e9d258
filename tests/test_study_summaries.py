"""Every number a study writes to its CSV is recomputed a second way; this file checks that the
checks are complete and can fail.

Each study's ``summarize`` output on a tiny preset (:func:`tests.summaries_support.tiny`) is compared
column by column with an independent computation in the test file of its subject:
``test_study_summaries_kernels`` (unbiasedness, mse_vs_features, trig_vs_positive, orthogonal_gain,
smreg), ``test_study_summaries_attention`` (attention_error, uniform_convergence, causal_stability)
``test_study_summaries_shootout`` (estimator_shootout) and ``test_study_summaries_attention_metrics``
(attention_metrics). Their checks are gathered in
:data:`CHECKS`; ``test_every_csv_column_has_an_independent_check`` fails for a study without a check
and for a column no comparison ran on, so a new study or column cannot slip in untested.
``test_planted_errors_in_the_rows_are_caught`` and ``test_planted_errors_in_summarize_are_caught``
show that an inverted ratio, a flipped theory sign, a wrong quantile or a z standardized by the
sample SD are rejected.

``test_study_summaries_replay`` recomputes the Monte Carlo columns from the raw estimates (every W
captured as the study draws it), and ``test_study_summaries_replicates`` checks the replicate
arithmetic of ``studies.core`` against direct computation on raw samples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import studies
from studies.core import montecarlo

from . import (
    test_study_summaries_attention,
    test_study_summaries_attention_metrics,
    test_study_summaries_kernels,
    test_study_summaries_shootout,
)
from .summaries_support import Checker, tiny

CHECKS = {
    **test_study_summaries_kernels.CHECKS,
    **test_study_summaries_attention.CHECKS,
    **test_study_summaries_shootout.CHECKS,
    **test_study_summaries_attention_metrics.CHECKS,
}
"""Every study's summary check, from the test file of its subject."""


def test_every_csv_column_has_an_independent_check():
    assert set(studies.discover()) <= set(CHECKS), "every study needs a summary check"
    uncovered = {}
    for name, check_study in CHECKS.items():
        run = tiny(name)
        check = Checker()
        check_study(run, check)
        missing = [column for column in run.header if column not in check.seen]
        if missing:
            uncovered[name] = missing
    assert not uncovered, f"CSV columns without an independent check: {uncovered}"


def test_csv_holds_exactly_the_summary_rows():
    """What the CSV says is what was checked: every value reads back to the summary's value."""
    for name in CHECKS:
        run = tiny(name)
        assert run.header == list(run.rows[0])
        assert len(run.written) == len(run.rows)
        for written, row in zip(run.written, run.rows, strict=True):
            for column, value in row.items():
                if isinstance(value, (float, np.floating)) and not isinstance(value, bool):
                    read = float(written[column])
                    assert read == value or (math.isnan(read) and math.isnan(value)), (name, column)
                else:
                    assert written[column] == str(value), (name, column)


def _differs(a, b) -> bool:
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return a != b and not both_nan


def _edit(column, change):
    def edit(row):
        return {**row, column: change(row[column])}

    return edit


def _z_from_the_sample_sd(name, x, y, m, summary, expected, scale):
    """A planted error: z standardized by the sample SD (the half-width / 2.576) instead of theory."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (summary["bias"] - expected) / (summary["bias_ci"] / 2.576)


PLANTED_ROWS = {
    "inverted ratio": ("trig_vs_positive", _edit("ratio", lambda v: 1 / v)),
    "inverted theory ratio": ("orthogonal_gain", _edit("theory_ratio", lambda v: 1 / v)),
    "theory bias with the wrong sign": ("unbiasedness", _edit("theory_relative_bias", lambda v: -v)),
    "sign of the SMREG shortfall": ("smreg", _edit("theory_mean_over_sm", lambda v: 2 - v)),
    "MSE interval from the SD, not the SE": ("mse_vs_features", _edit("ci99", lambda v: v * 10)),
    "95% instead of 99%": ("causal_stability", _edit("bias_ci99", lambda v: v * 1.96 / 2.576)),
    "median for the 90th percentile": (
        "uniform_convergence",
        lambda row: {**row, "sup_error_q90": row["sup_error_median"]},
    ),
}


@pytest.mark.parametrize("planted", list(PLANTED_ROWS))
def test_planted_errors_in_the_rows_are_caught(planted):
    name, edit = PLANTED_ROWS[planted]
    run = tiny(name)
    changed = {
        column for row in run.rows for column, value in edit(row).items() if _differs(value, row[column])
    }
    assert len(changed) == 1, "the planted error changes one column"
    with pytest.raises(AssertionError, match=f"^{changed.pop()}: "):
        CHECKS[name](run._replace(rows=[edit(row) for row in run.rows]), Checker())


@pytest.mark.parametrize(
    ("name", "attribute", "planted", "column"),
    [
        ("unbiasedness", "theory_z", _z_from_the_sample_sd, "z_theory"),
        (
            "mse_vs_features",
            "moment_summary",
            lambda moments: montecarlo.moment_summary(moments, z=1.96),
            "ci99",
        ),
        ("smreg", "moment_summary", lambda m: montecarlo.moment_summary(m, z=2 * 2.576), "ci99"),
    ],
)
def test_planted_errors_in_summarize_are_caught(name, attribute, planted, column, monkeypatch):
    """The study's own summarize, with one of its helpers replaced by a wrong one, is rejected."""
    run = tiny(name)
    monkeypatch.setattr(run.module, attribute, planted)
    rows = run.module.summarize(run.records, run.context)
    with pytest.raises(AssertionError, match=f"^{column}: "):
        CHECKS[name](run._replace(rows=rows), Checker())
