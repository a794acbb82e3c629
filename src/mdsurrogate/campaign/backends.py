"""How runs execute: one worker process per run (`campaign.worker`), started by the local process pool or inside
a Parsl app; killing a run's whole process group (identified by the campaign's marker in its environment, never by
name); and the supervisor's heartbeat that stops runs of a dead supervisor on remote nodes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from mdsurrogate.campaign.worker import MARKER_ENV, WORKER_ENV
from mdsurrogate.io import write_json_atomic


def _proc_pgid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[2])


def _proc_has_marker(pid: int, marker: str, env_var: str = MARKER_ENV) -> bool:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{env_var}={marker}".encode() in env.split(b"\0")


def marked_processes(marker: str, env_var: str = MARKER_ENV, *, skip_zombies: bool = False) -> list[int]:
    """Every live process whose environment holds `env_var=marker` (found by environment, never by name).

    The default variable is the campaign's (its workers, mpiexec, ranks); the app passes its run marker, its
    tests their tag. `skip_zombies` also leaves out exited processes not yet reaped (and those whose state
    cannot be read)."""
    return [int(e.name) for e in Path("/proc").iterdir()
            if e.name.isdigit() and _proc_has_marker(int(e.name), marker, env_var)
            and not (skip_zombies and _is_zombie(int(e.name)))]


def kill_worker_group(pid: int, marker: str, timeout_s: float = 10.0) -> int:
    """SIGKILL every process of worker `pid` that carries this campaign's marker: its process group, and what it
    started in sessions of its own (LAMMPS, mpiexec and the ranks: tagged `WORKER_ENV=pid`), also once orphaned.

    Processes are identified by their group id or tag and their environment, never by name. Returns how many
    were signalled; waits until they are gone (or `timeout_s`)."""
    victims = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            p = int(entry.name)
            if p != os.getpid() and _proc_has_marker(p, marker) and (
                    _proc_pgid(p) == pid or _proc_has_marker(p, str(pid), WORKER_ENV)):
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


class Heartbeat:
    """<campaign>/supervisor.json = {"token", "beat", "pid", "host"}, rewritten (atomically) every HEARTBEAT_S by a
    thread of the supervisor that holds the ledger lock. Workers compare the token with their task's
    (`worker.supervisor_gone`): a new supervisor (resume after a crash) has a new token, and a clean stop writes a
    null token, so runs of a dead supervisor that still live on other nodes stop instead of running twice."""

    def __init__(self, root: Path, stale_s: float = HEARTBEAT_STALE_S):
        self.path, self.token, self.beat, self.stale_s = root / "supervisor.json", uuid.uuid4().hex, 0, stale_s
        self._host, self._stop = socket.gethostname(), threading.Event()
        self._thread: threading.Thread | None = None

    def task_field(self) -> dict:
        return {"heartbeat": str(self.path), "token": self.token, "stale_s": self.stale_s}

    def _write(self, token: str | None) -> None:
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

    from mdsurrogate.campaign.backends import _read_status, _worker_cmd  # noqa: PLC0415

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
