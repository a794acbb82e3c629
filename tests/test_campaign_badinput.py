"""Bad input to the campaign stage: every case ends with exit code != 0 and one line naming the parameter (never a
traceback), before any work starts, and creates, replaces or deletes nothing the user did not ask for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from mdsurrogate.campaign.backends import marked_processes
from mdsurrogate.campaign.execute import CampaignObserver, campaign_status, run_campaign
from mdsurrogate.campaign.layout import result_path
from mdsurrogate.campaign.ledger import Ledger, LedgerUnreadable
from mdsurrogate.campaign.spec import MAX_SYSTEMS, Run, SpecError, load_spec, parse_spec
from mdsurrogate.cli import app
from mdsurrogate.simulation.system import DESIGN_RANGES, INPUT_NAMES, ConfinedElectrolyte

SYNTH = "mdsurrogate.campaign.synthetic:simulate"
SHORT = 'n_blocks = 4\noverrides = { block_steps = 100 }\n'  # short synthetic runs: >= n_blocks blocks of 100 steps
GARBAGE = bytes(range(256)) * 8


def cli(*args: str):
    res = CliRunner().invoke(app, [str(a) for a in args])
    return res, res.output


def refused(res, output: str, *names: str) -> None:
    """Exit code != 0, no traceback, one `error:` line that names each of `names`."""
    assert res.exit_code != 0, output
    assert "Traceback" not in output, output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    for name in names:
        assert name in errors[0], (name, output)


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _result(out: Path, h: float = 4.0, c: float = 0.5, seed: int = 1):
    from mdsurrogate.campaign.synthetic import simulate

    system = ConfinedElectrolyte(h=h, c=c, d_plus=0.415, d_minus=0.415, sigma_s=-0.01)
    return simulate(system, SimpleNamespace(steps=10, seed=seed, preset="production"), out)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A campaign directory with two done runs (made in-process, no workers) and a dataset file."""
    from mdsurrogate import dataset

    root = tmp_path_factory.mktemp("data")
    camp = root / "camp"
    runs = [Run(run_id=f"r{i}", inputs={"h": h, "c": 0.5, "d_plus": 0.415, "d_minus": 0.415, "sigma_s": -0.01},
                seed=1) for i, h in enumerate((4.0, 4.4))]
    with Ledger(camp / "ledger.sqlite") as led:
        led.add_runs(runs, "{}")
        for run in runs:
            led.claim_next(3)
            out = result_path(camp, run.run_id)
            _result(out, h=run.inputs["h"])
            led.mark_done(run.run_id, str(out), wall_s=1.0)
    ds = dataset.consolidate(camp, root / "dataset.nc")
    return SimpleNamespace(root=root, camp=camp, nc=root / "dataset.nc", ds=ds)


# ------------------------------------------------------------------------------- 1. outputs checked first

@pytest.mark.parametrize("target", ["/dev/null", "link"])
def test_consolidate_and_export_refuse_a_special_file_as_output(data, tmp_path, target):
    if target == "link":
        (tmp_path / "link.nc").symlink_to("/dev/null")
        target = str(tmp_path / "link.nc")
    res, out = cli("campaign", "consolidate", data.camp, "-o", target)
    refused(res, out, "--out")
    for fmt in ("netcdf", "pickle"):
        res, out = cli("campaign", "export", data.nc, "-f", fmt, "-o", target)
        refused(res, out, "--out")
    assert Path(target).is_char_device()


def test_an_output_equal_to_an_input_is_refused(data, tmp_path):
    before = tree(data.root)
    res, out = cli("campaign", "export", data.nc, "-o", data.nc)
    refused(res, out, "--out")
    res, out = cli("campaign", "consolidate", data.camp, "-o", data.camp / "ledger.sqlite")
    refused(res, out, "--out")
    res, out = cli("campaign", "consolidate", data.camp, "-o", result_path(data.camp, "r0"))
    refused(res, out, "--out")
    assert tree(data.root) == before


