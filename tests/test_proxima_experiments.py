"""Hop detection (Wigner-Seitz), experiment summaries and the CLI of the proxima stage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdsurrogate.proxima.experiments import max_dvdt, modelled_speedup
from mdsurrogate.proxima.hops import (
    assign_sites,
    count_hops,
    diamond_sites_frac,
    rate_with_se,
    vacancy_track,
    vacant_site,
)
from mdsurrogate.proxima.targets import density_g_cc, si_vacancy_cell


def test_vacant_site_and_hop_with_drift():
    sites = diamond_sites_frac(2)
    assert len(sites) == 64
    atoms = si_vacancy_cell()
    cell = atoms.cell.array
    assert vacant_site(atoms.positions, cell, sites) == 0
    # move the atom on a nearest-neighbour site of the vacancy into the vacancy: the vacancy hops there
    d = sites - sites[0]
    d -= np.round(d)
    nn = int(np.argsort(np.linalg.norm(d @ cell, axis=1))[1])
    moved = atoms.positions.copy()
    k = int(np.flatnonzero(assign_sites(atoms.positions, cell, sites) == nn)[0])
    moved[k] = sites[0] @ cell + 0.3 * (moved[k] - sites[0] @ cell) / 10
    assert vacant_site(moved, cell, sites) == nn
    # a uniform drift of every atom by most of a bond is removed before assignment
    drift = np.array([1.1, 0.7, -0.9])
    traj = np.stack([atoms.positions, atoms.positions + drift, moved + drift])
    assert list(vacancy_track(traj, cell, sites)) == [0, 0, nn]
    # two atoms on one site is not a valid state
    bad = atoms.positions.copy()
    bad[1] = bad[2] + 0.1
    assert vacant_site(bad, cell, sites) == -1


def test_count_hops_with_dwell_filter():
    assert count_hops(np.array([0, 0, 5, 5, 5, 0, 0, 0]), min_dwell=3) == 2
    assert count_hops(np.array([0, 5, 0, 5, 0, 5, 0]), min_dwell=2) == 0  # recrossings
    assert count_hops(np.array([0, 5, 0, 5, 0, 5, 0]), min_dwell=1) == 6
    assert count_hops(np.array([-1, 0, -1, 5, -1, 5, 5, 7, 7, 7]), min_dwell=3) == 2
    assert count_hops(np.array([-1, -1]), min_dwell=1) == 0


def test_rate_se_density_dvdt_speedup():
    mean, se = rate_with_se([2.0, 3.0, 4.0])
    assert mean == 3.0 and se == pytest.approx(1.0 / np.sqrt(3))
    assert density_g_cc(64, 5.431**3 * 8) == pytest.approx(2.329, abs=2e-3)  # crystalline Si
    v = np.array([0.0, 1.0, 3.0, 3.0])
    assert max_dvdt(v, 1.0) == pytest.approx(1.5)  # central differences
    # paper: ~4 s DFT, 0.2 s surrogate; 2048 steps of which 30 % target -> 2048*4/(614*4+2048*0.2)
    assert modelled_speedup(2048, 614, 4.0, 0.2) == pytest.approx(2048 * 4 / (614 * 4 + 2048 * 0.2))
    assert modelled_speedup(100, 100, 4.0, 0.0) == 1.0


def test_npt_experiment_tiny(tmp_path):
    import torch

    from mdsurrogate.proxima.experiments import ExperimentSettings, npt_experiment

    torch.set_num_threads(1)
    es = ExperimentSettings(seeds=[0], steps=40, n_pretrain=24, epochs=1, target_err=50.0,
                            min_target_fraction=0.1)
    s = npt_experiment(tmp_path, es)
    assert set(s["conditions"]) == {"target", "proxima", "blend"}
    runs = s["runs"]
    assert runs["target_seed0"]["surrogate_calls"] == 0 and runs["target_seed0"]["target_calls"] == 41
    # a loose error bound: after the 8-call warm-up PROXIMA uses the surrogate
    assert runs["proxima_seed0"]["surrogate_calls"] > 0
    assert runs["proxima_seed0"]["target_calls"] + runs["proxima_seed0"]["surrogate_calls"] == 41
    lines = (tmp_path / "logs" / "blend_seed0.jsonl").read_text().splitlines()
    rec = json.loads(lines[-1])
    for key in ("step_time_s", "energy", "max_force", "volume", "temperature", "used_surrogate", "lambda_target",
                "uq", "error", "threshold", "alpha", "target_calls", "surrogate_calls", "model_version"):
        assert key in rec
    assert len(lines) == 41
    assert (tmp_path / "fig3_boxplots.png").exists() and (tmp_path / "fig2_volume_trace.png").exists()
    assert 2.0 < s["conditions"]["target"]["density_g_cc_mean"] < 2.5
    # the ensemble learned from a target run of another velocity seed, never from seed 0's own trajectory
    assert (tmp_path / "pretrain" / "logs" / "target_seed1000.jsonl").exists()
    assert not (tmp_path / "pretrain" / "logs" / "target_seed0.jsonl").exists()


def test_cli_lists_commands():
    from typer.testing import CliRunner

    from mdsurrogate.cli import app

    res = CliRunner().invoke(app, ["proxima", "--help"])
    assert res.exit_code == 0
    for cmd in ("npt", "hops", "cost", "smoke"):
        assert cmd in res.output


def test_high_freq_rms_sees_jitter_not_slow_oscillation():
    from mdsurrogate.proxima.experiments import high_freq_rms

    t = np.arange(2000.0)
    slow = 1260 + 40 * np.sin(2 * np.pi * t / 300)
    jitter = 0.5 * np.where(np.arange(2000) % 2 == 0, 1.0, -1.0)
    assert high_freq_rms(slow) < 0.05
    assert high_freq_rms(slow + jitter) == pytest.approx(0.5, rel=0.1)


def test_a_training_run_returns_at_most_the_frames_training_can_use(tmp_path):
    """A target run's frames travel back to the parent subsampled to n_pretrain, evenly (not all 12 kB x steps)."""
    import torch

    from mdsurrogate.proxima.experiments import ExperimentSettings, _one_run
    from mdsurrogate.proxima.md import MDSettings

    torch.set_num_threads(1)
    es = ExperimentSettings(seeds=[0], steps=12, n_pretrain=5)
    md = MDSettings(kind="npt", temperature_K=800.0, steps=es.steps)
    *_, counts, frames = _one_run("target", 1000, es, md, tmp_path, None, True)
    assert counts["target_calls"] == 13 and len(frames) == 5
    energies = [f.get_potential_energy() for f in frames]
    assert len(set(energies)) == 5  # five different steps, first to last
