"""The compute tables of data/README.md for a dataset stored in parts: one row per part, and cost and relative
error per value of an input (default c), from the stored wall times and profiles.

    .venv/bin/python scripts/dataset_cost.py data/paper_subset_1000.nc 'data/paper_grid_full/part-*.nc' [--by c] \
        [--figures data/paper_grid_full/summary]

--figures also writes the summary figures of `campaign consolidate --figures` (errors.png, coverage.png) and
summary.json (runs, compute, errors, E_MD, the part files with their sha256, provenance) for all the parts together.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np

from mdsurrogate.dataset import error_bars, load_dataset, load_parts, run_rel_errors, summary


def wall_times(ds) -> np.ndarray:
    """Per run: the ledger's wall time (the whole worker) where stored, else the engine's; as `dataset.summary`."""
    n = ds.sizes["system"]
    wall = np.full(n, np.nan)
    for name in ("wall_time_s", "ledger_wall_s"):
        if name in ds:
            v = np.asarray(ds[name].values, dtype=float)
            wall = np.where(np.isfinite(v), v, wall)
    return wall


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("parts", nargs="+", help="dataset files or glob patterns, in order")
    p.add_argument("--by", default="c", help="input to group the cost table by (default c)")
    p.add_argument("--figures", default=None, help="folder for the summary figures and summary.json of all parts")
    a = p.parse_args(argv)
    files: list[str] = []
    for pat in a.parts:
        files += [f for f in (sorted(glob.glob(pat)) or [pat]) if f not in files]
    print("| part | runs | core-hours | mean s per run | median rel. error (90 % below) |")
    print("|---|---:|---:|---:|---:|")
    for f in files:
        s = summary(load_dataset(f))
        print(f"| {f} | {s['n_runs']} | {s['core_hours']:.2f} | {s['wall_s_mean']:.0f} | "
              f"{s['rel_error_median']:.3f} ({s['rel_error_p90']:.3f}) |")
    ds = load_parts(*files)
    s = summary(ds)
    print(f"\nall parts: {s['n_runs']} runs, {s['core_hours']:.2f} core-hours\n")
    wall, rel, x = wall_times(ds), run_rel_errors(ds), np.round(np.asarray(ds[a.by].values, dtype=float), 6)
    print(f"| {a.by} | runs | mean s per run | median rel. error |")
    print("|---:|---:|---:|---:|")
    for v in np.unique(x):
        m = x == v
        print(f"| {v:.2f} | {int(m.sum())} | {np.nanmean(wall[m]):.1f} | {np.nanmedian(rel[m]):.3f} |")
    if a.figures:
        write_figures(ds, files, Path(a.figures))
    return 0


def write_figures(ds, files: list[str], directory: Path) -> None:
    from mdsurrogate.dataset.figures import summary_figures  # noqa: PLC0415 - matplotlib only when asked
    from mdsurrogate.evaluation.metrics import md_noise_floor  # noqa: PLC0415
    from mdsurrogate.io import check_output, file_sha256, write_json_atomic  # noqa: PLC0415
    from mdsurrogate.provenance import provenance  # noqa: PLC0415

    check_output(directory, "--figures", kind="dir", overwrite=True)
    paths = summary_figures(ds, directory)
    info = {**summary(ds), "E_MD": md_noise_floor(error_bars(ds))}
    parts = [{"file": f, "sha256": file_sha256(f)} for f in files]
    write_json_atomic(directory / "summary.json", {"parts": parts, **info, "provenance": provenance()})
    print(f"\n{info['n_systems']} systems, median relative error {info['rel_error_median']:.3f} (90 % below "
          f"{info['rel_error_p90']:.3f}), E_MD {info['E_MD']:.4f} M; wrote "
          f"{', '.join(str(p) for p in paths)} and {directory / 'summary.json'}")


if __name__ == "__main__":
    raise SystemExit(main())
