"""Drive a campaign: claim runs from the ledger, execute them (local process pool or Parsl), record outcomes.

Layout of a campaign directory::

    <dir>/ledger.sqlite        the single source of truth (see ledger.py)
    <dir>/spec.toml|yaml       the spec it was started from
    <dir>/results/<run>.nc     one result per finished run, written atomically by the run function
    <dir>/work/<run>/          the run's working directory (LAMMPS input, logs, worker log, status)

The supervisor (this module) is the only writer of the ledger. Each run executes in its own worker process
(`mdsurrogate.campaign.worker`), started directly by the local backend or from inside a Parsl app. A run is
recorded done only after its result file has been opened and checked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mdsurrogate.campaign.ledger import Ledger
from mdsurrogate.campaign.reuse import META_KEY as REUSE_META_KEY
from mdsurrogate.campaign.reuse import absolute_patterns, reused_runs
from mdsurrogate.campaign.spec import CampaignSpec, attempt_seed
from mdsurrogate.campaign.worker import DEFAULT_RUN_FN, MARKER_ENV  # noqa: F401 - re-exported

REQUIRED_VARS = ("n_plus", "n_minus", "n_plus_err", "n_minus_err")


@dataclass
class CampaignSummary:
    directory: Path
    started: int = 0
    done: int = 0
    failed: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    reconciled: dict[str, int] = field(default_factory=dict)


def campaign_dir(spec: CampaignSpec, directory: str | os.PathLike | None = None) -> Path:
    """The campaign's directory: the argument, else the spec's campaign.directory, else runs/campaigns/<name>."""
    if directory is not None:
        return Path(directory)
    if spec.directory:
        return Path(spec.directory)
    return Path("runs") / "campaigns" / spec.name


def ledger_path(root: str | os.PathLike) -> Path:
    return Path(root) / "ledger.sqlite"


def result_path(root: str | os.PathLike, run_id: str) -> Path:
    return Path(root) / "results" / f"{run_id}.nc"


def result_readable(path: str | os.PathLike) -> bool:
    """True if `path` is a complete per-run result: a NetCDF4/HDF5 file with the profile variables and `z`,
    non-empty and finite. Read with h5py directly (a few ms per file: resuming 1000 runs checks them all)."""
    import h5py  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            n = f["z"].shape[0]
            for v in REQUIRED_VARS:
                a = f[v][()]
                if a.shape != (n,) or n == 0 or not np.all(np.isfinite(a)):
                    return False
            return True
    except Exception:  # noqa: BLE001 - any read problem means "not a result"
        return False


# ---------------------------------------------------------------------------------------------- processes

def _proc_pgid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[2])


def _proc_has_marker(pid: int, marker: str) -> bool:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{MARKER_ENV}={marker}".encode() in env.split(b"\0")


def kill_worker_group(pid: int, marker: str, timeout_s: float = 10.0) -> int:
    """SIGKILL every process of worker `pid`'s process group that carries this campaign's marker.

    Processes are identified by their group id and their environment, never by name. Returns how many were
    signalled; waits until they are gone (or `timeout_s`)."""
    victims = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            p = int(entry.name)
            if p != os.getpid() and _proc_pgid(p) == pid and _proc_has_marker(p, marker):
                victims.append(p)
    for p in victims:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    while victims and time.monotonic() < deadline:
        victims = [p for p in victims if _proc_pgid(p) is not None and not _is_zombie(p)]
        time.sleep(0.05)
    return len(victims)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


HEARTBEAT_S = 5.0  # the supervisor rewrites <campaign>/supervisor.json this often
HEARTBEAT_STALE_S = 120.0  # a Parsl run whose supervisor missed beats this long kills itself


def _stale_s_from_env() -> float:
    raw = os.environ.get("MDSURROGATE_HEARTBEAT_STALE_S", "")
    try:
        value = float(raw) if raw.strip() else HEARTBEAT_STALE_S
    except ValueError:
        value = -1.0
    if not 3 * HEARTBEAT_S <= value <= 86400:
        raise ValueError(f"MDSURROGATE_HEARTBEAT_STALE_S must be seconds in [{3 * HEARTBEAT_S:g}, 86400], got {raw!r}")
    return value


class _Heartbeat:
    """<campaign>/supervisor.json = {"token", "beat", "pid", "host"}, rewritten (atomically) every HEARTBEAT_S by a
    thread of the supervisor that holds the ledger lock. Workers compare the token with their task's
    (`worker.supervisor_gone`): a new supervisor (resume after a crash) has a new token, and a clean stop writes a
    null token, so runs of a dead supervisor that still live on other nodes stop instead of running twice."""

    def __init__(self, root: Path, stale_s: float = HEARTBEAT_STALE_S):
        import socket  # noqa: PLC0415
        import uuid  # noqa: PLC0415

        self.path, self.token, self.beat, self.stale_s = root / "supervisor.json", uuid.uuid4().hex, 0, stale_s
        self._host, self._stop = socket.gethostname(), threading.Event()
        self._thread: threading.Thread | None = None

    def task_field(self) -> dict:
        return {"heartbeat": str(self.path), "token": self.token, "stale_s": self.stale_s}

    def _write(self, token: str | None) -> None:
        from mdsurrogate.io import write_json_atomic  # noqa: PLC0415

        self.beat += 1
        write_json_atomic(self.path, {"token": token, "beat": self.beat, "pid": os.getpid(), "host": self._host,
                                      "time": time.time()})

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._write(self.token)
            except OSError:  # a full or flaky shared file system: workers see a missed beat
                pass

    def start(self) -> None:
        self._write(self.token)
        self._thread = threading.Thread(target=self._run, name="campaign-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._write(None)
        except OSError:
            pass


def _worker_cmd(task: dict) -> list[str]:
    return [sys.executable, "-m", "mdsurrogate.campaign.worker", json.dumps(task)]


def _read_status(task: dict, returncode: int | None) -> dict:
    status = Path(task["status"])
    try:
        info = json.loads(status.read_text())
    except (OSError, ValueError):
        rc = returncode
        reason = (f"worker killed by signal {-rc}" if rc is not None and rc < 0
                  else f"worker exited with code {rc} without a status")
        info = {"ok": False, "reason": reason}
    return info


class LocalBackend:
    """The embedded default: one worker process per run, at most `workers` at a time, no service."""

    name = "local"

    def __init__(self, marker: str):
        self.marker = marker
        self.procs: dict[str, tuple[subprocess.Popen, dict]] = {}

    def submit(self, task: dict) -> int:
        log = open(Path(task["workdir"]) / "worker.log", "ab")
        env = {**os.environ, MARKER_ENV: self.marker}
        task = {**task, "parent_pid": os.getpid()}
        proc = subprocess.Popen(_worker_cmd(task), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True, close_fds=True)
        log.close()
        self.procs[task["run_id"]] = (proc, task)
        return proc.pid

    def poll(self, run_id: str) -> dict | None:
        proc, task = self.procs[run_id]
        rc = proc.poll()
        if rc is None:
            return None
        del self.procs[run_id]
        kill_worker_group(proc.pid, self.marker, timeout_s=5.0)  # leftovers (an orphaned mpiexec/lmp)
        return _read_status(task, rc)

    def cancel_all(self) -> None:
        for proc, _ in list(self.procs.values()):
            kill_worker_group(proc.pid, self.marker)
            proc.wait()
        self.procs.clear()

    def shutdown(self) -> None:
        self.cancel_all()


def parsl_task(task: dict, marker: str) -> dict:
    """What a Parsl app runs on a worker node: the same worker process as the local backend."""
    import os as _os  # noqa: PLC0415 - executed remotely
    import subprocess as _sp  # noqa: PLC0415

    from mdsurrogate.campaign.execute import _read_status, _worker_cmd  # noqa: PLC0415

    task = {**task, "parent_pid": _os.getpid()}
    Path(task["workdir"]).mkdir(parents=True, exist_ok=True)
    with open(Path(task["workdir"]) / "worker.log", "ab") as log:
        rc = _sp.run(_worker_cmd(task), stdin=_sp.DEVNULL, stdout=log, stderr=_sp.STDOUT,
                     env={**_os.environ, "MDSURROGATE_CAMPAIGN": marker}, start_new_session=True).returncode
    return _read_status(task, rc)


class ParslBackend:
    """Runs each task as a Parsl python app; `config` is a parsl.config.Config (see parsl_configs.py)."""

    name = "parsl"

    def __init__(self, marker: str, config):
        import parsl  # noqa: PLC0415

        self.marker = marker
        self._parsl = parsl
        self._dfk = parsl.load(config)
        self._app = parsl.python_app(parsl_task)
        self.futures: dict[str, Any] = {}

    def submit(self, task: dict) -> int | None:
        self.futures[task["run_id"]] = self._app(task, self.marker)
        return None

    def poll(self, run_id: str) -> dict | None:
        fut = self.futures[run_id]
        if not fut.done():
            return None
        del self.futures[run_id]
        try:
            return fut.result()
        except Exception as exc:  # noqa: BLE001 - Parsl-level failure (lost worker, node died)
            return {"ok": False, "reason": f"parsl: {type(exc).__name__}: {exc}"}

    def cancel_all(self) -> None:
        self.futures.clear()

    def shutdown(self) -> None:
        self.cancel_all()
        try:
            self._dfk.cleanup()
        finally:
            self._parsl.clear()


# ---------------------------------------------------------------------------------------------- supervisor

class _Terminated(Exception):
    pass


def _raise_terminated(signum, frame):  # noqa: ARG001
    raise _Terminated(f"signal {signum}")


def run_campaign(
    spec: CampaignSpec,
    directory: str | os.PathLike | None = None,
    *,
    run_fn: str = DEFAULT_RUN_FN,
    workers: int | None = None,
    cores_per_run: int | None = None,
    max_attempts: int | None = None,
    backend: str | None = None,
    parsl_config: Any = None,
    limit: int | None = None,
    retry_failed: bool = False,
    progress: bool = False,
    poll_s: float = 0.1,
    log: Callable[[str], None] | None = None,
) -> CampaignSummary:
    """Run (or resume) a campaign until every run is done or out of attempts, or `limit` runs were started.

    `run_fn` ('module:function') is called as fn(system, controls, out=..., workdir=...) and must write its
    result atomically to `out`; the default is the MD engine. Arguments left None come from spec.execution.
    """
    ex = spec.execution
    workers = workers or ex.workers
    cores = cores_per_run or ex.cores_per_run
    max_attempts = max_attempts or ex.max_attempts
    backend_name = backend or ex.backend
    if backend_name == "parsl" and (parsl_config is None or isinstance(parsl_config, str)):
        from mdsurrogate.campaign.parsl_configs import check_config_name  # noqa: PLC0415

        check_config_name(parsl_config or ex.parsl_config)  # before the ledger is touched or a run claimed
    stale_s = _stale_s_from_env()
    root = campaign_dir(spec, directory).resolve()
    (root / "results").mkdir(parents=True, exist_ok=True)
    (root / "work").mkdir(parents=True, exist_ok=True)
    say = log or (lambda msg: None)
    marker = str(ledger_path(root))

    ledger = Ledger(ledger_path(root))
    summary = CampaignSummary(directory=root)
    backend_obj = None
    heartbeat: _Heartbeat | None = None
    in_main = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
    try:
        ledger.acquire()
        heartbeat = _Heartbeat(root, stale_s)
        heartbeat.start()  # a new token: runs still alive from a killed supervisor (Parsl nodes) stop now
        if spec.source:
            _save_spec_copy(root, spec)
        reused = reused_runs(spec) if spec.reuse else {}
        ledger.set_meta(REUSE_META_KEY, json.dumps(absolute_patterns(spec.reuse)))
        ledger.set_meta("reused", str(len(reused)))
        added = ledger.add_runs([r for r in spec.runs if r.run_id not in reused], spec.controls_fingerprint())
        ids = [r.run_id for r in spec.runs]  # start order: derived from the spec's runs on every (re)start
        if ex.order == "shuffled":
            ids = [ids[i] for i in np.random.default_rng(ex.order_seed).permutation(len(ids))]
        ledger.set_order(ids)
        ledger.set_meta("name", spec.name)
        ledger.set_meta("workers", str(workers))
        ledger.set_meta("cores_per_run", str(cores))
        ledger.set_meta("max_attempts", str(max_attempts))
        ledger.set_meta("run_fn", run_fn)
        summary.reconciled = ledger.reconcile(lambda rid: _ok_path(root, rid),
                                              lambda pid: kill_worker_group(pid, marker))
        for stale in (root / "results").glob(".*.tmp"):  # half-written files of killed runs (never results)
            stale.unlink(missing_ok=True)
        if retry_failed:
            ledger.reset_failed()
        if reused:
            say(f"{len(reused)} runs are already in the reused datasets ({len(set(reused.values()))} files): "
                "not run again")
        if added:
            say(f"registered {added} new runs")
        if any(summary.reconciled.values()):
            say(f"resumed: {summary.reconciled}")

        run_ids = {r.run_id for r in spec.runs} - set(reused)
        by_id = {r.run_id: r for r in spec.runs}
        if backend_name not in ("local", "parsl"):
            raise ValueError(f"backend must be 'local' or 'parsl', got {backend_name!r}")

        def make_backend():
            if backend_name == "local":
                return LocalBackend(marker)
            from mdsurrogate.campaign.parsl_configs import resolve_config  # noqa: PLC0415

            config = parsl_config if parsl_config is not None and not isinstance(parsl_config, str) else \
                resolve_config(parsl_config or ex.parsl_config, workers=workers, cores_per_run=cores,
                               run_dir=root / "parsl")
            return ParslBackend(marker, config)

        active: dict[str, tuple[dict, float]] = {}
        bar = _Progress(ledger, enabled=progress)
        with bar:
            while True:
                for rid in list(active):
                    info = backend_obj.poll(rid)  # type: ignore[union-attr]
                    if info is None:
                        continue
                    task, t0 = active.pop(rid)
                    bar.run_finished(rid)
                    wall = time.time() - t0
                    out = Path(task["out"])
                    if info.get("ok") and result_readable(out):
                        ledger.mark_done(rid, str(out), wall_s=wall)
                        summary.done += 1
                    else:
                        reason = info.get("reason") if not info.get("ok") else "result file missing or unreadable"
                        if info.get("log") and str(info["log"]) not in reason:
                            reason += f" (log: {info['log']})"
                        ledger.mark_failed(rid, reason, wall_s=wall)
                        summary.failed += 1
                        say(f"failed {rid}: {reason}")
                    bar.update()
                while len(active) < workers and (limit is None or summary.started < limit):
                    row = ledger.claim_next(max_attempts, run_ids)
                    if row is None:
                        break
                    run = by_id[row.run_id]
                    if backend_obj is None:  # started lazily: a finished campaign needs no workers
                        backend_obj = make_backend()
                    workdir = root / "work" / row.run_id
                    workdir.mkdir(parents=True, exist_ok=True)
                    status = workdir / f"status-{row.attempts}.json"
                    status.unlink(missing_ok=True)
                    task = {"run_id": row.run_id, "inputs": run.inputs,
                            "seed": attempt_seed(run.seed, row.attempts, ex.reseed_on_retry),
                            "controls": spec.controls, "cores": cores, "run_fn": run_fn,
                            "allow_outside_design": spec.allow_outside_design,
                            "out": str(result_path(root, row.run_id)), "workdir": str(workdir),
                            "status": str(status), "attempt": row.attempts}
                    if backend_name == "parsl":  # local workers are children: the parent check covers them
                        task["supervisor"] = heartbeat.task_field()
                    pid = backend_obj.submit(task)
                    if pid is not None:
                        ledger.set_worker(row.run_id, pid)
                    active[row.run_id] = (task, time.time())
                    summary.started += 1
                    bar.run_started(row.run_id, workdir)
                    bar.update()
                if not active:
                    break
                bar.refresh()
                time.sleep(poll_s)
    except (KeyboardInterrupt, _Terminated) as exc:
        say("interrupted: stopping workers; unfinished runs go back to pending")
        if isinstance(exc, _Terminated):
            raise KeyboardInterrupt(str(exc)) from None
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, old_term)
        if heartbeat is not None:
            heartbeat.stop()  # null token first: remote runs stop even if the executor's cleanup hangs
        if backend_obj is not None:
            backend_obj.shutdown()
        if ledger._lock_fh is not None:
            ledger.reconcile(lambda rid: _ok_path(root, rid), check_done=False)  # interrupted rows -> pending
        summary.counts = ledger.counts()
        ledger.close()
    return summary


def _ok_path(root: Path, run_id: str) -> str | None:
    p = result_path(root, run_id)
    return str(p) if result_readable(p) else None


def _save_spec_copy(root: Path, spec: CampaignSpec) -> None:
    from mdsurrogate.io import write_text_atomic  # noqa: PLC0415

    suffix = spec.source_suffix
    target = root / f"spec{suffix}"
    if not target.exists() or target.read_text() != spec.source:
        if target.exists():
            stamp = time.strftime("%Y%m%dT%H%M%S")
            target.rename(root / f"spec.{stamp}{suffix}")
        write_text_atomic(target, spec.source)


class _Progress:
    """Rich progress bars: the campaign (ledger counts) and one bar per running run, fed by the run's
    progress.json (blocks done / planned, current relative error). No-op when disabled."""

    def __init__(self, ledger: Ledger, enabled: bool):
        self.ledger = ledger
        self.enabled = enabled
        self._p = None
        self._runs: dict[str, tuple[Any, Path]] = {}
        self._last = 0.0

    def run_started(self, run_id: str, workdir: Path) -> None:
        if self._p is not None:
            (workdir / "progress.json").unlink(missing_ok=True)
            label = run_id if len(run_id) <= 48 else run_id[:45] + "..."
            tid = self._p.add_task(label, total=None, info="starting")
            self._runs[run_id] = (tid, workdir / "progress.json")

    def run_finished(self, run_id: str) -> None:
        if self._p is not None and run_id in self._runs:
            self._p.remove_task(self._runs.pop(run_id)[0])

    def refresh(self) -> None:
        """Re-read the running runs' progress files (at most once a second)."""
        if self._p is None or time.monotonic() - self._last < 1.0:
            return
        self._last = time.monotonic()
        for tid, path in self._runs.values():
            try:
                info = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            err = info.get("rel_error")
            self._p.update(tid, total=max(info["planned"], 1), completed=info["done"],
                           info="" if err is None else f"rel. error {err:.3f}")

    def __enter__(self):
        if self.enabled:
            from rich.progress import (  # noqa: PLC0415
                BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn)

            self._p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())
            self._p.start()
            c = self.ledger.counts()
            self._task = self._p.add_task("campaign", total=sum(c.values()), completed=c["done"], info="")
            self.update()
        return self

    def update(self) -> None:
        if self._p is not None:
            c = self.ledger.counts()
            self._p.update(self._task, completed=c["done"],
                           info=f"running {c['running']}  failed {c['failed']}  pending {c['pending']}")

    def __exit__(self, *exc) -> None:
        if self._p is not None:
            self._p.stop()


