"""Build the conformance matrix and the headline-effects figure from the committed audit reports.

Reads ``results/audit/<target>/results.json`` (written by ``python -m studies audit``) for every
implementation in :data:`ROWS`, rewrites the table between the matrix markers of
``results/audit/README.md`` and writes ``results/audit/headline_effects.png``.

Run: python results/audit/conformance_matrix.py (needs matplotlib).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROWS = (
    ("favor-bench", "favor-bench (control)"),
    ("performer-pytorch", "performer-pytorch 1.1.4"),
    ("srf-attention", "srf-attention 1.0.16"),
    ("torch-geometric", "torch-geometric 2.8.1"),
    ("google-research", "google-research JAX"),
    ("pytorch-fast-transformers", "fast-transformers Favor"),
    ("pytorch-fast-transformers.grf", "fast-transformers GRF"),
    ("tf-models-official", "TF Garden exp (FAVOR+)"),
    ("tf-models-official.expplus", "TF Garden expplus (FAVOR++)"),
    ("xformers", "xformers 0.0.20 SMOrf"),
    ("xformers.hyperbolic", "xformers 0.0.20 SMHyp"),
)
NUMBER = r"[-+]?\d+\.\d+(?:e[-+]?\d+)?"
LARGEST_OF_LISTED = {"dense-reference", "mask-semantics"}
FLOOR = 1e-17
START, END = "<!-- matrix:start -->", "<!-- matrix:end -->"


def load(folder: str):
    """The checks of one report (name → check record), or None when the report is missing."""
    path = HERE / folder / "results.json"
    if not path.exists():
        return None
    return {check["name"]: check for check in json.loads(path.read_text())["checks"]}


def headline(check) -> str:
    """The number a matrix cell shows: the largest listed difference for the deterministic
    comparisons over several cells, else the first number of the measured effect."""
    non_finite = re.search(r"(\w+)(?: \([^)]*\))?: non-finite outputs: (\d+%)", check.get("effect", ""))
    if non_finite:
        return f"{non_finite.group(1)} non-finite {non_finite.group(2)}"
    numbers = re.findall(NUMBER, check.get("effect", ""))
    if not numbers:
        return ""
    if check["name"] in LARGEST_OF_LISTED:
        return f"{max(abs(float(n)) for n in numbers):.1e}"
    return numbers[0]


def cell(check) -> str:
    status = check["status"]
    if status == "pass":
        return "pass"
    if status == "n-a":
        return "n-a"
    if status == "error":
        return "**error**"
    severity = check.get("severity") or ""
    value = headline(check)
    return f"**FAIL** {severity} {value}".strip()


def matrix(reports) -> str:
    names = next(iter(r for r in reports.values() if r is not None)).keys()
    header = "| implementation | " + " | ".join(names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 1)]
    for folder, label in ROWS:
        checks = reports[folder]
        if checks is None:
            lines.append(f"| {label} | " + " | ".join("not run" for _ in names) + " |")
            continue
        cells = (cell(checks[n]) if n in checks else "not run" for n in names)
        lines.append(f"| [{label}]({folder}/report.md) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def interval(check, pattern):
    """(value, low, high) parsed from the check's effect with ``pattern`` (groups: value, half or bounds)."""
    if check is None or check["status"] not in ("pass", "fail"):
        return None
    found = re.search(pattern, check.get("effect", ""))
    if not found:
        return None
    values = [float(v) for v in found.groups()]
    if len(values) == 2:
        return values[0], values[0] - values[1], values[0] + values[1]
    return tuple(values)


def figure(reports, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    labels = [label for _, label in ROWS]
    panels = (
        (
            "unbiased-kernel",
            rf"E\[K̂\]/K = ({NUMBER}) ± ({NUMBER})",
            "E[K̂]/K in the cell with the largest |z|\n(95% CI; unbiased: 1)",
            1.0,
            False,
        ),
        (
            "convergence-exact",
            rf"slope ({NUMBER}) \(95% CI ({NUMBER}) … ({NUMBER})\)",
            "slope of log MSE(ô) vs log m\n(95% CI; theory −1)",
            -1.0,
            False,
        ),
        (
            "causal-future",
            rf"leak ({NUMBER})",
            "causal leak: max |Δo| before a\nchange of later keys",
            None,
            True,
        ),
        ("mask-semantics", None, "mask: max |o_masked − o_removed|", None, True),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 0.45 * len(ROWS) + 1.8), sharey=True)
    rows = list(range(len(ROWS)))[::-1]
    for axis, (name, pattern, title, reference, log) in zip(axes, panels, strict=True):
        for y, (folder, _) in zip(rows, ROWS, strict=True):
            checks = reports[folder]
            check = None if checks is None else checks.get(name)
            if check is None or check["status"] not in ("pass", "fail"):
                reason = "not run" if check is None else check["status"]
                axis.text(
                    0.5,
                    y,
                    reason,
                    transform=axis.get_yaxis_transform(),
                    ha="center",
                    va="center",
                    color="0.5",
                    fontsize=8,
                )
                continue
            colour = "tab:red" if check["status"] == "fail" else "tab:blue"
            if pattern is None:
                value = max(abs(float(n)) for n in re.findall(NUMBER, check["effect"]))
                axis.plot(max(value, FLOOR), y, "o", color=colour)
                continue
            parsed = interval(check, pattern)
            if parsed is None:
                continue
            if log:
                axis.plot(max(parsed[0], FLOOR), y, "o", color=colour)
                continue
            value, low, high = parsed
            axis.errorbar(value, y, xerr=[[value - low], [high - value]], fmt="o", color=colour, capsize=3)
        if reference is not None:
            axis.axvline(reference, color="0.4", lw=0.8, ls="--")
        if log:
            axis.set_xscale("log")
            axis.set_xlim(FLOOR / 10, 10)
            axis.xaxis.set_major_locator(matplotlib.ticker.LogLocator(numticks=5))
        axis.set_title(title, fontsize=9)
        axis.grid(axis="x", color="0.9")
    axes[0].set_yticks(rows, labels)
    axes[0].set_ylim(-0.6, len(ROWS) - 0.4)
    handles = [
        plt.Line2D([], [], marker="o", ls="", color="tab:blue", label="check passed"),
        plt.Line2D([], [], marker="o", ls="", color="tab:red", label="check failed"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False)
    fig.suptitle(
        "Headline effects of the conformance audit (full mode, seed 0); log panels draw exact zeros at 1e-17",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main():
    reports = {folder: load(folder) for folder, _ in ROWS}
    table = matrix(reports)
    readme = HERE / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} must contain the markers {START} and {END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{table}\n{END}{tail}")
    figure(reports, HERE / "headline_effects.png")
    print(
        f"matrix: {sum(r is not None for r in reports.values())} of {len(ROWS)} reports; wrote {readme.name}"
    )


if __name__ == "__main__":
    main()
