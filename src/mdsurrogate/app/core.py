"""The app's logic without any widget: inputs and their checks, ML answers from the surrogate, MD runs in a child
process (one process group per run, every process marked so that Cancel can kill all of them), the Auto
decision, the dataset look-up, and the downloads. `ui.py` only draws this.

Each browser session owns one `Session` (its work folder, its MD job, its results); nothing here is shared
between sessions except read-only caches (the shipped surrogate, the project's dataset).
"""

from __future__ import annotations

import atexit
import functools
import glob
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from mdsurrogate.campaign.backends import marked_processes
from mdsurrogate.io import write_json_atomic
from mdsurrogate.simulation.derived import charge_density, integrated_charge, screening_length
from mdsurrogate.simulation.settings import PRESETS, RunControls
from mdsurrogate.simulation.system import (
    DESIGN_RANGES,
    INPUT_LONG_NAMES,
    INPUT_NAMES,
    INPUT_UNITS,
    ConfinedElectrolyte,
    particle_counts,
)

#: Every process of an app MD run (worker, mpiexec, LAMMPS ranks) carries this variable with the run's id.
RUN_MARKER_ENV = "MDSURROGATE_APP_RUN"
#: Base folder of the sessions' work folders (default: <tmp>/mdsurrogate-app).
WORKDIR_ENV = "MDSURROGATE_APP_WORKDIR"
#: The project's dataset files (default: data/ of the checkout the package runs from).
DATA_ENV = "MDSURROGATE_APP_DATA"

DEFAULT_INPUTS = {"h": 4.4, "c": 0.5, "d_plus": 0.415, "d_minus": 0.415, "sigma_s": -0.015}
MIN_LENGTH_TAU = 2.5


# ---------------------------------------------------------------- inputs


def check_system(values: dict[str, float]) -> ConfinedElectrolyte:
    """The system of these inputs; raises InvalidInput (a ValueError naming the input and its range), as the CLI."""
    return ConfinedElectrolyte(**{k: values[k] for k in INPUT_NAMES})