def test_export_never_replaces_a_file_unasked(data, tmp_path):
    keep = tmp_path / "keep.nc"
    keep.write_bytes(b"someone else's file")
    for fmt in ("netcdf", "pickle"):
        res, out = cli("campaign", "export", data.nc, "-f", fmt, "-o", keep)
        refused(res, out, "--out", "--overwrite")
        assert keep.read_bytes() == b"someone else's file"
    res, out = cli("campaign", "export", data.nc, "-o", keep, "--overwrite")
    assert res.exit_code == 0, out


def test_tsv_export_refuses_a_non_empty_folder_unless_overwrite(data, tmp_path):
    folder = tmp_path / "tsv"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    res, out = cli("campaign", "export", data.nc, "-f", "tsv", "-o", folder)
    refused(res, out, "--out", "--overwrite")
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
    res, out = cli("campaign", "export", data.nc, "-f", "tsv", "-o", folder, "--overwrite")
    assert res.exit_code == 0, out
    assert len(list(folder.glob("*/n_plus.tsv"))) == 2 and (folder / "keep.txt").read_text() == "mine"
    res, out = cli("campaign", "export", data.nc, "-f", "tsv", "-o", data.nc)  # a file where a folder goes
    refused(res, out, "--out")


# ------------------------------------------------------------------------------- 2. run_ids as folder names

@pytest.mark.parametrize("bad", ["../escaped", "ABSOLUTE", "a/b", ".hidden", ""])
def test_tsv_export_refuses_run_ids_that_are_not_plain_names(data, tmp_path, bad):
    from mdsurrogate import dataset

    if bad == "ABSOLUTE":
        bad = str(tmp_path / "absolute_target")
    ds = data.ds.copy(deep=True)
    ds["run_id"] = ("system", np.array([bad, "fine"], dtype=object))
    src = tmp_path / "evil.nc"
    dataset.save(ds, src)
    out_dir = tmp_path / "sub" / "tsv"
    res, out = cli("campaign", "export", src, "-f", "tsv", "-o", out_dir)
    refused(res, out, "run_id", str(src))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.nc"]  # nothing written, inside or outside


def test_tsv_export_refuses_a_repeated_run_id(data, tmp_path):
    from mdsurrogate import dataset

    ds = data.ds.copy(deep=True)
    ds["run_id"] = ("system", np.array(["same", "same"], dtype=object))
    dataset.save(ds, tmp_path / "twice.nc")
    res, out = cli("campaign", "export", tmp_path / "twice.nc", "-f", "tsv", "-o", tmp_path / "tsv")
    refused(res, out, "run_id", "twice")
    assert not (tmp_path / "tsv").exists()


# ------------------------------------------------------------------------------- 3. --error-scale

@pytest.mark.parametrize("scale", ["-1", "0", "nan", "inf", "-inf", "1e308"])
@pytest.mark.parametrize("source", ["nc", "pk"])
def test_error_scale_must_be_finite_and_positive(data, tmp_path, scale, source):
    from mdsurrogate import dataset

    src = data.nc
    if source == "pk":
        src = tmp_path / "authors.pk"
        dataset.to_authors_pickle(data.ds, src)
    res, out = cli("campaign", "export", src, "-o", tmp_path / "out.nc", "--error-scale", scale)
    refused(res, out, "--error-scale", "(0, 100]")
    assert not (tmp_path / "out.nc").exists()


# ------------------------------------------------------------------------------- 4. missing or corrupt ledgers

