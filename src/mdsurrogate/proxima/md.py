"""MD driver for PROXIMA runs: ASE integrators, a per-step JSONL log written as it runs, a rich progress bar.

NPT: ASE `NPT` (Nose-Hoover + Parrinello-Rahman, as in the paper, 3.1); NVT: Nose-Hoover chain; NVE: Verlet.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.md.nose_hoover_chain import NoseHooverChainNVT
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from ase.md.verlet import VelocityVerlet

try:
    from ase.md.melchionna import MelchionnaNPT as NPT  # ase >= 3.26 name of ase.md.npt.NPT
except ImportError:  # older ase
    from ase.md.npt import NPT

from mdsurrogate.proxima.calculator import ProximaCalculator


@dataclass
class MDSettings:
    """Integrator settings (paper 3.1: 1 fs steps; 800 K NPT, 1573 K NVT)."""

    kind: str = "npt"  # npt (Nose-Hoover + Parrinello-Rahman) | npt_berendsen | nvt | nve
    temperature_K: float = 800.0
    steps: int = 1024
    dt_fs: float = 1.0
    ttime_fs: float = 25.0  # thermostat time (NPT)
    ptime_fs: float = 75.0  # barostat time (NPT)
    bulk_modulus_GPa: float = 100.0  # Si, sets pfactor = ptime^2 B
    tdamp_fs: float = 100.0  # NVT chain damping
    sample_every: int = 0  # store positions every k steps (0: never)


@dataclass
class RunTrace:
    """Per-step series of one run."""

    volume: list = field(default_factory=list)
    energy: list = field(default_factory=list)
    temperature: list = field(default_factory=list)
    lambda_target: list = field(default_factory=list)
    used_surrogate: list = field(default_factory=list)
    uq: list = field(default_factory=list)
    error: list = field(default_factory=list)
    threshold: list = field(default_factory=list)
    step_time: list = field(default_factory=list)
    positions: list = field(default_factory=list)
    cell: list = field(default_factory=list)
    wall_s: float = 0.0

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for k in ("volume", "energy", "temperature", "lambda_target", "used_surrogate", "step_time"):
            out[k] = np.asarray(getattr(self, k), dtype=float)
        for k in ("uq", "error", "threshold"):
            out[k] = np.array([np.nan if v is None else v for v in getattr(self, k)], dtype=float)
        if self.positions:
            out["positions"] = np.asarray(self.positions)
            out["cell"] = np.asarray(self.cell)
        return out


def init_velocities(atoms: Atoms, temperature_K: float, seed: int) -> None:
    """Maxwell-Boltzmann velocities from a seeded generator, centre-of-mass motion removed."""
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    Stationary(atoms)


def make_dynamics(atoms: Atoms, md: MDSettings):
    dt = md.dt_fs * units.fs
    if md.kind == "npt":
        pfactor = (md.ptime_fs * units.fs) ** 2 * md.bulk_modulus_GPa * units.GPa
        return NPT(atoms, timestep=dt, temperature_K=md.temperature_K, externalstress=0.0,
                   ttime=md.ttime_fs * units.fs, pfactor=pfactor)
    if md.kind == "npt_berendsen":  # paper 3.2: the barostat without momentum (no fluctuations expected)
        from ase.md.nptberendsen import NPTBerendsen  # noqa: PLC0415

        return NPTBerendsen(atoms, timestep=dt, temperature_K=md.temperature_K, taut=md.ttime_fs * 4 * units.fs,
                            pressure_au=0.0, taup=md.ptime_fs * 10 * units.fs,
                            compressibility_au=1.0 / (md.bulk_modulus_GPa * units.GPa))
    if md.kind == "nvt":
        return NoseHooverChainNVT(atoms, timestep=dt, temperature_K=md.temperature_K, tdamp=md.tdamp_fs * units.fs)
    if md.kind == "nve":
        return VelocityVerlet(atoms, timestep=dt)
    raise ValueError(f"unknown MD kind {md.kind!r}")


def run_md(atoms: Atoms, calc: ProximaCalculator, md: MDSettings, log_path: str | Path | None = None,
           progress=None, label: str = "") -> RunTrace:
    """Run `md.steps` steps with `calc`, logging every step (JSONL, flushed) and advancing a rich progress bar."""
    atoms.calc = calc
    dyn = make_dynamics(atoms, md)
    trace = RunTrace()
    log = None
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "w")
    task = progress.add_task(label or md.kind, total=md.steps) if progress is not None else None
    state = {"t": time.perf_counter(), "step": 0}

    def observe():
        now = time.perf_counter()
        dt_step = now - state["t"]
        state["t"] = now
        forces = atoms.get_forces()
        last = dict(calc.last)
        rec = {"step": state["step"], "step_time_s": dt_step, "energy": float(atoms.get_potential_energy()),
               "max_force": float(np.linalg.norm(forces, axis=1).max()), "volume": float(atoms.get_volume()),
               "temperature": float(atoms.get_temperature()), **last}
        trace.volume.append(rec["volume"])
        trace.energy.append(rec["energy"] + float(atoms.get_kinetic_energy()))
        trace.temperature.append(rec["temperature"])
        trace.lambda_target.append(last.get("lambda_target", 1.0))
        trace.used_surrogate.append(last.get("used_surrogate", False))
        trace.uq.append(last.get("uq"))
        trace.error.append(last.get("error"))
        trace.threshold.append(last.get("threshold"))
        trace.step_time.append(dt_step)
        if md.sample_every and state["step"] % md.sample_every == 0:
            trace.positions.append(atoms.get_positions().copy())
            trace.cell.append(atoms.cell.array.copy())
        if log is not None:
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if task is not None and state["step"] > 0:
            progress.advance(task)
        state["step"] += 1

    t0 = time.perf_counter()
    try:
        dyn.attach(observe, interval=1)
        dyn.run(md.steps)
    finally:
        calc.flush()
        if log is not None:
            log.close()
    trace.wall_s = time.perf_counter() - t0
    return trace
