"""`mdsurrogate proxima ...` refuses bad numeric options with a one-line error naming the option (no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mdsurrogate.cli import app
from mdsurrogate.proxima.pretrain import shipped_ensemble_path

runner = CliRunner()

BAD = [
    (["npt", "--steps", "-5", "--seeds", "0"], "--seeds", "in [1, 10000]"),
    (["npt", "--steps", "-5"], "--steps", "in [1, 1000000000]"),
    (["npt", "--steps", "0"], "--steps", "in [1, 1000000000]"),
    (["hops", "--seeds", "0"], "--seeds", "in [1, 10000]"),
    (["hops", "--steps", "5"], "--steps", "in [10, 1000000000]"),
    (["npt", "--target-err", "nan"], "--target-err", "> 0"),
    (["npt", "--target-err", "inf"], "--target-err", "> 0"),
    (["hops", "--target-err", "-0.9"], "--target-err", "> 0"),
    (["npt", "--target-err", "0"], "--target-err", "> 0"),
    (["npt", "--min-target-fraction", "1.5"], "--min-target-fraction", "[0, 1]"),
    (["hops", "--min-target-fraction", "nan"], "--min-target-fraction", "[0, 1]"),
    (["npt", "--n-blend", "-1"], "--n-blend", "in [0, 1000000]"),
    (["npt", "--n-pretrain", "0"], "--n-pretrain", "in [1, 1000000]"),
    (["hops", "--epochs", "0"], "--epochs", "in [1, 1000000]"),
    (["npt", "--potential", "lj"], "--potential", "sw, tersoff"),
    (["hops", "--lattice", "0"], "--lattice", "[4, 8]"),
    (["hops", "--lattice", "nan"], "--lattice", "[4, 8]"),
    (["hops", "--steps", "100"], "--equil-steps", "[0, 90]"),
    (["hops", "--equil-steps", "-1"], "--equil-steps", "[0, 5990]"),
    (["hops", "--min-dwell", "0"], "--min-dwell", "in [1, 1000000000]"),
    (["smoke", "sw", "--steps", "0"], "--steps", "in [1, 1000000000]"),
    (["cost", "--expensive", "vasp"], "--expensive", "tblite"),
    (["npt", "--jobs", "0"], "--jobs", "in [1,"),
    (["hops", "--model", "no-such-file.safetensors"], "--model", "not a file"),
    (["npt", "--barostat", "andersen"], "--barostat", "berendsen"),
    (["train", "--seed", "-1"], "--seed", "in [0,"),
    (["npt", "--seeds", "1000000000"], "--seeds", "in [1, 10000]"),
    (["train", "--max-epochs", "10000000"], "--max-epochs", "in [1, 1000000]"),
    (["train", "--frames-per-state", "2"], "--frames-per-state", "in [8, 1000000]"),
    (["train", "--runs-per-state", "0"], "--runs-per-state", "in [1, 1024]"),
    (["train", "--valid-every", "0"], "--valid-every", "in [1, 400]"),
    (["train", "--members", "1"], "--members", "in [2, 16]"),
    (["train", "--potential", "eam"], "--potential", "sw, tersoff"),
    (["train", "--low-t", "0"], "--low-t", "[1, 3000] K"),
    (["train", "--quench-frames", "-1"], "--quench-frames", "in [0, 1000000]"),
    (["train", "--lr-decay", "1.5"], "--lr-decay", "[0, 0.99]"),
    (["train", "--w-energy", "-1"], "--w-energy", "[0, 1e+06]"),
    (["train", "--init", "/nonexistent/ensemble.safetensors"], "--init", "is not a file"),
    (["train", "--init", str(Path(__file__)), "--out", "/tmp/never"], "--init", ""),
    (["train", "--init", str(shipped_ensemble_path()), "--members", "3"], "--members", "ensemble's 2 members, got 3"),
]


@pytest.mark.parametrize("args,option,allowed", BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_bad_option_fails_with_one_line(args, option, allowed, tmp_path):
    res = runner.invoke(app, ["proxima", *args, "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)  # no exception escaped the command
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error: ") and option in lines[0] and allowed in lines[0]
    assert not (tmp_path / "out").exists()  # refused before any work


@pytest.mark.parametrize("command", ["npt", "hops"])
def test_garbage_model_file_is_one_line(command, tmp_path):
    bad = tmp_path / "ensemble.safetensors"
    bad.write_bytes(b"not a safetensors file")
    res = runner.invoke(app, ["proxima", command, "--model", str(bad), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --model") and str(bad) in lines[0], res.output
    assert not (tmp_path / "out").exists()


def test_cost_without_summaries_is_one_line(tmp_path):
    res = runner.invoke(app, ["proxima", "cost", "--inputs", str(tmp_path / "none"), "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.strip().startswith("error: no experiment summaries found") and len(res.output.splitlines()) == 1


def test_cost_with_a_foreign_summary_is_one_line(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "summary.json").write_text('{"something": "else"}')
    res = runner.invoke(app, ["proxima", "cost", "--inputs", str(tmp_path / "x"), "--expensive", "sw",
                              "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "Traceback" not in res.output and len(res.output.splitlines()) == 1
    assert "summar" in res.output


@pytest.mark.parametrize("command", [["smoke", "sw"], ["barrier"], ["hops"], ["npt"], ["train"]])
def test_out_must_be_a_folder(command, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    res = runner.invoke(app, ["proxima", *command, "--out", str(a_file)])
    assert res.exit_code == 2 and "--out" in res.output and "not a folder" in res.output, res.output
    assert a_file.read_text() == "mine"
    res = runner.invoke(app, ["proxima", *command, "--out", ""])
    assert res.exit_code == 2 and "give an output folder" in res.output, res.output
