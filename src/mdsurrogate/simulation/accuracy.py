"""Numerical checks of the engine on real configurations (the "accuracy trap": LAMMPS' kspace accuracy is relative
to vacuum forces, 80x the forces under `dielectric 80`; docs/engine.md).

`force_errors` equilibrates a system briefly, then evaluates the ion forces of one configuration several ways:
the run's own PPPM settings, a tight PPPM reference (relative accuracy 1e-7), and the authors' mesh of wall point
charges versus uniform sheets (the mesh charges set to zero: the ions-only, non-neutral, slab-corrected sum).
Errors are RMS over ions and all components, relative to the RMS force.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from mdsurrogate.simulation import runtime
from mdsurrogate.simulation.deck import Units, coulomb_cutoff, lammps_input
from mdsurrogate.simulation.settings import RunControls
from mdsurrogate.simulation.system import ConfinedElectrolyte, particle_counts


def _read_forces(path: Path) -> np.ndarray:
    rows = []
    with open(path) as fh:
        lines = fh.read().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("ITEM: ATOMS")) + 1
    for ln in lines[start:]:
        rows.append([float(x) for x in ln.split()])
    arr = np.array(rows)
    return arr[np.argsort(arr[:, 0])][:, 1:4]


def _equilibration_only(settings, equilibration_steps: int) -> dict:
    """Overrides for an input deck used only up to the end of equilibration (10 % of the total): its (never run)
    production part gets blocks short enough to pass the run-length check."""
    every = settings.sample_every
    return {"equilibration_fraction": 0.1, "block_steps": every * max(1, equilibration_steps // every)}


def force_errors(system: ConfinedElectrolyte, controls: RunControls, equilibration_steps: int = 2000,
                 workdir: Path | None = None) -> dict[str, float]:
    """Relative RMS ion-force errors of `controls`' kspace settings and of the sheet wall model.

    Returns {'rms_force': F_rms (kT/sigma), 'kspace_error': |F_run - F_ref|_rms / F_rms,
    'sheet_vs_mesh': |F_sheet - F_mesh|_rms / F_rms (both at the tight reference accuracy)}."""
    s = controls.settings()
    mesh_controls = dataclasses.replace(controls, steps=equilibration_steps * 10, n_blocks=4,
                                        overrides={**controls.overrides, "wall_model": "mesh",
                                                   **_equilibration_only(s, equilibration_steps)})
    wd = Path(workdir or tempfile.mkdtemp(prefix="mdsurrogate-forces-"))
    wd.mkdir(parents=True, exist_ok=True)
    script = lammps_input(system, mesh_controls, wd, production=False)
    kspace = f"kspace_modify order {s.kspace_order} slab 3.0\n"
    script += f"""pair_style lj/cut/coul/long {2 ** (1 / 6):.12g} {coulomb_cutoff(system, s):.12g}
pair_modify shift yes
"""
    # re-issue the pair coefficients (pair_style resets them)
    for line in script.splitlines():
        if line.startswith("pair_coeff"):
            script += line + "\n"
    script += f"""kspace_style pppm {s.kspace_accuracy:g}
{kspace}set type 3 charge 0.0
run 0
write_dump ions custom f_run.txt id fx fy fz modify sort id
kspace_style pppm 1e-7
{kspace}run 0
write_dump ions custom f_sheet.txt id fx fy fz modify sort id
"""
    # restore the mesh charges for the mesh reference
    script += "include mesh_charge.in\nrun 0\nwrite_dump ions custom f_mesh.txt id fx fy fz modify sort id\n"

    q = particle_counts(system).mesh_charge * Units.of(system).charge
    (wd / "mesh_charge.in").write_text(f"set type 3 charge {q:.12g}\n")
    (wd / "in.forces").write_text(script)
    proc = subprocess.run([*runtime.lmp_command(controls.mpi_ranks), "-in", "in.forces", "-log", "log.forces",
                           "-screen", "none", "-nocite"], cwd=wd, env=runtime.engine_env(), capture_output=True,
                          text=True, timeout=3600)
    if proc.returncode != 0:
        log = (wd / "log.forces").read_text(errors="replace") if (wd / "log.forces").exists() else proc.stderr
        raise RuntimeError(f"force check failed: {log[-2000:]}")
    f_run, f_sheet, f_mesh = (_read_forces(wd / f"f_{k}.txt") for k in ("run", "sheet", "mesh"))
    rms = float(np.sqrt(np.mean(f_mesh**2)))
    return {
        "rms_force": rms,
        "kspace_error": float(np.sqrt(np.mean((f_run - f_sheet) ** 2)) / rms),
        "sheet_vs_mesh": float(np.sqrt(np.mean((f_sheet - f_mesh) ** 2)) / rms),
    }


def energy_drift(system: ConfinedElectrolyte, controls: RunControls, nve_steps: int = 5000,
                 equilibration_steps: int = 2000, workdir: Path | None = None) -> dict[str, float]:
    """Total-energy conservation of the run's integrator settings: equilibrate with the thermostat, then
    integrate NVE for `nve_steps` at the preset's timestep. Returns the linear drift of the total energy per ion
    in kT per tau ('drift') and the RMS fluctuation per ion in kT ('fluctuation')."""
    s = controls.settings()
    c = dataclasses.replace(controls, steps=equilibration_steps * 10, n_blocks=4,
                            overrides={**controls.overrides, **_equilibration_only(s, equilibration_steps)})
    wd = Path(workdir or tempfile.mkdtemp(prefix="mdsurrogate-nve-"))
    wd.mkdir(parents=True, exist_ok=True)
    script = lammps_input(system, c, wd, production=False)
    script += f"""unfix thermostat
fix nve ions nve
thermo_style custom step etotal temp
thermo_modify norm yes
thermo 10
reset_timestep 0
run {nve_steps}
"""
    (wd / "in.nve").write_text(script)
    proc = subprocess.run([*runtime.lmp_command(controls.mpi_ranks), "-in", "in.nve", "-log", "log.nve",
                           "-screen", "none", "-nocite"], cwd=wd, env=runtime.engine_env(), capture_output=True,
                          text=True, timeout=3600)
    log = (wd / "log.nve").read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"NVE check failed: {log[-2000:]}")
    block = log[re.search(r"Step\s+TotEng\s+Temp\s*\n(?![\s\S]*Step\s+TotEng)", log).end():].splitlines()
    rows = []
    for ln in block:
        parts = ln.split()
        if len(parts) != 3 or not parts[0].isdigit():
            break
        rows.append([float(x) for x in parts])
    arr = np.array(rows)
    t = arr[:, 0] * s.dt
    e = arr[:, 1]
    slope = np.polyfit(t, e, 1)[0]
    return {"drift": float(slope), "fluctuation": float(np.std(e - np.polyval(np.polyfit(t, e, 1), t))),
            "dt": s.dt, "temperature": float(arr[:, 2].mean())}
