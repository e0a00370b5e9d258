"""Write the study gallery, ``results/README.md``, from each study's title and computed caption.

The captions are quoted from ``results/NAME/NAME_claims.md`` (written by each study's plot), so the
gallery says what the data say; ``tests/test_captions.py`` fails when they drift apart. Run after
``python -m studies all``:

    python scripts/gallery.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import studies

EXTRA_FIGURES = {"estimator_shootout": ("_m", "_attention", "_sorf")}
"""Studies that save more than one figure: the suffixes of the others, after ``NAME``."""
HEAD = """# Study gallery

Every plot below is regenerated, with its CSV, records and `meta.json` (the code fingerprint, commit
and dirty state that computed the records, package versions, backend, device, dtype, seed, preset,
and the study's own cells computed/reused and times), by the quick preset on a CPU with numpy:

```sh
make studies                     # = python -m studies all --recompute: recomputes every cell and says
                                 #   whether the records are byte-identical to the committed ones
python -m studies all            # reuses every record the same code already computed
```

One study: `python -m studies run NAME` or `python -m studies.NAME`; the papers' scales: `--preset paper`;
other backends and devices: `--backend torch --device cuda`, `--backend jax`; a cluster:
`--executor dask://HOST:PORT`. Theory is drawn as lines, Monte Carlo results as markers with 99%
confidence intervals; the formulas and their sources are in each study's module docstring
(`studies/NAME.py`) and in the theory reference, [`docs/theory.md`](../docs/theory.md).

Captions are computed, not written: each study's plot also writes `NAME_claims.md`, every sentence of
which comes from the study's CSV rows through a stated test (the test and its numbers are listed
there). The captions below quote those files; where the data disagree with a paper, the caption and
the figure say so.

Reproducibility: every cell is seeded from the root seed and a hash of its parameters, so the same
`--seed` gives byte-identical `records.jsonl` and CSVs whether cells run in one process
(`--executor serial`), a process pool (default) or a Dask cluster, and an interrupted run resumes
without recomputing finished cells. With the default portable RNG, `--backend torch` and
`--backend jax` draw the same W and reproduce the numpy CSVs to about 1e-13 relative; `--rng native`
draws on the device and agrees statistically. Each study's wall time and the number of cells it
computed are in its `meta.json`. This page is written by `python scripts/gallery.py`.
"""
OTHER = """## Other results

The paper preset's run (`paper/`) holds each study's `meta.json`, CSV, computed caption and plot from
`python -m studies all --preset paper --out results/paper` (its records are left out for size). Its
`meta.json` files name the commit that computed it; `make studies` does not refresh it, so after a
change to the code it is the record of that commit, and the command above regenerates it. Sizing
(`python -m studies list --preset paper`) reads its fitted cost models.

Implementation audits (`python -m studies audit --target NAME`) write `audit/<target>/report.md`. The
CPU speed/memory figure (`speed_memory/`) is drawn from asv results by
`scripts/speed_memory_figure.py`, the comparison with performer-pytorch and SDPA on a CPU (`peers/`)
by `scripts/peers_figure.py`, the GPU comparison (`gpu_speed_memory/`) by `scripts/gpu_compare.py`
(`--replot` redraws it from its `timings.csv` without a GPU). Where each feature map and FAVOR stop
giving finite and accurate results as the input norms grow (`numerics/`) is tabulated by
`scripts/numerics_table.py`.
"""


def caption_sentences(results: Path, name: str) -> list[str]:
    """The sentences of ``results/NAME/NAME_claims.md`` (its top-level bullets)."""
    text = (results / name / f"{name}_claims.md").read_text()
    return [line[2:] for line in text.splitlines() if line.startswith("- ")]


def entry(results: Path, name: str, title: str) -> str:
    stems = [name] + [name + suffix for suffix in EXTRA_FIGURES.get(name, ())]
    images = "\n\n".join(f"![{title}]({name}/{stem}.png)" for stem in stems)
    bullets = "\n".join(f"- {sentence}" for sentence in caption_sentences(results, name))
    return (
        f"## {title}\n\n{images}\n\n{bullets}\n\n"
        f"Data: [`{name}.csv`]({name}/{name}.csv), [`{name}_claims.md`]({name}/{name}_claims.md) "
        f"(the tests), [`meta.json`]({name}/meta.json); rerun: `python -m studies run {name}`.\n"
    )


def gallery(results: Path) -> str:
    found = studies.discover()
    names = [name for name in studies.ORDER if name in found]
    return "\n".join([HEAD, *(entry(results, name, found[name].title) for name in names), OTHER])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    (args.results / "README.md").write_text(gallery(args.results))


if __name__ == "__main__":
    main()
