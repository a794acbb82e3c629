"""The LAMMPS input deck of a confined-electrolyte run: reduced units, the data file (box and, for the mesh wall
model, the frozen wall charges), the Coulomb cutoff rule and the input script (docs/engine.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdsurrogate.simulation.settings import EngineSettings, RunControls
from mdsurrogate.simulation.system import (
    BJERRUM_LENGTH_NM,
    ConfinedElectrolyte,
    UnchargedElectrolyte,
    particle_counts,
)

#: Either system the engine runs; both expose h, c, d_plus, d_minus, sigma_s, z_p, z_n, kind and key().
System = ConfinedElectrolyte | UnchargedElectrolyte
#: Per-block averages of the wall forces and the zz virial, written for uncharged-wall runs (contact theorem,
#: docs/engine.md): step, f_lo, f_hi (summed over both ion fixes, LJ force units), p_int_zz, p_wall_zz.
WALL_FILE = "wall_forces.txt"

WCA_CUT = 2.0 ** (1.0 / 6.0)
#: Empty space (sigma) between each wall and the box face in z; the box is h + 2 BOX_PAD high.
BOX_PAD = 0.5
_GROUPS = """group cations type 1
group anions type 2
group ions type 1 2
group mesh type 3
"""


#: Verlet skin (sigma). Only speed depends on it (lists are rebuilt whenever an ion moved half of it). Measured
#: 2026-11-27 on a c = 2 M system (974 ions, dt = 0.01 tau, 4000 steps): skin 0.3 -> 996 list builds,
#: pair + kspace + neigh 12.8-13.2 s; 0.6 -> 543 builds, 10.5 s; 1.0 -> 319 builds, 11.3 s; 1.5 -> 13.0 s.
NEIGHBOR_SKIN = 0.6


def coulomb_cutoff(system: System, settings: EngineSettings, neighbours: float = 150.0,
                   bounds_nm: tuple[float, float] = (2.0, 4.5)) -> float:
    """Real-space Coulomb cutoff in sigma. A fixed cutoff in sigma (the authors' 8) makes dense systems pair-bound
    and dilute ones kspace-bound; with `settings.cutoff=None` the cutoff (nm) holds about `neighbours` ions
    within it, clipped to `bounds_nm` (measured optimum on 2 cores: 2.5 nm at 2 M, 3.5 nm at 0.75 M, >= 4 nm at
    0.1 M). PPPM then sizes its grid for the requested accuracy, so the forces are equally accurate."""
    sigma = min(system.d_plus, system.d_minus)
    if settings.cutoff is not None:
        return settings.cutoff
    counts = particle_counts(system)
    n_total = (counts.n_cations + counts.n_anions) / (counts.box_length_nm**2 * system.h)
    rc_nm = (neighbours / (4.0 / 3.0 * math.pi * n_total)) ** (1.0 / 3.0)
    return float(np.clip(rc_nm, *bounds_nm)) / sigma


@dataclass
class Units:
    """Reduced LJ units of one system: length sigma (nm) = smaller ion diameter, energy kT, mass 1."""

    sigma_nm: float
    charge: float  # reduced charge of a unit ion, sqrt(l_B / sigma), so that q_i q_j / r = l_B / r in kT

    @classmethod
    def of(cls, system: System) -> "Units":
        sigma = min(system.d_plus, system.d_minus)
        return cls(sigma_nm=sigma, charge=math.sqrt(BJERRUM_LENGTH_NM / sigma))


def _data_file(system: System, settings: EngineSettings, units: Units, path: Path) -> None:
    """Box (plus, for the mesh model, the frozen wall point charges) as a LAMMPS data file."""
    counts = particle_counts(system)
    L = counts.box_length_nm / units.sigma_nm
    h2 = system.h / 2 / units.sigma_nm
    pad = BOX_PAD
    lines = ["mdsurrogate confined electrolyte", ""]
    atoms = []
    if settings.wall_model == "mesh" and counts.counterions > 0:
        n_side = int(round(math.sqrt(counts.mesh_per_wall)))
        a = L / n_side
        q = counts.mesh_charge * units.charge
        i = 0
        for zw in (-h2, h2):
            for ix in range(n_side):
                for iy in range(n_side):
                    i += 1
                    atoms.append(f"{i} 3 {q:.12g} {(ix + 0.5) * a:.10g} {(iy + 0.5) * a:.10g} {zw:.10g}")
    lines += [f"{len(atoms)} atoms", "3 atom types", "",
              f"0 {L:.10g} xlo xhi", f"0 {L:.10g} ylo yhi", f"{-h2 - pad:.10g} {h2 + pad:.10g} zlo zhi", "",
              "Masses", "", "1 1.0", "2 1.0", "3 1.0", ""]
    if atoms:
        lines += ["Atoms # charge", "", *atoms, ""]
    path.write_text("\n".join(lines))


def lammps_input(system: System, controls: RunControls, workdir: Path, production: bool = True) -> str:
    """The complete LAMMPS input script of a run (reduced LJ units); production=False stops after equilibration
    (used by the force-accuracy checks, which append their own commands)."""
    s = controls.settings()
    u = Units.of(system)
    counts = particle_counts(system)
    eq_steps, prod_steps = controls.schedule()
    h2 = system.h / 2 / u.sigma_nm
    dp, dm = system.d_plus / u.sigma_nm, system.d_minus / u.sigma_nm
    dpm = 0.5 * (dp + dm)
    seed = controls.seed + 1  # LAMMPS seeds must be > 0
    rc = coulomb_cutoff(system, s)
    n_block_repeat = s.block_steps // s.sample_every
    bin_width = 2 * h2 / max(1, round(2 * h2 / s.bin_width))  # whole bins across the slit: mirror-symmetric bins
    _data_file(system, s, u, workdir / "system.data")
    stop = workdir / "STOP"
    # the blow-up guard reads the ions' temperature: with the mesh walls, `temp` averages over the frozen mesh atoms too
    # (T_ions x N_ions / N_all), which let ions reach ~100 kT before the halt fired
    temperature = ("compute tion ions temp\nvariable T equal c_tion" if s.wall_model == "mesh"
                   else "variable T equal temp")  # sheets: no mesh atoms, the same number (decks unchanged)
    lines = f"""# mdsurrogate {system.key()} preset={s.name} seed={controls.seed}
units lj
atom_style charge
dimension 3
boundary p p f
processors * * 1
read_data system.data
pair_style lj/cut/coul/long {WCA_CUT:.12g} {rc:.12g}
pair_modify shift yes
pair_coeff 1 1 1.0 {dp:.12g} {WCA_CUT * dp:.12g}
pair_coeff 2 2 1.0 {dm:.12g} {WCA_CUT * dm:.12g}
pair_coeff 1 2 1.0 {dpm:.12g} {WCA_CUT * dpm:.12g}
pair_coeff * 3 0.0 1.0 0.0
neighbor {NEIGHBOR_SKIN:g} bin
neigh_modify every 1 delay 0 check yes exclude type 3 3
region zone_plus block INF INF INF INF {-h2 + dp / 2:.10g} {h2 - dp / 2:.10g} units box
region zone_minus block INF INF INF INF {-h2 + dm / 2:.10g} {h2 - dm / 2:.10g} units box
"""
    # insert the larger ions first; random sequential insertion with a reduced overlap distance, then minimise
    order = [(1, counts.n_cations, dp, "zone_plus"), (2, counts.n_anions, dm, "zone_minus")]
    order.sort(key=lambda t: -t[2])
    for k, (typ, n, d, region) in enumerate(order):
        if n > 0:
            lines += (f"create_atoms {typ} random {n} {seed + 17 * k} {region} overlap {0.7 * d:.6g} "
                      f"maxtry 200 units box\n")
    lines += _GROUPS + f"""set type 1 charge {system.z_p * u.charge:.12g}
set type 2 charge {system.z_n * u.charge:.12g}
kspace_style pppm {s.kspace_accuracy:g}
kspace_modify order {s.kspace_order} slab 3.0
fix wall_plus cations wall/lj126 zlo {-h2:.12g} 1.0 {dp / 2:.12g} {WCA_CUT * dp / 2:.12g} zhi {h2:.12g} 1.0 {dp / 2:.12g} {WCA_CUT * dp / 2:.12g} units box
fix wall_minus anions wall/lj126 zlo {-h2:.12g} 1.0 {dm / 2:.12g} {WCA_CUT * dm / 2:.12g} zhi {h2:.12g} 1.0 {dm / 2:.12g} {WCA_CUT * dm / 2:.12g} units box
fix_modify wall_plus energy yes
fix_modify wall_minus energy yes
fix freeze mesh setforce 0.0 0.0 0.0
thermo_style custom step temp pe etotal press
thermo_modify flush yes lost error norm yes
thermo 1000
min_style cg
min_modify dmax 0.05
minimize 1.0e-4 1.0e-6 2000 20000
reset_timestep 0
velocity ions create 1.0 {seed} dist gaussian mom yes rot no
fix thermostat ions nvt temp 1.0 1.0 {s.tdamp:.10g}
{temperature}
fix blowup ions halt {max(s.block_steps // 2, 100)} v_T > 5.0 error hard message yes
timestep {s.dt:.10g}
thermo {max(s.block_steps // 2, 100)}
run {eq_steps}
"""
    if not production:
        return lines
    lines += f"""reset_timestep 0
compute bins ions chunk/atom bin/1d z {-h2:.12g} {bin_width:.12g} bound z {-h2:.12g} {h2:.12g} units box
fix prof_plus cations ave/chunk {s.sample_every} {n_block_repeat} {s.block_steps} bins density/number ave one file profile_plus.txt
fix prof_minus anions ave/chunk {s.sample_every} {n_block_repeat} {s.block_steps} bins density/number ave one file profile_minus.txt
variable stop_requested equal is_file({stop.name})
fix stop_check all halt {s.block_steps} v_stop_requested == 1 error soft message no
{_wall_output(s, n_block_repeat) if system.kind == "uncharged" else ""}run {prod_steps}
print "MDSURROGATE_DONE"
"""
    return lines


def _wall_output(s: EngineSettings, n_block_repeat: int) -> str:
    """Uncharged walls: block averages, sampled like the profiles, of the force each wall exerts on the ions and of
    the zz virial split into the ions' own part (kinetic + pair + kspace) and the walls' part (LAMMPS tallies a wall
    force f at distance delta as f delta), in WALL_FILE: step, f_lo, f_hi, p_int_zz, p_wall_zz (LJ units, pressures
    over the box volume). The wall-force sign of LAMMPS is the force on the wall; we store magnitudes later."""
    return ("fix_modify wall_plus virial yes\n"
            "fix_modify wall_minus virial yes\n"
            "compute p_int all pressure thermo_temp ke pair kspace\n"
            "compute p_wall all pressure NULL fix\n"
            "variable f_lo equal f_wall_plus[1]+f_wall_minus[1]\n"
            "variable f_hi equal f_wall_plus[2]+f_wall_minus[2]\n"
            f"fix wall_force all ave/time {s.sample_every} {n_block_repeat} {s.block_steps} v_f_lo v_f_hi "
            f"c_p_int[3] c_p_wall[3] file {WALL_FILE}\n")
