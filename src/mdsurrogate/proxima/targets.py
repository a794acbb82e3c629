"""Target calculators F for PROXIMA: LAMMPS SW/Tersoff silicon, tblite GFN1-xTB, CP2K LDA.

The LAMMPS potentials are the standard published parameter sets (Stillinger & Weber 1985, Tersoff 1988),
shipped as package data in `potentials/`. tblite and CP2K are optional: `available_targets()` says which
of them can be built here.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk

from mdsurrogate.simulation.runtime import import_lammps

SI_LATTICE = 5.43  # Angstrom, the paper's cell
SI_MASS_AMU = 28.0855
_AMU_G = 1.66053906660e-24  # g per amu


def potential_path(name: str) -> Path:
    """Path of a packaged potential file (`Si.sw`, `Si.tersoff`)."""
    return Path(str(resources.files("mdsurrogate.proxima") / "potentials" / name))


def si_vacancy_cell(a: float = SI_LATTICE, reps: int = 2, vacancy_index: int = 0) -> Atoms:
    """63-atom Si vacancy cell of the paper: 2x2x2 conventional diamond minus one atom."""
    atoms = bulk("Si", "diamond", a=a, cubic=True).repeat((reps, reps, reps))
    del atoms[vacancy_index]
    return atoms


def density_g_cc(n_atoms: int, volume_A3: np.ndarray | float) -> np.ndarray | float:
    """Mass density in g/cm^3 of `n_atoms` Si atoms in `volume_A3`."""
    return n_atoms * SI_MASS_AMU * _AMU_G / (np.asarray(volume_A3) * 1e-24)


def lammps_si(potential: str = "sw", log_file: str | None = None):
    """ASE LAMMPSlib calculator for Si with the Stillinger-Weber (`sw`) or Tersoff (`tersoff`) potential."""
    import_lammps()
    from ase.calculators.lammpslib import LAMMPSlib  # noqa: PLC0415 - after import_lammps preloads libmpi

    files = {"sw": "Si.sw", "tersoff": "Si.tersoff"}
    if potential not in files:
        raise ValueError(f"unknown potential {potential!r}; choose from {sorted(files)}")
    path = potential_path(files[potential])
    cmds = [f"pair_style {potential}", f"pair_coeff * * {path} Si"]
    return LAMMPSlib(lmpcmds=cmds, atom_types={"Si": 1}, log_file=log_file, keep_alive=True)


def tblite_available() -> bool:
    try:
        import tblite.ase  # noqa: F401, PLC0415 - optional extra
    except ImportError:
        return False
    return True


def tblite_gfn1(**kwargs):
    """tblite GFN1-xTB calculator (optional dependency `tblite`)."""
    from tblite.ase import TBLite  # noqa: PLC0415 - optional extra

    return TBLite(method="GFN1-xTB", verbosity=0, **kwargs)


def cp2k_command() -> str | None:
    for exe in ("cp2k_shell.psmp", "cp2k_shell.ssmp", "cp2k_shell", "cp2k.psmp", "cp2k.ssmp", "cp2k"):
        found = shutil.which(exe)
        if found:
            return found
    return None


def cp2k_available() -> bool:
    return cp2k_command() is not None and "cp2k_shell" in Path(cp2k_command() or "").name


#: The 63-atom vacancy cell is a metal at the Gamma point: plain diagonalisation with the default mixing does not
#: converge in 50 steps (measured: SCF NOT converged, then a diverging second call). Fermi-Dirac smearing at
#: 1000 K with 20 added orbitals and Broyden mixing converges it.
CP2K_SCF_INPUT = """&FORCE_EVAL
&DFT
&SCF
ADDED_MOS 20
&SMEAR ON
METHOD FERMI_DIRAC
ELECTRONIC_TEMPERATURE [K] 1000
&END SMEAR
&MIXING
METHOD BROYDEN_MIXING
ALPHA 0.3
NBUFFER 8
&END MIXING
&END SCF
&END DFT
&END FORCE_EVAL
"""


def cp2k_lda(directory: str = "cp2k-run", cutoff_Ry: float = 350.0):
    """CP2K LDA/GPW calculator as in the paper (SZV-MOLOPT-SR-GTH basis, GTH-PADE pseudopotential)."""
    from ase.calculators.cp2k import CP2K  # noqa: PLC0415 - optional target

    cmd = cp2k_command()
    if cmd is None:
        raise RuntimeError("cp2k not installed (Debian package `cp2k`)")
    return CP2K(command=cmd, xc="LDA", basis_set="SZV-MOLOPT-SR-GTH", pseudo_potential="GTH-PADE",
                cutoff=cutoff_Ry * 13.605693, stress_tensor=True, directory=directory, max_scf=100,
                inp=CP2K_SCF_INPUT)


def make_target(name: str, workdir: str | Path | None = None):
    """Build a target calculator by name: `sw`, `tersoff`, `tblite`, `cp2k` (CP2K writes its files in
    `workdir`/cp2k-run, default ./cp2k-run)."""
    if name in ("sw", "tersoff"):
        return lammps_si(name)
    if name == "tblite":
        return tblite_gfn1()
    if name == "cp2k":
        return cp2k_lda(directory=str(Path(workdir) / "cp2k-run") if workdir else "cp2k-run")
    raise ValueError(f"unknown target {name!r}")


def available_targets() -> list[str]:
    out = ["sw", "tersoff"]
    if tblite_available():
        out.append("tblite")
    if cp2k_available():
        out.append("cp2k")
    return out
