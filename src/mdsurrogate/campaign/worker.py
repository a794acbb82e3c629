"""One campaign run in its own process: `python -m mdsurrogate.campaign.worker '<task json>'`.

The worker is started in a new session (its own process group, which LAMMPS/mpiexec inherit). A watchdog
thread kills the whole group as soon as the parent (the supervisor, or a Parsl worker) dies, so a SIGKILLed
campaign leaves no orphan simulations behind. Under Parsl the parent is a Parsl worker that may outlive a killed
supervisor (on another node); there the watchdog also reads the supervisor's heartbeat file (task["supervisor"]:
path, token, stale_s) and kills the group when another supervisor has taken over (new token) or no beat came
for stale_s seconds, so a resumed campaign never runs a simulation twice at the same time.
The outcome goes to the task's status file (JSON, atomic):
{"ok": true, "wall_s": ...} or {"ok": false, "reason": ..., "log": ...}. The ledger is never touched here.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from mdsurrogate.simulation.settings import RunControls
from mdsurrogate.simulation.system import make_system

DEFAULT_RUN_FN = "mdsurrogate.simulation.engine:simulate"
MARKER_ENV = "MDSURROGATE_CAMPAIGN"
#: Set by each worker to its own pid and inherited by everything it starts: LAMMPS runs in its own session (so that
#: a timeout kills mpiexec and every rank), outside the worker's process group, and is found by this tag instead.
WORKER_ENV = "MDSURROGATE_CAMPAIGN_WORKER"


def resolve(path: str) -> Callable:
    """'package.module:function' -> the function."""
    module, _, name = path.partition(":")
    if not module or not name:
        raise ValueError(f"run function must be given as 'module:function', got {path!r}")
    return getattr(importlib.import_module(module), name)


def check_run_fn(path: Any, option: str = "run_fn") -> Callable:
    """Resolve a run function in the supervisor, before anything runs, as a worker would (`python -m` puts the
    working directory on sys.path). Raises ValueError starting with `option` for an empty or malformed name, a
    module that does not import, a missing or non-callable attribute."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"{option}: give the run function as 'module:function', got {path!r}")
    module, _, name = path.partition(":")
    if not module or not name or not name.isidentifier():
        raise ValueError(f"{option}: give the run function as 'module:function', got {path!r}")
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - ImportError, or whatever the module raises when imported
        raise ValueError(f"{option}: module {module!r} of {path!r} cannot be imported "
                         f"({type(exc).__name__}: {exc})") from None
    finally:
        if added:
            sys.path.remove(cwd)
    fn = getattr(mod, name, None)
    if fn is None:
        raise ValueError(f"{option}: module {module!r} has no function {name!r}")
    if not callable(fn):
        raise ValueError(f"{option}: {path!r} is a {type(fn).__name__}, not a function")
    try:  # the worker calls fn(system, controls, out=..., workdir=...): refuse what cannot take that
        inspect.signature(fn).bind(None, None, out=None, workdir=None)
    except TypeError:
        raise ValueError(f"{option}: {path!r} cannot be called as fn(system, controls, out=..., workdir=...) "
                         "(the engine's `simulate` signature)") from None
    except ValueError:
        pass  # a builtin without a signature: left to the run
    return fn


def make_controls(controls: dict[str, Any], seed: int, mpi_ranks: int):
    """The engine's RunControls of one run."""
    return RunControls(**controls, seed=seed, mpi_ranks=mpi_ranks)


