"""Markdown report of an audit: a table of checks (status, severity, measured effect, tolerance,
time), one section per check (statistic, tolerance and why, power, established diagnosis), plots,
and for every failed check the command that reproduces it as printed (interpreter, PYTHONPATH of a
``module:object`` target, ``--out``). Written to ``results/audit/<target>/`` (atomic writes)."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .checks import CHECKS, CheckResult, Settings
from .protocol import Adapter
from .targets import TARGETS

STATUS_WORDS = {"pass": "passed", "fail": "failed", "error": "raised an error", "n-a": "not applicable"}
PLOTS = {
    "unbiased-kernel": "unbiasedness.png",
    "mse-closed-form": "mse.png",
    "convergence-exact": "convergence.png",
}


def target_directory(target: str) -> str:
    """A file-system-safe folder name for ``target`` (``module:object`` → ``module.object``)."""
    return "".join(c if c.isalnum() or c in "-_." else "." for c in target)


def reproduce_command(target: str, check: str | None, settings: Settings, out: Path | None = None) -> str:
    """The shell command that reruns the audit (or one check) with the same seed and mode, as printed:
    this interpreter, ``PYTHONPATH`` for a ``module:object`` target outside the working directory, and
    ``--out`` when the report went elsewhere than the default folder."""
    parts = [_interpreter(), "-m", "studies.audit", "--target", target]
    if check:
        parts += ["--check", check]
    parts += ["--seed", str(settings.seed)]
    if settings.quick:
        parts.append("--quick")
    if out is not None:
        parts += ["--out", str(out)]
    root = _module_root(target)
    prefix = f"PYTHONPATH={shlex.quote(root)} " if root else ""
    return prefix + " ".join(shlex.quote(part) for part in parts)


def _interpreter() -> str:
    executable = Path(sys.executable)
    try:
        return str(executable.relative_to(Path.cwd()))
    except ValueError:
        return "python"


def _module_root(target: str) -> str:
    """The sys.path entry a ``module:object`` target was imported from, when it is not the working
    directory or an installed location (empty otherwise)."""
    head = target.split(":", 1)[0]
    if ":" not in target or head in TARGETS:
        return ""
    spec = importlib.util.find_spec(head)
    if spec is None or not spec.origin:
        return ""
    origin = Path(spec.origin).resolve()
    root = origin.parents[len(head.split(".")) - (0 if origin.name == "__init__.py" else 1)]
    if root == Path.cwd().resolve() or "site-packages" in root.parts:
        return ""
    return str(root)


def _mode(settings: Settings) -> str:
    return "quick (power 0.9)" if settings.quick else "full (power 0.99)"


def write_report(
    adapter: Adapter,
    target: str,
    results: list[CheckResult],
    settings: Settings,
    out: Path,
    wall: float,
    *,
    out_given: bool = False,
) -> Path:
    """Write ``report.md``, ``results.json`` and the plots into ``out``; return the report path."""
    out.mkdir(parents=True, exist_ok=True)
    plots = _write_plots(results, out)
    meta = _metadata(adapter, settings, wall)
    _atomic_write(
        out / "results.json",
        json.dumps({"meta": meta, "checks": [vars(r) for r in results]}, indent=2, default=_jsonable),
    )
    report = out / "report.md"
    reproduce_out = out if out_given else None
    _atomic_write(report, _markdown(adapter, target, results, settings, plots, meta, reproduce_out))
    return report


def _declarations(adapter: Adapter) -> str:
    precision = adapter.precision or "detected from the outputs"
    dtypes = ", ".join(adapter.dtypes) or "none"
    constraints = [f"working precision {precision}", f"further dtypes {dtypes}", f"mask {adapter.mask}"]
    if not adapter.causal:
        constraints.append("no causal mode")
    if adapter.square_only:
        constraints.append("m = d only")
    if adapter.head_dims is not None:
        constraints.append(f"head dims {list(adapter.head_dims)}")
    return "; ".join(constraints)


def _markdown(adapter, target, results, settings, plots, meta, out) -> str:
    counts = ", ".join(f"{_count(results, status)} {word}" for status, word in STATUS_WORDS.items())
    lines = [
        f"# favor-bench audit: {adapter.name} {adapter.version}",
        "",
        f"Claims to be: `{adapter.claims}` (favor-bench registry row). Layout: {adapter.layout}.",
        f"Declared: {_declarations(adapter)}.",
        *(f"- {note}" for note in adapter.notes),
        "",
        f"Result: **{counts}** ({_mode(settings)} mode, seed {settings.seed}, "
        f"{meta['wall_seconds']:.0f} s on {meta['machine']}).",
        "",
        "Reproduce the whole audit:",
        "",
        "```",
        reproduce_command(target, None, settings, out),
        "```",
        "",
        "| check | result | severity | measured effect | tolerance | time |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        effect = r.effect if r.status in ("pass", "fail") else r.reason
        cells = (
            f"[{r.name}](#{r.name})",
            r.status.upper(),
            r.severity,
            _cell(effect),
            _cell(r.tolerance),
            f"{r.seconds:.1f} s",
        )
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Statistical checks: z-tests on the theoretical variance, family α = 0.01 per check "
        "(Bonferroni over its cells). Deterministic checks: the same W on both sides, tolerance from "
        "the working precision's round-off and the size of the computation. Severity of a failure: "
        "its effect relative to the natural scale of the quantity (negligible < 1e-4 ≤ minor < 1e-2 ≤ "
        "major < 0.1 ≤ critical).",
        "",
    ]
    for r in results:
        lines += _section(r, target, settings, plots, out)
    lines += [
        "",
        f"Generated by favor-bench {meta['favor_bench_commit']} "
        f"(Python {meta['python']}, numpy {meta['numpy']}, torch {meta['torch']}).",
    ]
    return "\n".join(lines) + "\n"


def _count(results, status: str) -> int:
    return sum(r.status == status for r in results)


def _section(result: CheckResult, target: str, settings: Settings, plots: dict, out) -> list[str]:
    heading = result.status.upper() + (f" ({result.severity})" if result.severity else "")
    lines = ["", f"## {result.name}", "", f"**{heading}**: {result.title}. ({result.seconds:.1f} s)", ""]
    if result.name in CHECKS:
        check = CHECKS[result.name]
        claims = f"; theory claims {check.claims}" if check.claims else ""
        lines.append(f"- family: {check.family}{claims}")
    for label, text in (
        ("not applicable", result.reason if result.status == "n-a" else ""),
        ("error", result.reason if result.status == "error" else ""),
        ("statistic", result.statistic),
        ("measured", result.effect),
        ("tolerance", result.tolerance),
        ("power", result.power),
    ):
        if text:
            lines.append(f"- {label}: {text}")
    if result.diagnosis:
        lines += ["", "Established by sub-checks:", "", *(f"- {line}" for line in result.diagnosis)]
    if result.details:
        lines += ["", "```", *result.details, "```"]
    if result.name in plots:
        lines += ["", f"![{result.name}]({plots[result.name]})"]
    if result.status in ("fail", "error"):
        lines += ["", "Reproduce:", "", "```", reproduce_command(target, result.name, settings, out), "```"]
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _write_plots(results, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = {}
    for r in results:
        if r.name not in PLOTS or r.status in ("n-a", "error") or not r.data:
            continue
        figure, axes = plt.subplots(figsize=(7, 3.6))
        {"unbiased-kernel": _plot_z, "mse-closed-form": _plot_mse, "convergence-exact": _plot_convergence}[
            r.name
        ](axes, r)
        figure.tight_layout()
        path = out / PLOTS[r.name]
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written[r.name] = path.name
    return written


def _plot_z(axes, r):
    positions = np.arange(len(r.data["z"]))
    axes.bar(
        positions, r.data["z"], color=["C3" if abs(z) > r.data["critical"] else "C0" for z in r.data["z"]]
    )
    for sign in (-1, 1):
        axes.axhline(sign * r.data["critical"], color="k", linestyle="--", linewidth=1)
    axes.set_xticks(positions, r.data["cells"], rotation=60, ha="right", fontsize=7)
    axes.set_ylabel("z = (mean K̂ − K)/√(MSE/n)")
    axes.set_title("Unbiasedness per cell (dashed: Bonferroni critical values)")


def _plot_mse(axes, r):
    positions = np.arange(len(r.data["ratio"]))
    axes.errorbar(positions, r.data["ratio"], yerr=r.data["half"], fmt="o", capsize=3)
    axes.axhline(1.0, color="k", linestyle="--", linewidth=1)
    axes.set_xticks(positions, r.data["cells"], rotation=30, ha="right", fontsize=7)
    axes.set_ylabel("empirical MSE / closed form")
    axes.set_title("MSE against the claimed estimator's closed form (95% CI)")


def _plot_convergence(axes, r):
    m, mse, sem = (np.asarray(r.data[key]) for key in ("m", "mse", "sem"))
    axes.errorbar(m, mse, yerr=1.96 * sem, fmt="o", capsize=3, label="library")
    axes.plot(m, r.data["reference_mse"], "s", mfc="none", label="same W, favor-bench features")
    axes.plot(m, mse[0] * m[0] / m, "k--", linewidth=1, label="∝ 1/m")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("number of random features m")
    axes.set_ylabel("MSE of ô vs exact attention")
    axes.legend()
    axes.set_title("Agreement with exact softmax attention")


def _metadata(adapter, settings, wall) -> dict:
    return {
        "target": adapter.name,
        "version": adapter.version,
        "claims": adapter.claims,
        "quick": settings.quick,
        "seed": settings.seed,
        "wall_seconds": wall,
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": _installed_version("torch"),
        "favor_bench_commit": _git_commit(),
    }


def _installed_version(package: str) -> str:
    """The installed version of ``package`` without importing it ("not installed" when absent)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _atomic_write(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, path)