def run_controls(length_tau: float, seed: int, ranks: int, target_error: float | None = None) -> RunControls:
    """Production-preset controls for a run of `length_tau` (equilibration included). Runs shorter than the
    preset's 20 blocks of 1000 steps get shorter blocks (down to 10 steps), so that a few hundred steps work.
    Raises ValueError naming the control."""
    for name, v in (("simulation length", length_tau), ("seed", seed), ("MPI ranks", ranks)):
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name} must be a number, got {v!r}")
    if not length_tau >= MIN_LENGTH_TAU:
        raise ValueError(f"simulation length must be at least {MIN_LENGTH_TAU} tau, got {length_tau:g}")
    if int(seed) != seed or int(ranks) != ranks:
        raise ValueError("seed and MPI ranks must be whole numbers")
    cores = os.cpu_count() or 1
    if not 1 <= ranks <= max(cores, 1):
        raise ValueError(f"MPI ranks must be in [1, {cores}] (the cores of this machine), got {int(ranks)}")
    if target_error is not None and not (isinstance(target_error, (int, float)) and 0 < target_error < 1):
        raise ValueError(f"target error must be in (0, 1) (a relative standard error), got {target_error!r}")
    s = PRESETS["production"]
    steps = int(round(length_tau / s.dt))
    n_blocks = 20
    production = steps - int(round(s.equilibration_fraction * steps))
    block = (production // n_blocks) // s.sample_every * s.sample_every
    block = max(s.sample_every, min(s.block_steps, block))
    overrides = {} if block == s.block_steps else {"block_steps": block}
    try:
        return RunControls(steps=steps, n_blocks=n_blocks, seed=int(seed), mpi_ranks=int(ranks),
                           target_rel_error=target_error, overrides=overrides)
    except ValueError as exc:
        raise ValueError(f"simulation length/seed/ranks: {exc}") from None


def range_label(name: str) -> str:
    lo, hi = DESIGN_RANGES[name]
    return f"{lo:g} to {hi:g} {INPUT_UNITS[name]}"


# ---------------------------------------------------------------- profiles


def _derived(ds: xr.Dataset, system: ConfinedElectrolyte) -> xr.Dataset:
    z = ds["z"].values
    rho = charge_density(ds["n_plus"].values, ds["n_minus"].values)
    sigma_eff = particle_counts(system).sigma_s_effective
    S = integrated_charge(z, rho, sigma_eff)
    ds["charge_density"] = ("point", rho, {"units": "C/m^3", "long_name": "net charge density rho(z)"})
    ds["integrated_charge"] = ("point", S, {"units": "C/m^2", "long_name": "integrated charge S(z)"})
    ds.attrs["decay_length_nm"] = screening_length(z, S, system.h)
    ds.attrs["sigma_s_effective"] = sigma_eff
    return ds


def _attrs(system: ConfinedElectrolyte, source: str, label: str) -> dict:
    return {**system.inputs(), "system_key": system.key(), "source": source, "label": label}


def ml_profile(sur, system: ConfinedElectrolyte) -> xr.Dataset:
    """The surrogate's answer on its own grid: z, n_plus, n_minus, their ensemble spread (n_*_std), rho, S and the
    decay length (attrs). Raises ExtrapolationError outside the training ranges."""
    p = sur.predict(system.inputs()).isel(system=0)
    ds = xr.Dataset(
        {"n_plus": ("point", p["n_plus"].values.astype(float), {"units": "M", "long_name": "cation density"}),
         "n_minus": ("point", p["n_minus"].values.astype(float), {"units": "M", "long_name": "anion density"}),
         "n_plus_std": ("point", p["n_plus_std"].values.astype(float), {"units": "M", "long_name": "ensemble spread"}),
         "n_minus_std": ("point", p["n_minus_std"].values.astype(float),
                         {"units": "M", "long_name": "ensemble spread"})},
        coords={"z": ("point", p["z"].values.astype(float), {"units": "nm"})},
        attrs={**_attrs(system, "ML", f"ML {system.key()}"), "surrogate": p.attrs.get("surrogate", ""),
               "weights_sha256": p.attrs.get("weights_sha256", ""), "n_members": p.attrs.get("n_members", 0)})
    return _derived(ds, system)


def md_profile(run: xr.Dataset, system: ConfinedElectrolyte, source: str = "MD", label: str | None = None
               ) -> xr.Dataset:
    """An MD result (an engine run or one system of the project's dataset) in the app's layout: z, n_plus,
    n_minus, their standard errors (n_*_err), rho, S and the decay length."""
    keep = {v: run[v].values.astype(float) for v in ("n_plus", "n_minus", "n_plus_err", "n_minus_err")}
    ds = xr.Dataset({k: ("point", v, {"units": "M"}) for k, v in keep.items()},
                    coords={"z": ("point", np.asarray(run["z"].values, dtype=float), {"units": "nm"})},
                    attrs=_attrs(system, source, label or f"{source} {system.key()}"))
    for k in ("rel_error", "production_time_tau", "wall_time_s", "seed", "run_id"):
        if k in run.attrs:
            ds.attrs[k] = run.attrs[k]
    return _derived(ds, system)


@functools.cache
def shipped_surrogate():
    """The surrogate shipped in the package, loaded once per server process (read-only)."""
    from mdsurrogate.surrogate import Surrogate

    return Surrogate.load()


# ---------------------------------------------------------------- the project's dataset


def data_dir() -> Path | None:
    """data/ of the checkout this package runs from (or $MDSURROGATE_APP_DATA); None when absent (a wheel)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env) if Path(env).is_dir() else None
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "data").is_dir():
            return parent / "data"
    return None


class DatasetIndex:
    """The project's MD dataset (data/paper_subset_1000.nc and data/paper_grid_full/part-*.nc), loaded on first
    use, looked up by exact inputs."""

    def __init__(self, directory: Path | None = None):
        self.directory = directory if directory is not None else data_dir()
        self._ds: xr.Dataset | None = None
        self._lock = threading.Lock()
        self.error: str | None = None

    def files(self) -> list[str]:
        if self.directory is None:
            return []
        first = self.directory / "paper_subset_1000.nc"
        out = [str(first)] if first.exists() else []
        return out + sorted(glob.glob(str(self.directory / "paper_grid_full" / "part-*.nc")))

    def available(self) -> bool:
        return bool(self.files())

    def _load(self) -> xr.Dataset | None:
        with self._lock:
            if self._ds is None and self.error is None:
                files = self.files()
                if not files:
                    self.error = "the project's dataset (data/ of a checkout) is not present"
                    return None
                try:
                    from mdsurrogate.dataset import load_parts

                    full = load_parts(*files)
                    keep = [*INPUT_NAMES, "n_plus", "n_minus", "n_plus_err", "n_minus_err"]
                    self._ds = full[keep].load()
                except Exception as exc:  # noqa: BLE001 - a damaged file: Auto then runs MD and says why
                    self.error = f"the project's dataset could not be read ({type(exc).__name__}: {exc})"
            return self._ds

    def lookup(self, system: ConfinedElectrolyte) -> xr.Dataset | None:
        """The dataset's run of exactly this system, as an app profile (source 'dataset'), or None."""
        ds = self._load()
        if ds is None:
            return None
        hit = np.ones(ds.sizes["system"], dtype=bool)
        for k in INPUT_NAMES:
            hit &= np.isclose(ds[k].values, getattr(system, k), rtol=0, atol=1e-6)
        idx = np.nonzero(hit)[0]
        if not len(idx):
            return None
        row = ds.isel(system=int(idx[0]))
        return md_profile(row, system, source="dataset", label=f"dataset MD {system.key()}")


@functools.cache
def project_dataset() -> DatasetIndex:
    return DatasetIndex()


# ---------------------------------------------------------------- Auto


@dataclass
class Decision:
    kind: str  # "ml", "dataset" or "md"
    reason: str
    result: xr.Dataset | None = None  # the answer for "ml" and "dataset"
    ml: xr.Dataset | None = None  # the ML prediction when there is one (to overlay)


def auto_decide(sur, system: ConfinedElectrolyte, spread_bound: float, dataset: DatasetIndex | None) -> Decision:
    """ML when the inputs are inside the surrogate's training ranges and the largest ensemble spread of the profile
    is at most `spread_bound` (M); otherwise the project's dataset when it holds this exact system; otherwise MD."""
    from mdsurrogate.surrogate.ensemble import ExtrapolationError

    ml = None
    try:
        ml = ml_profile(sur, system)
    except ExtrapolationError as exc:
        why = f"outside the surrogate's training ranges ({exc})"
    else:
        spread = float(max(ml["n_plus_std"].max(), ml["n_minus_std"].max()))
        if spread <= spread_bound:
            return Decision("ml", f"ML: inputs inside the training ranges and the ensemble spread "
                                  f"{spread:.3f} M <= bound {spread_bound:g} M", ml, ml)
        why = f"the ensemble spread {spread:.3f} M exceeds the bound {spread_bound:g} M"
    if dataset is not None:
        hit = dataset.lookup(system)
        if hit is not None:
            return Decision("dataset", f"dataset: {why}, and this exact system was already simulated in the "
                                       "project's dataset", hit, ml)
        extra = f" ({dataset.error})" if dataset.error else " and the project's dataset does not hold this system"
    else:
        extra = ""
    return Decision("md", f"MD: {why}{extra}", None, ml)


# ---------------------------------------------------------------- MD runs


@dataclass
class MDJob:
    """One MD run in a child process (`python -m mdsurrogate.app.mdworker job.json`), its own process group."""

    system: ConfinedElectrolyte
    controls: RunControls
    directory: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    proc: subprocess.Popen | None = None
    cancelled: bool = False
    started: float = 0.0

    def start(self) -> "MDJob":
        self.directory.mkdir(parents=True, exist_ok=True)
        job = {"system": self.system.inputs(),
               "controls": {"steps": self.controls.steps, "n_blocks": self.controls.n_blocks,
                            "seed": self.controls.seed, "mpi_ranks": self.controls.mpi_ranks,
                            "target_rel_error": self.controls.target_rel_error,
                            "overrides": dict(self.controls.overrides)},
               "out": str(self.directory)}
        write_json_atomic(self.directory / "job.json", job)
        env = {**os.environ, RUN_MARKER_ENV: self.run_id, "OMP_NUM_THREADS": "1"}
        with open(self.directory / "worker.log", "w") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "mdsurrogate.app.mdworker",
                                          str(self.directory / "job.json")],
                                         stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                         cwd=self.directory)
        self.started = time.monotonic()
        return self

    def state(self) -> dict:
        """{'status': running|done|failed|cancelled, 'blocks', 'planned', 'rel_error', 'detail', 'elapsed_s'}."""
        out = {"status": "running", "blocks": 0, "planned": 0, "rel_error": float("inf"), "detail": "",
               "elapsed_s": time.monotonic() - self.started if self.started else 0.0}
        try:
            out.update(json.loads((self.directory / "progress.json").read_text()))
        except (OSError, ValueError):
            pass
        if self.proc is None:
            return {**out, "status": "failed", "detail": "not started"}
        if self.proc.poll() is None:
            out["status"] = "running"
            return out
        try:
            status = json.loads((self.directory / "status.json").read_text())
        except (OSError, ValueError):
            status = None
        if status is not None and status.get("status") == "done" and (self.directory / "profiles.nc").is_file():
            out.update(status)  # finished before a cancel took effect: the result is kept, not thrown away
            return out
        if self.cancelled:
            return {**out, "status": "cancelled", "detail": "cancelled by the user"}
        if status is None:
            status = {"status": "failed", "detail": f"the MD worker exited with code {self.proc.returncode}: "
                                                    f"{self.worker_log()[-300:]}"}
        out.update(status)
        return out

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cancel(self, timeout_s: float = 10.0) -> int:
        """Stop the run: SIGTERM the worker (it kills its LAMMPS process group), then SIGKILL every process still
        carrying the run's marker. Returns how many processes survived (0 on success)."""
        self.cancelled = True
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + timeout_s
        while True:
            left = marked_processes(self.run_id, RUN_MARKER_ENV, skip_zombies=True)
            if self.proc.poll() is None:
                left.append(self.proc.pid)
            if not left or time.monotonic() > deadline:
                break
            for pid in set(left):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
        return len(left)

    def worker_log(self) -> str:
        try:
            return (self.directory / "worker.log").read_text(errors="replace")
        except OSError:
            return ""

    def lammps_log(self) -> str:
        for p in (self.directory / "log.lammps", self.directory / "lammps" / "log.lammps"):
            if p.exists():
                return p.read_text(errors="replace")
        return ""

    def result(self) -> xr.Dataset | None:
        p = self.directory / "profiles.nc"
        if not p.exists():
            return None
        return xr.load_dataset(p, engine="h5netcdf")