def run_task(task: dict) -> float:
    """Run one task in this process; returns its wall time. Raises whatever the run function raises."""

    fn = resolve(task.get("run_fn") or DEFAULT_RUN_FN)
    system = make_system(task["inputs"], allow_outside_design=task.get("allow_outside_design", False))
    controls = make_controls(task["controls"], seed=task["seed"], mpi_ranks=task.get("cores", 1))
    workdir = Path(task["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    try:
        if "progress" in inspect.signature(fn).parameters:
            kwargs["progress"] = progress_writer(workdir / "progress.json")
    except (TypeError, ValueError):
        pass
    t0 = time.monotonic()
    fn(system, controls, out=Path(task["out"]), workdir=workdir, **kwargs)
    return time.monotonic() - t0


def progress_writer(path: Path) -> Callable[[int, int, float], None]:
    """A progress callback (blocks done, blocks planned, current relative error) that the supervisor can read:
    it replaces `path` with a small JSON file (no fsync: progress is advisory)."""

    def write(done: int, planned: int, rel_error: float) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        err = float(rel_error)
        tmp.write_text(json.dumps({"done": int(done), "planned": int(planned),
                                   "rel_error": err if err == err and err != float("inf") else None}))
        os.replace(tmp, path)

    return write


HEARTBEAT_CHECK_S = 1.0  # how often the watchdog reads the supervisor's heartbeat file


def supervisor_gone(sup: dict, seen: dict, now: float) -> str | None:
    """Why the supervisor of `sup` (task["supervisor"]) no longer owns this run, or None while it does.
    `seen` keeps the last beat number and the (monotonic) time it was first read: staleness is measured on this
    node's clock, so clock skew between nodes does not matter. An unreadable file counts as a missed beat."""
    try:
        info = json.loads(Path(sup["heartbeat"]).read_text())
    except (OSError, ValueError):
        info = None
    if info is not None:
        if info.get("token") != sup["token"]:
            return "another supervisor took over the campaign" if info.get("token") else "the supervisor stopped"
        if info.get("beat") != seen.get("beat"):
            seen["beat"], seen["time"] = info.get("beat"), now
    seen.setdefault("time", now)
    if now - seen["time"] > float(sup.get("stale_s", 120.0)):
        return f"no supervisor heartbeat for {now - seen['time']:.0f} s"
    return None


def _kill_run_sessions() -> None:
    """SIGKILL the processes this worker started in sessions of their own (LAMMPS, mpiexec and its ranks),
    found by their WORKER_ENV tag."""
    from mdsurrogate.campaign.backends import marked_processes  # noqa: PLC0415 - backends imports this module

    for pid in marked_processes(str(os.getpid()), WORKER_ENV):
        if pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _kill_own_group(reason: str) -> None:
    try:
        print(f"watchdog: {reason}; killing this run", file=sys.stderr, flush=True)
        _kill_run_sessions()
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(137)


def _watchdog(parent: int, sup: dict | None = None) -> None:
    seen: dict = {}
    next_check = 0.0
    while True:
        if os.getppid() != parent:
            _kill_own_group("the parent process died")
        now = time.monotonic()
        if sup and now >= next_check:
            next_check = now + HEARTBEAT_CHECK_S
            try:
                why = supervisor_gone(sup, seen, now)
            except Exception:  # noqa: BLE001 - a malformed file must not end the watchdog (and its parent check)
                why = None
            if why:
                _kill_own_group(why)
        time.sleep(0.25)


def main(argv: list[str] | None = None) -> int:
    from mdsurrogate.io import write_json_atomic  # noqa: PLC0415

    argv = sys.argv[1:] if argv is None else argv
    task = json.loads(argv[0])
    parent = int(task.get("parent_pid") or os.getppid())
    if os.getppid() != parent:  # the parent died before we started
        return 137
    os.environ[WORKER_ENV] = str(os.getpid())  # inherited by LAMMPS: `kill_worker_group` finds it by this tag
    threading.Thread(target=_watchdog, args=(parent, task.get("supervisor")), daemon=True).start()
    status = Path(task["status"])
    try:
        wall = run_task(task)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the ledger with its reason
        log = getattr(exc, "log_path", None)
        reason = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        write_json_atomic(status, {"ok": False, "reason": reason, "log": None if log is None else str(log)})
        return 3
    write_json_atomic(status, {"ok": True, "wall_s": wall})
    return 0


if __name__ == "__main__":
    sys.exit(main())
