"""The local process-pool executor and the CLI, driven by the fast synthetic run function."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mdsurrogate.campaign.execute import campaign_status, run_campaign
from mdsurrogate.campaign.layout import result_path
from mdsurrogate.campaign.ledger import Ledger
from mdsurrogate.campaign.spec import RESEED_STRIDE, parse_spec
from mdsurrogate.cli import app

SYNTH = "mdsurrogate.campaign.synthetic:simulate"
# short synthetic runs need short blocks: steps = 1000 -> 100 equilibration + 9 production blocks of 100 steps
# (RunControls refuses a run with fewer than n_blocks blocks)
SHORT_BLOCKS = {"n_blocks": 4, "overrides": {"block_steps": 100}}


def small_spec(seeds=(1,), n_c=2, steps=1000, **execution):
    return parse_spec({
        "campaign": {"name": "t"},
        "design": [{"type": "grid", "h": [4.0], "c": [0.5, 1.0][:n_c], "d_plus": 0.415, "d_minus": [0.2, 0.415],
                    "sigma_s": -0.01}],
        "controls": {"steps": steps, **SHORT_BLOCKS, "seeds": list(seeds)},
        "execution": {"workers": 2, **execution},
    })


def test_runs_everything_then_resume_repeats_nothing(tmp_path):
    spec = small_spec()
    s1 = run_campaign(spec, tmp_path, run_fn=SYNTH)
    assert (s1.started, s1.done, s1.failed) == (4, 4, 0)
    assert s1.counts == {"pending": 0, "running": 0, "done": 4, "failed": 0}
    mtimes = {r.run_id: result_path(tmp_path, r.run_id).stat().st_mtime_ns for r in spec.runs}
    prog = json.loads((tmp_path / "work" / spec.runs[0].run_id / "progress.json").read_text())
    assert prog["done"] == prog["planned"] == 5 and prog["rel_error"] > 0
    s2 = run_campaign(spec, tmp_path, run_fn=SYNTH)
    assert s2.started == 0
    assert mtimes == {r.run_id: result_path(tmp_path, r.run_id).stat().st_mtime_ns for r in spec.runs}
    # a result that disappeared is redone, and only that one
    lost = spec.runs[2].run_id
    result_path(tmp_path, lost).unlink()
    s3 = run_campaign(spec, tmp_path, run_fn=SYNTH)
    assert s3.started == 1 and s3.reconciled["lost_results"] == 1
    st = campaign_status(tmp_path)
    assert st["counts"]["done"] == 4 and st["remaining"] == 0 and st["mean_wall_s"] > 0
    with Ledger(tmp_path / "ledger.sqlite") as led:
        done_events = [e["run_id"] for e in led.events() if e["state"] == "done"]
    assert sorted(done_events) == sorted([r.run_id for r in spec.runs] + [lost])


def test_failures_are_retried_with_a_new_seed(tmp_path):
    spec = small_spec(seeds=(13,), n_c=1)  # the synthetic engine "loses atoms" with seed 13
    s = run_campaign(spec, tmp_path, run_fn=SYNTH)
    assert s.counts["done"] == 2 and s.failed == 2
    with Ledger(tmp_path / "ledger.sqlite") as led:
        assert all(r.attempts == 2 for r in led.rows())
    import xarray as xr

    with xr.open_dataset(result_path(tmp_path, spec.runs[0].run_id), engine="h5netcdf") as ds:
        assert ds.attrs["seed"] == 13 + RESEED_STRIDE


def test_failures_end_after_max_attempts_with_reason_and_can_be_retried(tmp_path):
    spec = small_spec(seeds=(13,), n_c=1, reseed_on_retry=False, max_attempts=2)
    s = run_campaign(spec, tmp_path, run_fn=SYNTH)
    assert s.counts == {"pending": 0, "running": 0, "done": 0, "failed": 2}
    st = campaign_status(tmp_path)
    assert st["exhausted"] == 2
    assert all(f["attempts"] == 2 and "lost atoms" in f["reason"] and "synthetic.log" in f["reason"]
               for f in st["failures"])
    assert not any(result_path(tmp_path, r.run_id).exists() for r in spec.runs)
    assert run_campaign(spec, tmp_path, run_fn=SYNTH).started == 0  # exhausted: not retried by default
    assert run_campaign(spec, tmp_path, run_fn=SYNTH, retry_failed=True, max_attempts=1).started == 2


def test_a_half_written_result_never_counts_as_done(tmp_path):
    spec = small_spec(n_c=1, max_attempts=1)
    s = run_campaign(spec, tmp_path, run_fn="mdsurrogate.campaign.synthetic:simulate_truncated")
    assert s.counts["failed"] == 2 and s.counts["done"] == 0
    assert all(f["reason"] == "result file missing or unreadable" for f in campaign_status(tmp_path)["failures"])


def test_limit_runs_a_campaign_in_pieces(tmp_path):
    spec = small_spec()
    assert run_campaign(spec, tmp_path, run_fn=SYNTH, limit=1, workers=1).counts["done"] == 1
    s = run_campaign(spec, tmp_path, run_fn=SYNTH, limit=2)
    assert s.started == 2 and s.counts["done"] == 3 and s.counts["pending"] == 1
    assert run_campaign(spec, tmp_path, run_fn=SYNTH).counts["done"] == 4


def test_shuffled_order_makes_every_piece_a_random_subsample(tmp_path):
    """order = "shuffled": runs start in a seeded permutation (the same on every resume), not in spec order."""
    spec = parse_spec({
        "campaign": {"name": "t"},
        "design": [{"type": "grid", "h": [4.0, 4.4, 4.8], "c": [0.5, 1.0], "d_plus": 0.415, "d_minus": 0.415,
                    "sigma_s": [-0.01, -0.02]}],
        "controls": {"steps": 1000, **SHORT_BLOCKS, "seeds": [1]},
        "execution": {"workers": 1, "order": "shuffled", "order_seed": 3},
    })
    ids = [r.run_id for r in spec.runs]
    expected = [ids[i] for i in np.random.default_rng(3).permutation(len(ids))]
    run_campaign(spec, tmp_path, run_fn=SYNTH, limit=4)
    run_campaign(spec, tmp_path, run_fn=SYNTH, limit=4)  # a resume keeps the same order
    with Ledger(tmp_path / "ledger.sqlite") as led:
        started = [e["run_id"] for e in led.events() if e["state"] == "running"]
    assert started == expected[:8] and started != ids[:8]
    assert {spec.runs[ids.index(r)].inputs["h"] for r in started[:4]} != {4.0}


def test_n_runs_at_a_time_with_m_cores_each(tmp_path):
    """workers = N, cores_per_run = M: every run gets M MPI ranks and at most N run at once."""
    from mdsurrogate.dataset import consolidate

    spec = small_spec(steps=20_000, workers=2, cores_per_run=2)  # 2 s per run: long enough to overlap
    s = run_campaign(spec, tmp_path, run_fn=SYNTH)
    assert s.done == 4
    ds = consolidate(tmp_path)
    assert set(ds["mpi_ranks"].values) == {2}
    events = sorted([(t, 1) for t in ds["t_start"].values] + [(t, -1) for t in ds["t_end"].values],
                    key=lambda e: (e[0], e[1]))
    running = np.cumsum([d for _, d in events])
    assert running.max() == 2  # two at a time, never three (and the pool was used)
    run_campaign(small_spec(n_c=1), tmp_path / "one", run_fn=SYNTH, workers=1, cores_per_run=3)
    ds1 = consolidate(tmp_path / "one")
    assert set(ds1["mpi_ranks"].values) == {3}
    order = np.argsort(ds1["t_start"].values)
    assert np.all(ds1["t_start"].values[order][1:] >= ds1["t_end"].values[order][:-1])  # one at a time


def test_cli_run_status_consolidate_export(tmp_path):
    spec_file = tmp_path / "c.toml"
    spec_file.write_text(f"""
