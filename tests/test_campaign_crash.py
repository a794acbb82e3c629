"""Crash test: SIGKILL a running campaign at seeded random moments, resume, and check that every run ended
exactly once and that the dataset is complete and readable.

The supervisor runs as `mdsurrogate campaign run` in a subprocess. Every run goes through `recording_run`
below (imported by the workers from this file), which logs each start and flags any start of a run whose
result file already exists, i.e. finished work being repeated.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mdsurrogate.campaign.backends import marked_processes
from mdsurrogate.campaign.layout import result_path, result_readable
from mdsurrogate.campaign.ledger import Ledger
from mdsurrogate.campaign.spec import load_spec

HERE = Path(__file__).resolve().parent
INNER = {"synthetic": "mdsurrogate.campaign.synthetic:simulate", "engine": "mdsurrogate.simulation.engine:simulate",
         "session": "test_campaign_crash:session_child_run"}


def session_child_run(system, controls, out, workdir):
    """Like the engine: the work runs in a child process in a session of its own (outside the worker's group)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    child.wait()
    raise RuntimeError("the child was killed")


def recording_run(system, controls, out, workdir):
    """Log the start, flag a repeat of finished work, then run the real function."""
    from mdsurrogate.campaign.worker import resolve

    log = Path(os.environ["CRASH_TEST_LOG"])
    line = f"start {Path(out).stem} {os.getpid()} {time.time():.3f}\n"
    if Path(out).exists():
        line += f"REPEAT {Path(out).stem}\n"
    with open(log, "a") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    return resolve(INNER[os.environ["CRASH_TEST_INNER"]])(system, controls, out=out, workdir=workdir)


def _supervisor(spec_file: Path, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "from mdsurrogate.cli import main; main()", "campaign", "run", str(spec_file),
           "--run-fn", "test_campaign_crash:recording_run", "--no-progress"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def crash_and_resume(tmp_path: Path, inner: str, design: str, controls: str, kills: int, window: tuple[float, float],
                     seed: int) -> None:
    camp = tmp_path / "camp"
    spec_file = tmp_path / "crash.toml"
    spec_file.write_text(f'[campaign]\nname = "crash"\ndirectory = "{camp}"\n{design}\n[controls]\n{controls}\n'
                         '[execution]\nworkers = 2\ncores_per_run = 1\nmax_attempts = 2\n')
    spec = load_spec(spec_file)
    log = tmp_path / "starts.log"
    env = {**os.environ, "CRASH_TEST_LOG": str(log), "CRASH_TEST_INNER": inner,
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    marker = str((camp / "ledger.sqlite").resolve())
    rng = np.random.default_rng(seed)
    killed_mid_run = 0
    for _ in range(kills):
        proc = _supervisor(spec_file, env)
        # wait until a run is in flight (start-up time varies with the machine's load), then a seeded extra delay
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if (camp / "ledger.sqlite").exists() and Ledger(camp / "ledger.sqlite").counts()["running"] > 0:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(*window))
        if proc.poll() is not None:
            break  # it finished before the kill
        running = Ledger(camp / "ledger.sqlite").counts()["running"]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_mid_run += running > 0
        # the workers notice their supervisor died and take their process groups (mpiexec, lmp) with them
        deadline = time.monotonic() + 10
        while marked_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marked_processes(marker) == [], "orphan workers survived the supervisor"
    assert killed_mid_run >= 1, "no kill landed while runs were in flight; the test proved nothing"

    proc = _supervisor(spec_file, env)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out

    run_ids = {r.run_id for r in spec.runs}
    starts = log.read_text().splitlines()
    assert not [s for s in starts if s.startswith("REPEAT")], "finished work was started again"
    started_ids = [s.split()[1] for s in starts if s.startswith("start")]
    assert set(started_ids) == run_ids
    with Ledger(camp / "ledger.sqlite") as led:
        rows = led.rows()
        events = led.events()
    assert {r.run_id for r in rows} == run_ids
    assert all(r.state == "done" for r in rows), [(r.run_id, r.state, r.reason) for r in rows]
    done_events = [e["run_id"] for e in events if e["state"] == "done"]
    assert sorted(done_events) == sorted(run_ids), "every run ends exactly once"
    assert any(e["detail"] == "interrupted: supervisor died" for e in events)
    assert all(result_readable(result_path(camp, rid)) for rid in run_ids)
    assert not list((camp / "results").glob(".*.tmp"))

    from mdsurrogate.dataset import consolidate, load_dataset

    consolidate(camp, camp / "dataset.nc")
    ds = load_dataset(camp / "dataset.nc")
    assert sorted(ds["run_id"].values.tolist()) == sorted(run_ids)
    assert ds.sizes["point"] == 502
    for v in ("n_plus", "n_minus", "n_plus_err", "n_minus_err", "integrated_charge"):
        assert np.all(np.isfinite(ds[v].values)), v
    assert np.all(ds["n_plus"].values.max(axis=1) > 0)


def test_sigkill_and_resume_synthetic(tmp_path):
    design = ('[[design]]\ntype = "grid"\nh = [4.0, 4.4]\nc = [0.5]\nd_plus = [0.2, 0.415]\n'
              'd_minus = [0.415]\nsigma_s = [-0.01, -0.02]\n')
    controls = "steps = 8000\nn_blocks = 4\noverrides = { block_steps = 100 }\nseeds = [1]"  # >= n_blocks blocks
    crash_and_resume(tmp_path, "synthetic", design, controls, kills=4, window=(0.0, 2.0), seed=11)


def test_sigkill_and_resume_real_md(tmp_path):
    pytest.importorskip("mdsurrogate.simulation.engine")
    design = ('[[design]]\ntype = "grid"\nh = [4.0]\nc = [0.1]\nd_plus = [0.415]\nd_minus = [0.415, 0.5225]\n'
              'sigma_s = [-0.01, -0.02]\n')
    controls = 'preset = "production"\nsteps = 2000\nn_blocks = 4\noverrides = { block_steps = 100 }\nseeds = [1]'
    crash_and_resume(tmp_path, "engine", design, controls, kills=3, window=(0.0, 1.5), seed=5)


@pytest.mark.parametrize("inner", ["synthetic", "session"])
def test_sigterm_stops_cleanly_and_resumes(tmp_path, inner):
    """A stop leaves no process of the campaign behind, also those the runs start in sessions of their own
    (LAMMPS: an orphan would go on burning a core and write into the resumed attempt's folder)."""
    camp = tmp_path / "camp"
    spec_file = tmp_path / "term.toml"
    spec_file.write_text(f'[campaign]\nname = "term"\ndirectory = "{camp}"\n[[design]]\ntype = "grid"\nh = [4.0]\n'
                         'c = [0.5]\nd_plus = [0.415]\nd_minus = [0.2, 0.415]\nsigma_s = [-0.01, -0.02]\n'
                         '[controls]\nsteps = 30000\n[execution]\nworkers = 2\n')
    env = {**os.environ, "CRASH_TEST_LOG": str(tmp_path / "starts.log"), "CRASH_TEST_INNER": inner,
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = _supervisor(spec_file, env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if (camp / "ledger.sqlite").exists() and Ledger(camp / "ledger.sqlite").counts()["running"] == 2:
            break
    time.sleep(1.0)
    if inner == "session":  # both workers and both session children up
        marker = str((camp / "ledger.sqlite").resolve())
        while len(marked_processes(marker, skip_zombies=True)) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(marked_processes(marker, skip_zombies=True)) >= 4
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "run the same command again to resume" in out
    with Ledger(camp / "ledger.sqlite") as led:
        c = led.counts()
        assert c["running"] == 0 and c["pending"] == 4 and c["failed"] == 0
        assert all(r.attempts == 0 for r in led.rows())  # an interruption is not a failed attempt
    assert marked_processes(str((camp / "ledger.sqlite").resolve())) == []


def test_sigkilled_supervisor_leaves_no_run_sessions(tmp_path):
    """SIGKILL the supervisor: each worker's watchdog kills its run, including the child in its own session."""
    camp = tmp_path / "camp"
    spec_file = tmp_path / "kill.toml"
    spec_file.write_text(f'[campaign]\nname = "kill"\ndirectory = "{camp}"\n[[design]]\ntype = "grid"\nh = [4.0]\n'
                         'c = [0.5]\nd_plus = [0.415]\nd_minus = [0.2, 0.415]\nsigma_s = [-0.01]\n'
                         '[controls]\nsteps = 30000\n[execution]\nworkers = 2\n')
    env = {**os.environ, "CRASH_TEST_LOG": str(tmp_path / "starts.log"), "CRASH_TEST_INNER": "session",
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = _supervisor(spec_file, env)
    marker = str((camp / "ledger.sqlite").resolve())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # both workers and both session children up
        time.sleep(0.2)
        if len(marked_processes(marker, skip_zombies=True)) >= 4:
            break
    assert len(marked_processes(marker, skip_zombies=True)) >= 4
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while marked_processes(marker, skip_zombies=True) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marked_processes(marker, skip_zombies=True) == []
