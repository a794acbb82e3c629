"""The papers' metrics pinned on small hand-computed examples."""

import numpy as np
import pytest

from mdsurrogate.evaluation import metrics as M
from mdsurrogate.evaluation import speedup as S


def test_rmse_per_output_and_overall_eq2_eq3():
    y = np.array([[0.0, 1.0], [0.0, 1.0]])
    y_hat = np.array([[3.0, 1.0], [4.0, 1.0]])
    # E_1 = sqrt((9 + 16)/2), E_2 = 0
    np.testing.assert_allclose(M.rmse_per_output(y, y_hat), [np.sqrt(12.5), 0.0])
    assert M.overall_rmse(y, y_hat) == pytest.approx(np.sqrt(12.5) / 2)
    # E is the mean of per-output RMSEs, not the RMSE of everything
    assert M.overall_rmse(y, y_hat) != pytest.approx(np.sqrt(M.mse(y, y_hat)))
    assert M.mse(y, y_hat) == pytest.approx(25 / 4)


def test_mse_equals_mean_of_squared_rmse_k():
    rng = np.random.default_rng(0)
    y, y_hat = rng.normal(size=(7, 12)), rng.normal(size=(7, 12))
    assert M.mse(y, y_hat) == pytest.approx(np.mean(M.rmse_per_output(y, y_hat) ** 2))


def test_interface_bulk_sets_eq6_eq7():
    P = 1004
    y = np.zeros((2, P))
    y_hat = np.zeros((2, P))
    y_hat[:, :50] = 1.0  # cation, left interface
    y_hat[:, 452:502] = 1.0  # cation, right interface
    y_hat[:, 502 + 100] = 2.0  # anion bulk point
    y_hat[:, 1003] = 4.0  # anion interface point (last)
    r = M.interface_bulk_rmse(y, y_hat)
    assert r["E_I+"] == pytest.approx(1.0)
    assert r["E_B+"] == pytest.approx(0.0)
    assert r["E_I-"] == pytest.approx(4.0 / 100)
    assert r["E_B-"] == pytest.approx(2.0 / 402)
    mask = M.interface_mask(502)
    assert mask.sum() == 100 and mask[49] and not mask[50] and mask[452] and not mask[451]


