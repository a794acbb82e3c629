"""Saved surrogates: card, hash check, refusal of corrupted files, predict on every input kind, extrapolation."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from mdsurrogate.dataset import load_dataset
from mdsurrogate.evaluation.scoring import fit_and_score
from mdsurrogate.simulation.system import ConfinedElectrolyte
from mdsurrogate.surrogate import (
    ExtrapolationError,
    ExtrapolationWarning,
    SurrogateLoadError,
    inputs_to_array,
    load_surrogate,
)
from mdsurrogate.surrogate.models import NetworkConfig
from mdsurrogate.surrogate.training import default_config

REF = Path("/work/shared/reference/nanoconfinement_d0415_subset.pk")
pytestmark = pytest.mark.skipif(not REF.exists(), reason="authors' reference pickle not available")
SYSTEM = dict(h=4.4, c=0.5, d_plus=0.415, d_minus=0.415, sigma_s=-0.015)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    ds = load_dataset(REF)
    cfg = replace(default_config(), network=NetworkConfig(hidden=(16, 32), activations=("relu", "sigmoid")),
                  max_epochs=30, eval_every=5, batch_size=32)
    sur, report = fit_and_score(ds, cfg, n_members=2, n_test=16, seed=0, name="test-surrogate")
    path = tmp_path_factory.mktemp("sur") / "model"
    sur.save(path)
    return path, sur, report


def test_card_contents_and_roundtrip(trained):
    path, sur, report = trained
    card = json.loads((path / "card.json").read_text())
    assert card["format"] == "mdsurrogate-surrogate" and card["n_members"] == 2
    ranges = {d["name"]: d["training_range"] for d in card["inputs"]}
    assert ranges["d_plus"] == [0.415, 0.415] and ranges["h"][0] >= 4.0 and ranges["h"][1] <= 4.8
    assert card["training_data"]["n_train"] == 65 and len(card["training_data"]["test_systems"]) == 16
    assert len(card["training_data"]["source_sha256"]) == 64
    assert "E" in card["metrics"]["test_ensemble"] and "torch_version" in card["versions"]
    assert len(card["weights"]["sha256"]) == 64
    loaded = load_surrogate(path)
    a = sur.predict(SYSTEM)
    b = loaded.predict(SYSTEM)
    np.testing.assert_allclose(a.n_plus.values, b.n_plus.values, rtol=1e-6)


def test_card_counts_systems_not_replica_rows():
    """A dataset with a second run (replica) of some systems: the card's n_systems/n_train/n_test count systems,
    the *_rows fields the runs, and the replicas sit on their system's side of the split."""
    from mdsurrogate.surrogate.fit import fit_surrogate

    ds = load_dataset(REF).isel(system=list(range(20)))
    twin = ds.isel(system=list(range(6)))
    if "run_id" in twin:
        twin = twin.assign(run_id=("system", [f"{r}-seed2" for r in twin["run_id"].values.astype(str)]))
    both = xr.concat([ds, twin], dim="system")
    cfg = replace(default_config(), network=NetworkConfig(hidden=(8, 8), activations=("relu", "sigmoid")),
                  max_epochs=2, eval_every=1, batch_size=32)
    sur, report = fit_surrogate(both, cfg, n_members=1, n_test=5, seed=1)
    td = sur.card["training_data"]
    assert (td["n_systems"], td["n_train"], td["n_test"], td["n_rows"]) == (20, 15, 5, 26)
    assert td["n_train_rows"] + td["n_test_rows"] == 26 and td["n_test_rows"] == len(report["split"]["test"])
    assert not set(td["train_systems"]) & set(td["test_systems"]) and len(set(td["test_systems"])) == 5


