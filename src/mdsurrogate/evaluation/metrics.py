"""Accuracy metrics of the surrogate papers as plain functions (sun2023, kadupitiya2021).

Arrays are (N_systems, P) with P = 1004 outputs: k = 0..501 the cation density n+ and k = 502..1003 the anion
density n- (the papers' K+ and K-, 0-based here). All errors are in the units of the densities (molar).
Means over systems are over rows: a test set holding replicas (the same inputs, other seeds) weights such a system
once per replica (the project's datasets have none; sun2023 eq. 2 averages over distinct systems).
"""

from __future__ import annotations

import numpy as np

from mdsurrogate.simulation.system import N_GRID, SYSTEM_SCHEMAS

#: interface set I: the first and last 50 points of each 502-point profile (sun2023 eqs. 6-7 and section 3.2: "100
#: predictions"; its listed index ranges hold 101 and 102 points, the count is followed)
N_INTERFACE = 50


def default_n_interface(n_points: int) -> int:
    """The interface width of a profile of n_points: its system kind's (`SystemSchema.n_interface`: 50 of 502,
    15 of 150), else the same fraction of n_points."""
    for schema in SYSTEM_SCHEMAS.values():
        if schema.n_points == n_points:
            return schema.n_interface
    return max(1, round(N_INTERFACE * n_points / N_GRID))


def _as_2d(*arrays: np.ndarray) -> list[np.ndarray]:
    out = [np.atleast_2d(np.asarray(a, dtype=float)) for a in arrays]
    shape = out[0].shape
    for a in out[1:]:
        if a.shape != shape:
            raise ValueError(f"shape mismatch: {a.shape} vs {shape}")
    return out


def rmse_per_output(y: np.ndarray, y_hat: np.ndarray) -> np.ndarray:
    """E_k = (1/N_test sum_j |y_hat_j^k - y_j^k|^2)^(1/2) for every output k (sun2023 eq. 2; kadupitiya2021 eq. 8)."""
    y, y_hat = _as_2d(y, y_hat)
    return np.sqrt(np.mean((y_hat - y) ** 2, axis=0))


def overall_rmse(y: np.ndarray, y_hat: np.ndarray) -> float:
    """E = (1/P) sum_k E_k (sun2023 eq. 3)."""
    return float(np.mean(rmse_per_output(y, y_hat)))


def mse(y: np.ndarray, y_hat: np.ndarray) -> float:
    """MSE = 1/(N P) sum_j sum_k (y_j^k - y_hat_j^k)^2 (kadupitiya2021 eq. 7; sun2023 eq. 1 for the validation loss)."""
    y, y_hat = _as_2d(y, y_hat)
    return float(np.mean((y - y_hat) ** 2))


def rmse_per_system(y: np.ndarray, y_hat: np.ndarray) -> dict[str, np.ndarray]:
    """RMSE_j^+ and RMSE_j^- = (2/P sum_k (y_j^k - y_hat_j^k)^2)^(1/2) over each half (kadupitiya2021 eq. 9)."""
    y, y_hat = _as_2d(y, y_hat)
    half = y.shape[1] // 2
    sq = (y - y_hat) ** 2
    return {"plus": np.sqrt(sq[:, :half].mean(axis=1)), "minus": np.sqrt(sq[:, half:].mean(axis=1))}


def interface_mask(n_points: int = N_GRID, n_interface: int = N_INTERFACE) -> np.ndarray:
    """Boolean mask over one profile: True on the interface set I (first and last n_interface points)."""
    if not 0 < 2 * n_interface < n_points:
        raise ValueError(f"n_interface must be in [1, {(n_points - 1) // 2}], got {n_interface}")
    mask = np.zeros(n_points, dtype=bool)
    mask[:n_interface] = True
    mask[-n_interface:] = True
    return mask


def interface_bulk_rmse(y: np.ndarray, y_hat: np.ndarray, n_interface: int | None = None) -> dict[str, float]:
    """E_I+, E_B+, E_I-, E_B-: mean of E_k over the interface set I and the bulk B of each ion (sun2023 eqs. 6-7);
    n_interface None: `default_n_interface` of the profile length."""
    e_k = rmse_per_output(y, y_hat)
    half = e_k.size // 2
    mask = interface_mask(half, default_n_interface(half) if n_interface is None else n_interface)
    plus, minus = e_k[:half], e_k[half:]
    return {"E_I+": float(plus[mask].mean()), "E_B+": float(plus[~mask].mean()),
            "E_I-": float(minus[mask].mean()), "E_B-": float(minus[~mask].mean())}


