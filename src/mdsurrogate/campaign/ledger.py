"""The campaign ledger: one SQLite file that is the single source of truth about every run.

States: pending -> running -> done | failed (with a reason); failed runs go back to running while they have
attempts left. Every transition is also appended to the `events` table. A run is marked done only after its
result file was checked readable. Only one supervisor may drive a ledger at a time (an flock on
`<ledger>.lock`, released by the kernel even on SIGKILL); when a new supervisor takes over, rows left 'running'
by a dead one are reconciled: done if their result is complete and readable, otherwise pending again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

STATES = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    inputs TEXT NOT NULL,
    seed INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    result TEXT,
    worker_pid INTEGER,
    host TEXT,
    started REAL,
    finished REAL,
    wall_s REAL
);
CREATE INDEX IF NOT EXISTS runs_state ON runs (state, position);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    time REAL NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class LedgerBusy(RuntimeError):
    """Another live process is driving this campaign."""


class LedgerMismatch(RuntimeError):
    """The spec's run controls differ from those the ledger's finished runs used."""


class LedgerUnreadable(RuntimeError):
    """The ledger file is not a campaign ledger (garbage bytes, another database, a special file)."""


@dataclass(frozen=True)
class RunRow:
    run_id: str
    position: int
    inputs: dict
    seed: int
    state: str
    attempts: int
    reason: str | None
    result: str | None
    worker_pid: int | None
    host: str | None
    started: float | None
    finished: float | None
    wall_s: float | None


class Ledger:
    """SQLite-backed run ledger. Use as a context manager or call close()."""

    def __init__(self, path: str | os.PathLike, create: bool = True):
        """Open the ledger at `path`. create=True (a supervisor): make it (and its folder) if missing.
        create=False (status, consolidate): it must exist (FileNotFoundError), nothing is created.
        A file that is not a campaign ledger raises LedgerUnreadable, never a traceback of sqlite3."""
        self.path = Path(path)
        self._lock_fh = None
        if self.path.exists() or self.path.is_symlink():
            try:
                regular = stat.S_ISREG(self.path.stat().st_mode)
            except OSError:
                regular = False
            if not regular:  # a FIFO would block sqlite's reads, a folder cannot be opened
                raise LedgerUnreadable(f"campaign ledger {self.path} is not a regular file")
            existed = True
        elif not create:
            raise FileNotFoundError(f"no campaign ledger at {self.path}")
        else:
            existed = False
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if create:
                self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            else:  # mode=rw: never creates the file
                self._db = sqlite3.connect(self.path.resolve().as_uri() + "?mode=rw", timeout=60.0,
                                           isolation_level=None, uri=True)
        except sqlite3.Error as exc:
            raise LedgerUnreadable(f"campaign ledger {self.path} cannot be opened: {exc}") from None
        try:
            self._db.row_factory = sqlite3.Row
            if existed:
                tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if "runs" not in tables and (tables or not create):
                    raise LedgerUnreadable(f"{self.path} is a database without a 'runs' table, not a campaign "
                                           "ledger")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise LedgerUnreadable(f"campaign ledger {self.path} is not a readable campaign ledger ({exc})") from None
        except BaseException:
            self._db.close()
            raise

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self.release()
        self._db.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. A stop signal raises wherever the main thread is, also between BEGIN and the
        body or between the body and COMMIT: such a transaction is left open, never committed, and the next one
        rolls it back first instead of failing with 'cannot start a transaction within a transaction'."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def acquire(self) -> None:
        """Become the only supervisor of this ledger, or raise LedgerBusy."""
        fh = open(self.path.with_name(self.path.name + ".lock"), "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            owner = self.get_meta("owner") or "unknown"
            raise LedgerBusy(f"campaign ledger {self.path} is driven by another live process ({owner})") from None
        self._lock_fh = fh
        self.set_meta("owner", json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                           "since": time.time()}))

    def release(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                       (key, value, value))

    # ------------------------------------------------------------------ runs
    def add_runs(self, runs: Iterable, controls_fingerprint: str | None = None) -> int:
        """Register runs (objects with run_id, inputs, seed); existing ones are left untouched.

        Returns the number of new runs. Refuses (LedgerMismatch) if the ledger already has runs made under
        other run controls."""
        with self._tx() as db:
            if controls_fingerprint is not None:
                row = db.execute("SELECT value FROM meta WHERE key = 'controls'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta (key, value) VALUES ('controls', ?)", (controls_fingerprint,))
                elif row[0] != controls_fingerprint:
                    raise LedgerMismatch(f"{self.path} was made with controls {row[0]}, the spec now says "
                                         f"{controls_fingerprint}; use a new campaign directory")
            start = db.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM runs").fetchone()[0]
            added = 0
            now = time.time()
            for r in runs:
                cur = db.execute("INSERT OR IGNORE INTO runs (run_id, position, inputs, seed) VALUES (?, ?, ?, ?)",
                                 (r.run_id, start + added, json.dumps(r.inputs, sort_keys=True), r.seed))
                if cur.rowcount:
                    db.execute("INSERT INTO events (run_id, time, state, attempt) VALUES (?, ?, 'pending', 0)",
                               (r.run_id, now))
                    added += 1
        return added

    def set_order(self, run_ids: Sequence[str]) -> None:
        """Renumber the runs' start order: run_ids[0] first; runs not listed keep their relative order after them.
        Only the order in which pending runs are claimed depends on it."""
        with self._tx() as db:
            known = [r[0] for r in db.execute("SELECT run_id FROM runs ORDER BY position")]
            known_set = set(known)
            listed = list(dict.fromkeys(r for r in run_ids if r in known_set))
            listed_set = set(listed)
            rest = [r for r in known if r not in listed_set]
            for pos, rid in enumerate(listed + rest):
                db.execute("UPDATE runs SET position = ? WHERE run_id = ?", (pos, rid))

    def claim_next(self, max_attempts: int, run_ids: set[str] | None = None) -> RunRow | None:
        """Atomically move the next runnable run (pending, or failed with attempts left) to running."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT run_id FROM runs WHERE state = 'pending' OR (state = 'failed' AND attempts < ?) "
                "ORDER BY (state = 'failed'), position", (max_attempts,)).fetchall()
            for row in rows:
                if run_ids is not None and row[0] not in run_ids:
                    continue
                now = time.time()
                db.execute("UPDATE runs SET state = 'running', attempts = attempts + 1, started = ?, finished = NULL, "
                           "worker_pid = NULL, host = ? WHERE run_id = ?", (now, socket.gethostname(), row[0]))
                attempt = db.execute("SELECT attempts FROM runs WHERE run_id = ?", (row[0],)).fetchone()[0]
                db.execute("INSERT INTO events (run_id, time, state, attempt) VALUES (?, ?, 'running', ?)",
                           (row[0], now, attempt))
                return self.get(row[0])
        return None

    def set_worker(self, run_id: str, pid: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET worker_pid = ? WHERE run_id = ?", (pid, run_id))

    def mark_done(self, run_id: str, result: str, wall_s: float | None = None) -> None:
        self._finish(run_id, "done", result=result, wall_s=wall_s)

    def mark_failed(self, run_id: str, reason: str, wall_s: float | None = None) -> None:
        self._finish(run_id, "failed", reason=reason, wall_s=wall_s)

    def _finish(self, run_id: str, state: str, result: str | None = None, reason: str | None = None,
                wall_s: float | None = None) -> None:
        with self._tx() as db:
            row = db.execute("SELECT state, attempts FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise KeyError(run_id)
            if row["state"] != "running":
                raise RuntimeError(f"run {run_id} is {row['state']}, not running; refusing to mark it {state}")
            now = time.time()
            db.execute("UPDATE runs SET state = ?, result = COALESCE(?, result), reason = ?, finished = ?, "
                       "wall_s = ?, worker_pid = NULL WHERE run_id = ?",
                       (state, result, reason, now, wall_s, run_id))
            db.execute("INSERT INTO events (run_id, time, state, attempt, detail) VALUES (?, ?, ?, ?, ?)",
                       (run_id, now, state, row["attempts"], reason))

    def reconcile(self, result_ok: Callable[[str], str | None], kill_worker: Callable[[int], None] | None = None,
                  check_done: bool = True) -> dict[str, int]:
        """After a crash: every 'running' row (its supervisor is dead, we hold the lock) becomes done if
        `result_ok(run_id)` returns a readable result path, otherwise pending (its attempt is not counted).
        Done rows whose result vanished or became unreadable go back to pending too."""
        counts = {"recovered_done": 0, "back_to_pending": 0, "lost_results": 0}
        for row in self.rows("running"):
            if kill_worker is not None and row.worker_pid:
                kill_worker(row.worker_pid)
            path = result_ok(row.run_id)
            with self._tx() as db:
                now = time.time()
                if path is not None:
                    db.execute("UPDATE runs SET state = 'done', result = ?, finished = ?, reason = NULL, "
                               "worker_pid = NULL WHERE run_id = ?", (path, now, row.run_id))
                    db.execute("INSERT INTO events (run_id, time, state, attempt, detail) VALUES (?, ?, 'done', ?, ?)",
                               (row.run_id, now, row.attempts, "recovered after supervisor crash"))
                    counts["recovered_done"] += 1
                else:
                    db.execute("UPDATE runs SET state = 'pending', attempts = MAX(attempts - 1, 0), "
                               "worker_pid = NULL, started = NULL WHERE run_id = ?", (row.run_id,))
                    db.execute("INSERT INTO events (run_id, time, state, attempt, detail) VALUES "
                               "(?, ?, 'pending', ?, ?)", (row.run_id, now, row.attempts,
                                                           "interrupted: supervisor died"))
                    counts["back_to_pending"] += 1
        for row in self.rows("done") if check_done else []:
            if result_ok(row.run_id) is None:
                with self._tx() as db:
                    now = time.time()
                    db.execute("UPDATE runs SET state = 'pending', result = NULL WHERE run_id = ?", (row.run_id,))
                    db.execute("INSERT INTO events (run_id, time, state, attempt, detail) VALUES "
                               "(?, ?, 'pending', ?, 'result file missing or unreadable')",
                               (row.run_id, now, row.attempts))
                counts["lost_results"] += 1
        return counts

    def drop_runs(self, run_ids: Iterable[str], detail: str) -> int:
        """Delete pending or failed runs (e.g. removed from the spec: `campaign run --drop-removed`); each gets a
        'removed' event with `detail`. Running and done runs are never dropped. Returns how many were removed."""
        removed = 0
        with self._tx() as db:
            now = time.time()
            for rid in run_ids:
                row = db.execute("SELECT attempts FROM runs WHERE run_id = ? AND state IN ('pending', 'failed')",
                                 (rid,)).fetchone()
                if row is None:
                    continue
                db.execute("DELETE FROM runs WHERE run_id = ?", (rid,))
                db.execute("INSERT INTO events (run_id, time, state, attempt, detail) VALUES (?, ?, 'removed', ?, ?)",
                           (rid, now, row["attempts"], detail))
                removed += 1
        return removed

    def reset_failed(self) -> int:
        """Give every failed run a fresh set of attempts (`campaign run --retry-failed`)."""
        with self._tx() as db:
            cur = db.execute("UPDATE runs SET state = 'pending', attempts = 0 WHERE state = 'failed'")
            return cur.rowcount

    # ------------------------------------------------------------------ queries
    def get(self, run_id: str) -> RunRow:
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(run_id)
        return _row(row)

    def rows(self, state: str | None = None) -> list[RunRow]:
        if state is None:
            cur = self._db.execute("SELECT * FROM runs ORDER BY position")
        else:
            cur = self._db.execute("SELECT * FROM runs WHERE state = ? ORDER BY position", (state,))
        return [_row(r) for r in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self._db.execute("SELECT state, COUNT(*) FROM runs GROUP BY state"):
            out[state] = n
        return out

    def events(self, run_id: str | None = None) -> list[dict]:
        if run_id is None:
            cur = self._db.execute("SELECT * FROM events ORDER BY id")
        else:
            cur = self._db.execute("SELECT * FROM events WHERE run_id = ? ORDER BY id", (run_id,))
        return [dict(r) for r in cur.fetchall()]


def _row(r: sqlite3.Row) -> RunRow:
    d = dict(r)
    d["inputs"] = json.loads(d["inputs"])
    return RunRow(**d)