def test_predict_input_kinds_and_output(trained):
    _, sur, _ = trained
    one = sur.predict(SYSTEM)
    assert one.sizes == {"system": 1, "point": 502}
    assert {"n_plus", "n_minus", "n_plus_std", "n_minus_std"} <= set(one.data_vars)
    assert float(one.n_plus.min()) >= 0 and float(one.n_plus_std.max()) > 0
    z = one.z.values[0]
    assert z[0] == pytest.approx(-2.209875) and z[-1] == pytest.approx(2.209875)  # stored grid at h = 4.4
    arr = np.array([[SYSTEM[k] for k in ("h", "c", "d_plus", "d_minus", "sigma_s")]] * 3)
    arr[1, 1] = 1.5
    batch = sur.predict(arr)
    assert batch.sizes["system"] == 3
    np.testing.assert_allclose(batch.n_plus.values[0], one.n_plus.values[0], rtol=1e-5)
    df = pd.DataFrame(arr, columns=["h", "c", "d_plus", "d_minus", "sigma_s"])
    np.testing.assert_allclose(sur.predict(df).n_minus.values, batch.n_minus.values, rtol=1e-6)
    xds = xr.Dataset({k: ("system", df[k].values) for k in df})
    np.testing.assert_allclose(sur.predict(xds).n_minus.values, batch.n_minus.values, rtol=1e-6)
    obj = ConfinedElectrolyte(**SYSTEM)
    np.testing.assert_allclose(sur.predict(obj).n_plus.values, one.n_plus.values, rtol=1e-6)
    assert "n_plus_std" not in sur.predict(SYSTEM, return_std=False)


def test_bad_inputs_name_the_parameter(trained):
    _, sur, _ = trained
    with pytest.raises(ValueError, match="sigma_s"):
        sur.predict({k: v for k, v in SYSTEM.items() if k != "sigma_s"})
    with pytest.raises(ValueError, match=r"shape \(5,\) or \(N, 5\)"):
        inputs_to_array(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="c .* non-finite"):
        sur.predict({**SYSTEM, "c": float("nan")})


def test_extrapolation_refused_unless_allowed(trained):
    _, sur, _ = trained
    with pytest.raises(ExtrapolationError, match=r"d_plus \(cation diameter\) = 0.3 nm .* \[0.415, 0.415\] nm"):
        sur.predict({**SYSTEM, "d_plus": 0.3})
    with pytest.raises(ExtrapolationError, match="h .* 5 nm"):
        sur.predict({**SYSTEM, "h": 5.0})
    with pytest.warns(ExtrapolationWarning, match="d_plus"):
        out = sur.predict({**SYSTEM, "d_plus": 0.3}, allow_extrapolation=True)
    assert out.attrs["extrapolated"] == 1
    with pytest.warns(ExtrapolationWarning):
        z = sur.predict({**SYSTEM, "h": 5.0}, allow_extrapolation=True).z.values[0]
    assert 2.45 < z[-1] < 2.55  # grid rule extended linearly in h