def within_error_bar(y: np.ndarray, y_hat: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Theta(|y - y_hat|, eps) = 1 where |y - y_hat| < eps, else 0 (kadupitiya2021 eq. 10, strict inequality)."""
    y, y_hat, eps = _as_2d(y, y_hat, eps)
    if np.any(eps < 0):
        raise ValueError("MD error bars eps must be >= 0")
    return np.abs(y - y_hat) < eps


def _success(y, y_hat, eps, exclude_zero_error: bool, axis: int | None):
    hit = within_error_bar(y, y_hat, eps)
    if not exclude_zero_error:
        return hit.mean(axis=axis)
    valid = np.atleast_2d(np.asarray(eps, dtype=float)) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return (hit & valid).sum(axis=axis) / valid.sum(axis=axis)


def success_rate_per_system(y: np.ndarray, y_hat: np.ndarray, eps: np.ndarray,
                            exclude_zero_error: bool = False) -> np.ndarray:
    """A_j = (1/P) sum_k Theta(|y_j^k - y_hat_j^k|, eps_j^k) for every system j (kadupitiya2021 eq. 10).

    Points where the MD error is exactly zero (no ion ever visited the bin, next to the walls) can never count as a
    success under the strict Theta; exclude_zero_error=True averages over the points with eps > 0 only.
    """
    return np.asarray(_success(y, y_hat, eps, exclude_zero_error, axis=1), dtype=float)


def success_rate_per_output(y: np.ndarray, y_hat: np.ndarray, eps: np.ndarray,
                            exclude_zero_error: bool = False) -> np.ndarray:
    """A_k = (1/N) sum_j Theta(|y_j^k - y_hat_j^k|, eps_j^k) for every output k (NaN where all eps are 0 and
    excluded)."""
    return np.asarray(_success(y, y_hat, eps, exclude_zero_error, axis=0), dtype=float)


def success_rate(y: np.ndarray, y_hat: np.ndarray, eps: np.ndarray, exclude_zero_error: bool = False) -> float:
    """Overall success rate A: the share of all N x P predictions within the MD error bar."""
    return float(_success(y, y_hat, eps, exclude_zero_error, axis=None))


def md_noise_floor(eps: np.ndarray) -> float:
    """E_MD = (1/P) sum_k (1/N sum_j (eps_j^k)^2)^(1/2): the E that the exact mean profiles would score against MD
    labels whose noise has standard deviation eps (E of eq. 3 with the errors in place of the residuals).

    A test E near E_MD means the surrogate's error is at the level of the MD noise in the labels; the exact profiles
    would reach a success rate of about 0.68 there over the points with eps > 0 (P(|x| < sigma) of a Gaussian), A_eps>0,
    and 0.68 x their share over all points, A (the points with eps = 0 never count: about 0.63 on our datasets)."""
    (eps,) = _as_2d(eps)
    if np.any(eps < 0):
        raise ValueError("MD error bars eps must be >= 0")
    return float(np.mean(np.sqrt(np.mean(eps ** 2, axis=0))))


def error_bar_calibration(y_a: np.ndarray, eps_a: np.ndarray, y_b: np.ndarray, eps_b: np.ndarray
                          ) -> dict[str, float]:
    """Check MD error bars with two independent runs of the same systems: z = (y_a - y_b) / (eps_a^2 + eps_b^2)^(1/2).

    With correct (Gaussian) standard errors z has unit variance: `within_1` = share of |z| < 1 ~ 0.683,
    `within_2` ~ 0.954, `z_rms` ~ 1. Errors that are too small give z_rms > 1 and within_1 < 0.683. Points where
    both errors are zero (empty bins next to the walls) are left out. Also `E_between` (E of eq. 3 between the two
    runs) and `E_expected` (the E_MD of the combined errors, which E_between should match)."""
    y_a, eps_a, y_b, eps_b = _as_2d(y_a, eps_a, y_b, eps_b)
    if np.any(eps_a < 0) or np.any(eps_b < 0):
        raise ValueError("MD error bars eps must be >= 0")
    sigma = np.sqrt(eps_a ** 2 + eps_b ** 2)
    ok = sigma > 0
    if not ok.any():
        raise ValueError("every error bar is zero: nothing to calibrate")
    z = (y_a - y_b)[ok] / sigma[ok]
    return {"n_points": int(ok.sum()), "within_1": float(np.mean(np.abs(z) < 1)),
            "within_2": float(np.mean(np.abs(z) < 2)), "z_rms": float(np.sqrt(np.mean(z ** 2))),
            "E_between": overall_rmse(y_a, y_b), "E_expected": md_noise_floor(sigma)}


def evaluate_predictions(y: np.ndarray, y_hat: np.ndarray, eps: np.ndarray | None = None,
                         n_interface: int | None = None) -> dict[str, float]:
    """All summary metrics in one flat dict: E, MSE, E_I+/E_B+/E_I-/E_B- (n_interface None: that of the profile
    length, `default_n_interface`) and (with eps) the MD noise floor E_MD and the success rates: A, A_j_min and
    A_j_median as defined (kadupitiya2021 eq. 10: capped below 1 by the points with eps = 0, about 7.7 % of ours,
    more for larger ions) and the same over the points with eps > 0 (`_eps>0`)."""
    out = {"E": overall_rmse(y, y_hat), "MSE": mse(y, y_hat), **interface_bulk_rmse(y, y_hat, n_interface)}
    if eps is not None:
        a_j = success_rate_per_system(y, y_hat, eps)
        a_j_pos = success_rate_per_system(y, y_hat, eps, exclude_zero_error=True)
        a_j_pos = a_j_pos[np.isfinite(a_j_pos)]  # a system without any eps > 0 has no such rate
        out.update({"E_MD": md_noise_floor(eps), "A": success_rate(y, y_hat, eps), "A_j_min": float(a_j.min()),
                    "A_j_median": float(np.median(a_j)),
                    "A_eps>0": success_rate(y, y_hat, eps, exclude_zero_error=True),
                    "A_j_min_eps>0": float(a_j_pos.min()) if a_j_pos.size else float("nan"),
                    "A_j_median_eps>0": float(np.median(a_j_pos)) if a_j_pos.size else float("nan")})
    return out
