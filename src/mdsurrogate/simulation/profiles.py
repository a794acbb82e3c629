"""Density profiles: block averaging, blocking analysis, resampling, unit conversion.

Standard errors are standard errors of the mean over B block averages (B = 20 by default),
SE = std(block means, ddof=1) / sqrt(B); they are honest only when blocks are longer than the correlation
time, which `blocking_analysis` (Flyvbjerg & Petersen, J. Chem. Phys. 91, 461 (1989)) checks: the SE estimated
from ever longer blocks rises and then plateaus once blocks decorrelate.
"""

from __future__ import annotations

import numpy as np

from mdsurrogate.simulation.system import AVOGADRO_PER_NM3_PER_MOLAR


def number_density_to_molar(n_per_sigma3: np.ndarray, sigma_nm: float) -> np.ndarray:
    """Number density in 1/sigma^3 -> mol/L."""
    return np.asarray(n_per_sigma3) / sigma_nm**3 / AVOGADRO_PER_NM3_PER_MOLAR


def block_means(samples: np.ndarray, n_blocks: int) -> np.ndarray:
    """Average consecutive samples (axis 0) into n_blocks contiguous blocks of near-equal length (lengths differ by at
    most one sample when n_blocks does not divide their number): every sample is used."""
    samples = np.asarray(samples, dtype=float)
    n = samples.shape[0]
    if n_blocks < 2:
        raise ValueError(f"n_blocks must be >= 2, got {n_blocks}")
    if n < n_blocks:
        raise ValueError(f"need at least n_blocks={n_blocks} samples, got {n}")
    if n % n_blocks == 0:
        return samples.reshape(n_blocks, n // n_blocks, *samples.shape[1:]).mean(axis=1)
    return np.stack([part.mean(axis=0) for part in np.array_split(samples, n_blocks, axis=0)])


def block_average(samples: np.ndarray, n_blocks: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Mean over all samples and its standard error std(block means, ddof=1) / sqrt(n_blocks) from n_blocks
    contiguous block means (`block_means`)."""
    means = block_means(samples, n_blocks)
    return np.asarray(samples, dtype=float).mean(axis=0), means.std(axis=0, ddof=1) / np.sqrt(n_blocks)


def blocking_analysis(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flyvbjerg-Petersen blocking: for block lengths 1, 2, 4, ... samples, the standard error of the mean of
    `samples` (axis 0; extra axes are kept). Returns (block_lengths, standard_errors[level, ...]).
    Stops when fewer than 8 blocks remain."""
    x = np.asarray(samples, dtype=float)
    lengths, errors = [], []
    length = 1
    while x.shape[0] >= 8:
        n = x.shape[0]
        errors.append(x.std(axis=0, ddof=1) / np.sqrt(n))
        lengths.append(length)
        m = n // 2
        x = 0.5 * (x[0:2 * m:2] + x[1:2 * m:2])
        length *= 2
    return np.array(lengths), np.array(errors)


def lag1_autocorrelation(series: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation of each column of `series` (axis 0 = time)."""
    x = np.asarray(series, dtype=float)
    x = x - x.mean(axis=0)
    denom = (x * x).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (x[1:] * x[:-1]).sum(axis=0) / denom, 0.0)


def resample(z_native: np.ndarray, values: np.ndarray, z_new: np.ndarray) -> np.ndarray:
    """Linear interpolation of a profile (last axis) onto z_new; zero outside the native range."""
    values = np.asarray(values, dtype=float)
    flat = values.reshape(-1, values.shape[-1])
    out = np.stack([np.interp(z_new, z_native, row, left=0.0, right=0.0) for row in flat])
    return out.reshape(*values.shape[:-1], len(z_new))


def rebin_mean(z: np.ndarray, values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average profile samples (last axis, at positions z) into bins with the given edges.
    Returns (bin centres, means); bins with no sample get NaN."""
    idx = np.digitize(z, edges) - 1
    nb = len(edges) - 1
    values = np.asarray(values, dtype=float)
    out = np.full((*values.shape[:-1], nb), np.nan)
    for b in range(nb):
        sel = idx == b
        if sel.any():
            out[..., b] = values[..., sel].mean(axis=-1)
    return 0.5 * (edges[1:] + edges[:-1]), out


def rebin_error(z: np.ndarray, errors: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Standard error of a bin average of `errors`-uncertain samples that are fully correlated within the bin
    (neighbouring points of a resampled profile share their raw bins): the mean of the errors. Conservative."""
    return rebin_mean(z, errors, edges)[1]


def relative_error(mean: np.ndarray, err: np.ndarray, floor_fraction: float = 0.1) -> float:
    """Median relative standard error err/mean over the bins whose density exceeds floor_fraction x the mean
    density of the profile (the papers' profiles are dominated by such bins)."""
    mean = np.asarray(mean, dtype=float)
    err = np.asarray(err, dtype=float)
    sel = mean > floor_fraction * mean[mean > 0].mean() if np.any(mean > 0) else np.zeros_like(mean, bool)
    if not sel.any():
        return float("inf")
    return float(np.median(err[sel] / mean[sel]))