def _copy(path, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(path, dst)
    return dst


def test_corrupted_weights_refused(trained, tmp_path):
    dst = _copy(trained[0], tmp_path)
    w = dst / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(SurrogateLoadError, match="sha256 .* does not match"):
        load_surrogate(dst)


def test_mismatched_card_refused(trained, tmp_path):
    dst = _copy(trained[0], tmp_path)
    card = json.loads((dst / "card.json").read_text())
    card["architecture"]["hidden"] = [16, 64]
    (dst / "card.json").write_text(json.dumps(card))
    with pytest.raises(SurrogateLoadError, match="edited after the weights were saved"):
        load_surrogate(dst)
    _unbind(dst)  # weights without the card binding (older saves): the shapes still catch it
    with pytest.raises(SurrogateLoadError, match="member 0 tensor .* has shape"):
        load_surrogate(dst)
    card = json.loads((dst / "card.json").read_text())
    card["architecture"]["hidden"] = [16, 32]
    card["n_members"] = 1
    (dst / "card.json").write_text(json.dumps(card))
    with pytest.raises(SurrogateLoadError, match="not described by the card"):
        load_surrogate(dst)
    (dst / "card.json").write_text("{not json")
    with pytest.raises(SurrogateLoadError, match="not valid JSON"):
        load_surrogate(dst)
    (dst / "card.json").unlink()
    with pytest.raises(SurrogateLoadError, match="missing card.json"):
        load_surrogate(dst)
    with pytest.raises(SurrogateLoadError, match="no such"):
        load_surrogate(tmp_path / "nowhere")


def _unbind(directory, transform=None):
    """Rewrite the weights without the card binding (optionally transformed) and fix the card's sha256."""
    from safetensors.torch import load_file, save_file

    from mdsurrogate.io import file_sha256

    w = directory / "weights.safetensors"
    tensors = load_file(str(w))
    if transform is not None:
        tensors = transform(tensors)
    save_file(tensors, str(w), metadata={"format": "mdsurrogate-surrogate"})
    card = json.loads((directory / "card.json").read_text())
    card["weights"]["sha256"] = file_sha256(w)
    (directory / "card.json").write_text(json.dumps(card))


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["architecture"].update(output_activation="linear"), "edited after the weights were saved"),
    (lambda c: c["architecture"].update(hidden=[16, 2**40]), "architecture.hidden must be"),
    (lambda c: c["inputs"][0].update(training_range=[4.0, float("inf")]), "training_range must be two finite"),
    (lambda c: c["inputs"][1].update(training_range=[0.0, 10.0]), "inside the physical limits"),
    (lambda c: c["inputs"][2].update(training_range=[0.2, 0.63]), "edited after the weights were saved"),
    (lambda c: c["outputs"]["z_grid"].update(half_width=[9.0] * len(c["outputs"]["z_grid"]["h"])),
     "within 20 % of h/2"),
    (lambda c: c["inputs"].reverse(), "inputs must list"),
    (lambda c: c.update(n_members="2"), "n_members must be an integer"),
    (lambda c: c["weights"].update(file="../../etc/passwd"), "weights.file must be a file name"),
    (lambda c: c.update(inputs={"h": 1}), "inputs must list"),
])
def test_edited_card_is_refused(trained, tmp_path, edit, message):
    """Every edit that would change predictions or disable the extrapolation check is refused on loading."""
    dst = _copy(trained[0], tmp_path)
    card = json.loads((dst / "card.json").read_text())
    edit(card)
    (dst / "card.json").write_text(json.dumps(card))
    with pytest.raises(SurrogateLoadError, match=message):
        load_surrogate(dst)


def test_nan_weights_with_a_matching_hash_are_refused(trained, tmp_path):
    dst = _copy(trained[0], tmp_path)

    def poison(tensors):
        key = sorted(tensors)[0]
        tensors[key] = tensors[key].clone()
        tensors[key].view(-1)[0] = float("nan")
        return tensors

    _unbind(dst, poison)
    with pytest.raises(SurrogateLoadError, match="NaN or infinite weights"):
        load_surrogate(dst)


