"""The uncharged-wall surrogate shipped in the package (kadupitiya2020's system), checked against the project's MD of
that system (data/uncharged_multivalent/part-*.nc, its card lists the held-out systems; fig6_md.nc, independent
runs of the Fig. 6 systems). These tests fail if the weights, the card and the dataset drift apart, or if the
predictions lose the physics (electroneutrality, mirror symmetry)."""

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mdsurrogate.cli import app
from mdsurrogate.dataset import load_dataset, load_parts, to_arrays
from mdsurrogate.evaluation.metrics import evaluate_predictions
from mdsurrogate.surrogate import ExtrapolationError, Surrogate, default_surrogate_path

ROOT = Path(__file__).resolve().parents[1]
PARTS = sorted(str(p) for p in (ROOT / "data" / "uncharged_multivalent").glob("part-*.nc"))
FIG6 = ROOT / "data" / "uncharged_multivalent" / "fig6_md.nc"
TOL_E = 1.5        # x E_MD on the 200 held-out systems; measured 1.11 (E 0.0144 M, E_MD 0.0130 M)
TOL_FIG6 = 1.2     # x the larger E_MD, Fig. 6 runs (4x longer, seed 2); measured 0.70 (E 0.0090 M; their E_MD 0.0067)
TOL_NEUTRAL = 0.01  # median |net charge| / cations' charge; measured 0.0012


@pytest.fixture(scope="module")
def shipped():
    return Surrogate.load(system="uncharged")


def _held_out(sur):
    ds = load_parts(*PARTS)
    keep = set(sur.card["training_data"]["test_systems"])
    idx = [i for i, k in enumerate(ds["key"].values) if str(k) in keep]
    return ds, idx


def test_shipped_uncharged_surrogate_loads_and_was_trained_on_the_committed_parts(shipped):
    assert shipped.system_kind == "uncharged"
    assert sum(p.stat().st_size for p in default_surrogate_path("uncharged").iterdir()) < 4 * 2**20
    td = shipped.card["training_data"]
    assert td["source"] == "+".join(Path(p).name for p in PARTS), "retrain after adding a part (docs/surrogate.md)"
    assert td["source_sha256"] == load_parts(*PARTS).attrs["source_sha256"]
    ds, idx = _held_out(shipped)
    assert len(idx) == td["n_test"] > 100 and td["n_train"] + td["n_test"] == ds.sizes["system"] >= 1000
    out = shipped.predict({"h": 3.0, "c": 0.5, "z_p": 2, "z_n": -1, "d": 0.7})
    assert out.sizes == {"system": 1, "point": 150} and float(out.n_plus_std.max()) > 0
    with pytest.raises(ExtrapolationError, match="c"):
        shipped.predict({"h": 3.0, "c": 1.5, "z_p": 2, "z_n": -1, "d": 0.7})


def test_shipped_uncharged_surrogate_on_held_out_and_independent_md(shipped):
    """E within TOL_E x the labels' noise floor on the held-out systems and within TOL_FIG6 x E_MD against longer,
    independently seeded runs; the predicted profiles electroneutral and mirror-symmetric."""
    ds, idx = _held_out(shipped)
    arr = to_arrays(ds.isel(system=idx))
    pred, spread = shipped.predict_mean_std(arr.X)
    m = evaluate_predictions(arr.Y, pred, arr.EPS, n_interface=shipped.schema.n_interface)
    assert m["E"] < TOL_E * m["E_MD"], m
    fig6 = to_arrays(load_dataset(FIG6))
    m6 = evaluate_predictions(fig6.Y, shipped.predict_mean_std(fig6.X, std=False)[0], fig6.EPS,
                              n_interface=shipped.schema.n_interface)
    assert m6["E"] < TOL_FIG6 * max(m["E_MD"], m6["E_MD"]), m6
    p = arr.Z.shape[1]
    z = arr.Z * 1e-9
    charge = np.trapezoid(arr.X[:, 2:3] * pred[:, :p] + arr.X[:, 3:4] * pred[:, p:], z, axis=1)
    cations = np.trapezoid(arr.X[:, 2:3] * pred[:, :p], z, axis=1)
    assert np.median(np.abs(charge) / cations) < TOL_NEUTRAL
    np.testing.assert_allclose(pred[:, :p], pred[:, :p][:, ::-1], atol=1e-5)  # identical walls
    err = np.abs(pred - arr.Y).mean(axis=1)
    assert np.corrcoef(spread.mean(axis=1), err)[0, 1] > 0.2


def test_predict_cli_uses_the_shipped_uncharged_surrogate(tmp_path):
    res = CliRunner().invoke(app, ["predict", "--system", "uncharged", "--h", "3.0", "--c", "0.5", "--zp", "3",
                                   "--zn", "-1", "--d", "0.7", "-o", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "p.nc").is_file()
