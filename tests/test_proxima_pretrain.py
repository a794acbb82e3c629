"""Pre-training of the PROXIMA ensemble (issue 16): target frames at both temperatures, the validation curve with
early stopping and best-state restore, the controller statistics and the modelled runtimes (paper Fig. 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdsurrogate.proxima.experiments import controller_stats, run_runtimes
from mdsurrogate.proxima.pretrain import PretrainSettings, collect_frames, score
from mdsurrogate.proxima.surrogate import EnsembleSurrogate, SurrogateConfig
from mdsurrogate.proxima.targets import lammps_si


@pytest.fixture(scope="module")
def frames():
    ps = PretrainSettings(equil_steps=20, sample_every=5)
    hot = collect_frames("nvt", 1573.0, [1000, 1001], 24, ps)
    npt = collect_frames("npt", 800.0, [1000], 12, ps)
    return hot, npt


def test_frames_carry_the_target_results(frames):
    hot, npt = frames
    assert len(hot) == 24 and len(npt) == 12
    assert {f.info["seed"] for f in hot} == {1000, 1001}
    steps = [f.info["step"] for f in hot if f.info["seed"] == 1000]
    assert np.all(np.diff(steps) == 5) and steps[0] == 25  # every sample_every steps after the equilibration
    sw = lammps_si("sw")
    for fr in (hot[3], npt[-1]):
        at = fr.copy()
        at.calc = sw
        np.testing.assert_allclose(at.get_forces(), fr.get_forces(), atol=1e-8)
        np.testing.assert_allclose(at.get_potential_energy(), fr.get_potential_energy(), atol=1e-8)
    # NPT frames come from a moving cell, NVT frames from the fixed one
    assert len({round(f.get_volume(), 6) for f in npt}) > 1
    assert len({round(f.get_volume(), 6) for f in hot}) == 1


def test_training_curve_keeps_the_best_state_and_stops(frames):
    hot, npt = frames
    cfg = SurrogateConfig(epochs=30, batch_size=8, valid_fraction=0.25, valid_every=1, patience=2, lr=3e-2)
    sur = EnsembleSurrogate(cfg)
    logs = sur.fit(hot + npt, np.random.default_rng(0))
    for log in logs:
        curve = log["curve"]
        assert [c["epoch"] for c in curve] == list(range(1, len(curve) + 1))
        best = min(c["valid_force_mae"] for c in curve)
        assert log["valid_force_mae"] == pytest.approx(best, rel=1e-5)  # the kept state is the best one
        assert curve[log["best_epoch"] - 1]["valid_force_mae"] == pytest.approx(best)
        if log["epochs_run"] < cfg.epochs:  # stopped early: the last `patience` checks did not improve by 1 %
            ref = min(c["valid_force_mae"] for c in curve[:-cfg.patience])
            assert all(c["valid_force_mae"] >= 0.99 * ref for c in curve[-cfg.patience:])
    assert any(log["epochs_run"] < cfg.epochs for log in logs)  # the patience rule stopped a member
    s = score(sur, hot[:6])
    assert s["n_frames"] == 6 and len(s["max_atom_errors"]) == 6
    assert s["max_atom_error_mean"] == pytest.approx(np.mean(s["max_atom_errors"]))
    state = sur.get_state()
    assert EnsembleSurrogate.from_state(state).config.patience == 2


def test_controller_stats():
    n = 512
    used = np.zeros(n)
    used[256:] = 1.0
    err = np.full(n, np.nan)
    err[:256:4] = [0.5, 1.5] * 32
    arr = {"threshold": np.r_[np.full(10, np.nan), np.linspace(0.1, 0.5, n - 10)], "used_surrogate": used,
           "lambda_target": 1.0 - used, "error": err}
    s = controller_stats(arr, bound=0.9, window=256)
    assert s["surrogate_fraction_per_window"] == [0.0, 1.0]
    assert s["surrogate_weight_per_window"] == [0.0, 1.0]
    assert s["error_mean"] == pytest.approx(1.0) and s["error_median"] == pytest.approx(1.0)
    assert s["error_fraction_above_bound"] == pytest.approx(0.5)
    assert s["threshold_last"] == pytest.approx(0.5)


def test_run_runtimes_model():
    runs = {"proxima_seed0": {"target_calls": 10, "surrogate_time_s": 2.0, "wall_s": 5.0},
            "proxima_seed1": {"target_calls": 20, "surrogate_time_s": 3.0, "wall_s": 6.0},
            "target_seed0": {"target_calls": 100, "surrogate_time_s": 0.0, "wall_s": 1.0}}
    assert run_runtimes(runs, "proxima", None) == [5.0, 6.0]
    assert run_runtimes(runs, "proxima", 4.0) == [42.0, 83.0]
    assert run_runtimes(runs, "target", 4.0) == [400.0]


def test_runs_from_a_pretrained_ensemble(frames, tmp_path):
    """--model: the ensemble is used as it is; target-only runs never see it; runs in 2 processes."""
    from mdsurrogate.proxima.experiments import ExperimentSettings, npt_experiment

    hot, npt = frames
    sur = EnsembleSurrogate(SurrogateConfig(epochs=3, batch_size=8))
    sur.fit(hot + npt, np.random.default_rng(1))
    model = sur.save(tmp_path / "ensemble.safetensors")
    es = ExperimentSettings(seeds=[0, 1], steps=40, model=str(model), jobs=2, target_err=50.0,
                            min_target_fraction=0.2)
    s = npt_experiment(tmp_path / "npt", es)
    for seed in (0, 1):
        assert s["runs"][f"target_seed{seed}"]["surrogate_calls"] == 0
    # with a loose bound the surrogate conditions do use the ensemble
    assert sum(s["runs"][f"proxima_seed{k}"]["surrogate_calls"] for k in (0, 1)) > 0
    assert s["train"]["model"] == str(model) and s["conditions"]["proxima"]["target_fraction"] < 1.0


def test_warm_start_continues_from_the_weights(frames):
    """`fit(warm_start=True)` starts from the current members and e0: with lr = 0 nothing moves."""
    hot, npt = frames
    sur = EnsembleSurrogate(SurrogateConfig(epochs=2, batch_size=8, valid_every=1))
    sur.fit(hot, np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="warm_start"):
        EnsembleSurrogate(SurrogateConfig()).fit(hot, np.random.default_rng(0), warm_start=True)
    frozen = EnsembleSurrogate.from_state(sur.get_state())
    frozen.config.lr = 0.0
    frozen.config.epochs = 1
    logs = frozen.fit(hot + npt, np.random.default_rng(0), warm_start=True)
    assert all(log["warm_start"] for log in logs)
    np.testing.assert_array_equal(frozen.e0, sur.e0)  # the energy shift is kept, not refitted on the new frames
    for a, b in zip(frozen.states, sur.states):
        for k in a:
            assert torch.equal(a[k], b[k])
    # a cold start on the same frames does move the weights
    cold = EnsembleSurrogate(SurrogateConfig(epochs=1, batch_size=8))
    cold.fit(hot + npt, np.random.default_rng(0))
    assert not all(torch.equal(cold.states[0][k], sur.states[0][k]) for k in cold.states[0])


def test_lr_decay_on_the_plateau(frames):
    hot, npt = frames
    cfg = SurrogateConfig(epochs=14, batch_size=8, valid_fraction=0.25, valid_every=1, lr=3e-2, lr_decay=0.5)
    logs = EnsembleSurrogate(cfg).fit(hot + npt, np.random.default_rng(0))
    for log in logs:
        lrs = [c["lr"] for c in log["curve"]]
        assert lrs[0] == pytest.approx(3e-2) and all(b <= a for a, b in zip(lrs, lrs[1:]))
        for k in range(1, len(lrs)):
            if lrs[k] < lrs[k - 1]:  # a cut only after two checks without a 1 % gain on the best so far
                assert lrs[k] == pytest.approx(lrs[k - 1] / 2)
                errs = [c["valid_force_mae"] for c in log["curve"][:k]]
                assert min(errs[-2:]) > 0.99 * min(errs[:-2])
    assert any(log["curve"][-1]["lr"] < 3e-2 for log in logs)  # a fast lr on few frames does plateau


def test_quench_frames_go_down_to_a_minimum(frames):
    from mdsurrogate.proxima.pretrain import FRAMES_PER_QUENCH, quench_frames

    hot, _ = frames
    ps = PretrainSettings()
    q = quench_frames(hot, 2 * FRAMES_PER_QUENCH, ps, fmax=0.02)
    assert 2 < len(q) <= 2 * FRAMES_PER_QUENCH and all(f.info["kind"] == "quench" for f in q)
    sw = lammps_si("sw")
    for start in {f.info["from_step"] for f in q}:
        path = [f for f in q if f.info["from_step"] == start]
        e = [f.get_potential_energy() for f in path]
        assert e[-1] < e[0] - 1.0  # a 1573 K frame lies eV above its inherent structure
        assert np.linalg.norm(path[-1].get_forces(), axis=1).max() < 0.02  # relaxed
        at = path[-1].copy()
        at.calc = sw
        assert at.get_potential_energy() == pytest.approx(e[-1], abs=1e-8)


def test_paired_difference():
    from mdsurrogate.proxima.experiments import paired_difference

    ref = {0: 2.0, 1: 2.2, 2: 1.8}
    val = {0: 2.1, 1: 2.4, 2: 1.8, 7: 9.0}  # seed 7 has no target run: not paired
    p = paired_difference(val, ref)
    d = np.array([0.1, 0.2, 0.0])
    assert p["n_pairs"] == 3
    assert p["diff_mean"] == pytest.approx(d.mean())
    assert p["diff_se"] == pytest.approx(d.std(ddof=1) / np.sqrt(3))
    assert p["rel_diff_mean"] == pytest.approx(d.mean() / 2.0)


def test_pretrain_cost_sums_the_init_chain():
    from mdsurrogate.proxima.pretrain import pretrain_cost_s

    first = {"collect_time_s": 100.0, "train_time_s": 1000.0, "init": None}
    second = {"collect_time_s": 10.0, "train_time_s": 200.0, "init": {"path": "a", "card": first}}
    third = {"collect_time_s": 1.0, "train_time_s": 30.0, "init": {"path": "b", "card": second}}
    assert pretrain_cost_s(first) == 1100.0
    assert pretrain_cost_s(third) == 1341.0
    assert pretrain_cost_s({"train_time_s": 5.0, "init": {"path": "c"}}) == 5.0  # an init without its card
