"""Derived quantities of the density profiles (kadupitiya2021).

Net charge density rho(z) = e [n+(z) - n-(z)] and integrated charge S(z) = sigma_s + int_{-h/2}^{z} rho(z') dz',
meaningful up to the midplane; electroneutrality demands S(0) = 0.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import cumulative_trapezoid

from mdsurrogate.simulation.system import ELEMENTARY_CHARGE

AVOGADRO = 6.02214076e23
MOLAR_TO_PER_M3 = 1000.0 * AVOGADRO


def charge_density(n_plus: np.ndarray, n_minus: np.ndarray, z_p: int = 1, z_n: int = -1) -> np.ndarray:
    """rho(z) in C/m^3 from ion densities in mol/L, cations of valency z_p and anions of valency z_n (default
    monovalent)."""
    if (z_p, z_n) == (1, -1):
        return ELEMENTARY_CHARGE * MOLAR_TO_PER_M3 * (np.asarray(n_plus) - np.asarray(n_minus))
    return ELEMENTARY_CHARGE * MOLAR_TO_PER_M3 * (z_p * np.asarray(n_plus) + z_n * np.asarray(n_minus))


def integrated_charge(z_nm: np.ndarray, rho: np.ndarray, sigma_s: float) -> np.ndarray:
    """S(z) in C/m^2 = sigma_s + int_{z_0}^{z} rho dz' from the net charge density rho (C/m^3, `charge_density`)
    by the trapezoid rule (z in nm; z_0 = first grid point, at or beyond the wall where the densities vanish)."""
    return sigma_s + cumulative_trapezoid(np.asarray(rho, dtype=float), np.asarray(z_nm, dtype=float) * 1e-9,
                                          axis=-1, initial=0.0)


def integrated_charge_error(z_nm: np.ndarray, n_plus_err: np.ndarray, n_minus_err: np.ndarray,
                            z_upto: float = 0.0) -> float:
    """Standard error of S(z_upto) from independent per-bin errors (native bins): sqrt(sum (dz rho_err)^2)."""
    z = np.asarray(z_nm)
    sel = z <= z_upto
    dz = np.gradient(z)[sel] * 1e-9
    var = (ELEMENTARY_CHARGE * MOLAR_TO_PER_M3) ** 2 * (np.asarray(n_plus_err)[sel] ** 2
                                                        + np.asarray(n_minus_err)[sel] ** 2) * dz**2
    return float(np.sqrt(var.sum()))


def screening_length(z_nm: np.ndarray, S: np.ndarray, h_nm: float, fraction: float = np.exp(-1)) -> float:
    """Screening decay length z* (nm): distance from the wall at which |S| first falls below `fraction` x |sigma_s|
    (S at the wall), a simple proxy for the authors' decay length; linear interpolation of |S| between the last bin
    above and the first below (S = sigma_s exp(-x/lambda) gives z* = lambda to O(dz^2))."""
    z = np.asarray(z_nm, dtype=float)
    S = np.abs(np.asarray(S, dtype=float))
    left = z <= 0
    zl, Sl = z[left], S[left]
    target = fraction * Sl[0]
    below = np.nonzero(Sl < target)[0]
    if len(below) == 0:
        return float("nan")
    b = below[0]  # >= 1: Sl[0] > target
    t = (Sl[b - 1] - target) / (Sl[b - 1] - Sl[b])
    return float(zl[b - 1] + t * (zl[b] - zl[b - 1]) + h_nm / 2)
