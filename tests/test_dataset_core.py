"""The consolidated dataset: derived quantities, authors' pickle import/export, TSV export, splits."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from mdsurrogate import dataset
from mdsurrogate.dataset.authors_pickle import load_authors_pickle
from mdsurrogate.dataset.figures import summary_figures
from mdsurrogate.simulation.derived import charge_density, integrated_charge
from mdsurrogate.simulation.system import INPUT_NAMES, PAPER_GRID

REF = Path("/work/shared/reference/nanoconfinement_d0415_subset.pk")
needs_ref = pytest.mark.skipif(not REF.exists(), reason="authors' reference pickle not available")


def toy(n_h=3, n_c=4, seed=0):
    """A dataset over a small grid, with synthetic but well-formed profiles."""
    rng = np.random.default_rng(seed)
    records = []
    for h in PAPER_GRID["h"][:n_h]:
        for c in PAPER_GRID["c"][:n_c]:
            for sig in PAPER_GRID["sigma_s"]:
                z = np.linspace(-h / 2, h / 2, 502)
                n = c * (1 + 0.1 * rng.random(502))
                records.append({"inputs": {"h": h, "c": c, "d_plus": 0.415, "d_minus": 0.3075, "sigma_s": sig},
                                "z": z, "n_plus": n, "n_minus": n * 0.9, "n_plus_err": 0.01 + 0 * z,
                                "n_minus_err": 0.02 + 0 * z, "meta": {"seed": 1, "preset": "production"}})
    return dataset.from_profiles(records)


def test_integrated_charge_of_a_uniform_charge_density():
    z = np.linspace(-1.0, 1.0, 201)  # nm
    rho = charge_density(np.full(201, 0.6), np.full(201, 0.5))  # 0.1 M net positive
    assert np.allclose(rho, 0.1 * 1000 * 6.02214076e23 * 1.602176634e-19)  # C/m^3
    S = integrated_charge(z, rho, -0.01)
    assert S[0] == -0.01
    assert np.allclose(S, -0.01 + rho[0] * (z + 1.0) * 1e-9)


@needs_ref
def test_authors_pickle_import_is_complete_and_electroneutral(tmp_path):
    ds = dataset.from_authors_pickle(REF)
    assert ds.sizes == {"system": 81, "point": 502}
    assert set(ds["h"].values) == {4.0, 4.4, 4.8}
    assert set(ds["d_plus"].values) == set(ds["d_minus"].values) == {0.415}
    assert len(set(ds["key"].values)) == 81
    # electroneutrality of the authors' MD: S(midplane) is ~0 (within 2 % of the wall charge)
    i0 = np.abs(ds["z"].values).argmin(axis=1)
    s0 = ds["integrated_charge"].values[np.arange(81), i0]
    assert np.all(np.abs(s0) < 0.02 * np.abs(ds["sigma_s"].values))
    halved = dataset.from_authors_pickle(REF, error_scale=1 / 2.1)
    assert np.allclose(halved["n_plus_err"].values * 2.1, ds["n_plus_err"].values)
    # NetCDF round trip and back to the authors' format, bit for bit
    dataset.save(ds, tmp_path / "ref.nc")
    back = dataset.load_dataset(tmp_path / "ref.nc")
    assert back["run_id"].values.tolist() == ds["run_id"].values.tolist()
    dataset.to_authors_pickle(back, tmp_path / "ref.pk")
    orig, again = load_authors_pickle(REF), load_authors_pickle(tmp_path / "ref.pk")
    assert set(orig) == set(again)
    for k in orig:
        for ion in ("pos", "neg"):
            assert np.array_equal(orig[k][ion], again[k][ion])
    # our own runs have no source key: the exporter spells keys the authors' way
    dataset.to_authors_pickle(back.drop_vars("source_key"), tmp_path / "ours.pk")
    assert set(load_authors_pickle(tmp_path / "ours.pk")) == set(orig)


def test_tsv_export(tmp_path):
    ds = toy(1, 1)
    folders = dataset.export_tsv(ds, tmp_path)
    assert len(folders) == 3
    a = dataset.read_tsv(folders[0] / "n_plus.tsv")
    assert a.shape == (502, 3)
    assert np.allclose(a[:, 0], ds["z"].values[0], atol=1e-5)
    assert np.allclose(a[:, 1], ds["n_plus"].values[0], rtol=1e-5)
    assert np.allclose(a[:, 2], 0.01)
    assert dataset.read_tsv(folders[0] / "integrated_charge.tsv").shape == (502, 2)
    assert (folders[0] / "n_minus.tsv").read_text().startswith("# z_nm\tn_M\terr_M")


def test_tsv_charge_density_error_weights_the_valencies(tmp_path):
    """err rho = e N_A 1000 sqrt((z+ err n+)^2 + (z- err n-)^2): a trivalent cation's error counts 3x."""
    from mdsurrogate.simulation.derived import ELEMENTARY_CHARGE, MOLAR_TO_PER_M3
    from mdsurrogate.simulation.system import uncharged_grid

    h, p = 4.0, {"h": 4.0, "c": 0.5, "z_p": 3, "z_n": -1, "d": 0.5}
    z = uncharged_grid(h)
    ds = dataset.from_profiles([{"inputs": p, "z": z, "n_plus": np.full(len(z), 0.5 / 3),
                                 "n_minus": np.full(len(z), 0.5), "n_plus_err": np.full(len(z), 0.01),
                                 "n_minus_err": np.full(len(z), 0.02), "run_id": "tri"}])
    rho = dataset.read_tsv(dataset.export_tsv(ds, tmp_path)[0] / "charge_density.tsv")
    assert np.allclose(rho[:, 2], ELEMENTARY_CHARGE * MOLAR_TO_PER_M3 * np.hypot(3 * 0.01, 0.02), rtol=1e-5)
    # the coverage figure of a dataset where fewer than two inputs vary is left out, not a crash
    assert [f.name for f in summary_figures(ds, tmp_path / "fig")] == ["errors.png"]