# ---------------------------------------------------------------------------------------------- status

def campaign_status(root: str | os.PathLike) -> dict:
    """Counts, failures with reasons, mean wall time and an ETA, read from the ledger (read-only use)."""
    path = ledger_path(root)
    if not path.exists():
        raise FileNotFoundError(f"no campaign ledger at {path}")
    with Ledger(path) as ledger:
        rows = ledger.rows()
        counts = ledger.counts()
        workers = int(ledger.get_meta("workers") or 1)
        max_attempts = int(ledger.get_meta("max_attempts") or 3)
        cores = int(ledger.get_meta("cores_per_run") or 1)
        owner = ledger.get_meta("owner")
        reused = int(ledger.get_meta("reused") or 0)
    walls = [r.wall_s for r in rows if r.state == "done" and r.wall_s]
    mean_wall = sum(walls) / len(walls) if walls else None
    exhausted = [r for r in rows if r.state == "failed" and r.attempts >= max_attempts]
    remaining = counts["pending"] + counts["running"] + counts["failed"] - len(exhausted)
    eta = None if mean_wall is None else remaining * mean_wall / max(workers, 1)
    return {
        "directory": str(Path(root)),
        "total": len(rows),
        "counts": counts,
        "exhausted": len(exhausted),
        "failures": [{"run_id": r.run_id, "attempts": r.attempts, "reason": r.reason}
                     for r in rows if r.state == "failed"],
        "mean_wall_s": mean_wall,
        "core_hours_done": sum(walls) * cores / 3600.0,
        "remaining": remaining,
        "eta_s": eta,
        "workers": workers,
        "reused": reused,
        "owner": json.loads(owner) if owner else None,
    }
