"""The engine's numerical recipes and run controls: `EngineSettings` (the two presets, "authors" and
"production", docs/engine.md), `RunControls` (run length, seed, ranks, target error, timeout) and
`SimulationFailed`, the one error a run reports, with its reason."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


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
        for name, lo, hi in (("time_tau", 0.0, 1e8), ("steps", 0, 10**10), ("timeout_s", 0.0, 1e7),
                             ("target_rel_error", 0.0, 1.0)):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or (name == "steps" and not isinstance(v, int)) or not lo < v <= hi):
                raise ValueError(f"{name} must be {'an integer' if name == 'steps' else 'a number'} in "
                                 f"({lo:g}, {hi:g}], got {v!r}")
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
        self.schedule()

    def settings(self) -> EngineSettings:
        return dataclasses.replace(PRESETS[self.preset], **self.overrides)

    def schedule(self) -> tuple[int, int]:
        """(equilibration steps, production steps). Production is a whole number of stored blocks (the rest is
        dropped), at least n_blocks of them; a request short of that by less than half a block is rounded up to
        n_blocks blocks, a shorter one is refused (ValueError naming steps or time_tau and the minimum)."""
        s = self.settings()
        total = self.steps if self.steps is not None else int(round((self.time_tau or s.time_tau) / s.dt))
        eq = int(round(s.equilibration_fraction * total))
        n_store = (total - eq) // s.block_steps
        if n_store < self.n_blocks:
            if (total - eq) / s.block_steps < self.n_blocks - 0.5:
                minimum = math.ceil((self.n_blocks - 0.5) * s.block_steps / (1.0 - s.equilibration_fraction))
                what = (f"steps = {total}" if self.steps is not None
                        else f"time_tau = {total * s.dt:g} ({total} steps of dt = {s.dt:g})")
                raise ValueError(f"{what} is too short: {self.n_blocks} blocks of {s.block_steps} production steps "
                                 f"after {s.equilibration_fraction:.0%} equilibration need at least {minimum} steps "
                                 f"({minimum * s.dt:g} tau); lower n_blocks or overrides.block_steps for a shorter "
                                 "run")
            n_store = self.n_blocks
        return eq, n_store * s.block_steps


class SimulationFailed(RuntimeError):
    """A run that did not produce a profile. `reason` is one of: lammps_error, lost_atoms, nan, blowup,
    timeout, no_output; `log_path` keeps the LAMMPS log."""

    def __init__(self, reason: str, detail: str, log_path: Path | None = None):
        self.reason = reason
        self.detail = detail
        self.log_path = log_path
        super().__init__(f"{reason}: {detail}" + (f" (log: {log_path})" if log_path else ""))