def test_consolidate_and_status_of_a_missing_campaign_create_nothing(tmp_path):
    for cmd in ("consolidate", "status"):
        res, out = cli("campaign", cmd, tmp_path / "typo" / "dir")
        refused(res, out, "DIRECTORY", "typo")
        assert not (tmp_path / "typo").exists()
    (tmp_path / "empty").mkdir()
    for cmd in ("consolidate", "status"):
        res, out = cli("campaign", cmd, tmp_path / "empty")
        refused(res, out, "DIRECTORY", "ledger")
        assert list((tmp_path / "empty").iterdir()) == []
    # a spec whose campaign directory does not exist yet
    spec = tmp_path / "s.toml"
    spec.write_text(f'[campaign]\ndirectory = "{tmp_path / "never"}"\n[[design]]\ntype = "grid"\nh = 4.0\n')
    for cmd in ("consolidate", "status"):
        res, out = cli("campaign", cmd, spec)
        refused(res, out, "DIRECTORY", "never")
        assert not (tmp_path / "never").exists()
    with pytest.raises(FileNotFoundError):
        campaign_status(tmp_path / "typo")
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("content", [GARBAGE, b"", "other-db"])
def test_a_corrupt_ledger_is_one_line_for_status_consolidate_and_run(tmp_path, content):
    camp = tmp_path / "camp"
    camp.mkdir()
    ledger = camp / "ledger.sqlite"
    if content == "other-db":
        import sqlite3

        db = sqlite3.connect(ledger)
        db.execute("CREATE TABLE notes (x TEXT)")
        db.commit()
        db.close()
    else:
        ledger.write_bytes(content)
    before = tree(camp)
    for cmd in ("status", "consolidate"):
        res, out = cli("campaign", cmd, camp)
        refused(res, out, "ledger.sqlite")
    spec = tmp_path / "s.toml"
    spec.write_text(f'[campaign]\ndirectory = "{camp}"\n[[design]]\ntype = "grid"\nh = 4.0\nc = 0.5\n'
                    f'd_plus = 0.415\nd_minus = 0.415\nsigma_s = -0.01\n[controls]\nsteps = 1000\n{SHORT}')
    if content != b"":  # an empty file is a fresh ledger to a supervisor
        res, out = cli("campaign", "run", spec, "--run-fn", SYNTH, "--no-progress")
        refused(res, out, "ledger.sqlite")
        assert tree(camp) == before and sorted(p.name for p in camp.iterdir()) == ["ledger.sqlite"]
    with pytest.raises(LedgerUnreadable):
        Ledger(ledger, create=False)
    assert tree(camp) == before


def test_a_ledger_that_is_a_fifo_or_folder_does_not_block(tmp_path):
    camp = tmp_path / "camp"
    camp.mkdir()
    os.mkfifo(camp / "ledger.sqlite")
    with _unblock_after(camp / "ledger.sqlite", 20):
        for cmd in ("status", "consolidate"):
            res, out = cli("campaign", cmd, camp)
            refused(res, out, "ledger.sqlite", "regular file")


# ------------------------------------------------------------------------------- 5. --run-fn

def test_dir_must_be_the_campaigns_own_or_a_new_folder(tmp_path, monkeypatch):
    spec = tmp_path / "s.toml"
    spec.write_text(f'[campaign]\ndirectory = "{tmp_path / "camp"}"\n[[design]]\ntype = "grid"\nh = 4.0\n'
                    f'c = 0.5\nd_plus = 0.415\nd_minus = 0.415\nsigma_s = -0.01\n[controls]\nsteps = 1000\n{SHORT}')
    other = tmp_path / "thesis"
    other.mkdir()
    (other / "chapter1.tex").write_text("mine")
    monkeypatch.chdir(other)
    for where in (other, ""):
        res, out = cli("campaign", "run", spec, "--dir", where, "--run-fn", SYNTH, "--no-progress")
        refused(res, out, "--dir")
    assert sorted(p.name for p in other.iterdir()) == ["chapter1.tex"]


@pytest.mark.parametrize("fn", ["", "   ", "nocolon", "mdsurrogate.campaign.synthetic:", ":simulate",
                                "no_such_module_4711:run", "mdsurrogate.campaign.synthetic:no_such_function",
                                "mdsurrogate.campaign.synthetic:SYNTHETIC_STEPS_PER_S", "../evil:run", "os:system"])
