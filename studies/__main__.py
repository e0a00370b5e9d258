"""Command line: ``python -m studies list | run NAME... | all | audit ...``.

Examples::

    python -m studies list
    python -m studies all                                   # quick preset, numpy, CPU
    python -m studies run mse_vs_features orthogonal_gain --backend torch --preset paper
    python -m studies all --executor dask-local --workers 8
    python -m studies.smreg --seed 3                        # one study as its own module

Options of ``run`` and ``all``: ``--backend numpy|torch|jax``, ``--device cpu|cuda|tpu``, ``--dtype``,
``--rng portable|native``, ``--preset quick|paper``, ``--seed``, ``--out`` (default ``results``),
``--executor local|serial|dask-local|dask://host:port``, ``--workers``, ``--no-plot``, ``--quiet``.
``audit`` hands its arguments to ``studies.audit.main``. Bad arguments print one line and exit 2;
a study whose cells raise is reported in one line and the command exits 1 (its finished cells are
kept, the other studies complete). On one GPU, ``--executor serial --rng native`` keeps a single
process on the device and draws W there.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

from estimators.backends import BACKENDS, DTYPES

from . import discover
from .core import interrupts, provenance, sizing
from .core.cells import PRESETS, RNG_PATHS, Context
from .core.executors import check_executor_spec, make_executor, worker_count
from .core.loop import DEFAULT_OUT, StudyFailure, run_studies

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def check_writable(out: str) -> None:
    """Raise :class:`UsageError` in one line unless ``out`` is (or can be made) a writable folder."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; give a folder for the results")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise UsageError(
            f"--out {out} is not writable ({error.strerror or error}); choose a writable folder"
        ) from None


class UsageError(Exception):
    """A bad command line: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default="numpy", help="array library (default numpy)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda (or gpu) or tpu (default cpu)")
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default=None,
        help="compute dtype of every study (default: each study's working precision, float64 unless "
        "the study shows float32 rounding is negligible against its Monte Carlo error)",
    )
    parser.add_argument(
        "--rng",
        choices=RNG_PATHS,
        default="portable",
        help="portable host draws (default) or native device draws",
    )
    parser.add_argument("--preset", choices=PRESETS, default="quick", help="quick (default) or paper scale")
    parser.add_argument("--seed", type=_seed, default=0, help="root seed (default 0)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--executor", default="local", help="local, serial, dask-local or dask://host:port")
    parser.add_argument(
        "--workers", type=_positive, default=None, help="worker processes (default: cores, <= 4)"
    )
    parser.add_argument("--no-plot", action="store_true", help="write records and CSV only")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--recompute",
        action="store_true",
        help="compute every cell again (ignore existing records) and say whether the new records are "
        "byte-identical to the previous ones",
    )


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m studies", description="Regenerate favor-bench's studies and plots.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,run,all,audit}")
    listing = commands.add_parser("list", help="list the studies, what each verifies and its size")
    listing.add_argument("--preset", choices=PRESETS, default="quick", help="preset to size (default quick)")
    listing.add_argument(
        "--backend", choices=BACKENDS, default="numpy", help="backend to size (default numpy)"
    )
    listing.add_argument(
        "--out", default=DEFAULT_OUT, help=f"where the last runs are (default {DEFAULT_OUT})"
    )
    run = commands.add_parser("run", help="run the named studies")
    run.add_argument("names", nargs="+", metavar="NAME", help="study names (see `list`)")
    _add_run_options(run)
    _add_run_options(commands.add_parser("all", help="run every study"))
    commands.add_parser(
        "audit", help="audit an implementation (python -m studies audit --help)", add_help=False
    )
    return parser


def _list(args, studies) -> int:
    context = Context(backend=args.backend, preset=args.preset)
    width = max(map(len, studies), default=0)
    for name, study in studies.items():
        cells, seconds = sizing.estimate(study, context, args.out)
        print(f"{name:<{width}}  {cells} cells, compute {sizing.describe(seconds)}  {study.claim}")
    return 0


def _audit(argv) -> int:
    if importlib.util.find_spec("studies.audit") is None:
        raise UsageError("audit is not available (studies.audit is not installed)")
    module = importlib.import_module("studies.audit")
    if not hasattr(module, "main"):
        raise UsageError("audit is not available (studies.audit has no main)")
    return module.main(list(argv)) or 0


def _run(args, studies) -> int:
    names = list(studies) if args.command == "all" else args.names
    unknown = [name for name in names if name not in studies]
    if unknown:
        raise UsageError(f"unknown study {unknown[0]!r}; choose from {', '.join(studies)}")
    try:
        context = Context(args.backend, args.device, args.dtype, args.rng, args.seed, args.preset)
        context.target  # noqa: B018 (checks that the backend, device and dtype exist here)
        check_executor_spec(args.executor)
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from None
    check_writable(args.out)
    chosen = [studies[name] for name in dict.fromkeys(names)]
    plan = sizing.plan(chosen, context, args.out, worker_count(args.executor, args.workers))
    print("\n".join(plan), flush=True)
    started = time.perf_counter()
    try:
        results, failures = _execute(args, chosen, context)
    except (ValueError, OSError) as error:
        print(f"python -m studies: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as interrupt:
        print(
            f"python -m studies: {interrupt or 'interrupted'}; finished cells are kept in "
            f"{args.out}/<study>/records.jsonl: run the same command again to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    for name, (_, run) in results.items():
        print(_report_line(name, run, args.out, studies[name].module_name))
    for name, errors in failures.items():
        print(f"python -m studies: {name} failed ({len(errors)} batch(es)): {errors[0]}", file=sys.stderr)
    wall = time.perf_counter() - started
    print(f"done in {wall:.1f} s ({context.backend}, {context.device}, {context.preset})")
    return EXIT_FAILED if failures else 0


def _execute(args, chosen, context):
    """Run the studies on the requested executor; ``(results, failures)``.

    An interrupt propagates out of the executor's context, which stops its workers at once.
    """
    with make_executor(args.executor, args.workers) as (executor, description):
        try:
            results = run_studies(
                chosen,
                context,
                out=args.out,
                executor=executor,
                executor_name=description,
                progress=not args.quiet,
                plot=not args.no_plot,
                recompute=args.recompute,
            )
        except StudyFailure as failure:
            return failure.results, failure.failures
    return results, {}


def _report_line(name: str, run, out, module_name: str | None = None) -> str:
    """One line per study: cells computed and reused, its own time, stale records, comparison, and a
    warning when the study's source files changed while it computed."""
    parts = [f"{name}: {run.computed} cells computed, {run.total - run.computed} reused"]
    if run.computed:
        parts.append(f"in {run.wall_time:.1f} s")
    if run.discarded:
        parts.append(f"{run.discarded} records of other code dropped")
    if run.comparison:
        parts.append(f"records {run.comparison}")
    if run.computed and module_name and provenance.source_changed(module_name):
        parts.append(f"WARNING: {provenance.CHANGED_DURING_RUN}")
    return ", ".join(parts) + f" -> {out}/{name}/"


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["audit"]:
            return _audit(argv[1:])
        args = build_parser().parse_args(argv)
        studies = discover()
        if args.command == "list":
            return _list(args, studies)
        with interrupts.stop_on_signals():
            return _run(args, studies)
    except UsageError as error:
        print(f"python -m studies: error: {error}", file=sys.stderr)
        return EXIT_USAGE


def main_for(name: str) -> int:
    """``python -m studies.NAME [options]``: run one study with the ``run`` options."""
    return main(["run", name, *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
