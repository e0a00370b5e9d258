"""favor-bench studies: each module answers one question, records -> CSV -> plot.

Run ``python -m studies list | run NAME... | all`` (see ``studies/__main__.py``). A study is any
module in this package that defines ``STUDY`` (a :class:`studies.core.cells.Study`): adding one is
adding its module. Everything else lives in subpackages, which discovery skips: ``core`` (cells,
records, executors, the run loop, provenance, plotting, the statistics), ``figures`` (the figures and
captions of the larger studies, drawn from their CSV rows) and ``audit`` (the check set).
:data:`ORDER` fixes the order of the known studies in listings and the gallery; others follow
alphabetically. Importing this package imports no study, plotting or array library.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

ORDER = (
    "unbiasedness",
    "mse_vs_features",
    "trig_vs_positive",
    "orthogonal_gain",
    "smreg",
    "attention_error",
    "uniform_convergence",
    "causal_stability",
    "estimator_shootout",
    "attention_metrics",
)


def module_names() -> list[str]:
    """Names of the candidate study modules in this package, known ones in :data:`ORDER` first."""
    found = {
        info.name
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_") and not info.ispkg
    }
    return [name for name in ORDER if name in found] + sorted(found - set(ORDER))


def discover() -> dict:
    """``{name: Study}`` for every module that defines ``STUDY``.

    A module that fails to import is reported on stderr and left out (it may be work in progress).
    """
    studies = {}
    for name in module_names():
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except Exception as error:
            print(f"studies: skipping {name}: {type(error).__name__}: {error}", file=sys.stderr)
            continue
        study = getattr(module, "STUDY", None)
        if study is not None:
            studies[study.name] = study
    return studies
