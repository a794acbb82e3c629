"""Bad input to the simulation, dataset and surrogate commands (issue 14): every case ends with exit code != 0 and
one `error:` line naming the parameter or file (never a traceback), before any work, and replaces or deletes
nothing the user did not ask to replace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from mdsurrogate import dataset
from mdsurrogate.cli import app
from mdsurrogate.simulation import ConfinedElectrolyte, InvalidInput, RunControls
from mdsurrogate.simulation.system import N_GRID

SYSTEM = ["--h", "4.4", "--c", "0.5", "--d-plus", "0.415", "--d-minus", "0.415", "--sigma-s", "-0.015"]


def cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    return res, res.output


def refused(res, output: str, *names: str) -> None:
    assert res.exit_code != 0, output
    assert "Traceback" not in output, output
    errors = [ln for ln in output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, output
    for name in names:
        assert name in errors[0], output


def toy_dataset(n: int = 12, **change) -> xr.Dataset:
    """A small well-formed dataset (synthetic double-layer profiles) over the design ranges."""
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        inputs = {"h": 4.0 + 0.1 * (i % 6), "c": 0.1 + 0.15 * i, "d_plus": 0.3, "d_minus": 0.4, "sigma_s": -0.015}
        z = np.linspace(-inputs["h"] / 2, inputs["h"] / 2, N_GRID)
        shape = np.exp(-(inputs["h"] / 2 - np.abs(z)) / 0.3)
        n_plus = inputs["c"] * (1 + 0.5 * shape) + 0.001 * rng.random(N_GRID)
        records.append({"inputs": inputs, "z": z, "n_plus": n_plus * change.get("scale", 1.0),
                        "n_minus": inputs["c"] * (1 - 0.3 * shape), "n_plus_err": 0.02 + 0 * z,
                        "n_minus_err": 0.02 + 0 * z, "run_id": f"toy{i}"})
    ds = dataset.from_profiles(records)
    for k, v in change.items():  # an edited (corrupt) file: values the builder would refuse
        if k in ds:
            ds[k] = ds[k] * 0 + v
    return ds


@pytest.fixture
def toy_nc(tmp_path):
    path = tmp_path / "toy.nc"
    dataset.save(toy_dataset(), path)
    return path


TRAIN_FAST = ["--members", "1", "--epochs", "3", "--n1", "8", "--n2", "8", "--test-fraction", "0"]


# 1. train never deletes what it did not write, nor its own input
def test_train_refuses_a_foreign_folder_and_its_own_dataset(tmp_path, toy_nc):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    before = toy_nc.read_bytes()
    for out, flags, name in ((folder, [], "--overwrite"), (folder, ["--overwrite"], "card.json"),
                             (toy_nc, [], "toy.nc"), (tmp_path, ["--overwrite"], "own input")):
        res, out_text = cli("train", toy_nc, "--out", out, *TRAIN_FAST, *flags)
        refused(res, out_text, "--out", name)
    assert (folder / "thesis.tex").read_text() == "precious" and toy_nc.read_bytes() == before
    res, out_text = cli("train", toy_nc, "--out", tmp_path / "model", *TRAIN_FAST)
    assert res.exit_code == 0, out_text
    res, out_text = cli("train", toy_nc, "--out", tmp_path / "model", *TRAIN_FAST)  # a saved surrogate
    refused(res, out_text, "--overwrite")
    res, out_text = cli("train", toy_nc, "--out", tmp_path / "model", *TRAIN_FAST, "--overwrite")
    assert res.exit_code == 0, out_text


# 2. special files are never replaced
@pytest.mark.parametrize("make", ["devnull", "symlink", "fifo"])
def test_outputs_never_replace_special_files(tmp_path, toy_nc, make):
    target = tmp_path / "special"
    if make == "devnull":
        target = Path("/dev/null")
    elif make == "symlink":
        target.symlink_to("/dev/null")
    else:
        os.mkfifo(target)
    res, out = cli("evaluate", toy_nc, "--out", target, "--allow-extrapolation")
    refused(res, out, "--out", "not a regular file")
    assert Path("/dev/null").is_char_device()
    assert target.is_symlink() or target.is_fifo() or target == Path("/dev/null")


# 3. run ids are never used as paths
def test_export_tsv_refuses_run_ids_that_are_paths(tmp_path):
    ds = toy_dataset(2)
    ds = ds.assign_coords(run_id=("system", np.array(["ok", "../../escaped"], dtype=object)))
    with pytest.raises(ValueError, match="run_id"):
        dataset.export_tsv(ds, tmp_path / "tsv")
    assert not (tmp_path / "tsv").exists() and not (tmp_path.parent / "escaped").exists()


# 4. dotted prefixes
def test_predict_keeps_dotted_prefixes_apart(tmp_path):
    for h in ("4.0", "4.5"):
        res, out = cli("predict", "--h", h, *SYSTEM[2:], "-o", tmp_path / f"run_h{h}", "--no-plot")
        assert res.exit_code == 0, out
    a = xr.load_dataset(tmp_path / "run_h4.0.nc", engine="h5netcdf")
    b = xr.load_dataset(tmp_path / "run_h4.5.nc", engine="h5netcdf")
    assert float(a.h[0]) == 4.0 and float(b.h[0]) == 4.5 and (tmp_path / "run_h4.5.tsv").exists()


# 6. train: diverged surrogates, unphysical datasets, meaningless fractions and scales
@pytest.mark.parametrize("flags, name", [(["--lr", "1e10"], "--lr"), (["--lr", "inf"], "--lr"),
                                         (["--test-fraction", "1"], "--test-fraction"),
                                         (["--test-fraction", "1.5"], "--test-fraction"),
                                         (["--error-scale", "0"], "--error-scale"),
                                         (["--error-scale", "nan"], "--error-scale"),
                                         (["--threads", "0"], "--threads"), (["--members", "0"], "--members"),
                                         (["--seed", "-1"], "--seed")])
def test_train_refuses_bad_options(tmp_path, toy_nc, flags, name):
    res, out = cli("train", toy_nc, "--out", tmp_path / "m", *TRAIN_FAST[:-2], *flags)
    refused(res, out, name)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("change, name", [({"h": 100.0}, "'h'"), ({"sigma_s": 0.01}, "'sigma_s'"),
                                          ({"scale": -1.0}, "'n_plus'"), ({"scale": 1e6}, "'n_plus'")])
def test_train_refuses_unphysical_datasets(tmp_path, change, name):
    path = tmp_path / "bad.nc"
    dataset.save(toy_dataset(**change), path)
    res, out = cli("train", path, "--out", tmp_path / "m", *TRAIN_FAST)
    refused(res, out, name)
    assert not (tmp_path / "m").exists()


# 7. run lengths are honoured or refused, never silently raised
def test_too_short_runs_are_refused_with_the_minimum(tmp_path):
    with pytest.raises(ValueError, match="steps = 100 is too short.*at least 21667 steps"):
        RunControls(steps=100)
    assert RunControls(steps=22000).schedule() == (2200, 20000)  # half a block short: the dataset's rounding
    res, out = cli("simulate", "--steps", "100", "--out", tmp_path / "sim")
    refused(res, out, "--steps", "21667")
    assert not (tmp_path / "sim").exists()


# 9. tracebacks: corrupt inputs, bad outputs, bad options
def test_corrupt_and_empty_inputs_give_one_line(tmp_path, toy_nc):
    header = tmp_path / "header.csv"
    header.write_text("h,c,d_plus,d_minus,sigma_s\n")
    trunc = tmp_path / "trunc.nc"
    trunc.write_bytes(toy_nc.read_bytes()[:5000])
    garbage = tmp_path / "garbage.pk"
    garbage.write_bytes(b"\x80\x04\x95" + os.urandom(200))
    for args, name in ((["predict", "--input", header], "a header and no rows"),
                       (["predict", "--input", trunc], "trunc.nc"),
                       (["predict", "--input", tmp_path / "missing.csv"], "does not exist"),
                       (["train", trunc, "--out", tmp_path / "m"], ""),
                       (["train", garbage, "--out", tmp_path / "m"], ""),
                       (["evaluate", garbage], ""),
                       (["predict", *SYSTEM, "-o", ""], "--out"), (["predict", *SYSTEM, "-o", "."], "--out"),
                       (["predict", *SYSTEM, "-o", "/proc/none/x"], "--out"),
                       (["predict", *SYSTEM, "-o", tmp_path / ("x" * 300)], "longer than 255"),
                       (["demo", "--time-tau", "0", "--out", tmp_path / "d"], "--time-tau"),
                       (["demo", "--time-tau", "inf", "--out", tmp_path / "d"], "--time-tau"),
                       (["validate", "--presets", "bogus", "--out", tmp_path / "v"], "--presets"),
                       (["check-accuracy", "--preset", "bogus"], "--preset"),
                       (["report", toy_nc, "--threads", "0"], "--threads")):
        res, out = cli(*args)
        refused(res, out, name)
    assert not (tmp_path / "m").exists() and not (tmp_path / "d").exists()


def test_a_fifo_input_does_not_block(tmp_path):
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)
    res, out = cli("predict", "--input", fifo, "-o", tmp_path / "p")
    refused(res, out, "--input", "not a regular file")


# 10. a full disk: the error is reported, the partial file removed, the process exits cleanly
def test_a_full_disk_leaves_no_partial_file(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        batch = tmp_path / "batch.csv"
        rows = ["h,c,d_plus,d_minus,sigma_s"] + [f"4.4,{0.1 + i * 0.001:.4f},0.415,0.415,-0.015" for i in range(300)]
        batch.write_text("\n".join(rows) + "\n")
        proc = subprocess.run([sys.executable, "-c", "from mdsurrogate.cli import main; main()", "predict",
                               "--input", str(batch), "-o", str(disk / "p"), "--no-plot"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode in (1, 2), (proc.returncode, proc.stderr[-500:])
        assert "Traceback" not in proc.stderr and "error:" in proc.stderr
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# 14/15. physical limits and numbers that are not numbers
@pytest.mark.parametrize("c", ["1e30", "0", "-1", "nan"])
def test_extrapolation_never_leaves_the_physical_limits(tmp_path, c):
    res, out = cli("predict", "--h", "4.4", "--c", c, *SYSTEM[4:], "--allow-extrapolation", "-o", tmp_path / "p")
    refused(res, out, "c (salt concentration)")
    assert not (tmp_path / "p.nc").exists()


@pytest.mark.parametrize("value", [True, 10**400, float("nan"), "1", None])
def test_system_inputs_must_be_numbers(value):
    with pytest.raises(InvalidInput, match="c .salt concentration. must be a finite number"):
        ConfinedElectrolyte(h=4.4, c=value, d_plus=0.415, d_minus=0.415, sigma_s=-0.015)


# 18. large batches: chunked, bounded, the TSV only when asked
def test_predict_batches_in_chunks_equal_the_api(tmp_path, monkeypatch):
    import mdsurrogate.cli.surrogate as cli_surrogate
    from mdsurrogate import load_surrogate

    monkeypatch.setattr(cli_surrogate, "PREDICT_CHUNK", 7)
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.uniform(4.0, 5.0, 130), rng.uniform(0.1, 2.0, 130), rng.uniform(0.2, 0.63, 130),
                         rng.uniform(0.2, 0.63, 130), rng.uniform(-0.02, -0.01, 130)])
    batch = tmp_path / "batch.tsv"
    batch.write_text("h\tc\td_plus\td_minus\tsigma_s\n" + "\n".join("\t".join(f"{v:.6f}" for v in x) for x in X))
    res, out = cli("predict", "--input", batch, "-o", tmp_path / "p", "--no-plot")
    assert res.exit_code == 0, out
    assert not (tmp_path / "p.tsv").exists()  # 130 systems > TSV_AUTO_MAX: only with --tsv
    got = xr.load_dataset(tmp_path / "p.nc", engine="h5netcdf")
    want = load_surrogate().predict(np.round(X, 6))
    np.testing.assert_allclose(got["n_plus"].values, want["n_plus"].values, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got["z"].values, want["z"].values)
    assert "z" in got.coords and got.attrs["n_members"] == 5
    res, out = cli("predict", "--input", batch, "-o", tmp_path / "q", "--no-plot", "--tsv")
    assert res.exit_code == 0 and len((tmp_path / "q.tsv").read_text().splitlines()) == 130 * N_GRID + 1


def test_summary_json_of_a_card_edit_is_not_needed_for_errors(tmp_path):
    """A surrogate folder with a card that is not JSON: one line naming the file."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "card.json").write_text(json.dumps({"format": "mdsurrogate-surrogate", "format_version": 1,
                                                 "inputs": [[[[]]]]}))
    res, out = cli("predict", *SYSTEM, "--model", model, "-o", tmp_path / "p")
    refused(res, out, "card.json")
