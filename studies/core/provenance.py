"""Provenance of study records: which code computed them, at which commit, with which packages.

A study record is reused only when it was computed by the same code. The code is identified by a
**fingerprint**: the SHA-256 of the relative path and the bytes of every file that determines a
record's values,

* every file of the ``estimators`` package (the estimators, their theory and kernels),
* the study infrastructure that computes values (:data:`STUDY_INFRASTRUCTURE`: the cells and their
  seeds, the Monte Carlo helpers, the loop that runs a cell, the statistics),
* the study's own module.

The preset, options and seed are in each cell's key, so fingerprint and key together name the
computation. A source hash (not the commit) is used so that an uncommitted edit counts: a dirty
tree gets the fingerprint of what is on disk. ``meta.json`` additionally names the git commit and
whether the fingerprinted files differ from it (``dirty``), for the run that computed the records.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import platform
import subprocess
from pathlib import Path

STUDY_INFRASTRUCTURE = ("core/cells.py", "core/montecarlo.py", "core/loop.py", "core/stats.py")
"""Files of ``studies/`` besides the study module whose code determines record values."""


def _package_dir(name: str) -> Path:
    return Path(importlib.import_module(name).__file__).resolve().parent


def _study_file(module_name: str) -> Path:
    return Path(importlib.import_module(module_name).__file__).resolve()


def source_files(module_name: str) -> list[Path]:
    """The files whose bytes make up the fingerprint of the study module ``module_name``, sorted."""
    estimators = sorted(
        path
        for path in _package_dir("estimators").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )
    studies = _package_dir("studies")
    infrastructure = [studies / name for name in STUDY_INFRASTRUCTURE]
    return [*estimators, *infrastructure, _study_file(module_name)]


def fingerprint_of(files: list[Path], root: Path) -> str:
    """SHA-256 over each file's path relative to ``root`` and its bytes, in the order given."""
    digest = hashlib.sha256()
    for path in files:
        relative = path.relative_to(root).as_posix().encode()
        content = path.read_bytes()
        digest.update(len(relative).to_bytes(8, "little") + relative)
        digest.update(len(content).to_bytes(8, "little") + content)
    return digest.hexdigest()


@functools.cache
def code_fingerprint(module_name: str) -> str:
    """The code fingerprint of a study (see the module docstring); computed once per process."""
    return fingerprint_of(source_files(module_name), _package_dir("estimators").parent)


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


@functools.cache
def git_state(module_name: str) -> dict:
    """``{"commit", "dirty"}``: HEAD, and whether any fingerprinted file differs from it.

    ``dirty`` counts modified and untracked files among the fingerprint's sources; both are ``None``
    outside a git checkout. Read once per process, like :func:`code_fingerprint` (the runner reads
    both when a run starts), so a commit made while a run computes is not named as its author.
    """
    return git_state_of(source_files(module_name), _package_dir("estimators").parent)


def git_state_of(files: list[Path], root: Path) -> dict:
    """``{"commit", "dirty"}`` of the checkout at ``root`` for ``files`` (see :func:`git_state`)."""
    paths = [path.relative_to(root).as_posix() for path in files]
    try:
        commit = _git(root, "rev-parse", "HEAD").strip()
        status = _git(root, "status", "--porcelain", "--", *paths)
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def package_versions(backend: str) -> dict:
    """Versions of the packages a result depends on (the backend's framework included)."""
    from importlib import metadata

    from estimators.backends import framework_packages

    names = ["favor-bench", "numpy", "scipy", "matplotlib", "seaborn", *framework_packages(backend)]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def source_changed(module_name: str) -> bool:
    """Whether the study's source files on disk differ from :func:`code_fingerprint` (read when the
    run started): workers import modules when they first need them, so such a run may mix code."""
    return fingerprint_of(source_files(module_name), _package_dir("estimators").parent) != code_fingerprint(
        module_name
    )


CHANGED_DURING_RUN = (
    "source files changed while this run computed: the records may mix code; rerun with --recompute"
)


def computed_by(
    module_name: str,
    computed: int,
    compute_time: float,
    previous: dict | None,
    cost_model: dict | None = None,
) -> dict:
    """Who computed a study's records, for ``meta.json``.

    When this run computed cells, its own commit and dirty state, with the number of cells it computed,
    their summed compute time (seconds in the workers) and the ``cost_model`` fitted to its batches
    (:func:`studies.core.sizing.fit_cost`; omitted when None). When it reused every record,
    the previous ``meta.json``'s entry if that meta was written for the same fingerprint, else
    an entry that says the commit is unknown (records left by an interrupted run of the same code).
    """
    fingerprint = code_fingerprint(module_name)
    if computed:
        entry = {
            "fingerprint": fingerprint,
            **git_state(module_name),
            "cells": computed,
            "compute_time_s": round(compute_time, 3),
        }
        if cost_model is not None:
            entry["cost_model"] = cost_model
        if source_changed(module_name):
            entry["dirty"] = True
            entry["note"] = CHANGED_DURING_RUN
        return entry
    if previous and previous.get("computed_by", {}).get("fingerprint") == fingerprint:
        return previous["computed_by"]
    return {
        "fingerprint": fingerprint,
        "commit": None,
        "dirty": None,
        "cells": 0,
        "compute_time_s": 0.0,
        "note": "records reused from an interrupted run of the same code; its commit was not recorded",
    }