[campaign]
name = "cli"
directory = "{tmp_path / 'camp'}"
[[design]]
type = "list"
points = [{{h = 4.0, c = 0.5, d_plus = 0.415, d_minus = 0.2, sigma_s = -0.01}},
          {{h = 4.4, c = 1.0, d_plus = 0.2, d_minus = 0.2, sigma_s = -0.02}}]
[controls]
steps = 1000
n_blocks = 4
overrides = {{ block_steps = 100 }}
seeds = [1, 13]
[execution]
workers = 2
reseed_on_retry = false
max_attempts = 1
""")
    r = CliRunner()
    res = r.invoke(app, ["campaign", "validate", str(spec_file)])
    assert res.exit_code == 0 and "2 systems x 2 seeds = 4 runs" in res.output
    res = r.invoke(app, ["campaign", "run", str(spec_file), "--run-fn", SYNTH])  # with progress bars
    assert res.exit_code == 1, res.output  # the two seed-13 runs fail
    assert "done 2, failed 2" in res.output
    res = r.invoke(app, ["campaign", "status", str(spec_file)])
    assert res.exit_code == 0 and "failed 2" in res.output and "lost atoms" in res.output and "ETA" in res.output
    st = json.loads(r.invoke(app, ["campaign", "status", str(tmp_path / "camp"), "--json"]).output)
    assert st["counts"]["done"] == 2
    res = r.invoke(app, ["campaign", "consolidate", str(tmp_path / "camp"), "--figures", str(tmp_path / "fig")])
    assert res.exit_code == 0, res.output
    assert "2 systems" in res.output and "core-hours" in res.output
    info = json.loads((tmp_path / "fig" / "summary.json").read_text())
    assert info["n_runs"] == 2 and info["runs_per_value"]["h"] == {"4": 1, "4.4": 1} and info["seeds"] == [1]
    assert (tmp_path / "fig" / "coverage.png").exists() and "git_commit" in info["provenance"]
    # its own figures folder is rewritten; a folder of other results (a `simulate` run) is not
    res = r.invoke(app, ["campaign", "consolidate", str(tmp_path / "camp"), "--figures", str(tmp_path / "fig")])
    assert res.exit_code == 0, res.output
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "summary.json").write_text("{}")
    res = r.invoke(app, ["campaign", "consolidate", str(tmp_path / "camp"), "--figures", str(tmp_path / "sim")])
    assert res.exit_code == 2 and "has no errors.png" in res.output
    assert (tmp_path / "sim" / "summary.json").read_text() == "{}"
    from mdsurrogate.dataset import load_dataset

    ds = load_dataset(tmp_path / "camp" / "dataset.nc")
    assert ds.sizes == {"system": 2, "point": 502}
    assert set(ds["seed"].values) == {1}
    assert np.all(np.isfinite(ds["n_plus"].values))
    res = r.invoke(app, ["campaign", "export", str(tmp_path / "camp" / "dataset.nc"), "-f", "tsv",
                         "-o", str(tmp_path / "tsv")])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "tsv").glob("*/n_plus.tsv"))) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[[design]]\ntype = 'grid'\nh = [9.0]\n")
    res = r.invoke(app, ["campaign", "run", str(bad)])
    assert res.exit_code == 2 and "design[0]" in res.output and "h (confinement length)" in res.output


@pytest.mark.parametrize("workers", [1])
def test_busy_campaign_is_refused(tmp_path, workers):
    spec = small_spec()
    led = Ledger(tmp_path / "ledger.sqlite")
    led.acquire()
    try:
        from mdsurrogate.campaign.ledger import LedgerBusy

        with pytest.raises(LedgerBusy):
            run_campaign(spec, tmp_path, run_fn=SYNTH, workers=workers)
    finally:
        led.close()


def test_result_readable_rejects_partial_and_broken_files(tmp_path):
    from types import SimpleNamespace

    from mdsurrogate.campaign.layout import result_readable
    from mdsurrogate.campaign.synthetic import simulate
    from mdsurrogate.simulation.system import ConfinedElectrolyte

    good = tmp_path / "good.nc"
    ds = simulate(ConfinedElectrolyte(h=4.0, c=0.5, d_plus=0.415, d_minus=0.415, sigma_s=-0.01),
                  SimpleNamespace(steps=10, seed=1, preset="production"), good)
    assert result_readable(good)
    data = good.read_bytes()
    (tmp_path / "half.nc").write_bytes(data[: len(data) // 2])
    assert not result_readable(tmp_path / "half.nc")
    assert not result_readable(tmp_path / "missing.nc")
    nan = ds.copy(deep=True)
    nan["n_minus"].values[3] = np.nan
    nan.to_netcdf(tmp_path / "nan.nc", engine="h5netcdf")
    assert not result_readable(tmp_path / "nan.nc")
    ds.drop_vars("n_plus_err").to_netcdf(tmp_path / "noerr.nc", engine="h5netcdf")
    assert not result_readable(tmp_path / "noerr.nc")


def test_a_copied_campaign_directory_consolidates_its_own_results(tmp_path):
    """The ledger records absolute result paths; consolidation reads the directory it is given instead, so a
    copy is consolidated from its own files, and still when the original is gone."""
    import shutil

    from mdsurrogate.dataset import consolidate

    run_campaign(small_spec(n_c=1), tmp_path / "orig", run_fn=SYNTH)
    shutil.copytree(tmp_path / "orig", tmp_path / "copy")
    with Ledger(tmp_path / "orig" / "ledger.sqlite") as led:
        rid = led.rows("done")[0].run_id
    result_path(tmp_path / "orig", rid).unlink()  # the original changes (here: loses a result) after the copy
    ds = consolidate(tmp_path / "copy")
    assert rid in set(ds["run_id"].values.astype(str)) and ds.sizes["system"] == 2
    shutil.rmtree(tmp_path / "orig")
    assert consolidate(tmp_path / "copy").sizes["system"] == 2