def test_a_diverged_surrogate_is_not_saved(trained, tmp_path):
    import copy

    sur = copy.deepcopy(trained[1])
    with torch.no_grad():
        next(sur.members[0].parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN or infinite weights"):
        sur.save(tmp_path / "nan")
    assert not (tmp_path / "nan").exists()


def test_nan_and_unphysical_inputs_are_refused_even_when_extrapolating(trained):
    sur = trained[1]
    for bad in (np.nan, 0.0, 1e30):
        X = np.array([[4.4, bad, 0.415, 0.415, -0.015]])
        with pytest.raises(ValueError, match="c .salt concentration.*physical limits"):
            sur.check_inputs(X, allow_extrapolation=True)


def test_save_overwrites_atomically(trained, tmp_path):
    _, sur, _ = trained
    target = tmp_path / "m"
    sur.save(target)
    sur.save(target)
    assert sorted(p.name for p in target.iterdir()) == ["card.json", "weights.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_save_never_deletes_a_folder_of_other_files_and_is_byte_identical(trained, tmp_path):
    from mdsurrogate.io import file_sha256

    _, sur, _ = trained
    work = tmp_path / "mywork"
    work.mkdir()
    (work / "notes.txt").write_text("precious")
    with pytest.raises(ValueError, match="holds other files and no surrogate"):
        sur.save(work)
    assert (work / "notes.txt").read_text() == "precious"
    # the same weights saved twice: the same file (its sha256 is the surrogate's identity in cards and outputs)
    shas = {file_sha256(sur.save(tmp_path / f"m{i}") / "weights.safetensors") for i in range(4)}
    assert len(shas) == 1


def test_predict_refuses_zero_systems_and_the_card_records_the_seed_used(trained):
    _, sur, _ = trained
    with pytest.raises(ValueError, match="no systems"):
        sur.predict(np.empty((0, 5)))
    from mdsurrogate.surrogate.fit import fit_surrogate

    ds = load_dataset(REF).isel(system=slice(0, 12))
    cfg = replace(default_config(), network=NetworkConfig(hidden=(8, 8), activations=("relu", "relu")),
                  max_epochs=2, eval_every=1)
    one, _ = fit_surrogate(ds, cfg, n_members=1, n_test=0, seed=5)
    assert one.card["training"]["config"]["seed"] == 5


def test_float32_inputs_on_a_single_valued_range_are_accepted(trained):
    _, sur, _ = trained
    x = np.array([[SYSTEM[k] for k in ("h", "c", "d_plus", "d_minus", "sigma_s")]], dtype=np.float32)
    assert sur.predict(x).sizes["system"] == 1  # 0.415 in float32 is 0.41499999...


def test_predict_mean_and_std_match_the_members(trained):
    _, sur, _ = trained
    X = np.array([[4.0, 0.3, 0.415, 0.415, -0.01], [4.8, 1.9, 0.415, 0.415, -0.02]])
    members = sur.predict_array(X)
    assert members.shape == (2, 2, 1004)
    out = sur.predict(X)
    np.testing.assert_allclose(out.n_plus.values, members.mean(0)[:, :502], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.n_minus_std.values, members.std(0, ddof=1)[:, 502:], rtol=1e-4, atol=1e-6)


def test_predict_on_grid_interpolates_to_other_bins(trained):
    """Scoring against MD binned on another grid: the same grid returns the prediction unchanged; a shifted
    grid returns the linear interpolation of each profile; the last points of a grid wider than the
    surrogate's take the edge value (the empty wall bins)."""
    _, sur, _ = trained
    X = np.array([[4.0, 0.3, 0.415, 0.415, -0.01], [4.8, 1.9, 0.415, 0.415, -0.02]])
    own = sur.z_grid(X[:, 0])
    mean, std = sur.predict_mean_std(X)
    same, same_std = sur.predict_on_grid(X, own)
    np.testing.assert_array_equal(same, mean)
    np.testing.assert_array_equal(same_std, std)
    mid = 0.5 * (own[:, 1:] + own[:, :-1])                      # 501 bin midpoints
    mid_mean, _ = sur.predict_on_grid(X, mid, std=False)
    np.testing.assert_allclose(mid_mean[:, :501], 0.5 * (mean[:, 1:502] + mean[:, :501]), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(mid_mean[:, 501:], 0.5 * (mean[:, 503:] + mean[:, 502:1003]), rtol=1e-6, atol=1e-9)
    wide = own * 1.01
    wide_mean, _ = sur.predict_on_grid(X, wide, std=False)
    np.testing.assert_allclose(wide_mean[:, 0], mean[:, 0])
    with pytest.raises(ValueError, match="z must have shape"):
        sur.predict_on_grid(X, own[:1])
    from mdsurrogate.dataset import regrid_profiles

    with pytest.raises(ValueError, match="increase"):
        regrid_profiles(mean, own[:, ::-1], own)
    with pytest.raises(ValueError, match=r"\(N, P\)"):
        regrid_profiles(mean, own[0], own)
