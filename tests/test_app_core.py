"""The web app's logic without a browser (fast): run controls for short runs, the Auto decision, the dataset
look-up, the downloads, and `mdsurrogate app`'s refusals."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from mdsurrogate.app import core
from mdsurrogate.campaign.backends import marked_processes
from mdsurrogate.simulation.system import ConfinedElectrolyte, InvalidInput

BASE = {"h": 4.4, "c": 0.5, "d_plus": 0.415, "d_minus": 0.415, "sigma_s": -0.015}


def test_run_controls_short_runs_and_refusals():
    short = core.run_controls(5.0, 1, 1)
    eq, prod = short.schedule()
    assert short.steps == 500 and short.settings().block_steps == 20 and prod == 440 and eq == 50
    assert core.run_controls(400.0, 1, 1).overrides == {}  # the preset's own blocks for real runs
    assert core.run_controls(50.0, 3, 1, 0.05).target_rel_error == 0.05
    with pytest.raises(ValueError, match="at least 2.5 tau"):
        core.run_controls(1.0, 1, 1)
    with pytest.raises(ValueError, match="MPI ranks must be in"):
        core.run_controls(5.0, 1, 10_000)
    with pytest.raises(ValueError, match="target error"):
        core.run_controls(5.0, 1, 1, 2.0)
    with pytest.raises(InvalidInput, match=r"h \(confinement length\) = 7.0 nm is outside the design range"):
        core.check_system({**BASE, "h": 7.0})


def test_auto_decides_ml_dataset_or_md():
    sur = core.shipped_surrogate()
    system = ConfinedElectrolyte(**BASE)
    ml = core.auto_decide(sur, system, 1.0, None)
    assert ml.kind == "ml" and "ensemble spread" in ml.reason
    ref = sur.predict(BASE).isel(system=0)
    np.testing.assert_array_equal(ml.result["n_plus"].values, ref["n_plus"].values.astype(float))
    md = core.auto_decide(sur, system, 1e-6, None)
    assert md.kind == "md" and "exceeds the bound" in md.reason and md.ml is not None
    outside = ConfinedElectrolyte(**{**BASE, "h": 5.5}, allow_outside_design=True)
    d = core.auto_decide(sur, outside, 1.0, None)
    assert d.kind == "md" and "outside the surrogate's training ranges" in d.reason and d.ml is None
    empty = core.DatasetIndex(Path("/nonexistent"))
    d = core.auto_decide(sur, system, 1e-6, empty)
    assert d.kind == "md" and "not present" in d.reason


def test_auto_answers_from_the_dataset_for_a_simulated_system():
    index = core.project_dataset()
    if not index.available():
        pytest.skip("the project's dataset (data/) is not in this checkout")
    with xr.open_dataset(index.files()[0], engine="h5netcdf") as ds:
        row = ds.isel(system=3)
        inputs = {k: float(row[k]) for k in BASE}
        n_plus = row["n_plus"].values
    d = core.auto_decide(core.shipped_surrogate(), ConfinedElectrolyte(**inputs), 1e-6, index)
    assert d.kind == "dataset" and "already simulated" in d.reason
    np.testing.assert_allclose(d.result["n_plus"].values, n_plus)
    assert "n_plus_err" in d.result and np.isfinite(d.result.attrs["decay_length_nm"])


def test_downloads_round_trip():
    ml = core.ml_profile(core.shipped_surrogate(), ConfinedElectrolyte(**BASE))
    t = pd.read_csv(io.BytesIO(core.to_text(ml, ",")))
    assert list(t.columns) == ["z_nm", "n_plus_M", "n_plus_std_M", "n_minus_M", "n_minus_std_M", "rho_C_per_m3",
                               "S_C_per_m2"]
    np.testing.assert_allclose(t["n_minus_std_M"], ml["n_minus_std"].values, rtol=1e-7)
    back = xr.load_dataset(io.BytesIO(core.to_netcdf(ml)), engine="h5netcdf")
    np.testing.assert_array_equal(back["n_plus"].values, ml["n_plus"].values)
    assert back.attrs["source"] == "ML"
    png = core.plots_png(core.Result(ConfinedElectrolyte(**BASE), ml=ml))
    assert png[:4] == b"\x89PNG"


def test_sessions_have_their_own_folders(tmp_path):
    a, b = core.Session(tmp_path), core.Session(tmp_path)
    assert a.workdir != b.workdir and a.workdir.parent == b.workdir.parent == tmp_path
    a.close()
    assert not a.workdir.exists() and b.workdir.exists()


def _mdsurrogate(*args):
    exe = Path(sys.executable).with_name("mdsurrogate")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60)


def test_app_command_refuses_bad_ports():
    r = _mdsurrogate("app", "--port", "70000")
    assert r.returncode == 2 and "error: --port must be in [0, 65535]" in r.stderr
    r = _mdsurrogate("app", "--address", "")
    assert r.returncode == 2 and "error: --address must be a host name or IP address" in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = _mdsurrogate("app", "--port", str(s.getsockname()[1]))
    assert r.returncode == 2 and "cannot listen on 127.0.0.1" in r.stderr
    assert "Serve the" in _mdsurrogate("app", "--help").stdout


def test_a_failed_run_reports_the_engine_reason(tmp_path):
    from mdsurrogate.simulation.settings import RunControls

    controls = RunControls(steps=500, n_blocks=20, overrides={"block_steps": 20, "dt": 0.4})  # blows up
    job = core.MDJob(ConfinedElectrolyte(**{**BASE, "c": 0.1, "h": 4.0}), controls, tmp_path / "run").start()
    _wait_until(lambda: not job.running(), 300, "the failing MD run never finished")
    st = job.state()
    assert st["status"] == "failed" and st["reason"] == "blowup" and "wall" in st["detail"]
    assert job.result() is None and "LAMMPS" in job.lammps_log()
    # the worker has exited; its LAMMPS processes may take a moment longer to be gone
    _wait_until(lambda: _run_processes(job) == [], 10,
                f"processes of the run never finished: {_run_processes(job)}")


def test_a_cancel_after_the_run_finished_keeps_its_result(tmp_path):
    """Cancel pressed as the run ends: the finished result is reported and kept, not called cancelled."""
    from mdsurrogate.simulation.settings import RunControls

    controls = RunControls(steps=600, n_blocks=4, overrides={"block_steps": 100})
    job = core.MDJob(ConfinedElectrolyte(**{**BASE, "c": 0.1, "h": 4.0}), controls, tmp_path / "run").start()
    _wait_until(lambda: not job.running(), 300, "the MD run never finished")
    assert job.cancel() == 0
    st = job.state()
    assert st["status"] == "done", st
    assert job.result() is not None


def _run_processes(job: core.MDJob) -> list[int]:
    """Live processes of this app MD run (worker, LAMMPS), found by the run's marker in their environment."""
    return marked_processes(job.run_id, core.RUN_MARKER_ENV, skip_zombies=True)


def _wait_until(done, timeout_s: float, message: str) -> None:
    t0 = time.monotonic()
    while not done():
        if time.monotonic() - t0 > timeout_s:
            pytest.fail(f"{message} (waited {timeout_s:g} s)")
        time.sleep(0.2)


def test_closing_all_sessions_ends_their_runs_and_removes_their_folders(tmp_path):
    idle, busy, closed = core.Session(tmp_path), core.Session(tmp_path), core.Session(tmp_path)
    closed.close()
    assert idle in core.live_sessions() and busy in core.live_sessions() and closed not in core.live_sessions()
    job = busy.start_md(ConfinedElectrolyte(**{**BASE, "c": 0.1, "h": 4.0}),
                        core.run_controls(100000.0, 1, 1))
    _wait_until(lambda: len(_run_processes(job)) >= 2, 300,
                "the MD run never finished starting (worker and LAMMPS)")
    assert core.close_all_sessions() >= 2
    assert _run_processes(job) == [] and not job.running()
    assert not idle.workdir.exists() and not busy.workdir.exists() and list(tmp_path.iterdir()) == []
    assert idle not in core.live_sessions() and busy not in core.live_sessions()