@pytest.mark.parametrize("how, message", [("angstrom", "reaches 5 x h"), ("reversed", "must increase strictly"),
                                          ("halved", "reaches 0.25 x h")])
def test_validation_refuses_z_grids_in_other_units_or_order(tmp_path, how, message):
    ds = toy(1, 1)
    z = ds["z"].values
    ds["z"] = (("system", "point"), {"angstrom": 10 * z, "reversed": z[:, ::-1], "halved": z / 2}[how])
    with pytest.raises(ValueError, match=f"'z' .*{message}"):
        dataset.validate_dataset(ds)


def test_export_refuses_replicas_in_the_pickle_format(tmp_path):
    ds = toy(1, 1)
    import xarray as xr

    twice = xr.concat([ds, ds], dim="system")
    with pytest.raises(ValueError, match="more than once"):
        dataset.to_authors_pickle(twice, tmp_path / "x.pk")


def test_random_split_is_seeded_disjoint_and_nested():
    ds = toy()  # 36 systems
    train, test = dataset.random_split(ds, n_test=10, n_train=12, seed=3)
    assert (train.sizes["system"], test.sizes["system"]) == (12, 10)
    tr, te = set(train["system"].values), set(test["system"].values)
    assert not tr & te
    train2, test2 = dataset.random_split(ds, n_test=10, n_train=20, seed=3)
    assert set(test2["system"].values) == te and tr < set(train2["system"].values)  # same test set, nested
    _, test3 = dataset.random_split(ds, n_test=10, n_train=12, seed=4)
    assert set(test3["system"].values) != te
    rest, _ = dataset.random_split(ds, n_test=10, seed=3)
    assert rest.sizes["system"] == 26
    with pytest.raises(ValueError, match="exceeds the 36 systems"):
        dataset.random_split(ds, 30, 10)


def test_splits_keep_replicas_of_a_system_together():
    """A campaign with seeds = [1, 2] has two rows per system: both go to the same side, counts are of systems, and
    without replicas the split is unchanged (same rows as the row-level split of the same seed)."""
    import xarray as xr

    ds = toy()  # 36 systems
    two = xr.concat([ds, ds.assign(seed=("system", np.full(36, 2)))], dim="system")
    keys = lambda d: [tuple(np.round(x, 6)) for x in dataset.inputs_array(d)]  # noqa: E731
    train, test = dataset.random_split(two, n_test=10, n_train=12, seed=3)
    assert (train.sizes["system"], test.sizes["system"]) == (24, 20)
    assert not set(keys(train)) & set(keys(test)) and len(set(keys(test))) == 10
    _, test1 = dataset.random_split(ds, n_test=10, n_train=12, seed=3)
    assert set(keys(test1)) == set(keys(test))
    g = dataset.system_groups(dataset.inputs_array(two))
    assert list(g[:36]) == list(range(36)) and list(g[36:]) == list(range(36))
    tr, te = dataset.split_indices(g, 0.25, seed=0)
    assert len(te) == 2 * 9 and not set(g[tr]) & set(g[te])
    expected = np.sort(np.random.default_rng(0).permutation(36)[:9])  # the row-level split of earlier versions
    assert np.array_equal(dataset.split_indices(g[:36], 0.25, seed=0)[1], expected)
    assert np.array_equal(dataset.split_indices(np.arange(36), 0.25, seed=0)[1], expected)
    assert dataset.split_indices(np.repeat([10, 20, 30, 40], 2), 0.5, seed=1)[1].size == 4  # any labels: 2 of 4
    back, held = dataset.deterministic_separation(two, {"c": [0.25, 0.5]}, f=1 / 3, seed=0)
    assert held.sizes["system"] == 24 and len(set(keys(held))) == 12
    assert not set(keys(back)) & set(keys(held))


