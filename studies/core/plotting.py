"""One figure style for every study: empirical points with confidence intervals over theory curves.

Conventions: theory (closed forms) are lines, Monte Carlo results are markers with error bars (the
interval is stated in the legend or caption), log axes wherever a quantity spans decades. Figures
are saved as PNG and SVG with fixed metadata so reruns produce the same files.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .records import write_atomic

PALETTE = "colorblind"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")


def figure(ncols: int = 1, nrows: int = 1, *, width: float = 4.6, height: float = 3.6, **kwargs):
    """A (fig, axes) pair in the house style; ``axes`` is always a flat numpy array."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=1.05)
    matplotlib.rcParams["svg.hashsalt"] = "favor-bench"
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained", **kwargs
    )
    return fig, axes.ravel()


def colors(n: int):
    """``n`` distinguishable colours from the house palette."""
    import seaborn as sns

    return sns.color_palette(PALETTE, n)


def points(ax, x, y, half_width=None, *, label=None, color=None, marker="o", **kwargs):
    """Empirical points with symmetric error bars ``y ± half_width`` (clipped at 0 on log axes)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if half_width is None:
        return ax.plot(x, y, linestyle="none", marker=marker, color=color, label=label, **kwargs)
    half_width = np.asarray(half_width, dtype=float)
    lower = half_width
    if ax.get_yscale() == "log":
        lower = np.minimum(half_width, y * (1 - 1e-3))
    return ax.errorbar(
        x,
        y,
        yerr=np.vstack([lower, half_width]),
        linestyle="none",
        marker=marker,
        markersize=4.5,
        capsize=2.5,
        elinewidth=1.0,
        color=color,
        label=label,
        **kwargs,
    )


def curve(ax, x, y, *, label=None, color=None, linestyle="-", **kwargs):
    """A closed-form curve."""
    return ax.plot(x, y, linestyle=linestyle, linewidth=1.4, color=color, label=label, **kwargs)


def label(ax, title=None, xlabel=None, ylabel=None, *, legend=True, legend_kw=None):
    """Title, axis labels and (if any handles) a legend."""
    if title:
        ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(**{"fontsize": "small", "frameon": True, **(legend_kw or {})})


def save(fig, stem: Path) -> list[Path]:
    """Save ``stem.png`` (150 dpi) and ``stem.svg`` atomically with fixed metadata; close the figure."""
    import matplotlib.pyplot as plt

    stem = Path(stem)
    paths = []
    for suffix, metadata in ((".png", {"Software": None}), (".svg", {"Date": None, "Creator": None})):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=suffix[1:], dpi=150, metadata=metadata)
        path = stem.with_suffix(suffix)
        write_atomic(path, buffer.getvalue())
        paths.append(path)
    plt.close(fig)
    return paths