def test_a_bad_run_fn_is_refused_before_anything_runs(tmp_path, fn):
    camp = tmp_path / "camp"
    spec = tmp_path / "s.toml"
    spec.write_text(f'[campaign]\ndirectory = "{camp}"\n[[design]]\ntype = "grid"\nh = 4.0\nc = 0.5\n'
                    f'd_plus = 0.415\nd_minus = 0.415\nsigma_s = -0.01\n[controls]\nsteps = 1000\n{SHORT}')
    res, out = cli("campaign", "run", spec, "--run-fn", fn, "--no-progress")
    refused(res, out, "--run-fn")
    assert not camp.exists()
    with pytest.raises(ValueError, match="^run_fn"):
        run_campaign(load_spec(spec), camp, run_fn=fn)
    assert not camp.exists()


def test_a_run_fn_from_the_working_directory_is_found_as_the_workers_find_it(tmp_path, monkeypatch):
    from mdsurrogate.campaign.worker import check_run_fn

    (tmp_path / "my_engine_4711.py").write_text("def run(system, controls, out, workdir):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    try:
        assert check_run_fn("my_engine_4711:run").__name__ == "run"
    finally:
        sys.modules.pop("my_engine_4711", None)
    assert str(tmp_path) not in sys.path


# ------------------------------------------------------------------------------- 6. spec files

@pytest.mark.parametrize("design", [{"type": "random_subset", "n": 5}, {"type": "sobol", "n": 8},
                                    {"type": "lhs", "n": 8}])
@pytest.mark.parametrize("seed", [-1, 2**32, 2**64])
def test_design_seeds_must_fit_numpy(design, seed):
    with pytest.raises(SpecError) as err:
        parse_spec({"design": [{**design, "seed": seed}]})
    assert err.value.key == "design[0].seed" and "2**32" in str(err.value)


@pytest.mark.parametrize("seed", [-1, 2**32, True, 1.5])
def test_order_seed_must_fit_numpy(seed):
    with pytest.raises(SpecError) as err:
        parse_spec({"design": [{"type": "grid", "h": 4.0}], "execution": {"order": "shuffled", "order_seed": seed}})
    assert err.value.key == "execution.order_seed"


def _wide(n: int) -> dict[str, list[float]]:
    return {k: np.linspace(*DESIGN_RANGES[k], n).round(6).tolist() for k in INPUT_NAMES}


@pytest.mark.parametrize("design,key", [
    ({"type": "sobol", "n": 2**30, "seed": 1}, "design[0].n"),
    ({"type": "lhs", "n": 10**9, "seed": 1}, "design[0].n"),
    ({"type": "random_subset", "n": 2 * MAX_SYSTEMS, "seed": 1}, "design[0].n"),
    ({"type": "grid", **_wide(64)}, "design[0]"),  # 64^5 = 1.07e9 points
    ({"type": "random_subset", "n": 10, "seed": 1, "grid": _wide(64)}, "design[0].grid"),
])
def test_huge_designs_are_refused_before_allocating(design, key):
    t0 = time.monotonic()
    with pytest.raises(SpecError) as err:
        parse_spec({"design": [design]})
    assert err.value.key == key and "1,000,000" in str(err.value)
    assert time.monotonic() - t0 < 5


def test_too_many_runs_in_all_are_refused():
    with pytest.raises(SpecError) as err:  # the papers' 4050 systems x 300 seeds
        parse_spec({"design": [{"type": "grid"}], "controls": {"seeds": list(range(1, 301))}})
    assert err.value.key == "controls.seeds" and "1,000,000" in str(err.value)


def test_a_spec_that_is_not_utf8_names_the_file(tmp_path):
    spec = tmp_path / "latin1.toml"
    spec.write_bytes('[campaign]\nname = "caf\u00e9"\n'.encode("latin-1") + b"\xff\xfe")
    with pytest.raises(SpecError, match="latin1.toml.*UTF-8"):
        load_spec(spec)
    res, out = cli("campaign", "validate", spec)
    refused(res, out, "latin1.toml", "UTF-8")


class _unblock_after:
    """Opens `fifo` for writing after `seconds` (then closes it), so that a reader that blocks on it ends (and its
    test fails) instead of hanging the test run."""

    def __init__(self, fifo: Path, seconds: float):
        self.fifo, self.seconds, self.stop = fifo, seconds, threading.Event()

    def _run(self):
        deadline = time.monotonic() + self.seconds
        while not self.stop.wait(0.1):
            if time.monotonic() < deadline:
                continue
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue  # no reader (yet)
            os.close(fd)
            return

    def __enter__(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_a_spec_path_that_is_a_fifo_or_folder_neither_blocks_nor_tracebacks(tmp_path):
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    with _unblock_after(fifo, 20):
        t0 = time.monotonic()
        for path in (fifo, folder):
            for cmd in ("validate", "run"):
                res, out = cli("campaign", cmd, path)
                refused(res, out, "SPEC", path.name, "not a regular file")
            with pytest.raises(SpecError, match="not a regular file"):
                load_spec(path)
        assert time.monotonic() - t0 < 15


# ------------------------------------------------------------------------------- 7. signals

def _kill_leftovers(marker: str) -> None:
    for pid in marked_processes(marker):  # only processes this test's campaign started (its marker)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _slow_spec(tmp_path: Path, camp: Path) -> Path:
    spec = tmp_path / "slow.toml"  # 4 runs of 15 s, 2 at a time (stopped in the first batch: wide window under load)
    spec.write_text(f'[campaign]\nname = "slow"\ndirectory = "{camp}"\n[[design]]\ntype = "grid"\nh = [4.0]\n'
                    'c = [0.5]\nd_plus = [0.415]\nd_minus = [0.2, 0.415]\nsigma_s = [-0.01, -0.02]\n'
                    f'[controls]\nsteps = 150000\n{SHORT}[execution]\nworkers = 2\n')
    return spec


def test_sighup_stops_the_campaign_like_sigterm(tmp_path):
    camp = tmp_path / "camp"
    spec = _slow_spec(tmp_path, camp)
    marker = str((camp / "ledger.sqlite").resolve())
    cmd = [sys.executable, "-c", "from mdsurrogate.cli import main; main()", "campaign", "run", str(spec),
           "--run-fn", SYNTH, "--no-progress"]
    # SIGHUP as a terminal sends it: under `nohup` the test itself runs with SIGHUP ignored, which a child inherits
    # (and the campaign rightly keeps: nohup means "ignore hang-ups")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if (camp / "ledger.sqlite").exists() and Ledger(camp / "ledger.sqlite").counts()["running"] == 2:
                break
        time.sleep(0.5)
        assert proc.poll() is None, "the campaign ended before the signal"
        proc.send_signal(signal.SIGHUP)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 130, out
        assert "Traceback" not in out
        with Ledger(camp / "ledger.sqlite") as led:
            c = led.counts()
            assert c["running"] == 0 and c["failed"] == 0 and c["pending"] + c["done"] == 4, c
            assert any(e["detail"] == "interrupted: supervisor died" for e in led.events())
        assert marked_processes(marker) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_leftovers(marker)


def test_a_second_ctrl_c_during_the_cleanup_leaves_no_run_running(tmp_path, monkeypatch):
    """Ctrl-C once two runs are in flight, and again while the workers are being stopped: the cleanup still
    kills every worker and puts their runs back to pending."""
    from mdsurrogate.campaign import execute

    camp = tmp_path / "camp"
    spec = load_spec(_slow_spec(tmp_path, camp))
    marker = str((camp / "ledger.sqlite").resolve())

    class CtrlC(CampaignObserver):
        started = 0

        def run_started(self, run_id, workdir):
            self.started += 1
            if self.started == 2:
                os.kill(os.getpid(), signal.SIGINT)

    shutdown = execute.LocalBackend.shutdown

    def interrupted_shutdown(self):
        os.kill(os.getpid(), signal.SIGINT)  # the impatient second Ctrl-C
        time.sleep(0.2)
        shutdown(self)

    monkeypatch.setattr(execute.LocalBackend, "shutdown", interrupted_shutdown)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        with pytest.raises(KeyboardInterrupt):
            run_campaign(spec, camp, run_fn=SYNTH, observer=CtrlC())
        assert handlers == {sig: signal.getsignal(sig) for sig in handlers}  # restored
        with Ledger(camp / "ledger.sqlite") as led:
            assert led.counts() == {"pending": 4, "running": 0, "done": 0, "failed": 0}
        assert marked_processes(marker) == []
    finally:
        _kill_leftovers(marker)


def test_an_ignored_sighup_stays_ignored(tmp_path):
    """Under `nohup` SIGHUP is ignored: the campaign must not start stopping on it."""
    seen = {}

    class Probe(CampaignObserver):
        def start(self, counts):
            seen["hup"] = signal.getsignal(signal.SIGHUP)
            seen["int"] = signal.getsignal(signal.SIGINT)

    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        spec = parse_spec({"design": [{"type": "list", "points": [
            {"h": 4.0, "c": 0.5, "d_plus": 0.415, "d_minus": 0.415, "sigma_s": -0.01}]}],
            "controls": {"steps": 1000, "n_blocks": 4, "overrides": {"block_steps": 100}}})
        assert run_campaign(spec, tmp_path, run_fn=SYNTH, observer=Probe()).counts["done"] == 1
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, old)
    assert seen["hup"] is signal.SIG_IGN and seen["int"] not in (signal.SIG_IGN, signal.default_int_handler)


# ------------------------------------------------------------------------------- 8. systems removed from the spec

def _spec_file(tmp_path: Path, name: str, camp: Path, c_values: str) -> Path:
    spec = tmp_path / f"{name}.toml"
    spec.write_text(f'[campaign]\nname = "shrink"\ndirectory = "{camp}"\n[[design]]\ntype = "grid"\nh = 4.0\n'
                    f'c = {c_values}\nd_plus = 0.415\nd_minus = [0.2, 0.415]\nsigma_s = -0.01\n'
                    f'[controls]\nsteps = 1000\n{SHORT}[execution]\nworkers = 2\n')
    return spec


def test_runs_removed_from_the_spec_are_reported_counted_apart_and_can_be_dropped(tmp_path):
    camp = tmp_path / "camp"
    big = _spec_file(tmp_path, "big", camp, "[0.5, 1.0]")
    small = _spec_file(tmp_path, "small", camp, "[0.5]")
    s = run_campaign(load_spec(big), camp, run_fn=SYNTH, limit=1, workers=1)  # 1 done, 3 pending
    assert s.counts["pending"] == 3
    removed = {r.run_id for r in load_spec(big).runs} - {r.run_id for r in load_spec(small).runs}
    assert len(removed) == 2

    res, out = cli("campaign", "run", small, "--run-fn", SYNTH, "--no-progress")
    assert res.exit_code == 0, out
    assert "2 pending or failed runs of the ledger are no longer in the spec: ignored" in out
    assert "--drop-removed" in out and "pending 0" in out
    st = campaign_status(camp, {r.run_id for r in load_spec(small).runs})
    assert st["not_in_spec"] == 2 and st["counts"]["pending"] == 0 and st["remaining"] == 0 and st["total"] == 2
    assert campaign_status(camp)["counts"]["pending"] == 2  # without the spec: the ledger as it is
    res, out = cli("campaign", "status", small)
    text = " ".join(out.split())  # rich wraps long lines
    assert res.exit_code == 0 and "pending 0" in text and "2 pending or failed runs not in the spec" in text

    res, out = cli("campaign", "run", small, "--run-fn", SYNTH, "--no-progress", "--drop-removed")
    assert res.exit_code == 0, out
    assert "dropped 2" in out
    with Ledger(camp / "ledger.sqlite") as led:
        assert {r.run_id for r in led.rows()} == {r.run_id for r in load_spec(small).runs}
        assert led.counts() == {"pending": 0, "running": 0, "done": 2, "failed": 0}
        gone = [e for e in led.events() if e["state"] == "removed"]
    assert {e["run_id"] for e in gone} == removed and all("drop-removed" in e["detail"] for e in gone)
    res, out = cli("campaign", "run", small, "--run-fn", SYNTH, "--no-progress")
    assert res.exit_code == 0 and "no longer in the spec" not in out