def test_deterministic_separation():
    ds = toy()
    train, test = dataset.deterministic_separation(ds, {"c": 0.25}, f=0.0, seed=0)
    assert np.all(test["c"].values == 0.25) and test.sizes["system"] == 9
    assert not np.any(train["c"].values == 0.25)
    train, test = dataset.deterministic_separation(ds, {"c": [0.25, 0.5]}, f=1 / 3, seed=0)
    assert test.sizes["system"] == 12 and train.sizes["system"] == 24
    assert np.sum(np.isin(train["c"].values, [0.25, 0.5])) == 6
    a, _ = dataset.deterministic_separation(ds, {"c": [0.25, 0.5]}, f=1 / 3, seed=0)
    b, _ = dataset.deterministic_separation(ds, {"c": [0.25, 0.5]}, f=1 / 3, seed=1)
    assert set(a["system"].values) != set(b["system"].values)
    both, _ = dataset.deterministic_separation(ds, {"c": 0.25, "h": 4.0}, f=0.0)
    assert both.sizes["system"] == 33
    with pytest.raises(ValueError, match="no system matches"):
        dataset.deterministic_separation(ds, {"c": 1.0})
    with pytest.raises(ValueError, match="fraction"):
        dataset.deterministic_separation(ds, {"c": 0.25}, f=10)
    with pytest.raises(ValueError, match="unknown input"):
        dataset.deterministic_separation(ds, {"conc": 0.25})


def test_select_and_inputs_array():
    ds = toy()
    sub = dataset.select(ds, c=[0.1, 0.25], sigma_s=-0.02)
    assert sub.sizes["system"] == 6
    x = dataset.inputs_array(sub)
    assert x.shape == (6, 5) and np.all(x[:, INPUT_NAMES.index("sigma_s")] == -0.02)


def test_authors_pickle_import_is_safe(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pk"
    bad.write_bytes(pickle.dumps({"Z_4.0_p_1_n_-1_d_0.415_a_0.415_c_0.1_i_-0.01": Evil()}))
    with pytest.raises(pickle.UnpicklingError):
        dataset.from_authors_pickle(bad)


def test_summary_figures_count_runs_per_grid_pair(tmp_path):
    import numpy as np
    import xarray as xr

    from mdsurrogate.dataset.figures import summary_figures

    ds = xr.Dataset({"h": ("system", [4.0, 4.0, 4.4]), "c": ("system", [0.1, 0.1, 2.0]),
                     "d_plus": ("system", [0.2, 0.2, 0.63]), "d_minus": ("system", [0.2, 0.3075, 0.63]),
                     "sigma_s": ("system", [-0.01, -0.01, -0.02]), "rel_error": ("system", [0.02, 0.03, 0.05])})
    paths = summary_figures(ds, tmp_path)
    assert [p.name for p in paths] == ["errors.png", "coverage.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert np.isclose(ds["rel_error"].median(), 0.03)


def test_summary_counts_compute_errors_and_replicas():
    """core-hours = sum(wall x ranks) / 3600 (the ledger's wall time when present); replicas of one system count
    once as a system; E_MD is the RMS error bar of a point."""
    import numpy as np
    import xarray as xr

    from mdsurrogate.dataset import summary

    err = np.full((3, 4), 0.02)
    err[2] = 0.04
    ds = xr.Dataset({"h": ("system", [4.0, 4.0, 4.4]), "c": ("system", [0.1, 0.1, 2.0]),
                     "d_plus": ("system", [0.2, 0.2, 0.63]), "d_minus": ("system", [0.2, 0.2, 0.63]),
                     "sigma_s": ("system", [-0.01, -0.01, -0.02]), "rel_error": ("system", [0.02, 0.03, 0.05]),
                     "wall_time_s": ("system", [100.0, 100.0, 100.0]),
                     "ledger_wall_s": ("system", [1800.0, 3600.0, 1800.0]), "mpi_ranks": ("system", [1, 1, 2]),
                     "seed": ("system", [1, 2, 1]),
                     "n_plus_err": (("system", "point"), err), "n_minus_err": (("system", "point"), err)})
    s = summary(ds)
    assert s["n_runs"] == 3 and s["n_systems"] == 2 and s["seeds"] == [1, 2]
    assert s["core_hours"] == pytest.approx(2.5) and s["wall_s_mean"] == pytest.approx(2400.0)
    assert s["rel_error_median"] == pytest.approx(0.03)
    assert "E_MD" not in s and dataset.error_bars(ds).shape == (3, 8)
    assert s["runs_per_value"]["h"] == {"4": 2, "4.4": 1} and s["runs_per_value"]["sigma_s"] == {"-0.02": 1, "-0.01": 2}
    # without the engine's rel_error, the same formula on the stored profiles (err / n = 0.02 / 1 and 0.04 / 2)
    plain = ds.drop_vars("rel_error").assign(n_plus=(("system", "point"), np.ones((3, 4))),
                                             n_minus=(("system", "point"), np.full((3, 4), 2.0)))
    assert summary(plain)["rel_error_median"] == pytest.approx(0.02)
