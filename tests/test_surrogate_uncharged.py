"""The surrogate of the uncharged-wall system (kadupitiya2020, issue 12): trained on a small real campaign
(tests/data/uncharged_small.nc: 30 systems of campaigns/uncharged_multivalent.toml's grid, 22 000 steps each,
spec tests/data/uncharged_small.toml), with the papers' metrics on a random test split; the charged-wall surrogate
shipped in the package still loads and predicts exactly as before."""

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

from mdsurrogate.cli import app
from mdsurrogate.dataset import load_dataset, to_arrays
from mdsurrogate.evaluation.scoring import fit_and_score
from mdsurrogate.simulation.derived import ELEMENTARY_CHARGE, MOLAR_TO_PER_M3
from mdsurrogate.simulation.system import (
    CHARGED_SCHEMA,
    UNCHARGED_INPUT_NAMES,
    UNCHARGED_SCHEMA,
    ConfinedElectrolyte,
    UnchargedElectrolyte,
    system_schema,
)
from mdsurrogate.surrogate import (
    ExtrapolationError,
    Surrogate,
    SurrogateLoadError,
    default_surrogate_path,
    load_surrogate,
)
from mdsurrogate.surrogate.training import default_config

DATA = Path(__file__).parent / "data" / "uncharged_small.nc"
SYSTEM = {"h": 3.0, "c": 0.5, "z_p": 2, "z_n": -1, "d": 0.7}
#: Electroneutrality of predicted profiles: |integral of z_p n+ + z_n n-| / integral of z_p n+ over the slit, on
#: the test systems (the MD's own profiles: < 0.002). Measured with 1500 epochs: median 0.010, max 0.053; an
#: ensemble trained for 20 epochs: median 0.17, max 0.45.
NEUTRAL_MEDIAN, NEUTRAL_MAX = 0.04, 0.10


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    ds = load_dataset(DATA)
    cfg = replace(default_config(), max_epochs=1500)
    sur, report = fit_and_score(ds, cfg, n_members=2, n_test=0.2, seed=0, name="uncharged-test")
    path = tmp_path_factory.mktemp("sur") / "model"
    sur.save(path)
    return ds, sur, report, path


def _imbalance(pred: xr.Dataset) -> np.ndarray:
    """Net charge over the slit relative to the cations' charge, per system."""
    z = pred.z.values * 1e-9
    total = pred.integrated_charge.values[:, -1]  # S(h/2): sigma_s_effective = 0 plus the ions' charge
    cations = np.trapezoid(pred.z_p.values[:, None] * pred.n_plus.values, z, axis=1) * ELEMENTARY_CHARGE \
        * MOLAR_TO_PER_M3
    return np.abs(total) / cations


def test_schemas_describe_the_two_learning_problems():
    assert system_schema() is CHARGED_SCHEMA and system_schema("uncharged") is UNCHARGED_SCHEMA
    assert UNCHARGED_SCHEMA.input_names == UNCHARGED_INPUT_NAMES and UNCHARGED_SCHEMA.n_points == 150
    assert CHARGED_SCHEMA.n_outputs == 1004 and UNCHARGED_SCHEMA.design_ranges["z_n"] == (-2.0, -1.0)
    with pytest.raises(ValueError, match="unknown system kind"):
        system_schema("neutral")


def test_card_records_the_kind_and_the_papers_metrics(trained):
    ds, sur, report, path = trained
    card = json.loads((path / "card.json").read_text())
    assert card["system_kind"] == "uncharged" and sur.system_kind == "uncharged"
    assert [d["name"] for d in card["inputs"]] == list(UNCHARGED_INPUT_NAMES)
    assert card["outputs"]["n_points"] == 150 and card["architecture"]["n_outputs"] == 300
    assert card["architecture"]["system"] == "uncharged" and card["architecture"]["mirror"] is True
    assert card["training_data"]["n_train"] == 24 and len(card["training_data"]["test_systems"]) == 6
    m = card["metrics"]["test_ensemble"]
    assert {"E", "E_I+", "E_B+", "E_I-", "E_B-", "MSE", "E_MD", "A", "A_eps>0"} <= set(m)
    # far better than the mean training profile (E 0.21 M); measured E 0.031 M against E_MD 0.013 M
    arrays = to_arrays(ds)
    tr, te = report["split"]["train"], report["split"]["test"]
    e_mean_profile = float(np.sqrt(np.mean((arrays.Y[te] - arrays.Y[tr].mean(axis=0)) ** 2)))
    assert m["E"] < 0.3 * e_mean_profile and m["E"] < 4 * m["E_MD"]


