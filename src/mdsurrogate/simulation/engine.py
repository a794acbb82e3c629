"""The confined-electrolyte MD engine on LAMMPS: `simulate(system, controls)` builds the input deck (deck.py),
runs and watches LAMMPS (runner.py), and turns the block-averaged density profiles it wrote into an xarray
Dataset with errors, derived quantities and full provenance, written atomically. The model, the two presets
and why the production preset's uniform wall sheets are exact are in docs/engine.md.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from mdsurrogate.io import write_netcdf_atomic
from mdsurrogate.provenance import provenance
from mdsurrogate.simulation import runtime
from mdsurrogate.simulation.deck import BOX_PAD, System, Units, coulomb_cutoff
from mdsurrogate.simulation.derived import charge_density, integrated_charge
from mdsurrogate.simulation.profiles import block_average, number_density_to_molar, relative_error, resample
from mdsurrogate.simulation.runner import ProgressCallback, RawProfiles, run_lammps
from mdsurrogate.simulation.settings import RunControls, SimulationFailed
from mdsurrogate.simulation.system import (
    BJERRUM_LENGTH_NM,
    N_GRID,
    paper_grid,
    particle_counts,
    uncharged_grid,
)


def wall_pressures(raw: RawProfiles, n_blocks: int, area_sigma2: float, h_sigma: float, box_z_sigma: float,
                   sigma_nm: float) -> dict[str, float]:
    """Contact-theorem quantities of an uncharged-wall run (kT/nm^3, mean and standard error over n_blocks blocks):
    wall_pressure = (|F_lo| + |F_hi|) / 2A, the force the walls exert on the ions per area; wall_pressure_lo/_hi
    each wall's; virial_pressure = the ions' normal pressure in the slit from the virial theorem,
    (p_int_zz + p_wall_zz) V_box / (A h) (kinetic + pair + kspace virial plus the walls' virial, LAMMPS' f delta:
    exact for a slab confined by walls in mechanical equilibrium, docs/engine.md)."""
    w = raw.wall
    per_nm3 = 1.0 / sigma_nm**3
    lo, hi = np.abs(w[:, 0]) / area_sigma2, np.abs(w[:, 1]) / area_sigma2
    series = {"wall_pressure": 0.5 * (lo + hi), "wall_pressure_lo": lo, "wall_pressure_hi": hi,
              "virial_pressure": (w[:, 2] + w[:, 3]) * box_z_sigma / h_sigma}
    out: dict[str, float] = {}
    for name, x in series.items():
        mean, err = block_average(x[:, None], n_blocks)
        out[f"{name}_kT_per_nm3"] = float(mean[0]) * per_nm3
        out[f"{name}_err_kT_per_nm3"] = float(err[0]) * per_nm3
    return out


def native_to_grid(z_native: np.ndarray, values: np.ndarray, h: float, z: np.ndarray) -> np.ndarray:
    """Linear interpolation of native-bin values onto the grid z, between zero at the walls z = -h/2 and h/2. Only
    the bins inside the walls count: LAMMPS adds a bin beyond +h/2 when the printed bound and width round below
    h/2 (about one geometry in five; the ions cannot reach it), which would make the abscissae decrease."""
    inside = np.abs(z_native) < h / 2
    zn = np.concatenate([[-h / 2], z_native[inside], [h / 2]])
    return resample(zn, np.concatenate([[0.0], np.asarray(values)[..., inside], [0.0]]), z)


def profiles_dataset(system: System, controls: RunControls, raw: RawProfiles, wall_time_s: float,
                     extra_attrs: dict | None = None):
    """Turn raw block profiles into the per-run xarray Dataset (molar units, errors, 502-point grid,
    derived quantities, provenance)."""
    s = controls.settings()
    u = Units.of(system)
    counts = particle_counts(system)
    if not np.all(np.isfinite(raw.plus)) or not np.all(np.isfinite(raw.minus)):
        raise SimulationFailed("nan", "non-finite density in the profile output")
    z_native = raw.z * u.sigma_nm
    mp, ep = block_average(raw.plus, controls.n_blocks)
    mm, em = block_average(raw.minus, controls.n_blocks)
    mp, ep, mm, em = (number_density_to_molar(a, u.sigma_nm) for a in (mp, ep, mm, em))
    uncharged = system.kind == "uncharged"
    z = uncharged_grid(system.h) if uncharged else paper_grid(system.h)
    # the native bins are the only independent estimates; the grid is their linear interpolation
    def on_grid(a: np.ndarray) -> np.ndarray:
        return native_to_grid(z_native, a, system.h, z)

    gp, gm, gep, gem = on_grid(mp), on_grid(mm), on_grid(ep), on_grid(em)
    eq_steps, prod_steps = controls.schedule()
    used_blocks = raw.n_blocks
    kind_attrs: dict = {}
    if uncharged:  # charged-wall runs keep exactly their attributes of before
        h_sigma = system.h / u.sigma_nm
        kind_attrs = {"system_kind": "uncharged", "z_p": system.z_p, "z_n": system.z_n}
        if raw.wall is not None and len(raw.wall) >= controls.n_blocks:
            L = counts.box_length_nm / u.sigma_nm
            kind_attrs.update(wall_pressures(raw, controls.n_blocks, L * L, h_sigma, h_sigma + 2 * BOX_PAD,
                                              u.sigma_nm))
    attrs = {
        **system.inputs(),
        **kind_attrs,
        "system_key": system.key(),
        **{f"count_{k}": v for k, v in counts.as_dict().items()},
        "sigma_s_effective": counts.sigma_s_effective,
        "length_unit_nm": u.sigma_nm,
        "reduced_ion_charge": u.charge,
        "bjerrum_length_nm": BJERRUM_LENGTH_NM,
        "temperature_K": 298.0,
        "preset": s.name,
        **s.as_attrs(),
        "seed": controls.seed,
        "mpi_ranks": controls.mpi_ranks,
        "omp_threads": controls.omp_threads,
        "equilibration_steps": eq_steps,
        "production_steps_planned": prod_steps,
        "production_steps": used_blocks * s.block_steps,
        "production_time_tau": used_blocks * s.block_steps * s.dt,
        "n_stored_blocks": used_blocks,
        "n_error_blocks": controls.n_blocks,
        "target_rel_error": controls.target_rel_error if controls.target_rel_error is not None else -1.0,
        "rel_error": max(relative_error(mp, ep), relative_error(mm, em)),
        "wall_time_s": wall_time_s,
        "coulomb_cutoff_sigma": coulomb_cutoff(system, s),
        "lammps_version": runtime.lammps_version(),
        "status": "done",
        **provenance("lammps", "mpich", "xarray"),
        **(extra_attrs or {}),
    }
    ds = xr.Dataset(
        {
            "n_plus": ("z", gp, {"units": "M", "long_name": "cation density (incl. counterions)"}),
            "n_minus": ("z", gm, {"units": "M", "long_name": "anion density"}),
            "n_plus_err": ("z", gep, {"units": "M", "long_name": "standard error of n_plus"}),
            "n_minus_err": ("z", gem, {"units": "M", "long_name": "standard error of n_minus"}),
            "charge_density": ("z", charge_density(gp, gm, system.z_p, system.z_n), {"units": "C/m^3"}),
            "integrated_charge": ("z", integrated_charge(z, charge_density(gp, gm, system.z_p, system.z_n),
                                                         counts.sigma_s_effective), {"units": "C/m^2"}),
            "n_plus_native": ("z_bin", mp, {"units": "M"}),
            "n_minus_native": ("z_bin", mm, {"units": "M"}),
            "n_plus_native_err": ("z_bin", ep, {"units": "M"}),
            "n_minus_native_err": ("z_bin", em, {"units": "M"}),
            "n_plus_blocks": (("block", "z_bin"), number_density_to_molar(raw.plus, u.sigma_nm), {"units": "M"}),
            "n_minus_blocks": (("block", "z_bin"), number_density_to_molar(raw.minus, u.sigma_nm), {"units": "M"}),
        },
        coords={
            "z": ("z", z, {"units": "nm", "long_name": f"{len(z) if uncharged else N_GRID}-point grid over "
                                                       "[-h/2, h/2]"}),
            "z_bin": ("z_bin", z_native, {"units": "nm", "long_name": "native bin centres"}),
            "block": ("block", np.arange(raw.n_blocks)),
        },
        attrs={k: (v if isinstance(v, (int, float, str, np.integer, np.floating)) else str(v))
               for k, v in attrs.items()},
    )
    return ds


def simulate(system: System, controls: RunControls | None = None, out: str | Path | None = None,
             workdir: str | Path | None = None, progress: ProgressCallback | None = None, keep_workdir: bool = False):
    """Run one MD simulation of a ConfinedElectrolyte (charged walls, 502-point grid) or an UnchargedElectrolyte
    (uncharged walls, valencies z_p/z_n, 150-point grid, wall/virial pressures in the attributes) and return its
    profiles as an xarray Dataset; with `out`, also write it (NetCDF) atomically. Raises SimulationFailed (never
    writes `out`) when the run fails; its log is kept in workdir."""
    controls = controls or RunControls()
    own_tmp = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="mdsurrogate-")) if own_tmp else Path(workdir)
    try:
        raw, wall, _ = run_lammps(system, controls, wd, progress=progress)
        ds = profiles_dataset(system, controls, raw, wall)
        if out is not None:
            write_netcdf_atomic(ds, out)
    except SimulationFailed as exc:
        if own_tmp and exc.log_path is not None and exc.log_path.exists():
            keep = Path(tempfile.gettempdir()) / f"mdsurrogate-failed-{os.getpid()}-{int(time.time())}.log"
            shutil.copy(exc.log_path, keep)
            exc.log_path = keep
        raise
    finally:
        if own_tmp and not keep_workdir:
            shutil.rmtree(wd, ignore_errors=True)
    return ds