def test_success_rate_eq10_strict_and_axes():
    y = np.array([[1.0, 1.0, 1.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    y_hat = np.array([[1.05, 1.2, 0.75, 0.0], [2.0, 2.0, 3.0, 2.0]])
    eps = np.array([[0.1, 0.1, 0.25, 0.0], [0.5, 0.5, 0.5, 0.5]])
    # system 0: |dy| = .05 < .1 yes, .2 no, .25 < .25 no (strict), 0 < 0 no -> 1/4
    np.testing.assert_allclose(M.success_rate_per_system(y, y_hat, eps), [0.25, 0.75])
    np.testing.assert_allclose(M.success_rate_per_output(y, y_hat, eps), [1.0, 0.5, 0.0, 0.5])
    assert M.success_rate(y, y_hat, eps) == pytest.approx(4 / 8)
    # excluding points whose MD error is exactly zero (empty wall bins)
    np.testing.assert_allclose(M.success_rate_per_system(y, y_hat, eps, exclude_zero_error=True), [1 / 3, 0.75])
    with pytest.raises(ValueError, match="eps"):
        M.success_rate(y, y_hat, -eps)
    with pytest.raises(ValueError, match="shape"):
        M.success_rate(y, y_hat[:, :3], eps)


def test_rmse_per_system_eq9():
    y = np.zeros((1, 4))
    y_hat = np.array([[1.0, 1.0, 0.0, 2.0]])
    r = M.rmse_per_system(y, y_hat)
    assert r["plus"][0] == pytest.approx(1.0) and r["minus"][0] == pytest.approx(np.sqrt(2.0))


def test_evaluate_predictions_keys():
    rng = np.random.default_rng(1)
    y = rng.random((3, 1004))
    out = M.evaluate_predictions(y, y + 0.01, np.full_like(y, 0.02))
    assert out["E"] == pytest.approx(0.01) and out["A"] == 1.0
    assert set(out) >= {"E", "MSE", "E_I+", "E_B+", "E_I-", "E_B-", "A", "A_j_min"}


def test_a_perfect_prediction_is_capped_only_where_the_md_error_is_zero():
    """Exact profiles: A and A_j count the eps = 0 points as failures (eq. 10), the eps > 0 versions reach 1."""
    y = np.ones((2, 1004))
    eps = np.full_like(y, 0.1)
    eps[0, :100] = 0.0  # system 0: 100 empty bins
    out = M.evaluate_predictions(y, y.copy(), eps)
    assert out["A"] == pytest.approx(1 - 100 / 2008) and out["A_j_min"] == pytest.approx(1 - 100 / 1004)
    assert out["A_eps>0"] == out["A_j_min_eps>0"] == out["A_j_median_eps>0"] == 1.0


def test_interface_width_follows_the_profile_length():
    """50 of 502 points per wall (sun2023), 15 of 150 (the uncharged system): an error placed only in the bulk of
    a 150-point profile stays out of E_I."""
    assert M.default_n_interface(502) == 50 and M.default_n_interface(150) == 15
    y = np.zeros((1, 300))
    y_hat = y.copy()
    y_hat[0, 20:130] = 1.0  # bulk of n+ only (points 15..134 of 150)
    got = M.evaluate_predictions(y, y_hat)
    assert got["E_I+"] == 0.0 and got["E_B+"] > 0 and got == M.evaluate_predictions(y, y_hat, n_interface=15)


def test_md_noise_floor_is_the_error_of_the_exact_profiles():
    """E_MD pins the formula (mean over outputs of the RMS error bar) and is what exact profiles score against
    labels drawn with those errors: E ~ E_MD and A ~ 0.683."""
    eps = np.array([[0.1, 0.0], [0.3, 0.4]])
    assert M.md_noise_floor(eps) == pytest.approx(0.5 * (np.sqrt((0.01 + 0.09) / 2) + np.sqrt(0.16 / 2)))
    rng = np.random.default_rng(2)
    truth = rng.random((4000, 202))
    eps = 0.01 + 0.05 * rng.random((4000, 202))
    labels = truth + eps * rng.standard_normal(truth.shape)
    out = M.evaluate_predictions(labels, truth, eps)
    assert out["E"] == pytest.approx(out["E_MD"], rel=0.02)
    assert out["A"] == pytest.approx(0.683, abs=0.01)
    with pytest.raises(ValueError, match="eps"):
        M.md_noise_floor(-eps)


def test_error_bar_calibration_detects_wrong_error_bars():
    """Two runs with noise of the stated size: z has unit variance (within_1 ~ 0.683); if the stated errors are
    half the real noise, z_rms ~ 2 and within_1 ~ 0.383. Zero-error points are left out."""
    rng = np.random.default_rng(5)
    truth = rng.random((300, 200))
    eps_a, eps_b = 0.02 + 0.03 * rng.random(truth.shape), 0.01 + 0.01 * rng.random(truth.shape)
    eps_a[:, :3] = eps_b[:, :3] = 0.0
    y_a = truth + eps_a * rng.standard_normal(truth.shape)
    y_b = truth + eps_b * rng.standard_normal(truth.shape)
    good = M.error_bar_calibration(y_a, eps_a, y_b, eps_b)
    assert good["n_points"] == 300 * 197
    assert good["within_1"] == pytest.approx(0.683, abs=0.01) and good["within_2"] == pytest.approx(0.954, abs=0.01)
    assert good["z_rms"] == pytest.approx(1.0, abs=0.02)
    assert good["E_between"] == pytest.approx(good["E_expected"], rel=0.03)
    bad = M.error_bar_calibration(y_a, eps_a / 2, y_b, eps_b / 2)
    assert bad["z_rms"] == pytest.approx(2.0, abs=0.04) and bad["within_1"] == pytest.approx(0.383, abs=0.01)
    with pytest.raises(ValueError, match="zero"):
        M.error_bar_calibration(y_a, 0 * eps_a, y_b, 0 * eps_b)


def test_speedup_equations():
    # eq. 4 with the papers' times; t_p -> 0 reproduces eq. 5
    s = S.speedup(n_predictions=4050, t_seq=24.0, t_p=0.0, n_train=1550, t_train=3.5)
    assert s == pytest.approx(S.speedup_approx(S.s_hpc(24, 3.5), n_test=2500, n_train=1550))
    assert S.speedup(100, 24.0, 0.3 / 3600, 10, 3.5) < S.speedup(100, 24.0, 0.0, 10, 3.5)
    assert S.s_hpc(24, 3.5) == pytest.approx(24 / 3.5)
    s_b = S.baseline_speedup(7.0, 4050, 1550)
    assert s_b == pytest.approx(7 * 4050 / 1550)
    for f in (0.0, 0.1, 0.5, 1.0):  # eq. 9 == eq. 10
        assert S.net_speedup(7.0, 4050, 1550, f) == pytest.approx(S.net_speedup_from_baseline(s_b, 7.0, f))
    # paper's bounds: f = 1 -> S' < 2 S_HPC; f = 0 -> S' = 2 S_B
    assert S.net_speedup_from_baseline(1e9, 7.0, 1.0) == pytest.approx(14.0, rel=1e-6)
    assert S.net_speedup_from_baseline(s_b, 7.0, 0.0) == pytest.approx(2 * s_b)
    with pytest.raises(ValueError, match="f"):
        S.net_speedup(7.0, 4050, 1550, 1.5)
    with pytest.raises(ValueError, match="t_seq"):
        S.speedup(1, 0.0, 0.1, 1, 1)


def test_the_authors_error_correction_is_applied_once():
    """A reference whose errors were already divided by 2.1 when it was loaded is not divided again."""
    import xarray as xr

    from mdsurrogate.dataset import AUTHORS_ERROR_OVERESTIMATE
    from mdsurrogate.evaluation.studies import authors_error_divisor

    raw = xr.Dataset(attrs={"error_scale": 1.0})
    corrected = xr.Dataset(attrs={"error_scale": 1 / AUTHORS_ERROR_OVERESTIMATE})
    assert authors_error_divisor(raw) == AUTHORS_ERROR_OVERESTIMATE
    assert authors_error_divisor(corrected) == pytest.approx(1.0)
    assert authors_error_divisor(xr.Dataset()) == AUTHORS_ERROR_OVERESTIMATE  # files without the attribute: raw
