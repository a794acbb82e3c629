"""The SQLite ledger: state machine, attempts, reconciliation after a crash, single ownership."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from mdsurrogate.campaign.ledger import Ledger, LedgerBusy, LedgerMismatch
from mdsurrogate.campaign.spec import Run


def runs(n):
    return [Run(run_id=f"r{i}", inputs={"h": 4.0 + i / 10}, seed=1) for i in range(n)]


def test_states_attempts_and_events(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as led:
        assert led.add_runs(runs(3), "ctl") == 3
        assert led.add_runs(runs(4), "ctl") == 1  # existing rows untouched
        a = led.claim_next(max_attempts=2)
        assert (a.run_id, a.state, a.attempts) == ("r0", "running", 1)
        led.mark_failed("r0", "lost_atoms: boom")
        # pending runs come before retries; the failed one is retried while it has attempts left
        order = [led.claim_next(2).run_id for _ in range(4)]
        assert order == ["r1", "r2", "r3", "r0"]
        assert led.get("r0").attempts == 2
        led.mark_failed("r0", "lost_atoms: again")
        assert led.claim_next(2) is None  # r0 is out of attempts, the rest are running
        for rid in ("r1", "r2", "r3"):
            led.mark_done(rid, f"/x/{rid}.nc", wall_s=1.0)
        assert led.counts() == {"pending": 0, "running": 0, "done": 3, "failed": 1}
        assert led.get("r0").reason == "lost_atoms: again"
        with pytest.raises(RuntimeError, match="not running"):
            led.mark_done("r1", "/x/r1.nc")
        ev = [(e["state"], e["attempt"]) for e in led.events("r0")]
        assert ev == [("pending", 0), ("running", 1), ("failed", 1), ("running", 2), ("failed", 2)]
        assert led.reset_failed() == 1
        assert led.claim_next(2).run_id == "r0"


def test_set_order_decides_which_pending_run_starts_next(tmp_path):
    """Listed runs first in the given order (unknown ids and repeats ignored), unlisted ones after them in their
    previous order; only the claim order changes."""
    with Ledger(tmp_path / "l.sqlite") as led:
        led.add_runs(runs(5), "ctl")
        led.set_order(["r3", "nope", "r1", "r3"])
        assert [r.run_id for r in led.rows()] == ["r3", "r1", "r0", "r2", "r4"]
        assert [led.claim_next(1).run_id for _ in range(3)] == ["r3", "r1", "r0"]
        led.set_order([f"r{i}" for i in range(5)])
        assert led.claim_next(1).run_id == "r2" and led.get("r3").state == "running"


def test_controls_mismatch_is_refused(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as led:
        led.add_runs(runs(1), '{"steps": 10}')
        with pytest.raises(LedgerMismatch):
            led.add_runs(runs(2), '{"steps": 20}')


def test_reconcile_after_a_crash(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as led:
        led.add_runs(runs(4), "ctl")
        for _ in range(3):
            led.claim_next(3)
        led.mark_done("r0", "/x/r0.nc")
        # r1 finished its file but the supervisor died before recording it; r2 died mid-run
        good = {"r0", "r1"}
        out = led.reconcile(lambda rid: f"/x/{rid}.nc" if rid in good else None)
        assert out == {"recovered_done": 1, "back_to_pending": 1, "lost_results": 0}
        assert led.get("r1").state == "done"
        assert led.get("r2").state == "pending" and led.get("r2").attempts == 0  # interruption is not a failure
        # a done run whose result vanished is redone
        good.discard("r0")
        assert led.reconcile(lambda rid: f"/x/{rid}.nc" if rid in good else None)["lost_results"] == 1
        assert led.get("r0").state == "pending"


def _hold(path, started, release):
    led = Ledger(path)
    led.acquire()
    started.set()
    release.wait(30)
    led.close()


def test_one_supervisor_at_a_time_and_the_lock_dies_with_its_process(tmp_path):
    path = tmp_path / "l.sqlite"
    Ledger(path).close()
    ctx = mp.get_context("spawn")
    started, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold, args=(path, started, release))
    p.start()
    assert started.wait(60)
    led = Ledger(path)
    with pytest.raises(LedgerBusy, match="another live process"):
        led.acquire()
    p.kill()  # SIGKILL: the kernel drops the flock
    p.join()
    led.acquire()
    led.close()


def test_a_transaction_cut_short_by_a_signal_is_rolled_back_by_the_next(tmp_path):
    """A stop signal raised between BEGIN and the body (or the body and COMMIT) leaves a transaction open; the next
    write rolls it back instead of failing, and nothing of the cut one is kept."""
    with Ledger(tmp_path / "l.sqlite") as led:
        led.add_runs(runs(2), "ctl")
        led._db.execute("BEGIN IMMEDIATE")  # as left by an interrupted _tx
        led._db.execute("UPDATE runs SET state = 'done' WHERE run_id = 'r0'")
        assert led._db.in_transaction
        a = led.claim_next(max_attempts=2)  # the next write: no 'transaction within a transaction'
        assert a.run_id == "r0" and a.state == "running"  # the cut update was not kept
        assert led.counts() == {"pending": 1, "running": 1, "done": 0, "failed": 0}
