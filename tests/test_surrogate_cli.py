"""`mdsurrogate train / predict / evaluate` end to end on the authors' reference subset (tiny networks)."""

import json
from pathlib import Path

import pytest
import xarray as xr
from typer.testing import CliRunner

from mdsurrogate.cli import app
from mdsurrogate.surrogate import default_surrogate_path

REF = Path("/work/shared/reference/nanoconfinement_d0415_subset.pk")
runner = CliRunner()
SYSTEM = ["--h", "4.4", "--c", "0.5", "--d-plus", "0.415", "--d-minus", "0.415", "--sigma-s", "-0.015"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    if not REF.exists():
        pytest.skip("authors' reference pickle not available")
    out = tmp_path_factory.mktemp("cli") / "model"
    r = runner.invoke(app, ["train", str(REF), "--out", str(out), "--members", "2", "--epochs", "20", "--n1", "16",
                            "--n2", "32", "--batch-size", "32", "--test-fraction", "0.2", "--baselines"])
    assert r.exit_code == 0, r.output
    assert "saved 2-member surrogate" in r.output and "random forest" in r.output
    return out


def test_train_writes_card(model_dir):
    card = json.loads((model_dir / "card.json").read_text())
    assert card["architecture"]["hidden"] == [16, 32] and card["training"]["config"]["max_epochs"] == 20


def test_predict_writes_netcdf_tsv_png(model_dir, tmp_path):
    prefix = tmp_path / "pred"
    r = runner.invoke(app, ["predict", *SYSTEM, "--model", str(model_dir), "--out", str(prefix)])
    assert r.exit_code == 0, r.output
    ds = xr.load_dataset(prefix.with_suffix(".nc"), engine="h5netcdf")
    assert ds.sizes == {"system": 1, "point": 502} and "n_plus_std" in ds
    assert len(prefix.with_suffix(".tsv").read_text().splitlines()) == 503
    assert prefix.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    # an existing output (here an MD dataset of the user's) is never replaced unasked; a folder is no prefix
    data = tmp_path / "mine.nc"
    data.write_bytes(b"precious")
    r = runner.invoke(app, ["predict", *SYSTEM, "--model", str(model_dir), "--out", str(tmp_path / "mine")])
    assert r.exit_code == 2 and "exists; pass --overwrite" in r.output and data.read_bytes() == b"precious"
    r = runner.invoke(app, ["predict", *SYSTEM, "--model", str(model_dir), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "is a folder" in r.output
    r = runner.invoke(app, ["predict", *SYSTEM, "--model", str(model_dir), "--out", str(prefix), "--overwrite"])
    assert r.exit_code == 0, r.output


def test_predict_batch_csv_and_extrapolation(model_dir, tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text("h,c,d_plus,d_minus,sigma_s\n4.0,0.1,0.415,0.415,-0.01\n4.8,2.0,0.415,0.415,-0.02\n")
    r = runner.invoke(app, ["predict", "--input", str(csv), "--model", str(model_dir), "--out",
                            str(tmp_path / "b"), "--no-plot"])
    assert r.exit_code == 0, r.output
    assert xr.load_dataset(tmp_path / "b.nc", engine="h5netcdf").sizes["system"] == 2
    bad = [*SYSTEM[:4], "--d-plus", "0.3", *SYSTEM[6:]]
    r = runner.invoke(app, ["predict", *bad, "--model", str(model_dir), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "d_plus" in r.output and "training range" in r.output
    r = runner.invoke(app, ["predict", *bad, "--model", str(model_dir), "--out", str(tmp_path / "x"),
                            "--allow-extrapolation", "--no-plot"])
    assert r.exit_code == 0 and "warning" in r.output
    r = runner.invoke(app, ["predict", "--h", "4.4", "--model", str(model_dir)])
    assert r.exit_code == 2 and "--c" in r.output


def test_options_that_would_be_ignored_are_refused(tmp_path):
    base = ["train", str(REF), "--out", str(tmp_path / "m"), "--epochs", "2"]
    r = runner.invoke(app, [*base, "--n1", "65536"])  # 4e9 weights: refused before any memory is taken
    assert r.exit_code == 2 and "--n1 must be an integer in [1, 8192]" in r.output
    r = runner.invoke(app, ["report", str(REF), "--reference", str(Path(__file__).parent / "data" /
                                                                    "uncharged_small.nc"), "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and "--reference: a uncharged-wall dataset" in r.output
    r = runner.invoke(app, [*base, "--search", "--n1", "16", "--lr", "0.001"])
    assert r.exit_code == 2 and "--search chooses" in r.output and "--n1, --lr" in r.output
    r = runner.invoke(app, [*base, "--baselines", "--test-fraction", "0"])
    assert r.exit_code == 2 and "--baselines" in r.output and "--test-fraction" in r.output
    assert not (tmp_path / "m").exists()


def test_predict_reads_a_csv_header_with_spaces(model_dir, tmp_path):
    csv = tmp_path / "sp.csv"
    csv.write_text("h, c, d_plus, d_minus, sigma_s\n4.4, 0.5, 0.415, 0.415, -0.015\n")
    r = runner.invoke(app, ["predict", "--input", str(csv), "--model", str(model_dir), "--out", str(tmp_path / "p"),
                            "--no-plot"])
    assert r.exit_code == 0, r.output
    assert float(xr.load_dataset(tmp_path / "p.nc", engine="h5netcdf")["c"].values[0]) == 0.5


def test_evaluate_uses_the_shipped_surrogate_of_the_data_kind(tmp_path):
    data = Path(__file__).parent / "data" / "uncharged_small.nc"
    r = runner.invoke(app, ["evaluate", str(data), "--allow-extrapolation", "--out", str(tmp_path / "e.json")])
    assert r.exit_code == 0, r.output
    out = json.loads((tmp_path / "e.json").read_text())
    assert out["metrics"]["E"] > 0 and "extrapolated" in out
    r = runner.invoke(app, ["evaluate", str(data), "--model", str(default_surrogate_path())])
    assert r.exit_code == 2 and "uncharged" in r.output


def test_evaluate_on_test_split(model_dir, tmp_path):
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["evaluate", str(REF), "--model", str(model_dir), "--split", "test", "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert len(res["A_j"]) == 16 and 0 < res["metrics"]["E"] < 1


def test_load_error_is_clean(tmp_path):
    r = runner.invoke(app, ["predict", *SYSTEM, "--model", str(tmp_path / "none")])
    assert r.exit_code == 2 and "no such surrogate directory" in r.output


@pytest.mark.skipif(not (default_surrogate_path() / "card.json").exists(), reason="no shipped surrogate yet")
def test_predict_with_shipped_model(tmp_path):
    r = runner.invoke(app, ["predict", *SYSTEM, "--out", str(tmp_path / "p"), "--no-plot"])
    assert r.exit_code == 0, r.output


def test_report_trains_scores_and_ships(tmp_path):
    """`mdsurrogate report`: both ANN ensembles and the baselines on one split, the external reference and the
    MD-vs-MD check. Here "our MD" is three reference systems themselves, so that check must score E = 0 and
    succeed on exactly the points with a non-zero error bar (strict Theta). The "precise set" is three systems
    re-drawn with noise of their own error bars (two from the test split, one from training): two are unseen, and
    the error-bar check must find z of variance 1/2 (|z| < 1 on P(|g| < sqrt 2) = 0.843)."""
    if not REF.exists():
        pytest.skip("authors' reference pickle not available")
    import numpy as np

    from mdsurrogate.dataset import load_dataset, save, split_indices
    from mdsurrogate.surrogate import load_surrogate

    ref = load_dataset(REF)
    three = ref.isel(system=[0, 40, 80])
    save(three, tmp_path / "ours.nc")
    tr, te = split_indices(np.arange(81), 0.2, seed=0)
    precise = ref.isel(system=[int(te[0]), int(te[1]), int(tr[0])]).copy(deep=True)
    rng = np.random.default_rng(3)
    for v in ("n_plus", "n_minus"):
        precise[v] = precise[v] + precise[f"{v}_err"] * rng.standard_normal(precise[v].shape)
    save(precise, tmp_path / "precise.nc")
    out, ship = tmp_path / "rep", tmp_path / "shipped"
    r = runner.invoke(app, ["report", str(REF), "--out", str(out), "--members", "2", "--epochs", "30",
                            "--reference", str(REF), "--reference-md", str(tmp_path / "ours.nc"),
                            "--precise", str(tmp_path / "precise.nc"), "--ship", str(ship)])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["n_train"] + rep["n_test"] == 81 and rep["n_test"] == 16
    assert {"BaseNN ensemble of 2", "ModNN ensemble of 2", "random forest (depth 4, 25 trees)"} <= set(rep["test"])
    assert rep["reference"]["n_systems"] == 81
    own = rep["md_check"]["our MD (same controls as the dataset)"]["stored_errors"]
    eps = np.concatenate([three.n_plus_err.values, three.n_minus_err.values], axis=1)
    assert own["E"] == 0.0 and own["A"] == pytest.approx(float(np.mean(eps > 0)))
    assert len(rep["md_check"]["systems"]) == 3
    assert "## External test" in (out / "report.md").read_text()
    pre = rep["precise"]
    assert pre["n_systems"] == 3 and pre["n_unseen"] == 2 and "BaseNN ensemble of 2" in pre["unseen"]
    assert pre["replica_check"]["n_systems"] == 3
    assert pre["replica_check"]["within_1"] == pytest.approx(0.843, abs=0.04)
    assert "## Error bars" in (out / "report.md").read_text()
    shipped = load_surrogate(ship)
    assert shipped.card["metrics"]["external_test"]["stored_errors"]["E"] == \
        rep["reference"]["BaseNN ensemble of 2"]["stored_errors"]["E"]
    assert load_surrogate(out / "models" / "modnn").name == "modnn-ensemble"
    assert shipped.card["metrics"]["precise_test"]["n_systems"] == 2
    # the ANN's test systems (card) are the report's test split, on which the baselines were scored too
    assert shipped.card["training_data"]["test_systems"] == [str(ref["key"].values[i]) for i in te]
    for args, msg in ((["--losses", "mse,l1"], "--losses"), (["--test-fraction", "1"], "--test-fraction"),
                      (["--members", "0"], "--members"),
                      (["--reference-md", str(tmp_path / "ours.nc")], "--reference")):
        bad = runner.invoke(app, ["report", str(REF), *args])
        assert bad.exit_code == 2 and msg in bad.output, bad.output


def test_evaluate_split_counts_systems_not_replicas(model_dir, tmp_path):
    """A dataset holding a second run (replica: same key) of some systems is still the one the card was split on."""
    from mdsurrogate.dataset import load_dataset

    ds = load_dataset(REF)
    twin = ds.isel(system=list(range(5)))
    if "run_id" in twin:
        twin = twin.assign(run_id=("system", [f"{r}-seed2" for r in twin["run_id"].values.astype(str)]))
    both = xr.concat([ds, twin], dim="system")
    path = tmp_path / "with_replicas.nc"
    both.to_netcdf(path, engine="h5netcdf")
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["evaluate", str(path), "--model", str(model_dir), "--split", "test", "--out", str(out)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["evaluate", str(path), "--model", str(model_dir), "--split", "train", "--out", str(out)])
    assert r.exit_code == 2 and "exists; pass --overwrite" in r.output  # never replaces a file unasked
    r = runner.invoke(app, ["evaluate", str(path), "--model", str(model_dir), "--split", "train", "--out", str(out),
                            "--overwrite"])
    assert r.exit_code == 0, r.output
    # without the replicas' originals a system of the test split is missing: refused, naming the counts
    card = json.loads((model_dir / "card.json").read_text())
    held = set(card["training_data"]["test_systems"])
    tests = [i for i, k in enumerate(ds["key"].values) if str(k) in held]
    assert tests
    fewer = ds.isel(system=[i for i in range(ds.sizes["system"]) if i != tests[0]])
    fewer.to_netcdf(tmp_path / "fewer.nc", engine="h5netcdf")
    r = runner.invoke(app, ["evaluate", str(tmp_path / "fewer.nc"), "--model", str(model_dir), "--split", "test",
                            "--out", str(out), "--overwrite"])
    assert r.exit_code != 0 and "not the dataset this surrogate was split on" in r.output, r.output
