"""The analysis stage: Sobol indices (SALib's sampling and estimators, streamed over all outputs) and sweeps."""

import json
import warnings

import numpy as np
import pytest
from SALib.analyze import sobol as salib_analyze
from SALib.sample import sobol as salib_sample

from mdsurrogate.analysis import sobol_indices, sweep
from mdsurrogate.analysis.sensitivity import sobol_problem
from mdsurrogate.simulation.derived import charge_density, integrated_charge, screening_length
from mdsurrogate.simulation.system import N_GRID
from mdsurrogate.surrogate import load_surrogate
from mdsurrogate.surrogate.ensemble import ExtrapolationError

PI = np.pi
ISHIGAMI = {"x1": ("unif", -PI, PI), "x2": ("unif", -PI, PI), "x3": ("unif", -PI, PI)}
BASE = {"h": 4.5, "c": 0.3, "d_plus": 0.4, "d_minus": 0.6, "sigma_s": -0.015}


def ishigami(X, a=7.0, b=0.1):
    return np.sin(X[:, 0]) + a * np.sin(X[:, 1]) ** 2 + b * X[:, 2] ** 4 * np.sin(X[:, 0])


def ishigami_indices(a=7.0, b=0.1):
    """Analytic S1 and ST of the Ishigami function on [-pi, pi]^3."""
    v1 = 0.5 * (1 + b * PI**4 / 5) ** 2
    v2 = a**2 / 8
    v13 = b**2 * PI**8 * (1 / 18 - 1 / 50)
    v = v1 + v2 + v13
    return np.array([v1, v2, 0.0]) / v, np.array([v1 + v13, v2, v13]) / v


@pytest.fixture(scope="module")
def sur():
    return load_surrogate(None)


def test_ishigami_and_a_linear_model_give_their_analytic_indices():
    # outputs: Ishigami (uniform inputs) and a linear model of normal inputs, whose S1 = ST = a_i^2 sd_i^2 / sum
    coef, sd = np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.1, 2.0])

    def model(X):
        lin = (X[:, 3:] @ coef)
        return np.stack([ishigami(X[:, :3]), lin], axis=1)

    inputs = {**ISHIGAMI, **{f"y{i}": ("norm", 1.0 + i, s) for i, s in enumerate(sd)}, "fixed": 3.0}
    ds = sobol_indices(lambda X: model(np.delete(X, 6, axis=1)), inputs, 2**13, seed=1)
    assert list(ds["input"].values) == ["x1", "x2", "x3", "y0", "y1", "y2"]
    assert ds.attrs["n_evaluations"] == 2**13 * 8
    s1, st = ishigami_indices()
    np.testing.assert_allclose(ds["S1"].values[:3, 0], s1, atol=0.02)
    np.testing.assert_allclose(ds["ST"].values[:3, 0], st, atol=0.02)
    np.testing.assert_allclose(ds["S1"].values[3:, 0], 0.0, atol=0.01)  # the linear inputs don't reach Ishigami
    lin = (coef * sd) ** 2 / ((coef * sd) ** 2).sum()
    np.testing.assert_allclose(ds["S1"].values[3:, 1], lin, atol=0.01)
    np.testing.assert_allclose(ds["ST"].values[3:, 1], lin, atol=0.01)
    np.testing.assert_allclose(ds["S1"].values[:3, 1], 0.0, atol=1e-12)
    assert np.all(ds["S1_conf"].values[:3, 0] > 0) and np.all(ds["S1_conf"].values[:3, 0] < 0.05)