# ---------------------------------------------------------------- a session


@dataclass
class Result:
    """One answer shown to the user: ML and/or MD profiles of one system."""

    system: ConfinedElectrolyte
    ml: xr.Dataset | None = None
    md: xr.Dataset | None = None
    md_dir: Path | None = None  # the run's folder (profiles.nc, summary.json, log.lammps) when MD ran here
    how: str = ""

    @property
    def label(self) -> str:
        src = "+".join(x for x, v in (("ML", self.ml), ("MD" if self.md_dir else "dataset", self.md)) if v is not None)
        return f"{src}: h={self.system.h:g} c={self.system.c:g} d+={self.system.d_plus:g} d-={self.system.d_minus:g} " \
               f"sigma={self.system.sigma_s:g}"


#: Every session of this process not yet closed, so that a stopping server can cancel their MD runs and remove their
#: folders (`close_all_sessions`): the runs live in their own process groups, out of reach of the server's signals.
_LIVE_SESSIONS: set["Session"] = set()
_LIVE_LOCK = threading.Lock()


def live_sessions() -> list["Session"]:
    with _LIVE_LOCK:
        return list(_LIVE_SESSIONS)


def close_all_sessions() -> int:
    """Close every live session of this process (cancel its MD run, kill its processes, remove its folder); the
    server calls it when it stops (Ctrl-C, SIGTERM, exit). Returns how many sessions it closed."""
    sessions = live_sessions()
    for session in sessions:
        session.close()
    return len(sessions)