def test_saves_loads_and_predicts_the_right_shape(trained, monkeypatch, tmp_path):
    ds, sur, report, path = trained
    loaded = Surrogate.load(path)
    assert loaded.system_kind == "uncharged" and load_surrogate(path, system="uncharged").name == "uncharged-test"
    one = loaded.predict(SYSTEM)
    assert one.sizes == {"system": 1, "point": 150} and one.attrs["system_kind"] == "uncharged"
    np.testing.assert_allclose(one.z.values[0], np.linspace(-1.5, 1.5, 150))
    np.testing.assert_allclose(one.n_plus.values, sur.predict(SYSTEM).n_plus.values, rtol=1e-6)
    assert one.z_p.values.tolist() == [2] and one.z_p.dtype.kind == "i"
    assert {"n_plus_std", "charge_density", "integrated_charge", "sigma_s_effective"} <= set(one)
    assert one.sigma_s_effective.values.tolist() == [0.0]
    # the other input forms: a system object and an (N, 5) array in the input order
    obj = loaded.predict(UnchargedElectrolyte(**SYSTEM))
    arr = loaded.predict(np.array([[3.0, 0.5, 2, -1, 0.7], [3.5, 0.6, 3, -1, 0.6]]))
    np.testing.assert_allclose(obj.n_minus.values, one.n_minus.values)
    assert arr.sizes == {"system": 2, "point": 150}
    # charge density with the valencies: rho = e N_A (z_p n+ + z_n n-)
    want = ELEMENTARY_CHARGE * MOLAR_TO_PER_M3 * (2 * one.n_plus.values.astype(float) - one.n_minus.values)
    np.testing.assert_allclose(one.charge_density.values, want, rtol=1e-6, atol=1e-3)  # float32 densities
    with pytest.raises(SurrogateLoadError, match=r"uncharged-wall system .*not of the charged-wall system"):
        load_surrogate(path, system="charged")
    # a package without a shipped surrogate of a kind says so in one line
    import mdsurrogate.surrogate.card as card_module

    monkeypatch.setattr(card_module, "default_surrogate_path", lambda system="charged": tmp_path / "none")
    with pytest.raises(SurrogateLoadError, match="no uncharged-wall surrogate ships with this mdsurrogate yet"):
        Surrogate.load(system="uncharged")


def test_refuses_charged_inputs_in_one_line_and_bad_valencies(trained):
    _, sur, _, _ = trained
    charged = {"h": 4.4, "c": 0.5, "d_plus": 0.415, "d_minus": 0.415, "sigma_s": -0.015}
    for inputs in (charged, ConfinedElectrolyte(**charged)):
        with pytest.raises(ValueError, match=r"^inputs lack z_p, z_n, d; the surrogate of the uncharged-wall system "
                                             r"needs h, c, z_p, z_n, d [^\n]*$"):
            sur.predict(inputs)
    with pytest.raises(ValueError, match=r"z_p \(cation valency\) = 2.5 .* must be an integer valency"):
        sur.predict({**SYSTEM, "z_p": 2.5})
    with pytest.raises(ExtrapolationError, match=r"z_n \(anion valency\) = -2 .*training range \[-1, -1\]"):
        sur.predict({**SYSTEM, "z_n": -2})
    with pytest.raises(ValueError, match="physical limits"):
        sur.predict({**SYSTEM, "z_p": 7}, allow_extrapolation=True)


def test_predicted_profiles_are_mirror_symmetric_and_electroneutral(trained):
    ds, sur, report, _ = trained
    test = ds.isel(system=report["split"]["test"])
    pred = sur.predict(test)
    for v in ("n_plus", "n_minus", "n_plus_std"):
        np.testing.assert_allclose(pred[v].values, pred[v].values[:, ::-1], rtol=0, atol=1e-6)
    md = xr.Dataset({"z": test.z, "n_plus": test.n_plus, "z_p": test.z_p,
                     "integrated_charge": test.integrated_charge})
    assert _imbalance(md).max() < 0.002  # the MD's profiles are neutral: the check measures the surrogate
    imbalance = _imbalance(pred)
    assert np.median(imbalance) < NEUTRAL_MEDIAN and imbalance.max() < NEUTRAL_MAX, imbalance


def test_the_electroneutrality_check_fails_for_an_undertrained_ensemble():
    torch.set_num_threads(1)
    ds = load_dataset(DATA)
    sur, report = fit_and_score(ds, replace(default_config(), max_epochs=20), n_members=2, n_test=0.2, seed=0)
    imbalance = _imbalance(sur.predict(ds.isel(system=report["split"]["test"])))
    assert np.median(imbalance) > NEUTRAL_MEDIAN or imbalance.max() > NEUTRAL_MAX


