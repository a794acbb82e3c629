"""Block averaging and blocking analysis on processes with known statistics."""

import numpy as np
import pytest

from mdsurrogate.simulation.profiles import (
    block_average,
    blocking_analysis,
    lag1_autocorrelation,
    number_density_to_molar,
    rebin_mean,
    relative_error,
    resample,
)


def ar1(n, phi, rng, cols=200):
    """AR(1) series x_t = phi x_{t-1} + e_t, unit innovation variance; true SE of the mean of n samples is
    sqrt(var (1 + phi)/(1 - phi) / n) with var = 1/(1 - phi^2)."""
    x = np.empty((n, cols))
    x[0] = rng.normal(size=cols) / np.sqrt(1 - phi**2)
    e = rng.normal(size=(n, cols))
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x


def test_block_standard_error_matches_theory_for_correlated_data():
    rng = np.random.default_rng(0)
    phi, n = 0.9, 20_000
    x = ar1(n, phi, rng)
    true_se = np.sqrt(1 / (1 - phi**2) * (1 + phi) / (1 - phi) / n)
    _, se = block_average(x, n_blocks=20)
    assert np.median(se) == pytest.approx(true_se, rel=0.1)
    # the naive SE (treating samples as independent) is far too small: this is what blocking fixes
    naive = x.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.median(naive) < 0.3 * true_se


def test_blocking_analysis_plateaus_at_the_true_error():
    rng = np.random.default_rng(1)
    phi, n = 0.8, 2**14
    x = ar1(n, phi, rng, cols=100)
    lengths, errs = blocking_analysis(x)
    med = np.median(errs, axis=1)
    true_se = np.sqrt(1 / (1 - phi**2) * (1 + phi) / (1 - phi) / n)
    assert lengths[0] == 1 and lengths[1] == 2
    assert med[0] < 0.5 * true_se  # unblocked: underestimated
    plateau = med[(lengths >= 64) & (lengths <= 512)]
    assert np.all(np.abs(plateau / true_se - 1) < 0.15)


def test_lag1_autocorrelation_of_block_means_vanishes_for_long_blocks():
    rng = np.random.default_rng(2)
    x = ar1(40_000, 0.95, rng, cols=50)
    r_short = np.median(lag1_autocorrelation(x[:2000]))
    from mdsurrogate.simulation.profiles import block_means
    r_blocks = np.median(lag1_autocorrelation(block_means(x, 20)))
    assert r_short > 0.8
    assert abs(r_blocks) < 0.2


def test_standard_error_shrinks_as_inverse_sqrt_of_time():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32_000, 300))
    _, se_quarter = block_average(x[:8000], 20)
    _, se_full = block_average(x, 20)
    assert np.median(se_quarter / se_full) == pytest.approx(2.0, rel=0.1)


def test_block_average_rejects_too_few_samples():
    with pytest.raises(ValueError, match="n_blocks"):
        block_average(np.ones((5, 3)), n_blocks=20)


def test_unit_conversion_and_resampling():
    # 1 ion per sigma^3 with sigma = 1 nm is 1/0.6022 M
    assert number_density_to_molar(np.array([1.0]), 1.0)[0] == pytest.approx(1 / 0.6022)
    z = np.linspace(0, 1, 11)
    y = 2 * z
    assert resample(z, y, np.array([0.25, 0.55]))[0] == pytest.approx(0.5)
    centres, means = rebin_mean(z, y, np.array([0.0, 0.5, 1.0001]))
    assert means == pytest.approx([0.4, 1.5])  # means of 2z over z in {0..0.4} and {0.5..1.0}
    assert relative_error(np.array([0, 1.0, 2.0]), np.array([0, 0.1, 0.1])) == pytest.approx(0.075)


def test_block_average_uses_every_sample_when_blocks_do_not_divide_them():
    """59 stored blocks into 20 error blocks (the precise test set's runs): all 59 count, none is dropped."""
    from mdsurrogate.simulation.profiles import block_means

    rng = np.random.default_rng(4)
    x = rng.normal(size=(59, 2000))
    x[:19] += 1.0  # a shift confined to the first 19 samples must move the mean by 19/59
    mean, se = block_average(x, 20)
    np.testing.assert_allclose(mean, x.mean(axis=0))
    assert np.median(mean) == pytest.approx(19 / 59, abs=0.03)
    means = block_means(x, 20)
    assert means.shape == (20, 2000)
    np.testing.assert_allclose(means[0], x[:3].mean(axis=0))  # 19 blocks of 3 samples, then 1 of 2
    np.testing.assert_allclose(means[-1], x[-2:].mean(axis=0))
    # white noise: SE = sd / sqrt(59) whatever the block lengths
    se0 = block_average(rng.normal(size=(59, 2000)), 20)[1]
    assert np.median(se0) == pytest.approx(1 / np.sqrt(59), rel=0.1)
    # a number of samples divisible by the blocks: the plain reshape, as before
    y = rng.normal(size=(40, 5))
    np.testing.assert_allclose(block_means(y, 20), y.reshape(20, 2, 5).mean(axis=1))


def test_native_bins_beyond_the_wall_are_left_out_of_the_grid():
    """LAMMPS sometimes adds a bin past +h/2 (rounding of the printed bound): the grid profile must not depend on
    it, and the interpolation must stay between the walls' zeros."""
    from mdsurrogate.simulation.engine import native_to_grid

    h, width = 4.2, 0.05
    z_native = np.arange(-h / 2 + width / 2, h / 2, width)
    values = np.exp(-((z_native / 1.0) ** 2))
    z = np.linspace(-h / 2, h / 2, 502)
    plain = native_to_grid(z_native, values, h, z)
    extra = native_to_grid(np.append(z_native, h / 2 + width / 2), np.append(values, 7.0), h, z)
    np.testing.assert_allclose(extra, plain)
    assert plain[0] == 0.0 and plain[-1] == 0.0
    np.testing.assert_allclose(plain, plain[::-1], atol=1e-12)  # symmetric bins give a symmetric profile
