"""A fast stand-in for the MD engine with the same call signature and result layout.

`simulate(system, controls, out, workdir)` writes, atomically, a per-run Dataset shaped like the engine's
(502-point z grid; n_plus, n_minus and their errors in M; charge_density; integrated_charge; run attrs). The
profiles are a smooth double-layer shape plus seeded noise: useful to test campaign logic and the dataset
pipeline end to end in seconds, meaningless as physics. It "runs" at SYNTHETIC_STEPS_PER_S steps per second
(sleeping) and fails, as a run that lost atoms would, whenever its seed equals FAIL_SEED.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from mdsurrogate import __version__
from mdsurrogate.io import write_netcdf_atomic
from mdsurrogate.provenance import git_commit
from mdsurrogate.simulation.derived import charge_density, integrated_charge
from mdsurrogate.simulation.system import N_GRID

SYNTHETIC_STEPS_PER_S = 10_000.0
FAIL_SEED = 13


class SyntheticFailure(RuntimeError):
    def __init__(self, reason: str, log_path: Path | None = None):
        super().__init__(reason)
        self.reason = reason
        self.log_path = log_path


def simulate(system, controls, out: Path, workdir: Path | None = None, progress=None):
    import xarray as xr  # noqa: PLC0415

    t0, t_start = time.monotonic(), time.time()
    steps = int(getattr(controls, "steps", None) or 2000)
    seed = int(controls.seed)
    n_blocks = 5
    for b in range(n_blocks):
        time.sleep(steps / SYNTHETIC_STEPS_PER_S / n_blocks)
        if progress is not None:
            progress(b + 1, n_blocks, 0.1 / np.sqrt(b + 1))
    if seed == FAIL_SEED:
        log = None
        if workdir is not None:
            log = Path(workdir) / "synthetic.log"
            log.write_text("ERROR: Lost atoms (synthetic failure for seed 13)\n")
        raise SyntheticFailure(f"lost atoms (synthetic failure, seed {seed})", log)
    rng = np.random.default_rng(seed)
    h, c = system.h, system.c
    z = np.linspace(-h / 2, h / 2, N_GRID)
    wall_dist = h / 2 - np.abs(z)
    debye = 0.304 / np.sqrt(c)
    excl_p, excl_m = system.d_plus / 2, system.d_minus / 2
    shape = np.exp(-np.clip(wall_dist - excl_p, 0, None) / debye)
    n_plus = np.where(wall_dist > excl_p, c * (1 + 0.5 * shape), 0.0)
    n_minus = np.where(wall_dist > excl_m, c * (1 - 0.3 * shape), 0.0)
    err_p = 0.02 * c + 0.01 * n_plus
    err_m = 0.02 * c + 0.01 * n_minus
    n_plus = np.clip(n_plus + rng.normal(0, 1, N_GRID) * err_p * (n_plus > 0), 0, None)
    n_minus = np.clip(n_minus + rng.normal(0, 1, N_GRID) * err_m * (n_minus > 0), 0, None)
    rho = charge_density(n_plus, n_minus)
    ds = xr.Dataset(
        {
            "n_plus": ("z", n_plus, {"units": "M"}),
            "n_minus": ("z", n_minus, {"units": "M"}),
            "n_plus_err": ("z", err_p, {"units": "M"}),
            "n_minus_err": ("z", err_m, {"units": "M"}),
            "charge_density": ("z", rho, {"units": "C/m^3"}),
            "integrated_charge": ("z", integrated_charge(z, rho, system.sigma_s), {"units": "C/m^2"}),
        },
        coords={"z": ("z", z, {"units": "nm"})},
        attrs={**system.inputs(), "preset": str(getattr(controls, "preset", "synthetic")), "seed": seed,
               "steps": steps, "dt": 0.001, "wall_time_s": time.monotonic() - t0, "lammps_version": "synthetic",
               "git_commit": git_commit(), "mdsurrogate_version": __version__, "engine": "synthetic",
               "pid": os.getpid(), "mpi_ranks": int(getattr(controls, "mpi_ranks", 1)),
               "t_start": t_start, "t_end": time.time(), **_schedule_attrs(controls)},
    )
    write_netcdf_atomic(ds, out)
    return ds


def _schedule_attrs(controls) -> dict:
    """The run-control attributes the engine records (schedule, engine settings), so that synthetic campaigns
    exercise the same bookkeeping (e.g. `campaign.reuse`)."""
    if not hasattr(controls, "schedule"):
        return {}
    eq, prod = controls.schedule()
    return {"equilibration_steps": eq, "production_steps_planned": prod, "n_error_blocks": controls.n_blocks,
            **controls.settings().as_attrs()}


def simulate_truncated(system, controls, out: Path, workdir: Path | None = None):
    """A broken engine for tests: writes half a file non-atomically and reports success."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