atexit.register(close_all_sessions)


class Session:
    """The state of one browser session: its own work folder, MD job and results."""

    def __init__(self, base: str | Path | None = None):
        base = Path(base or os.environ.get(WORKDIR_ENV) or Path(tempfile.gettempdir()) / "mdsurrogate-app")
        base.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="session-", dir=base))
        self.job: MDJob | None = None
        self.history: list[Result] = []
        self.current: Result | None = None
        self._runs = 0
        with _LIVE_LOCK:
            _LIVE_SESSIONS.add(self)

    def start_md(self, system: ConfinedElectrolyte, controls: RunControls) -> MDJob:
        if self.job is not None and self.job.running():
            raise RuntimeError("an MD run is already running in this session")
        self._runs += 1
        self.job = MDJob(system, controls, self.workdir / f"run-{self._runs:03d}").start()
        return self.job

    def add(self, result: Result) -> None:
        self.current = result
        self.history.append(result)

    def close(self, remove: bool = True) -> None:
        with _LIVE_LOCK:
            _LIVE_SESSIONS.discard(self)
        if self.job is not None and self.job.running():
            self.job.cancel()
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)


# ---------------------------------------------------------------- downloads


def profile_table(ds: xr.Dataset) -> "pd.DataFrame":  # noqa: F821
    import pandas as pd

    cols = {"z_nm": ds["z"].values}
    for ion in ("n_plus", "n_minus"):
        cols[f"{ion}_M"] = ds[ion].values
        for suffix in ("std", "err"):
            if f"{ion}_{suffix}" in ds:
                cols[f"{ion}_{suffix}_M"] = ds[f"{ion}_{suffix}"].values
    cols["rho_C_per_m3"] = ds["charge_density"].values
    cols["S_C_per_m2"] = ds["integrated_charge"].values
    return pd.DataFrame(cols)


