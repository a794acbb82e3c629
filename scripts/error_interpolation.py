"""How much the grid's error bars overstate the standard error of the profile at each grid point.

The engine interpolates the native bins' standard errors linearly onto the 502-point grid (`engine.native_to_grid`
applied to the errors). For a grid point between two bins that are not fully correlated, the standard error of the
interpolated value is smaller than the interpolated error. The per-run results of a campaign keep the 20 block
profiles on the native bins, so the exact value is at hand: resample each block onto the grid, then take the
standard error over the blocks. Prints the ratio (interpolated / exact) over every grid point with a non-zero error,
the ratio of each profile's RMS error, and the correlation of neighbouring native bins.

    .venv/bin/python scripts/error_interpolation.py RESULTS_DIR [--every 4] [--max-runs 80]
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
import xarray as xr

from mdsurrogate.simulation.engine import native_to_grid


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, help="a campaign's results/ folder (per-run NetCDF files)")
    p.add_argument("--every", type=int, default=4, help="use every k-th run")
    p.add_argument("--max-runs", type=int, default=80)
    a = p.parse_args(argv)
    files = sorted(glob.glob(str(a.results / "*.nc")))[::a.every][:a.max_runs]
    if not files:
        raise SystemExit(f"no per-run results in {a.results}")
    ratios, rms, corr = [], [], []
    for f in files:
        ds = xr.load_dataset(f, engine="h5netcdf")
        h = float(ds["h"]) if "h" in ds else float(ds.attrs["h"])
        zb, z = ds["z_bin"].values, ds["z"].values
        if np.abs(zb).max() > h:  # native bins stored in reduced units
            zb = zb * float(ds.attrs["length_unit_nm"])
        for ion in ("n_plus", "n_minus"):
            blocks = ds[f"{ion}_blocks"].values
            if not np.allclose(blocks.mean(0), ds[f"{ion}_native"].values, rtol=1e-6, atol=1e-9):
                raise SystemExit(f"{f}: the blocks do not average to the native profile")
            on_grid = np.stack([native_to_grid(zb, b, h, z) for b in blocks])
            exact = on_grid.std(0, ddof=1) / np.sqrt(len(blocks))
            interp = ds[f"{ion}_err"].values
            m = exact > 1e-6 * exact.max()
            ratios.append(interp[m] / exact[m])
            rms.append(np.sqrt(np.mean(interp ** 2)) / np.sqrt(np.mean(exact ** 2)))
            dev = blocks - blocks.mean(0)
            live = np.flatnonzero(blocks.std(0) > 0)
            pairs = live[:-1][np.diff(live) == 1]
            corr.append(np.median([np.corrcoef(dev[:, k], dev[:, k + 1])[0, 1] for k in pairs]))
    r = np.concatenate(ratios)
    print(f"{len(files)} runs, {len(r)} grid points with a non-zero error")
    print(f"interpolated / exact standard error: median {np.median(r):.3f}, mean {r.mean():.3f}, "
          f"90th percentile {np.percentile(r, 90):.3f}, max {r.max():.3f}")
    print(f"RMS error of a profile, interpolated / exact: median {np.median(rms):.3f}")
    print(f"correlation of neighbouring native bins (block deviations): median {np.median(corr):.3f}")
    print(f"native bin {float(np.diff(zb)[0]):.4f} nm, grid step {float(np.diff(z)[0]):.4f} nm (last run read)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
