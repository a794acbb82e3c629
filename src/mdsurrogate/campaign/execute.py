"""Drive a campaign: claim runs from the ledger, execute them (backends.py), record outcomes (ledger.py).

The supervisor (`run_campaign`) is the only writer of the ledger. Each run executes in its own worker process
(`mdsurrogate.campaign.worker`), started directly by the local backend or from inside a Parsl app. A run is
recorded done only after its result file has been opened and checked. Directory layout: layout.py.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mdsurrogate.campaign.backends import (
    Heartbeat,
    LocalBackend,
    ParslBackend,
    _stale_s_from_env,
    kill_worker_group,
)
from mdsurrogate.campaign.layout import campaign_dir, ledger_path, result_path, result_readable, save_spec_copy
from mdsurrogate.campaign.ledger import STATES, Ledger
from mdsurrogate.campaign.parsl_configs import check_config_name
from mdsurrogate.campaign.reuse import META_KEY as REUSE_META_KEY
from mdsurrogate.campaign.reuse import absolute_patterns, reused_runs
from mdsurrogate.campaign.spec import MAX_ATTEMPTS, CampaignSpec, attempt_seed
from mdsurrogate.campaign.worker import DEFAULT_RUN_FN, check_run_fn


class CampaignObserver:
    """What a supervisor tells a display (the CLI's progress bars, `cli.progress.CampaignProgress`); this base
    class ignores everything. `counts` are the ledger's {state: runs}."""

    def start(self, counts: dict[str, int]) -> None: ...

    def run_started(self, run_id: str, workdir: Path) -> None: ...

    def run_finished(self, run_id: str) -> None: ...

    def update(self, counts: dict[str, int]) -> None: ...

    def refresh(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class CampaignSummary:
    directory: Path
    started: int = 0
    done: int = 0
    failed: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # the ledger's, less the runs counted in not_in_spec
    reconciled: dict[str, int] = field(default_factory=dict)
    not_in_spec: int = 0  # pending/failed runs of the ledger that the spec no longer has (ignored)
    dropped: int = 0  # such runs deleted from the ledger (drop_removed=True)


class _Terminated(Exception):
    pass


#: Signals that stop a campaign cleanly (workers killed, their runs back to pending). SIGHUP: the terminal closed.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _StopSignals:
    """While installed (main thread only): the first of STOP_SIGNALS raises (KeyboardInterrupt for SIGINT, else
    _Terminated); every later one is ignored, so that a second Ctrl-C cannot cut the cleanup short and leave runs
    marked 'running' or workers alive."""

    def __init__(self, active: bool):
        self.active, self.stopping, self._old = active, False, {}

    def _handler(self, signum, frame):  # noqa: ARG002
        if self.stopping:
            return
        self.stopping = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise _Terminated(f"signal {signum}")

    def install(self) -> None:
        if self.active:
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is signal.SIG_IGN:  # inherited (nohup, a background job): keep ignoring
                    continue
                self._old[sig] = signal.signal(sig, self._handler)

    def cleaning_up(self) -> None:
        """From now on every stop signal is ignored (the cleanup must finish)."""
        self.stopping = True

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


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
    drop_removed: bool = False,
    observer: CampaignObserver | None = None,
    poll_s: float = 0.1,
    log: Callable[[str], None] | None = None,
) -> CampaignSummary:
    """Run (or resume) a campaign until every run is done or out of attempts, or `limit` runs were started.

    `run_fn` ('module:function') is called as fn(system, controls, out=..., workdir=...) and must write its
    result atomically to `out`; the default is the MD engine; it is resolved here first (ValueError naming
    run_fn). Arguments left None come from spec.execution. Pending or failed runs of the ledger that the spec no
    longer has are ignored (counted in summary.not_in_spec), or deleted when `drop_removed` is true.

    SIGINT, SIGTERM and SIGHUP (in the main thread, unless ignored already, as under nohup) stop it cleanly:
    workers are killed, their runs go back to pending, and KeyboardInterrupt is raised; further signals during that
    cleanup are ignored.
    """
    ex = spec.execution
    workers = workers or ex.workers
    cores = cores_per_run or ex.cores_per_run
    max_attempts = max_attempts or ex.max_attempts
    backend_name = backend or ex.backend
    # every check before the ledger is touched or a run claimed
    if backend_name not in ("local", "parsl"):
        raise ValueError(f"backend must be 'local' or 'parsl', got {backend_name!r}")
    if not 1 <= max_attempts <= MAX_ATTEMPTS:
        raise ValueError(f"max_attempts must be in [1, {MAX_ATTEMPTS}], got {max_attempts}")
    check_run_fn(run_fn, "run_fn")  # a typo would otherwise fail every run, inside the workers
    if backend_name == "parsl" and (parsl_config is None or isinstance(parsl_config, str)):
        check_config_name(parsl_config or ex.parsl_config)
    stale_s = _stale_s_from_env()
    root = campaign_dir(spec, directory).resolve()
    if root.exists() and not root.is_dir():
        raise ValueError(f"campaign directory {root} exists and is not a folder")
    say = log or (lambda msg: None)
    marker = str(ledger_path(root))

    ledger = Ledger(ledger_path(root))  # makes root; refuses (LedgerUnreadable) a file that is not a ledger
    summary = CampaignSummary(directory=root)
    backend_obj = None
    heartbeat: Heartbeat | None = None
    ignored = dict.fromkeys(("pending", "failed"), 0)  # runs of the ledger that the spec no longer has

    def counts() -> dict[str, int]:
        c = ledger.counts()
        return {k: v - ignored.get(k, 0) for k, v in c.items()}

    stops = _StopSignals(threading.current_thread() is threading.main_thread())
    stops.install()
    try:
        ledger.acquire()
        (root / "results").mkdir(parents=True, exist_ok=True)
        (root / "work").mkdir(parents=True, exist_ok=True)
        heartbeat = Heartbeat(root, stale_s)
        heartbeat.start()  # a new token: runs still alive from a killed supervisor (Parsl nodes) stop now
        if spec.source:
            save_spec_copy(root, spec)
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
        spec_ids = {r.run_id for r in spec.runs}
        removed = [r for r in ledger.rows() if r.state in ("pending", "failed") and r.run_id not in spec_ids]
        if removed and drop_removed:
            summary.dropped = ledger.drop_runs([r.run_id for r in removed],
                                               "removed from the spec (campaign run --drop-removed)")
            say(f"dropped {summary.dropped} pending or failed runs that are no longer in the spec from the ledger")
        elif removed:
            summary.not_in_spec = len(removed)
            for r in removed:  # never claimed (not in run_ids below): they stay in these states
                ignored[r.state] += 1
            say(f"{len(removed)} pending or failed runs of the ledger are no longer in the spec: ignored "
                "(--drop-removed deletes them from the ledger)")

        run_ids = spec_ids - set(reused)
        by_id = {r.run_id: r for r in spec.runs}

        def make_backend():
            if backend_name == "local":
                return LocalBackend(marker)
            from mdsurrogate.campaign.parsl_configs import resolve_config  # noqa: PLC0415 - parsl

            config = parsl_config if parsl_config is not None and not isinstance(parsl_config, str) else \
                resolve_config(parsl_config or ex.parsl_config, workers=workers, cores_per_run=cores,
                               run_dir=root / "parsl")
            return ParslBackend(marker, config)

        active: dict[str, tuple[dict, float]] = {}
        bar = observer or CampaignObserver()
        bar.start(counts())
        try:
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
                    bar.update(counts())
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
                    bar.update(counts())
                if not active:
                    break
                bar.refresh()
                time.sleep(poll_s)
        finally:
            bar.stop()
    except (KeyboardInterrupt, _Terminated) as exc:
        stops.cleaning_up()
        try:
            say("interrupted: stopping workers; unfinished runs go back to pending")
        except Exception:  # noqa: BLE001 - a closed terminal (SIGHUP) must not cut the cleanup short
            pass
        if isinstance(exc, _Terminated):
            raise KeyboardInterrupt(str(exc)) from None
        raise
    finally:
        stops.cleaning_up()  # a second Ctrl-C (or SIGTERM/SIGHUP) now is ignored: the cleanup always completes
        try:
            if heartbeat is not None:
                heartbeat.stop()  # null token first: remote runs stop even if the executor's cleanup hangs
        finally:
            try:
                if backend_obj is not None:
                    backend_obj.shutdown()
            finally:
                try:
                    if ledger._lock_fh is not None:  # interrupted rows -> pending
                        ledger.reconcile(lambda rid: _ok_path(root, rid), check_done=False)
                    summary.counts = counts()
                finally:
                    ledger.close()
                    stops.restore()
    return summary


def _ok_path(root: Path, run_id: str) -> str | None:
    p = result_path(root, run_id)
    return str(p) if result_readable(p) else None


def campaign_status(root: str | os.PathLike, spec_run_ids: set[str] | None = None) -> dict:
    """Counts, failures with reasons, mean wall time and an ETA, read from the ledger (read-only use; a missing
    ledger is FileNotFoundError, a file that is not one LedgerUnreadable). Given the spec's run ids, pending and
    failed runs that the spec no longer has are counted apart ("not_in_spec"), not as pending or remaining."""
    path = ledger_path(root)
    if not path.exists():
        raise FileNotFoundError(f"no campaign ledger at {path}")
    with Ledger(path, create=False) as ledger:
        rows = ledger.rows()
        workers = int(ledger.get_meta("workers") or 1)
        max_attempts = int(ledger.get_meta("max_attempts") or 3)
        cores = int(ledger.get_meta("cores_per_run") or 1)
        owner = ledger.get_meta("owner")
        reused = int(ledger.get_meta("reused") or 0)
    not_in_spec = [] if spec_run_ids is None else \
        [r for r in rows if r.state in ("pending", "failed") and r.run_id not in spec_run_ids]
    if not_in_spec:
        gone = {r.run_id for r in not_in_spec}
        rows = [r for r in rows if r.run_id not in gone]
    counts = dict.fromkeys(STATES, 0)
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    walls = [r.wall_s for r in rows if r.state == "done" and r.wall_s]
    mean_wall = sum(walls) / len(walls) if walls else None
    exhausted = [r for r in rows if r.state == "failed" and r.attempts >= max_attempts]
    remaining = counts["pending"] + counts["running"] + counts["failed"] - len(exhausted)
    eta = None if mean_wall is None else remaining * mean_wall / max(workers, 1)
    return {
        "directory": str(Path(root)),
        "total": len(rows),
        "counts": counts,
        "not_in_spec": len(not_in_spec),
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
