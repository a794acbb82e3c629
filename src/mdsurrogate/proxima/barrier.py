"""The vacancy migration path of the 63-atom Si cell by nudged elastic band (ASE), on any calculator.

Issue 16: before a hop-rate run, the surrogate's energy along the hop path must agree with the target's. One
nearest neighbour of the vacant site moves onto it; both end points (the same structure up to a lattice
translation, so their energies must agree: a check of the relaxation) are relaxed at fixed cell, the band is
linearly interpolated, relaxed by NEB and then by climbing-image NEB (improved tangent). With Stillinger-Weber
the band does not cross a simple barrier: the hopping atom halfway between the two sites is the split vacancy,
SW's lowest vacancy state (about 1.5 eV below the simple vacancy), so the path is a well between the two simple
vacancies. Reported: `well_eV` (lowest image relative to the simple vacancy) and `span_eV` (highest minus lowest
image: the barrier out of the well along this path). A hop rate goes as exp(-E_b / kT), so an energy error dE
changes it by exp(dE / kT): at 1573 K (kT = 0.1356 eV) 7 meV is 5 %.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator
from ase.mep import NEB
from ase.optimize import BFGS, FIRE

from mdsurrogate.proxima.targets import SI_LATTICE

K_B_EV = 8.617333262e-5


@dataclass
class BarrierResult:
    """One NEB: image energies relative to the relaxed initial (simple vacancy) state, eV; path length, A."""

    energies_eV: list[float]
    path_A: list[float]
    converged: bool
    neb_steps: int

    @property
    def well_eV(self) -> float:
        return float(min(self.energies_eV))

    @property
    def span_eV(self) -> float:
        return float(max(self.energies_eV) - min(self.energies_eV))

    @property
    def end_difference_eV(self) -> float:
        return float(self.energies_eV[-1] - self.energies_eV[0])

    def to_dict(self) -> dict:
        return asdict(self) | {"well_eV": self.well_eV, "span_eV": self.span_eV,
                               "end_difference_eV": self.end_difference_eV}


def rate_factor(d_energy_eV: float, temperature_K: float) -> float:
    """exp(dE / kT): the factor by which lowering a barrier by dE raises an Arrhenius rate."""
    return float(np.exp(d_energy_eV / (K_B_EV * temperature_K)))


def vacancy_endpoints(a: float = SI_LATTICE) -> tuple[Atoms, Atoms]:
    """(initial, final) unrelaxed: the 2x2x2 diamond cell without atom 0, and the same cell with the nearest
    neighbour of site 0 moved onto it."""
    perfect = bulk("Si", "diamond", a=a, cubic=True).repeat((2, 2, 2))
    site = perfect.positions[0].copy()
    dist = perfect.get_distances(0, range(1, len(perfect)), mic=True)
    hopper = int(np.argmin(dist))  # index in the 63-atom cell (atom 0 removed)
    initial = perfect.copy()
    del initial[0]
    final = initial.copy()
    vec = site - final.positions[hopper]  # the minimum image of the hop vector
    cell = final.cell.array
    frac = np.linalg.solve(cell.T, vec)
    vec = (frac - np.round(frac)) @ cell
    final.positions[hopper] += vec
    return initial, final


def relax(atoms: Atoms, calc: Calculator, fmax: float = 0.005, steps: int = 2000, rattle: float = 0.02,
          seed: int = 0) -> Atoms:
    """Positions relaxed at fixed cell (BFGS), after a seeded rattle of `rattle` A that breaks the symmetry of
    the ideal vacancy (a stationary point with zero forces, not the minimum)."""
    atoms = atoms.copy()
    if rattle:
        atoms.rattle(rattle, seed=seed)
    atoms.calc = calc
    if not BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps):
        raise RuntimeError(f"relaxation of a NEB end point did not reach fmax {fmax} eV/A in {steps} steps")
    return atoms


def vacancy_barrier(calc: Calculator, n_images: int = 5, fmax: float = 0.02, steps: int = 600,
                    a: float = SI_LATTICE, path: list[Atoms] | None = None) -> tuple[BarrierResult, list[Atoms]]:
    """NEB (to fmax 0.1 eV/A) then climbing-image NEB (to `fmax`) of the vacancy hop with `calc` (shared by the
    images). `path`: start from these images (e.g. the target's converged band; its end points are relaxed
    again with `calc`) instead of a linear interpolation between relaxed ends. Returns the result and images."""
    if path is None:
        initial, final = (relax(x, calc) for x in vacancy_endpoints(a))
        images = [initial] + [initial.copy() for _ in range(n_images)] + [final]
    else:
        images = [im.copy() for im in path]
        images[0] = relax(images[0], calc, rattle=0.0)
        images[-1] = relax(images[-1], calc, rattle=0.0)
    for im in images:
        im.calc = calc
    neb = NEB(images, climb=False, allow_shared_calculator=True, method="improvedtangent")
    if path is None:
        neb.interpolate(mic=True)
    opt = FIRE(neb, logfile=None)
    opt.run(fmax=max(fmax, 0.1), steps=steps)
    n = int(opt.nsteps)
    neb.climb = True
    opt = FIRE(neb, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    n += int(opt.nsteps)
    energies = energies_along(images, calc)
    coord = [0.0]
    for prev, cur in zip(images[:-1], images[1:]):
        diff = cur.positions - prev.positions
        frac = np.linalg.solve(cur.cell.array.T, diff.T).T
        diff = (frac - np.round(frac)) @ cur.cell.array
        coord.append(coord[-1] + float(np.linalg.norm(diff)))
    result = BarrierResult(energies_eV=energies.tolist(), path_A=coord, converged=converged, neb_steps=n)
    return result, [im.copy() for im in images]


def energies_along(path: list[Atoms], calc: Calculator) -> np.ndarray:
    """Energies (eV, relative to the first image) of fixed images with `calc`: a surrogate on the target's
    path."""
    e = []
    for im in path:
        im = im.copy()
        im.calc = calc
        e.append(float(im.get_potential_energy()))
    return np.array(e) - e[0]


def barrier_report(surrogate_path: str | Path, out: str | Path, potential: str = "sw", n_images: int = 5,
                   temperature_K: float = 1573.0) -> dict:
    """The hop band on the target and on the ensemble: the target's NEB; the ensemble's energies on the target's
    images; the ensemble's own NEB started from them. Writes `barrier.json` and `barrier.png` into `out`; the
    differences of the well depth and the span are also given as Arrhenius rate factors at `temperature_K`."""
    from mdsurrogate.io import write_figure_atomic, write_json_atomic  # noqa: PLC0415
    from mdsurrogate.provenance import provenance  # noqa: PLC0415
    from mdsurrogate.proxima.surrogate import EnsembleSurrogate, SurrogateCalculator  # noqa: PLC0415 - torch
    from mdsurrogate.proxima.targets import lammps_si  # noqa: PLC0415

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    target, images = vacancy_barrier(lammps_si(potential), n_images=n_images)
    calc = SurrogateCalculator(EnsembleSurrogate.load(surrogate_path))
    along = energies_along(images, calc)
    own, own_images = vacancy_barrier(calc, path=images)
    d_span = own.span_eV - target.span_eV
    report = {"target": target.to_dict(), "surrogate_on_target_path_eV": along.tolist(),
              "surrogate_neb": own.to_dict(), "max_abs_diff_on_target_path_eV": float(np.abs(along - np.array(
                  target.energies_eV)).max()),
              "well_diff_eV": own.well_eV - target.well_eV, "span_diff_eV": d_span,
              "span_rate_factor": rate_factor(-d_span, temperature_K), "temperature_K": temperature_K,
              "potential": potential, "model": str(surrogate_path), "provenance": provenance("ase", "torch")}
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(target.path_A, target.energies_eV, "ko-", label=f"{potential.upper()} target (NEB)")
    ax.plot(target.path_A, along, "C0s--", label="ensemble on the target's images")
    ax.plot(own.path_A, own.energies_eV, "C3^-", label="ensemble's own NEB")
    ax.set_xlabel("path length (A)")
    ax.set_ylabel("energy - simple vacancy (eV)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    write_figure_atomic(fig, out / "barrier.png")
    report["plots"] = [str(out / "barrier.png")]
    write_json_atomic(out / "barrier.json", report)
    return report