def test_cli_trains_on_an_uncharged_dataset_and_predicts(tmp_path):
    runner = CliRunner()
    model = tmp_path / "model"
    res = runner.invoke(app, ["train", str(DATA), "--out", str(model), "--members", "1", "--epochs", "200",
                              "--baselines"])
    assert res.exit_code == 0, res.output
    assert "random test split (6 systems)" in res.output and "polynomial (degree 4)" in res.output
    assert json.loads((model / "card.json").read_text())["system_kind"] == "uncharged"
    args = ["predict", "--system", "uncharged", "--h", "3.0", "--c", "0.5", "--zp", "2", "--zn", "-1", "--d", "0.7"]
    res = runner.invoke(app, [*args, "--model", str(model), "-o", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    out = xr.load_dataset(tmp_path / "p.nc", engine="h5netcdf")
    assert out.sizes == {"system": 1, "point": 150} and out.attrs["system_kind"] == "uncharged"
    assert out.z_p.values.tolist() == [2] and (tmp_path / "p.tsv").exists() and (tmp_path / "p.png").exists()
    # the kind comes from the model when --system is left out; options of the other kind are refused in one line
    res = runner.invoke(app, args[:1] + args[3:] + ["--model", str(model), "-o", str(tmp_path / "q")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["predict", "--model", str(model), "--h", "3.0", "--c", "0.5", "--d-plus", "0.4",
                              "--d-minus", "0.4", "--sigma-s", "-0.01", "-o", str(tmp_path / "r")])
    assert res.exit_code != 0 and re.search(r"--d-plus, --d-minus, --sigma-s belong to the charged system", res.output)
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "s")])  # the shipped uncharged surrogate
    assert res.exit_code == 0 and xr.load_dataset(tmp_path / "s.nc", engine="h5netcdf").attrs["system_kind"] == \
        "uncharged", res.output
    res = runner.invoke(app, [*args[:-2], "--model", str(model), "-o", str(tmp_path / "t")])
    assert res.exit_code != 0 and "missing --d" in res.output
    res = runner.invoke(app, ["evaluate", str(DATA), "--model", str(model), "--split", "test"])
    assert res.exit_code == 0, res.output


#: The shipped charged-wall surrogate's predictions (the full-grid retrain of 2026-12-07, commit after 40e2de8):
#: n_plus at points 0, 40, 125, 251, 400 of three systems, and their decay lengths (nm).
SHIPPED_X = np.array([[4.4, 0.5, 0.415, 0.415, -0.015], [4.0, 1.7, 0.25, 0.6, -0.02], [4.9, 0.15, 0.6, 0.3, -0.011]])
SHIPPED_N_PLUS = [[0.0, 0.7404022216796875, 0.6064568758010864, 0.5914624929428101, 0.6215229630470276],
                  [0.0, 2.0270605087280273, 1.90792715549469, 1.906736969947815, 1.8810455799102783],
                  [0.0, 0.30006685853004456, 0.21477088332176208, 0.1991911679506302, 0.22735542058944702]]
SHIPPED_DECAY = [0.5773780931549952, 0.17804996743913026, 0.9786763036147241]


def test_the_shipped_charged_surrogate_loads_and_predicts_as_recorded(tmp_path):
    sur = Surrogate.load()
    assert sur.system_kind == "charged" and sur.card["system_kind"] == "charged"  # the retrained card records it
    assert Surrogate.load(system="charged").card["weights"]["sha256"] == sur.card["weights"]["sha256"]
    pred = sur.predict(SHIPPED_X)
    assert pred.sizes == {"system": 3, "point": 502}
    np.testing.assert_allclose(pred.n_plus.values[:, [0, 40, 125, 251, 400]], SHIPPED_N_PLUS, rtol=0, atol=1e-6)
    np.testing.assert_allclose(pred.decay_length.values, SHIPPED_DECAY, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"^inputs lack d_plus, d_minus, sigma_s; the surrogate of the charged-wall"):
        sur.predict(SYSTEM)
    # a card saved before the uncharged system existed has no system_kind: it is the charged-wall system's
    old = tmp_path / "old_card"
    shutil.copytree(default_surrogate_path(), old)
    card = json.loads((old / "card.json").read_text())
    card.pop("system_kind", None)
    (old / "card.json").write_text(json.dumps(card))
    legacy = Surrogate.load(old)
    assert legacy.system_kind == "charged"
    np.testing.assert_allclose(legacy.predict(SHIPPED_X).n_plus.values, pred.n_plus.values, rtol=0, atol=0)


def test_cli_trains_and_evaluates_on_a_campaign_in_parts(tmp_path):
    """A campaign committed in parts (data/uncharged_multivalent/part-*.nc) is one dataset to train, evaluate."""
    ds = load_dataset(DATA)
    ds.isel(system=slice(0, 18)).to_netcdf(tmp_path / "part-01.nc")
    ds.isel(system=slice(18, None)).to_netcdf(tmp_path / "part-02.nc")
    model = tmp_path / "model"
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(tmp_path / "part-*.nc"), "--out", str(model), "--members", "1",
                              "--epochs", "50"])
    assert res.exit_code == 0, res.output
    data = json.loads((model / "card.json").read_text())["training_data"]
    assert data["n_systems"] == 30 and data["source"] == "part-01.nc+part-02.nc"
    res = runner.invoke(app, ["evaluate", str(tmp_path / "part-01.nc"), str(tmp_path / "part-02.nc"), "--model",
                              str(model), "--split", "test"])
    assert res.exit_code == 0 and "part-01.nc+part-02.nc (6 systems, split=test)" in res.output, res.output
    res = runner.invoke(app, ["train", str(tmp_path / "part-*.nc"), str(DATA), "--out", str(tmp_path / "m2")])
    assert res.exit_code != 0 and "is in more than one part" in res.output
