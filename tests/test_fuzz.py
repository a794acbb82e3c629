"""Property-based fuzzing (hypothesis) of the command line and the public API (issue 14): whatever the five inputs,
spec files, surrogate cards, input files and output paths, a command either succeeds with finite results or fails
with exit code != 0 and one `error:` line, never a traceback, and never replaces or deletes a file other than the
requested output. 15 examples per property by default; `pytest -m fuzz` runs 300 each (tests/conftest.py)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from mdsurrogate.cli import app
from mdsurrogate.simulation import ConfinedElectrolyte, InvalidInput
from mdsurrogate.simulation.system import INPUT_NAMES
from mdsurrogate.surrogate import SurrogateLoadError, default_surrogate_path, load_surrogate

pytestmark = pytest.mark.fuzz
runner = CliRunner()

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30),
                    st.sampled_from([0.0, -0.0, 1e-300, 4.4, 0.5, 0.415, -0.015, 2.0, 0.63, 0.2, -0.02]))
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)


def invoke(*args) -> tuple[int, str]:
    res = runner.invoke(app, [str(a) for a in args])
    return res.exit_code, res.output


def check_outcome(code: int, output: str) -> None:
    assert "Traceback" not in output, output
    if code != 0:
        errors = [ln for ln in output.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1, output


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "keep.txt").write_text("never touched")
    return root


def _untouched(root: Path) -> None:
    assert (root / "keep.txt").read_text() == "never touched"


# --------------------------------------------------------------------------- the five inputs, CLI and API

@given(values=st.tuples(*[numbers] * 5))
def test_five_inputs_cli(values, sandbox):
    args = [x for name, v in zip(INPUT_NAMES, values) for x in (f"--{name.replace('_', '-')}", repr(float(v))
                                                                 if not isinstance(v, int) else str(v))]
    code, out = invoke("predict", *args, "-o", sandbox / "p", "--no-plot", "--allow-extrapolation")
    check_outcome(code, out)
    if code == 0:
        ds = xr.load_dataset(sandbox / "p.nc", engine="h5netcdf")
        assert np.all(np.isfinite(ds["n_plus"].values)) and np.all(np.isfinite(ds["n_minus"].values))
    _untouched(sandbox)


@given(values=st.tuples(*[st.one_of(numbers, st.booleans(), texts, st.none())] * 5))
def test_five_inputs_api(values):
    try:
        system = ConfinedElectrolyte(**dict(zip(INPUT_NAMES, values)), allow_outside_design=True)
    except InvalidInput as exc:
        assert any(name in str(exc) for name in INPUT_NAMES)
        return
    assert all(math.isfinite(v) for v in system.inputs().values())
    assert system.counts.n_cations >= system.counts.n_anions >= 0


# --------------------------------------------------------------------------- spec files

spec_texts = st.one_of(texts, st.builds(
    lambda k, v: f'[campaign]\nname = "f"\n[[design]]\ntype = "grid"\n{k} = {v}\n[controls]\nsteps = 30000\n',
    st.sampled_from(["h", "c", "d_plus", "n", "seed", "sigma_s"]),
    st.one_of(st.integers(-10**12, 10**12).map(str), st.floats().map(repr),
              st.lists(st.floats(-10, 10), max_size=4).map(str), texts.map(json.dumps))))


@given(text=spec_texts)
def test_spec_files(text, sandbox):
    spec = sandbox / "spec.toml"
    spec.write_text(text)
    code, out = invoke("campaign", "validate", spec)
    check_outcome(code, out)
    _untouched(sandbox)




# --------------------------------------------------------------------------- surrogate cards

card_paths = st.sampled_from([("name",), ("n_members",), ("architecture", "hidden"),
                              ("architecture", "output_activation"), ("architecture", "mirror"),
                              ("inputs", "0", "training_range"), ("inputs", "1", "design_range"),
                              ("outputs", "z_grid", "half_width"), ("outputs", "n_points"), ("weights", "file"),
                              ("weights", "sha256"), ("format_version",), ("inputs",)])
card_values = st.recursive(st.one_of(numbers, texts, st.booleans(), st.none()),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(texts, inner, max_size=3)), max_leaves=8)


@given(path=card_paths, value=card_values)
def test_card_files(path, value, sandbox):
    model = sandbox / "model"
    if model.exists():
        shutil.rmtree(model)
    shutil.copytree(default_surrogate_path(), model)
    card = json.loads((model / "card.json").read_text())
    node = card
    for key in path[:-1]:
        node = node[key] if isinstance(node, dict) else node[int(key) % len(node)]
    if isinstance(node, dict):
        node[path[-1]] = value
    else:
        node[int(path[-1]) % len(node)] = value
    (model / "card.json").write_text(json.dumps(card))
    try:
        sur = load_surrogate(model)
    except SurrogateLoadError as exc:
        assert "card.json" in str(exc) or "weights" in str(exc)
        return
    pred = sur.predict({"h": 4.4, "c": 0.5, "d_plus": 0.415, "d_minus": 0.415, "sigma_s": -0.015},
                       allow_extrapolation=True)
    assert np.all(np.isfinite(pred["n_plus"].values))




# --------------------------------------------------------------------------- input files (NetCDF, CSV, pickle)

csv_rows = st.lists(st.tuples(*[numbers] * 5), max_size=3).map(
    lambda rows: ("h,c,d_plus,d_minus,sigma_s\n" + "\n".join(",".join(map(str, r)) for r in rows)).encode())
files = st.one_of(st.binary(max_size=300), csv_rows, st.binary(max_size=200).map(lambda b: b"\x80\x04\x95" + b))


def _input_file(content, suffix, sandbox):
    src = sandbox / f"input{suffix}"
    src.write_bytes(content)
    for args in (("predict", "--input", src, "-o", sandbox / "p", "--no-plot"),
                 ("train", src, "--out", sandbox / "m", "--members", "1", "--epochs", "2", "--test-fraction", "0"),
                 ("campaign", "export", src, "-o", sandbox / "e.nc")):
        code, out = invoke(*args)
        check_outcome(code, out)
    assert src.read_bytes() == content
    _untouched(sandbox)


@pytest.fixture(scope="module")
def real_bytes():
    """A valid small dataset file, to be cut and corrupted."""
    return (Path(__file__).resolve().parent.parent / "data" / "reference_check.nc").read_bytes()


def _mutated(real: bytes, cut: int, flips: list[int]) -> bytes:
    data = bytearray(real[: max(1, cut % len(real))])
    for f in flips:
        data[f % len(data)] ^= 0xFF
    return bytes(data)


@given(content=files, suffix=st.sampled_from([".nc", ".csv", ".pk"]))
def test_input_files(content, suffix, sandbox):
    _input_file(content, suffix, sandbox)


@given(cut=st.integers(0, 10**9), flips=st.lists(st.integers(0, 10**9), max_size=3))
def test_corrupt_netcdf(cut, flips, sandbox, real_bytes):
    _input_file(_mutated(real_bytes, cut, flips), ".nc", sandbox)


# --------------------------------------------------------------------------- output paths

out_names = st.one_of(st.sampled_from(["", ".", "..", "/", "/dev/null", "/dev/stdout", "/proc/self/x", "a" * 300,
                                       "/nonexistent/dir/p"]),
                      texts.map(lambda t: t.replace("/", "_")))


@given(name=out_names)
def test_output_paths(name, sandbox, monkeypatch):
    monkeypatch.chdir(sandbox)
    code, out = invoke("predict", "--h", "4.4", "--c", "0.5", "--d-plus", "0.415", "--d-minus", "0.415",
                       "--sigma-s", "-0.015", "-o", name, "--no-plot")
    check_outcome(code, out)
    _untouched(sandbox)


