"""Mean-field reference: the canonical Poisson-Boltzmann solution of the same slit.

Reduced potential psi = e phi / kT, lengths in nm, densities in 1/nm^3. In the slit |z| < h/2:
    psi''(z) = -4 pi l_B sum_i q_i n_i(z),     n_i(z) = N_i/A * w_i(z) / int w_i dz,
    w_i(z) = exp(-q_i psi(z) - beta U_i(z)),
with the same truncated-and-shifted 12-6 ion-wall potential U_i as the MD (sigma = d_i/2), fixed particle numbers
N_i (canonical, as in the MD box), and Gauss's law at the walls psi'(-+h/2) = -+4 pi l_B sigma_s/e. Ion-ion
correlations and excluded volume are absent, so MD must approach it in the weak-coupling limit only.
Solved by Newton's method on a cell-centred finite-volume grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from mdsurrogate.simulation.system import (
    AVOGADRO_PER_NM3_PER_MOLAR,
    BJERRUM_LENGTH_NM,
    ELEMENTARY_CHARGE,
    ConfinedElectrolyte,
    UnchargedElectrolyte,
    particle_counts,
)


@dataclass
class PBSolution:
    z: np.ndarray  # nm, cell centres
    psi: np.ndarray  # e phi / kT
    n_plus: np.ndarray  # M
    n_minus: np.ndarray  # M
    iterations: int
    residual: float


def wall_potential(z: np.ndarray, h: float, d: float) -> np.ndarray:
    """beta U(z) of the WCA walls (epsilon = kT, sigma = d/2, cut at 2^(1/6) sigma and shifted), both walls."""
    s = d / 2
    rc = 2 ** (1 / 6) * s
    out = np.zeros_like(z)
    for r in (z + h / 2, h / 2 - z):
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            sr6 = (s / r) ** 6
            u = np.where(r < rc, 4 * (sr6 * sr6 - sr6) + 1.0, 0.0)
        out += np.where(r <= 0, np.inf, u)
    return out


def solve_slit(h: float, sigma_e_per_nm2: float, species: list[tuple[float, float, float]], n_cells: int = 800,
               bjerrum_nm: float = BJERRUM_LENGTH_NM, tol: float = 1e-10, max_iter: int = 200) -> PBSolution:
    """Solve canonical PB in the slit. species: [(valence q_i, diameter d_i in nm, areal number N_i/A in 1/nm^2)].
    sigma_e_per_nm2: surface charge of each wall in e/nm^2. Returns densities per species in 1/nm^3 (as M via
    PBSolution only through `solve_system`)."""
    dz = h / n_cells
    z = -h / 2 + dz * (np.arange(n_cells) + 0.5)
    q = np.array([s[0] for s in species])
    nA = np.array([s[2] for s in species])
    U = np.array([wall_potential(z, h, s[1]) for s in species])  # (S, N)
    boltz_wall = np.exp(-U)
    kappa = 4 * np.pi * bjerrum_nm
    gL = -kappa * sigma_e_per_nm2  # psi'(-h/2)
    gR = kappa * sigma_e_per_nm2  # psi'(+h/2)

    def densities(psi):
        w = boltz_wall * np.exp(-q[:, None] * (psi - psi.mean()))
        norm = w.sum(axis=1) * dz
        return nA[:, None] * w / norm[:, None], w, norm

    def residual(psi):
        n, _, _ = densities(psi)
        rho = (q[:, None] * n).sum(axis=0)
        flux = np.empty(n_cells + 1)
        flux[1:-1] = (psi[1:] - psi[:-1]) / dz
        flux[0], flux[-1] = gL, gR
        return (flux[1:] - flux[:-1]) / dz + kappa * rho

    def jacobian(psi):
        n, w, norm = densities(psi)
        J = np.zeros((n_cells, n_cells))
        idx = np.arange(n_cells)
        J[idx, idx] = -2 / dz**2
        J[idx[1:], idx[1:] - 1] = 1 / dz**2
        J[idx[:-1], idx[:-1] + 1] = 1 / dz**2
        J[0, 0] = J[-1, -1] = -1 / dz**2
        for i in range(len(q)):
            # d n_i(z_k)/d psi_l = -q_i n_ik delta_kl + q_i n_ik w_il dz / norm_i
            J[idx, idx] += kappa * q[i] * (-q[i] * n[i])
            J += kappa * q[i] * np.outer(q[i] * n[i], w[i] * dz / norm[i])
        return J

    psi = np.zeros(n_cells)
    r = residual(psi)
    it = 0
    for it in range(1, max_iter + 1):
        step = np.linalg.lstsq(jacobian(psi), -r, rcond=None)[0]
        step -= step.mean()
        lam, r0 = 1.0, np.linalg.norm(r)
        while lam > 1e-4:
            trial = psi + lam * step
            rt = residual(trial)
            if np.linalg.norm(rt) < r0 or lam < 2e-4:
                break
            lam /= 2
        psi, r = trial, rt
        if np.linalg.norm(r) * dz < tol:
            break
    n, _, _ = densities(psi)
    return PBSolution(z=z, psi=psi - psi.mean(), n_plus=n[0] / AVOGADRO_PER_NM3_PER_MOLAR,
                      n_minus=(n[1] if len(q) > 1 else np.zeros_like(z)) / AVOGADRO_PER_NM3_PER_MOLAR,
                      iterations=it, residual=float(np.linalg.norm(r) * dz))


def solve_system(system: "ConfinedElectrolyte | UnchargedElectrolyte", n_cells: int = 800) -> PBSolution:
    """PB solution for the same ions (valencies), numbers and (quantised) wall charge as the MD of `system`."""
    counts = particle_counts(system)
    area = counts.box_length_nm**2
    sigma_e = counts.sigma_s_effective / ELEMENTARY_CHARGE * 1e-18  # e / nm^2
    species = [(float(system.z_p), system.d_plus, counts.n_cations / area),
               (float(system.z_n), system.d_minus, counts.n_anions / area)]
    return solve_slit(system.h, sigma_e, species, n_cells=n_cells)


def counterions_only_exact(z: np.ndarray, h: float, sigma_e_per_nm2: float,
                           bjerrum_nm: float = BJERRUM_LENGTH_NM) -> np.ndarray:
    """Exact PB for point counterions between two equal walls (no salt): n(z) = K^2 / (2 pi l_B cos^2(K z)),
    with K tan(K h/2) = 2 pi l_B |sigma|/e. Returns n in 1/nm^3."""

    target = 2 * np.pi * bjerrum_nm * abs(sigma_e_per_nm2)
    K = brentq(lambda k: k * np.tan(k * h / 2) - target, 1e-12, np.pi / h * (1 - 1e-12))
    return K**2 / (2 * np.pi * bjerrum_nm * np.cos(K * z) ** 2)


def msa_osmotic_coefficient(densities_per_nm3: dict[int, float], d_nm: float,
                            bjerrum_nm: float = BJERRUM_LENGTH_NM) -> float:
    """Osmotic coefficient P / (kT sum_i n_i) of the bulk primitive model with equal ion diameters d and any
    valencies {z_i: n_i}: Carnahan-Starling hard spheres plus the MSA electrostatic term -Gamma^3 / (3 pi n)
    (Blum, Mol. Phys. 30, 1529 (1975); Waisman & Lebowitz 1972), 2 Gamma d = sqrt(1 + 2 kappa d) - 1. It tends to
    the Debye-Hueckel limiting law and then to 1, Poisson-Boltzmann's ideal osmotic pressure, as the density
    vanishes. Ordinarily within a few per cent of simulations of 1:1 to 3:1 electrolytes at these couplings."""
    n_tot = sum(densities_per_nm3.values())
    kappa2 = 4 * np.pi * bjerrum_nm * sum(z * z * n for z, n in densities_per_nm3.items())
    gamma = (np.sqrt(1 + 2 * np.sqrt(kappa2) * d_nm) - 1) / (2 * d_nm)
    eta = np.pi / 6 * d_nm**3 * n_tot
    z_cs = (1 + eta + eta**2 - eta**3) / (1 - eta) ** 3
    return float(z_cs - gamma**3 / (3 * np.pi * n_tot))


__all__ = ["PBSolution", "solve_slit", "solve_system", "counterions_only_exact", "wall_potential",
           "msa_osmotic_coefficient", "ELEMENTARY_CHARGE"]
