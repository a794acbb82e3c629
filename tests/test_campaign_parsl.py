"""The Parsl path: a small real-MD campaign through HighThroughputExecutor + LocalProvider (as in CI), and the
SLURM/PBS configurations built (not submitted)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import parsl  # noqa: F401  (a required dependency: a broken install must fail here, not skip)
import pytest

from mdsurrogate.campaign.backends import marked_processes
from mdsurrogate.campaign.execute import campaign_status, run_campaign
from mdsurrogate.campaign.layout import result_path
from mdsurrogate.campaign.ledger import Ledger
from mdsurrogate.campaign.parsl_configs import pbs_config, resolve_config, slurm_config
from mdsurrogate.campaign.spec import parse_spec


def _spec(run_engine: bool):
    controls = {"steps": 300, "n_blocks": 4, "overrides": {"block_steps": 50}, "seeds": [1]} if run_engine \
        else {"steps": 1000, "n_blocks": 4, "overrides": {"block_steps": 100}, "seeds": [1, 13]}
    return parse_spec({
        "campaign": {"name": "parsl"},
        "design": [{"type": "grid", "h": 4.0, "c": 0.1, "d_plus": 0.415, "d_minus": 0.415,
                    "sigma_s": [-0.01, -0.02]}],
        "controls": controls,
        "execution": {"workers": 2, "backend": "parsl", "parsl_config": "local", "max_attempts": 1,
                      "reseed_on_retry": False},
    })


def test_campaign_through_parsl_htex_local_provider(tmp_path):
    try:
        import mdsurrogate.simulation.engine  # noqa: F401

        run_fn, engine = "mdsurrogate.simulation.engine:simulate", True
    except ImportError:  # before the engine lands: same path, synthetic runs
        run_fn, engine = "mdsurrogate.campaign.synthetic:simulate", False
    spec = _spec(engine)
    s = run_campaign(spec, tmp_path, run_fn=run_fn)
    assert s.counts == {"pending": 0, "running": 0, "done": 2, "failed": 0}
    assert (tmp_path / "parsl").is_dir()  # Parsl really ran (its run_dir)
    for r in spec.runs:
        assert result_path(tmp_path, r.run_id).is_file()
    from mdsurrogate.dataset import consolidate

    ds = consolidate(tmp_path)
    assert ds.sizes["system"] == 2 and np.all(np.isfinite(ds["n_plus"].values))
    if engine:
        assert set(ds["preset"].values) == {"production"}
        assert all(v != "synthetic" for v in ds["lammps_version"].values)
    # resuming through Parsl starts nothing (and does not even start the executor)
    assert run_campaign(spec, tmp_path, run_fn=run_fn).started == 0


def test_failures_come_back_through_parsl_with_their_reason(tmp_path):
    spec = _spec(run_engine=False)
    s = run_campaign(spec, tmp_path, run_fn="mdsurrogate.campaign.synthetic:simulate", parsl_config="threads")
    assert s.counts["done"] == 2 and s.counts["failed"] == 2
    st = campaign_status(tmp_path)
    assert all("lost atoms" in f["reason"] for f in st["failures"])
    with Ledger(tmp_path / "ledger.sqlite") as led:
        assert all(r.attempts == 1 for r in led.rows())


def test_cluster_configs_build_with_srun_and_mpiexec_launchers(tmp_path):
    from parsl.launchers import MpiExecLauncher, SrunLauncher
    from parsl.providers import PBSProProvider, SlurmProvider

    cfg = slurm_config(partition="compute", account="abc", cores_per_node=48, cores_per_run=4, nodes_per_block=2)
    ex = cfg.executors[0]
    assert isinstance(ex.provider, SlurmProvider) and isinstance(ex.provider.launcher, SrunLauncher)
    assert ex.max_workers_per_node == 12 and ex.provider.nodes_per_block == 2
    cfg = pbs_config(queue="workq", cpus_per_node=64, cores_per_run=8)
    ex = cfg.executors[0]
    assert isinstance(ex.provider, PBSProProvider) and isinstance(ex.provider.launcher, MpiExecLauncher)
    assert ex.max_workers_per_node == 8
    with pytest.raises(ValueError, match="cores_per_run"):
        slurm_config(partition="p", cores_per_node=4, cores_per_run=8)
    site = tmp_path / "site.py"
    site.write_text(textwrap.dedent("""
        from mdsurrogate.campaign.parsl_configs import slurm_config

        def make_config(workers, cores_per_run, run_dir):
            return slurm_config(partition="p", cores_per_node=32, cores_per_run=cores_per_run, run_dir=run_dir)
        """))
    cfg = resolve_config(str(site), workers=4, cores_per_run=2, run_dir=tmp_path)
    assert cfg.executors[0].max_workers_per_node == 16
    with pytest.raises(ValueError, match="parsl_config"):
        resolve_config("nowhere.py")
    # a wrong config name is refused before the campaign directory or its ledger exists
    with pytest.raises(ValueError, match="parsl_config"):
        run_campaign(_spec(run_engine=False), tmp_path / "camp", parsl_config="slurm")
    assert not (tmp_path / "camp").exists()


def _worker_pids(marker: str) -> set[int]:
    """Live campaign worker processes (`python -m mdsurrogate.campaign.worker`) of the campaign `marker`."""
    out = set()
    for pid in marked_processes(marker):
        try:
            if b"mdsurrogate.campaign.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.add(pid)
        except OSError:
            pass
    return out


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (by parent links in /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_worker_stops_when_its_supervisor_heartbeat_goes_stale(tmp_path):
    """The watchdog of a run whose supervisor stopped beating (no new beat for stale_s) kills the run."""
    hb = tmp_path / "supervisor.json"
    hb.write_text(json.dumps({"token": "t1", "beat": 1}))
    task = {"run_id": "r", "inputs": {"h": 4.0, "c": 0.5, "d_plus": 0.415, "d_minus": 0.415, "sigma_s": -0.01},
            "seed": 1, "controls": {"steps": 300_000}, "cores": 1, "run_fn": "mdsurrogate.campaign.synthetic:simulate",
            "out": str(tmp_path / "r.nc"), "workdir": str(tmp_path / "w"), "status": str(tmp_path / "status.json"),
            "supervisor": {"heartbeat": str(hb), "token": "t1", "stale_s": 2.0}}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mdsurrogate.campaign.worker", json.dumps(task)],
                          capture_output=True, text=True, timeout=60, start_new_session=True)
    assert proc.returncode in (-9, 137) and "no supervisor heartbeat" in proc.stderr
    assert time.monotonic() - t0 < 20  # the run itself would take 30 s
    assert not (tmp_path / "r.nc").exists()


def test_runs_of_a_killed_supervisor_stop_when_another_takes_over(tmp_path):
    """Parsl's workers are not children of the supervisor: after it is SIGKILLed its runs go on. The resumed
    supervisor (new heartbeat token) resubmits them, and the old copies must stop at once instead of running
    alongside; every run then ends exactly once, written by the new workers."""
    camp = tmp_path / "camp"
    spec_file = tmp_path / "p.toml"
    spec_file.write_text(textwrap.dedent(f"""
        [campaign]
        name = "parsl-crash"
        directory = "{camp}"
        [[design]]
        type = "list"
        points = [{{h = 4.0, c = 0.5, d_plus = 0.415, d_minus = 0.415, sigma_s = -0.01}},
                  {{h = 4.4, c = 1.0, d_plus = 0.2, d_minus = 0.2, sigma_s = -0.02}}]
        [controls]
        steps = 150000
        [execution]
        workers = 2
        backend = "parsl"
        parsl_config = "local"
        """))
    marker = str((camp / "ledger.sqlite").resolve())
    cmd = [sys.executable, "-c", "from mdsurrogate.cli import main; main()", "campaign", "run", str(spec_file),
           "--run-fn", "mdsurrogate.campaign.synthetic:simulate", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    orphans: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while len(_worker_pids(marker)) < 2 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
        old = _worker_pids(marker)
        assert len(old) == 2, "the runs never started through Parsl"
        orphans |= _descendants(first.pid)  # Parsl's interchange and worker pools outlive it: killed at the end
        first.send_signal(signal.SIGKILL)
        first.wait()
        time.sleep(1.0)
        assert all(_alive(p) for p in old)  # orphaned, still running (15 s runs): the case the heartbeat is for
        t_resume = time.monotonic()
        second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        while any(_alive(p) for p in old) and time.monotonic() - t_resume < 30:
            time.sleep(0.2)
        stopped_after = time.monotonic() - t_resume
        out, _ = second.communicate(timeout=180)
        assert second.returncode == 0, out
        assert stopped_after < 9.0, f"old runs still alive {stopped_after:.1f} s after the resume started"
        logs = " ".join(p.read_text() for p in (camp / "work").glob("*/worker.log"))
        assert "another supervisor took over" in logs  # they stopped because of the heartbeat
    finally:
        if first.poll() is None:
            orphans |= _descendants(first.pid)
            first.kill()
        for p in _worker_pids(marker) | orphans:  # the first supervisor's Parsl interchange, pools and runs
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
    from mdsurrogate.dataset import consolidate

    with Ledger(camp / "ledger.sqlite") as led:
        done = [e["run_id"] for e in led.events() if e["state"] == "done"]
        assert led.counts()["done"] == 2
    assert sorted(done) == sorted(set(done)) and len(done) == 2
    ds = consolidate(camp)
    assert not set(int(p) for p in ds["pid"].values) & old
