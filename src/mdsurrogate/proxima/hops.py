"""Vacancy hop detection by Wigner-Seitz site occupancy (paper 3.3, Table 1).

Each atom is assigned to its nearest perfect-lattice site (minimum image) after removing the centre-of-mass
drift; a frame is a valid state when exactly one site is empty and every other site holds one atom. A hop is a
change of the empty site that persists for `min_dwell` consecutive valid samples (filters recrossings).
"""

from __future__ import annotations

import numpy as np
from ase.build import bulk


def diamond_sites_frac(reps: int = 2) -> np.ndarray:
    """Fractional coordinates of the full (reps^3 * 8)-site diamond lattice in the supercell."""
    cell = bulk("Si", "diamond", a=1.0, cubic=True).repeat((reps, reps, reps))
    return cell.get_scaled_positions(wrap=True)


def vacancy_cell_sites(reps: int = 2, vacancy_index: int = 0) -> tuple[np.ndarray, int]:
    """Sites of the lattice and the index of the site left empty by `si_vacancy_cell`."""
    return diamond_sites_frac(reps), vacancy_index


def assign_sites(positions: np.ndarray, cell: np.ndarray, sites_frac: np.ndarray) -> np.ndarray:
    """Nearest lattice site (minimum image) of each atom; positions (N, 3) in A, cell rows are lattice vectors."""
    frac = positions @ np.linalg.inv(cell)
    d = frac[:, None, :] - sites_frac[None, :, :]
    d -= np.round(d)
    dist2 = np.einsum("nsi,ij,nsj->ns", d, cell @ cell.T, d)
    return np.argmin(dist2, axis=1)


def vacant_site(positions: np.ndarray, cell: np.ndarray, sites_frac: np.ndarray) -> int:
    """The single empty site, or -1 when the occupancy is not one vacancy plus single occupancy."""
    occ = np.bincount(assign_sites(positions, cell, sites_frac), minlength=len(sites_frac))
    empty = np.flatnonzero(occ == 0)
    if len(empty) == 1 and occ.max() == 1:
        return int(empty[0])
    return -1


def remove_drift(traj: np.ndarray) -> np.ndarray:
    """Subtract the centre-of-mass displacement (equal masses) from unwrapped positions (T, N, 3)."""
    drift = (traj - traj[:1]).mean(axis=1, keepdims=True)
    return traj - drift


def vacancy_track(traj: np.ndarray, cell: np.ndarray, sites_frac: np.ndarray) -> np.ndarray:
    """Empty site per frame (-1 for invalid frames) of an unwrapped NVT trajectory (T, N, 3)."""
    clean = remove_drift(np.asarray(traj, dtype=float))
    return np.array([vacant_site(p, cell, sites_frac) for p in clean])


def count_hops(track: np.ndarray, min_dwell: int = 3) -> int:
    """Number of changes of the confirmed empty site; a new site is confirmed after `min_dwell` valid samples."""
    current = None
    candidate, run = None, 0
    hops = 0
    for s in track:
        if s < 0:
            continue
        if current is None:
            current = s
            continue
        if s == current:
            candidate, run = None, 0
            continue
        if s == candidate:
            run += 1
        else:
            candidate, run = s, 1
        if run >= min_dwell:
            current, candidate, run = s, None, 0
            hops += 1
    return hops


def rate_with_se(rates) -> tuple[float, float]:
    """Mean rate and its standard error over independent runs (paper Table 1)."""
    r = np.asarray(rates, dtype=float)
    if len(r) < 2:
        return float(r.mean()), float("nan")
    return float(r.mean()), float(r.std(ddof=1) / np.sqrt(len(r)))
