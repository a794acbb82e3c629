"""Summary figures of a consolidated dataset: error distribution and coverage of the design grid."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from mdsurrogate.dataset.arrays import input_names
from mdsurrogate.dataset.core import run_rel_errors
from mdsurrogate.io import atomic_path
from mdsurrogate.simulation.system import INPUT_NAMES, PAPER_GRID, UNCHARGED_GRID, UNCHARGED_INPUT_NAMES


def _save(fig, path: Path, dpi: int) -> Path:
    """Lay out, write atomically as PNG, close; returns the path."""
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path


def summary_figures(ds, directory: str | Path) -> list[Path]:
    """Write errors.png (median relative standard error per run, and its dependence on c) and coverage.png
    (number of runs for every pair of inputs on the papers' grid values, or on `UNCHARGED_GRID` for the
    uncharged-wall system, inputs that never vary left out). Returns the paths."""
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    directory = Path(directory)
    out = []
    rel = run_rel_errors(ds)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].hist(rel, bins=30, color="tab:blue")
    axes[0].axvline(np.median(rel), color="k", ls="--", label=f"median {np.median(rel):.3f}")
    axes[0].set(xlabel="median relative standard error of the profile", ylabel="runs")
    axes[0].legend()
    axes[1].scatter(ds["c"].values, rel, s=8, alpha=0.6)
    axes[1].set(xlabel="c (M)", ylabel="median relative standard error")
    fig.suptitle(f"{ds.sizes['system']} runs")
    out.append(_save(fig, directory / "errors.png", dpi=100))

    uncharged = input_names(ds) == UNCHARGED_INPUT_NAMES
    names = [k for k in UNCHARGED_INPUT_NAMES if np.unique(ds[k].values).size > 1] if uncharged else INPUT_NAMES
    grid = {k: UNCHARGED_GRID[k] for k in names} if uncharged else PAPER_GRID
    pairs = list(itertools.combinations(names, 2))
    if not pairs:  # fewer than two inputs vary: no coverage map
        return out
    fig, axes = plt.subplots(2, (len(pairs) + 1) // 2, figsize=(3.6 * ((len(pairs) + 1) // 2), 7), squeeze=False)
    for ax in axes.ravel()[len(pairs):]:
        ax.set_visible(False)
    for ax, (a, b) in zip(axes.ravel(), pairs):
        ga, gb = grid[a], grid[b]
        counts = np.zeros((len(gb), len(ga)))
        va, vb = ds[a].values, ds[b].values
        for i, x in enumerate(ga):
            for j, y in enumerate(gb):
                counts[j, i] = np.sum(np.isclose(va, x) & np.isclose(vb, y))
        im = ax.imshow(counts, origin="lower", cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(ga)), [f"{x:g}" for x in ga], rotation=90, fontsize=7)
        ax.set_yticks(range(len(gb)), [f"{y:g}" for y in gb], fontsize=7)
        ax.set(xlabel=a, ylabel=b)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle("runs per pair of grid values")
    out.append(_save(fig, directory / "coverage.png", dpi=90))
    return out
