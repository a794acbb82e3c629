"""The Parsl path: a small real-MD campaign through HighThroughputExecutor + LocalProvider (as in CI), and the
SLURM/PBS configurations built (not submitted)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from mdsurrogate.campaign.execute import campaign_status, result_path, run_campaign
from mdsurrogate.campaign.ledger import Ledger
from mdsurrogate.campaign.parsl_configs import pbs_config, resolve_config, slurm_config
from mdsurrogate.campaign.spec import parse_spec

parsl = pytest.importorskip("parsl")


def _spec(run_engine: bool):
    controls = {"steps": 300, "n_blocks": 4, "overrides": {"block_steps": 50}, "seeds": [1]} if run_engine \
        else {"steps": 1000, "seeds": [1, 13]}
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