def to_text(ds: xr.Dataset, sep: str) -> bytes:
    buf = io.StringIO()
    profile_table(ds).to_csv(buf, sep=sep, index=False, float_format="%.8g")
    return buf.getvalue().encode()


def to_netcdf(ds: xr.Dataset) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "profile.nc"
        clean = ds.copy()
        clean.attrs = {k: (v if isinstance(v, (str, int, float, np.number)) else str(v)) for k, v in ds.attrs.items()}
        clean.to_netcdf(path, engine="h5netcdf")
        return path.read_bytes()


def plots_png(result: Result) -> bytes:
    """The four quantities (n+, n-, rho, S) of a result, ML with its ensemble band, MD with error bars."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    panels = (("n_plus", "cation density (M)"), ("n_minus", "anion density (M)"),
              ("charge_density", "net charge density rho (C/m$^3$)"), ("integrated_charge", "S(z) (C/m$^2$)"))
    for ax, (var, ylabel) in zip(axes.flat, panels):
        if result.ml is not None:
            z, y = result.ml["z"].values, result.ml[var].values
            ax.plot(z, y, color="tab:orange", label="ML (ensemble mean)")
            if f"{var}_std" in result.ml:
                s = result.ml[f"{var}_std"].values
                ax.fill_between(z, y - s, y + s, color="tab:orange", alpha=0.3, label="ML spread")
        if result.md is not None:
            z, y = result.md["z"].values, result.md[var].values
            if f"{var}_err" in result.md:
                ax.errorbar(z[::5], y[::5], yerr=result.md[f"{var}_err"].values[::5], fmt="o", ms=2, lw=0.8,
                            color="tab:blue", label="MD +- SE")
            else:
                ax.plot(z, y, color="tab:blue", label="MD")
        if var == "integrated_charge":
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_xlim(right=0)
        ax.set(xlabel="z (nm)", ylabel=ylabel)
        ax.legend(fontsize=7)
    fig.suptitle(result.system.key())
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, format="png")
    plt.close(fig)
    return buf.getvalue()


def input_help(name: str) -> str:
    lo, hi = DESIGN_RANGES[name]
    return f"{INPUT_LONG_NAMES[name]} in {INPUT_UNITS[name]}; the papers' design range is [{lo:g}, {hi:g}]"