@pytest.mark.parametrize("second", [False, True])
def test_every_output_equals_salib_analyze(second):
    def model(X):
        return np.stack([ishigami(X), X[:, 0] * X[:, 2], 2 * X[:, 1] + 50.0, np.full(len(X), 3.0)], axis=1)

    inputs = {"x1": ("unif", -PI, PI), "x2": ("norm", 0.5, 1.5), "x3": ("unif", 0.0, 2.0)}
    ds = sobol_indices(model, inputs, 512, seed=7, calc_second_order=second)
    problem, _ = sobol_problem(inputs)
    Y = model(salib_sample.sample(problem, 512, calc_second_order=second, seed=7))
    keys = ("S1", "S1_conf", "ST", "ST_conf") + (("S2", "S2_conf") if second else ())
    for p in range(Y.shape[1]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SALib warns about the constant output
            ref = salib_analyze.analyze(problem, Y[:, p], calc_second_order=second, seed=7)
        for key in keys:
            np.testing.assert_allclose(ds[key].values[..., p], ref[key], rtol=1e-9, atol=1e-12, err_msg=f"{key} {p}")
    assert np.all(ds["S1"].values[:, 3] == 0)  # constant output: 0, as SALib


def test_surrogate_indices_equal_salib_on_sampled_points(sur):
    inputs = {**BASE, "d_plus": ("norm", 0.4, 0.01), "d_minus": ("unif", 0.55, 0.62)}
    ds = sobol_indices(sur, inputs, 64, seed=3)
    assert ds["S1_n_plus"].dims == ("input", "point") and ds.sizes == {"input": 2, "point": N_GRID}
    assert list(ds["input"].values) == ["d_plus", "d_minus"]
    np.testing.assert_allclose(ds["z"].values, sur.z_grid(np.array([4.5]))[0])
    assert ds.attrs["n_evaluations"] == 64 * 4 and ds.attrs["seed"] == 3 and ds.attrs["surrogate"] == sur.name
    assert json.loads(ds.attrs["problem"])["dists"] == ["norm", "unif"]
    problem, _ = sobol_problem({k: v for k, v in inputs.items() if isinstance(v, tuple)})
    S = salib_sample.sample(problem, 64, calc_second_order=False, seed=3)
    X = np.tile([BASE[k] for k in ("h", "c", "d_plus", "d_minus", "sigma_s")], (len(S), 1))
    X[:, 2:4] = S
    Y, _ = sur.predict_mean_std(X, std=False)
    rho = Y[:, :N_GRID] - Y[:, N_GRID:]  # the charge density up to e N_A: its own indices, not a mix of n+'s, n-'s
    for p in (3, 40, 251):
        for ion, y in (("n_plus", Y[:, p]), ("n_minus", Y[:, N_GRID + p]), ("rho", rho[:, p])):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a wall point is constant (ReLU-clipped)
                ref = salib_analyze.analyze(problem, y.astype(float), calc_second_order=False, seed=3)
            for key in ("S1", "ST", "S1_conf", "ST_conf"):
                name = f"{key[:2]}_{ion}" + ("_conf" if key.endswith("conf") else "")
                np.testing.assert_allclose(ds[name].values[:, p], ref[key], rtol=1e-6, atol=1e-9)


def test_uncertain_h_reads_every_profile_at_the_same_positions(sur):
    """Each profile's grid scales with its own h: with h uncertain, point k must be the same z for every sample
    (the nominal h's grid), or the indices would mix positions."""
    inputs = {**BASE, "h": ("unif", 4.2, 4.8)}
    ds = sobol_indices(sur, inputs, 32, seed=5)
    z = sur.z_grid(np.array([4.5]))[0]
    np.testing.assert_allclose(ds["z"].values, z)
    problem, _ = sobol_problem({"h": inputs["h"]})
    S = salib_sample.sample(problem, 32, calc_second_order=False, seed=5)
    X = np.tile([BASE[k] for k in ("h", "c", "d_plus", "d_minus", "sigma_s")], (len(S), 1))
    X[:, 0] = S[:, 0]
    Y, _ = sur.predict_on_grid(X, np.broadcast_to(z, (len(X), len(z))), std=False)
    for p in (5, 100, 251):
        ref = salib_analyze.analyze(problem, Y[:, p].astype(float), calc_second_order=False, seed=5)
        np.testing.assert_allclose(ds["S1_n_plus"].values[:, p], ref["S1"], rtol=1e-6, atol=1e-9)


def test_sobol_indices_refuses_bad_inputs(sur):
    with pytest.raises(ValueError, match="uncertain"):
        sobol_indices(ishigami, {"x1": 1.0, "x2": 2.0, "x3": 0.0}, 64)
    with pytest.raises(ValueError, match="standard deviation"):
        sobol_indices(ishigami, {"x1": ("norm", 0.0, 0.0), "x2": 1.0, "x3": 1.0}, 64)
    with pytest.raises(ValueError, match="norm"):
        sobol_indices(ishigami, {"x1": ("beta", 0.0, 1.0), "x2": 1.0, "x3": 1.0}, 64)
    with pytest.raises(ValueError, match="sigma_s"):
        sobol_indices(sur, {"h": 4.5, "c": ("unif", 0.2, 0.4), "d_plus": 0.4, "d_minus": 0.6}, 64)
    with pytest.raises(ExtrapolationError, match="c "):
        sobol_indices(sur, {**BASE, "c": ("unif", 1.5, 2.5)}, 64)
    # confidence settings SALib would turn into NaN intervals
    unc = {"x1": ("unif", 0.0, 1.0), "x2": ("unif", 0.0, 1.0), "x3": 0.0}
    with pytest.raises(ValueError, match=r"conf_level must be in \(0, 1\).*got 95"):
        sobol_indices(ishigami, unc, 64, conf_level=95)
    for bad in (0, 1):
        with pytest.raises(ValueError, match="num_resamples .* integer >= 2"):
            sobol_indices(ishigami, unc, 64, num_resamples=bad)


def test_screening_length_of_an_exponential_decay():
    """S = sigma exp(-x/lambda) from the wall: z* = lambda, to well under a bin (0.009 nm here)."""
    h = 4.5
    z = np.linspace(-h / 2, h / 2, N_GRID)
    for lam in (0.1, 0.3, 0.7):
        S = -0.01 * np.exp(-(z + h / 2) / lam)
        assert screening_length(z, S, h) == pytest.approx(lam, rel=2e-3)
    assert np.isnan(screening_length(z, np.full(N_GRID, -0.01), h))  # never decays


def test_sweep_profiles_and_derived_quantities(sur):
    values = [0.2, 0.5, 1.0, 1.9]
    ds = sweep(sur, BASE, "c", values)
    assert ds["n_plus"].dims == ("value", "point") and ds.sizes == {"value": 4, "point": N_GRID}
    np.testing.assert_array_equal(ds["value"].values, values)
    np.testing.assert_array_equal(ds["c"].values, values)
    assert ds.attrs["input"] == "c" and ds.attrs["surrogate"] == sur.name
    assert json.loads(ds.attrs["base"]) == {k: v for k, v in BASE.items() if k != "c"}
    ref = sur.predict({**{k: np.full(4, v) for k, v in BASE.items()}, "c": np.array(values)}, derived=False)
    np.testing.assert_array_equal(ds["n_plus"].values, ref["n_plus"].values)
    np.testing.assert_array_equal(ds["n_minus_std"].values, ref["n_minus_std"].values)
    for i in range(4):
        z, npl, nmi = (ds[v].values[i].astype(float) for v in ("z", "n_plus", "n_minus"))
        rho = charge_density(npl, nmi)
        np.testing.assert_allclose(ds["rho"].values[i], rho, rtol=1e-12)
        sig = float(ds["sigma_s_effective"].values[i])
        assert sig == pytest.approx(-0.015, rel=0.05) and abs(sig) <= 0.015
        S = integrated_charge(z, rho, sig)
        np.testing.assert_allclose(ds["S"].values[i], S, rtol=1e-12, atol=1e-15)
        assert float(ds["decay_length"].values[i]) == screening_length(z, S, 4.5)
        # electroneutral: S at the midplane within 0.1 |sigma_s| (the shipped test's tolerance; MD median 0.028)
        assert abs(np.interp(0.0, z, S)) < 0.1 * abs(sig)
    # screening: the decay length shrinks with salt
    assert ds["decay_length"].values[0] > ds["decay_length"].values[-1] > 0
    with pytest.raises(ValueError, match="base lacks"):
        sweep(sur, {"h": 4.5}, "c", values)
    with pytest.raises(ValueError, match="unknown input"):
        sweep(sur, BASE, "temperature", values)
    with pytest.raises(ExtrapolationError):
        sweep(sur, BASE, "h", [3.0, 4.5])
