"""The studies (`mdsurrogate study ...`): the shared runner (resume, refusals, provenance) and each study's numbers on
small synthetic datasets built from a known function, or on the committed dataset and shipped surrogate."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mdsurrogate.dataset import from_profiles, inputs_array, save, separation_indices, system_groups
from mdsurrogate.evaluation.speedup import net_speedup
from mdsurrogate.io import BadPath
from mdsurrogate.simulation.system import INPUT_NAMES, N_GRID, PAPER_GRID, system_key
from mdsurrogate.studies import active_learning, ntrain, profiles, separation, speedup, trendlines
from mdsurrogate.studies.runner import DataSource, StudyRun, task_key

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "paper_subset_1000.nc"


def known_profiles(x: np.ndarray) -> dict:
    """A smooth double layer whose shape depends on every input (a known function, not physics)."""
    h, c, dp, dm, s = x
    z = np.linspace(-h / 2, h / 2, N_GRID)
    wall = h / 2 - np.abs(z)
    lam = 0.3 / np.sqrt(c)
    shape = np.exp(-np.clip(wall - dp / 2, 0, None) / lam)
    n_plus = np.where(wall > dp / 2, c * (1 + 40 * abs(s) * shape), 0.0)
    n_minus = np.where(wall > dm / 2, c * (1 - 20 * abs(s) * shape), 0.0)
    err = 0.01 * c + 0.0 * z
    return {"z": z, "n_plus": n_plus, "n_minus": n_minus, "n_plus_err": err, "n_minus_err": err}


def synthetic_file(tmp: Path, n: int = 120, seed: int = 0, name: str = "synthetic.nc") -> Path:
    """n distinct systems of the papers' grid with `known_profiles` (no noise) and a run time each."""
    rng = np.random.default_rng(seed)
    grid = np.array(np.meshgrid(*[PAPER_GRID[k] for k in ("h", "c", "d_plus", "d_minus", "sigma_s")],
                                indexing="ij")).reshape(5, -1).T
    pick = grid[rng.choice(len(grid), size=n, replace=False)]
    records = [{"inputs": dict(zip(("h", "c", "d_plus", "d_minus", "sigma_s"), map(float, x))), **known_profiles(x),
                "run_id": f"run{i}", "meta": {"wall_time_s": 30.0 + i % 3}} for i, x in enumerate(pick)]
    path = tmp / name
    save(from_profiles(records), path)
    return path


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return synthetic_file(tmp_path_factory.mktemp("synth"))


def _study(name: str, out: Path, data: Path | None = None, **kw) -> StudyRun:
    return StudyRun(name, out, 0, {}, data=DataSource.of([data]) if data else None, **kw)


# -- runner ----------------------------------------------------------------------------------------------------


def _count_call(counter: str, value: int) -> dict:
    Path(counter).open("a").write("x")
    return {"value": value * 2}


def test_runner_caches_tasks_and_resumes(tmp_path):
    counter = tmp_path / "calls.txt"
    run1 = _study("demo", tmp_path / "out")
    tasks = [(task_key("t", i), _count_call, {"counter": str(counter), "value": i}) for i in range(3)]
    assert {k: v["value"] for k, v in run1.run_tasks("t", tasks[:2]).items()} == {tasks[0][0]: 0, tasks[1][0]: 2}
    run2 = _study("demo", tmp_path / "out")  # a rerun: only the missing task runs
    got = run2.run_tasks("t", tasks)
    assert counter.read_text() == "xxx"
    assert got[tasks[2][0]] == {"value": 4}
    rec = run2.finish({"answer": 42}, "| a |\n", n_systems=7)
    saved = json.loads((tmp_path / "out" / "study.json").read_text())
    assert saved["results"] == {"answer": 42} and saved["n_systems"] == 7 and saved["study"] == "demo"
    assert {"git_commit", "mdsurrogate_version", "torch_version"} <= set(saved["provenance"])
    assert rec["seed"] == 0 and (tmp_path / "out" / "table.md").read_text().startswith("# Study `demo` on 7")


def _fail_on_two(value: int) -> dict:
    if value == 2:
        raise ValueError("bad value 2")
    return {"value": value}


def test_runner_keeps_every_success_when_a_task_fails(tmp_path):
    run = _study("demo", tmp_path / "out", workers=2)
    tasks = [(task_key("f", i), _fail_on_two, {"value": i}) for i in range(4)]
    with pytest.raises(RuntimeError, match="1 of 4 tasks failed.*bad value 2"):
        run.run_tasks("t", tasks)
    cached = {p.stem for p in (tmp_path / "out" / "cache").glob("*.json")}
    assert cached == {tasks[i][0] for i in (0, 1, 3)}


def test_refused_study_leaves_no_folder(tmp_path, synth):
    study = _study("ntrain", tmp_path / "never", synth)
    with pytest.raises(ValueError, match="sizes must be in"):
        ntrain.run(study, sizes=[1000], n_test=20)
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("args, message", [
    (["ntrain", "--seed", "-1"], "--seed must be an integer in [0, 4294967295], got -1"),
    (["separation", "--members", "0"], "--members must be an integer in [1, 64], got 0"),
    (["ntrain", "--members", "65"], "--members must be an integer in [1, 64], got 65"),
    (["ntrain", "--sizes", ","], "--sizes must list at least one integer"),
    (["separation", "--fractions", ""], "--fractions must list at least one finite number")])
def test_study_cli_refuses_out_of_range_seed_and_members(tmp_path, synth, args, message):
    from typer.testing import CliRunner

    from mdsurrogate.cli import app

    res = CliRunner().invoke(app, ["study", args[0], str(synth), "-o", str(tmp_path / "s"), *args[1:]])
    assert res.exit_code != 0 and message in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "s").exists()


def test_runner_refuses_foreign_folders(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep")
    with pytest.raises(BadPath, match="not a study folder"):
        _study("ntrain", tmp_path / "notes")
    _study("ntrain", tmp_path / "s").cached("k", lambda: {"x": 1})  # the first write marks the folder
    with pytest.raises(BadPath, match="holds the study 'ntrain'"):
        _study("separation", tmp_path / "s")
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep"


def test_data_source_hashes_and_errors(tmp_path, synth):
    src = DataSource.of([synth])
    assert len(src.sha256[0]) == 64 and src.load().sizes["system"] == 120
    with pytest.raises(BadPath, match="DATA: .* does not exist"):
        DataSource.of([tmp_path / "missing.nc"])


# -- ntrain ----------------------------------------------------------------------------------------------------


def test_power_law_fits_recover_known_parameters():
    n = np.array([150, 300, 550, 1050, 1550, 2050, 3550], float)
    e = 0.02 + 0.9 * n ** -0.6
    fit = ntrain.fit_power_laws(n, e)["saturating"]
    assert fit["E_inf"] == pytest.approx(0.02, rel=1e-3) and fit["b"] == pytest.approx(0.6, rel=1e-3)
    # N_conv: E_fit(N) = 1.05 E_inf  <=>  0.9 N^-0.6 = 0.05 x 0.02
    assert fit["N_conv"] == pytest.approx((0.9 / 0.001) ** (1 / 0.6), rel=1e-2)
    pure = ntrain.fit_power_laws(n, 0.5 * n ** -0.4)["power_law"]
    assert pure["b"] == pytest.approx(0.4, rel=1e-6) and pure["a"] == pytest.approx(0.5, rel=1e-6)


def test_ntrain_splits_fixed_test_nested_training():
    groups = np.arange(100)
    test, trains = ntrain.split_rows(groups, 20, [10, 30, 80], 3, seed=4)
    assert len(test) == 20
    for r in range(3):
        a, b, c = (set(trains[(n, r)]) for n in (10, 30, 80))
        assert a < b < c and not (c & set(test)) and len(c) == 80
    assert set(trains[(10, 0)]) != set(trains[(10, 1)])  # repeats draw different training sets
    assert ntrain.default_test_size(1495) == 500 and ntrain.default_test_size(400) == 80


def test_ntrain_defaults_on_the_full_grid_and_the_shared_largest_set():
    """3888 systems: a 500-system test set, the paper's sizes up to 3050 and then all 3388 others; at that last
    size every repeat trains on the same systems (so the study leaves it out of the fits)."""
    assert ntrain.default_test_size(3888) == 500
    sizes = ntrain.default_sizes(3388)
    assert sizes[-2:] == [3050, 3388] and sizes[0] == 150 and len(sizes) == 15
    _, trains = ntrain.split_rows(np.arange(120), 20, [50, 100], 3, seed=1)
    assert len({tuple(trains[(100, r)]) for r in range(3)}) == 1 < len({tuple(trains[(50, r)]) for r in range(3)})


def test_n_conv_bootstrap_brackets_the_truth_and_flags_extrapolation():
    n = np.array([150, 300, 550, 1050, 1550, 2050, 3050], float)
    rng = np.random.default_rng(0)
    true = 0.02 + 0.9 * n ** -0.6
    per_size = [t * (1 + 0.01 * rng.standard_normal(10)) for t in true]
    b = ntrain.n_conv_bootstrap(n, per_size, n_boot=100, seed=1)
    n_conv = (0.9 / 0.001) ** (1 / 0.6)  # 84 000: far beyond the data
    assert b["n_boot"] > 50 and b["beyond_largest_N"] > 0.9 and b["N_conv_p84"] > n.max()
    assert b["N_conv_p16"] < n_conv * 3


def test_ntrain_study_error_falls_with_more_training_data(tmp_path, synth):
    study = _study("ntrain", tmp_path / "nt", synth)
    rec = ntrain.run(study, sizes=[8, 60], repeats=2, n_test=30, epochs=300)
    rows = {r["N_train"]: r for r in rec["results"]["test"]}
    assert rows[60]["E"] < 0.7 * rows[8]["E"]  # a smooth known function: more data, lower error
    assert rec["results"]["sizes"] == [8, 60] and rec["n_systems"] == 120
    assert rows[8]["distinct_sets"] == 2 and rows[60]["distinct_sets"] == 2  # 60 of the 90 left: sets differ
    assert len(rec["results"]["test_systems"]) == 30
    runs = rec["results"]["runs"]
    assert len(runs) == 4 and np.mean([r["test"]["test"]["E"] for r in runs if r["N_train"] == 60]) == \
        pytest.approx(rows[60]["E"])
    for f in ("figure_error_vs_ntrain.png", "figure_success_rate.png", "table.md", "study.json"):
        assert (tmp_path / "nt" / f).stat().st_size > 0


def test_a_study_reports_from_its_cache_without_training(tmp_path, synth):
    ntrain.run(_study("ntrain", tmp_path / "nt", synth), sizes=[8], repeats=1, n_test=30, epochs=30)
    partial = _study("ntrain", tmp_path / "nt", synth)
    partial.from_cache = True
    rec = ntrain.run(partial, sizes=[8, 60], repeats=2, n_test=30, epochs=30)
    assert not rec["complete"] and rec["tasks_missing"] == 3
    assert [(r["N_train"], r["repeats"]) for r in rec["results"]["test"]] == [(8, 1)]
    assert "**Partial:** 3 of" in (tmp_path / "nt" / "table.md").read_text()
    assert len(list((tmp_path / "nt" / "cache").glob("*.json"))) == 1  # nothing was trained


# -- separation ------------------------------------------------------------------------------------------------


def test_separation_indices_move_a_fraction_back(synth):
    ds = DataSource.of([synth]).load()
    held = np.flatnonzero(np.isclose(ds["c"].values, 1.0))
    tr0, te0 = separation_indices(ds, {"c": [1.0]}, 0.0)
    assert set(te0) == set(held) and not set(tr0) & set(held)
    tr5, te5 = separation_indices(ds, {"c": [1.0]}, 0.5, seed=1)
    assert len(te5) == len(held) - round(0.5 * len(held)) and set(te5) < set(held)
    assert len(tr5) + len(te5) == ds.sizes["system"]


def test_separation_refuses_holdouts_that_name_nothing(tmp_path, synth):
    ds = DataSource.of([synth]).load()
    with pytest.raises(ValueError, match="finite values"):
        separation.resolve_holdout(ds, {"c": [float("nan")]})
    with pytest.raises(ValueError, match="'z_p' is not an input"):
        separation.resolve_holdout(ds, {"z_p": [1.0]})


def test_separation_study_counts_and_net_speedup(tmp_path, synth):
    study = _study("separation", tmp_path / "sep", synth)
    rec = separation.run(study, holdouts={"c=1.0": {"c": [1.0]}, "c=0.3": {"c": [0.3]}}, fractions=(0.0, 0.01, 0.5),
                         epochs=20, parallel_runs=2)
    res = rec["results"]
    assert any("c = 0.3 is not in the dataset" in n for n in res["notes"])  # the nearest grid value is used
    ds = DataSource.of([synth]).load()
    n_held = int(np.isclose(ds["c"].values, 1.0).sum())
    assert round(0.01 * n_held) == 0  # f = 1 % moves no system here: the same training as f = 0
    rows = [r for r in res["rows"] if r["holdout"] == "c=1.0"]
    assert [r["f"] for r in rows] == [0.0, 0.01, 0.5]  # both rows kept (one shared cache key)
    assert rows[0]["E"] == rows[1]["E"] and rows[1]["f moved"] == 0.0
    assert rows[2]["f moved"] == pytest.approx(round(0.5 * n_held) / n_held)
    assert [r["N_test"] for r in rows] == [n_held, n_held, n_held - round(0.5 * n_held)]
    assert res["speedup"]["S_HPC"] == pytest.approx(2.0)
    assert res["speedup"]["t_seq_s"] == pytest.approx(float(np.median(ds["wall_time_s"].values)))
    n0 = 120 - n_held
    for r in rows:
        # eq. 10 on the coarse grid (the kept systems, all trained on) doubled by the held-out values
        assert r["S' eq. 10"] == pytest.approx(2 * 2.0 / (1 + r["f"]))
        assert r["S' eq. 10"] == pytest.approx(net_speedup(2.0, n0, n0, r["f"]))  # eq. 9, the same
        assert r["S' this split"] == pytest.approx(2.0 * 120 / r["N_train"])  # runs actually needed
    assert rows[0]["S_B"] == pytest.approx(2.0 * 120 / n0) and rows[0]["N_train"] == n0


# -- speedup ---------------------------------------------------------------------------------------------------


def test_speedup_curves_reproduce_the_papers_inset_and_break_even():
    c = speedup.curves(24 * 3600, 3.5 * 3600, 0.3, 0.0, [150, 3550], 500, 800, [1, 10, 1e6])
    eq5 = {r["N_train"]: r["S/S_HPC (eq. 5)"] for r in c["vs_n_train"]}
    assert eq5[150] == pytest.approx(4.33, abs=0.01) and eq5[3550] == pytest.approx(1.14, abs=0.01)  # sun2023
    assert c["S_HPC"] == pytest.approx(24 / 3.5)
    assert c["break_even_N_p"] == pytest.approx(800 * 3.5 * 3600 / (24 * 3600 - 0.3))
    # at the break-even number of predictions eq. 4 gives S = 1
    n_star = c["break_even_N_p"]
    assert n_star * 24 * 3600 / (n_star * 0.3 + 800 * 3.5 * 3600) == pytest.approx(1.0)
    with_fit = speedup.curves(100.0, 50.0, 0.0, 1000.0, [100], 500, 100, [1])
    assert with_fit["vs_n_train"][0]["S/S_HPC (eq. 4 + t_fit)"] == pytest.approx(600 * 100 / (100 * 50 + 1000) / 2)
    # t_fit was measured at N_train = 100: at 300 the network trains on 3x the systems, for 3x the time
    scaled = speedup.curves(100.0, 50.0, 0.0, 1000.0, [300], 500, 100, [1])
    assert scaled["vs_n_train"][0]["S/S_HPC (eq. 4 + t_fit)"] == pytest.approx(800 * 100 / (300 * 50 + 3000) / 2)


def test_speedup_prediction_timing_is_measured():
    from mdsurrogate.surrogate.ensemble import Surrogate

    t = speedup.measure_prediction(Surrogate.load(), np.array([4.4, 0.5, 0.415, 0.415, -0.015]), repeats=5)
    assert t["t_p_s"] > 0 and t["t_p_batch_s"] > 0  # times only (never compared: a noisy machine)


# -- softlabels ------------------------------------------------------------------------------------------------


def test_softlabels_records_histories_and_final_weights(tmp_path, synth):
    from mdsurrogate.studies import softlabels

    study = _study("softlabels", tmp_path / "sl", synth)
    rec = softlabels.run(study, sizes=[40], recipes=("default",), n_test=20, epochs=60)
    res = rec["results"]
    assert {r["model"] for r in res["rows"]} == {"BaseNN", "ModNN"}
    ratio = res["ratios"][0]
    base = next(r for r in res["rows"] if r["model"] == "BaseNN")
    mod = next(r for r in res["rows"] if r["model"] == "ModNN")
    assert ratio["E ModNN / BaseNN"] == pytest.approx(mod["E"] / base["E"])
    hist = next(iter(res["histories"].values()))["history"]
    assert hist[-1]["epoch"] <= 60 and all("val_mse" in h for h in hist)
    assert base["val_final/best"] >= 1.0  # the last validation loss is never below the best one


def test_softlabels_scores_the_same_networks_on_a_reference(tmp_path, synth):
    """With the test systems themselves as the 'reference' (same bins), E ref equals E: the wiring is the test's."""
    import xarray as xr

    from mdsurrogate.studies import softlabels

    ds = xr.load_dataset(synth)
    test_rows, _ = ntrain.split_rows(system_groups(inputs_array(ds)), 20, [40], 1, 0)
    ref_file = tmp_path / "ref.nc"
    save(ds.isel(system=np.asarray(test_rows)), ref_file)
    study = _study("softlabels", tmp_path / "sl", synth)
    rec = softlabels.run(study, sizes=[40], recipes=("default",), n_test=20, epochs=60,
                         reference=DataSource.of([ref_file]))
    for row in rec["results"]["rows"]:
        assert row["E ref"] == pytest.approx(row["E"], rel=1e-5)
        assert row["E_I+ ref"] == pytest.approx(row["E_I+"], rel=1e-5)
    ratio = rec["results"]["ratios"][0]
    assert ratio["E ref ModNN / BaseNN"] == pytest.approx(ratio["E ModNN / BaseNN"], rel=1e-5)
    assert "E ref" in (tmp_path / "sl" / "table.md").read_text()


def test_softlabels_repeats_give_paired_ratios_with_errors(tmp_path, synth):
    from mdsurrogate.studies import softlabels

    kw = dict(sizes=[40], recipes=("default",), n_test=20, epochs=60)
    one = softlabels.run(_study("softlabels", tmp_path / "sl", synth), **kw)["results"]
    study, bars = _study("softlabels", tmp_path / "sl", synth), {}
    save = study.save_figure

    def capture(fig, name="figure"):
        if name == "figure_interface_bulk":
            bars.update({c.get_label(): c.patches[0].get_height() for c in fig.axes[0].containers
                         if hasattr(c, "patches")})
        return save(fig, name)

    study.save_figure = capture
    two = softlabels.run(study, repeats=2, **kw)["results"]
    # the interface/bulk bars are the means over both repeats, as in table.md
    mean = {r["model"]: r for r in two["mean_rows"]}
    assert bars == pytest.approx({f"{m} {part}": mean[m][f"MSE_{part}"] for m in ("BaseNN", "ModNN")
                                  for part in ("interface", "bulk")})
    assert [r for r in two["rows"] if r["repeat"] == 0] == one["rows"]  # repeat 0 is the cached single run
    per = {(r["model"], r["repeat"]): r["E"] for r in two["rows"]}
    assert per[("BaseNN", 1)] != per[("BaseNN", 0)]  # another training set and seed
    pairs = [per[("ModNN", k)] / per[("BaseNN", k)] for k in (0, 1)]
    ratio = two["ratios"][0]
    assert ratio["repeats"] == 2 and ratio["E ModNN / BaseNN"] == pytest.approx(np.mean(pairs))
    assert ratio["E ModNN / BaseNN SE"] == pytest.approx(np.std(pairs, ddof=1) / np.sqrt(2))
    mean_base = next(r for r in two["mean_rows"] if r["model"] == "BaseNN")
    assert mean_base["repeats"] == 2 and mean_base["E"] == pytest.approx((per[("BaseNN", 0)] + per[("BaseNN", 1)]) / 2)
    with pytest.raises(ValueError, match="repeats must be in"):
        softlabels.run(_study("softlabels", tmp_path / "x", synth), repeats=0, **kw)


# -- sensitivity, trendlines, profiles (the shipped surrogate) -------------------------------------------------


def test_sensitivity_study_contact_point_is_set_by_the_cation(tmp_path):
    from mdsurrogate.studies import sensitivity

    rec = sensitivity.run(_study("sensitivity", tmp_path / "se"), n=256, cases=(0.3,))
    rows = rec["results"]["cases"]["0.3"]["at_paper_z"]
    for r in rows:
        if np.isfinite(r["share S+ (%)"]):
            assert r["share S+ (%)"] + r["share S- (%)"] == pytest.approx(100.0)
    contact = next(r for r in rows if r["z"] == "I")  # z = -2.05 nm = r d+/2: anions (d- 0.6) cannot get there
    assert contact["share S+ (%)"] > 90.0  # kadupitiya2021: S+ > 99 %
    assert rec["results"]["cases"]["0.3"]["n_evaluations"] == 256 * 4


def test_trendline_features_of_a_known_sweep(tmp_path):
    from mdsurrogate.analysis.sweeps import sweep
    from mdsurrogate.surrogate.ensemble import Surrogate

    sur = Surrogate.load()
    sw = sweep(sur, trendlines.BASE, "c", [0.5, 1.5])
    feats = trendlines.features(sw)
    for i, f in enumerate(feats):
        half = sw.sizes["point"] // 2
        assert f["n+ contact (M)"] == pytest.approx(float(sw["n_plus"].values[i, :half].max()))
    assert feats[1]["n+ mid (M)"] > 2 * feats[0]["n+ mid (M)"]  # three times the salt: bulk density follows c
    rec = trendlines.run(_study("trendlines", tmp_path / "tr"), sur=sur, n_values=3)
    assert len(rec["results"]["tables"]["h"]) == 3 and (tmp_path / "tr" / "figure_sweeps.png").is_file()


def test_profiles_study_uses_only_unseen_systems(tmp_path):
    from mdsurrogate.surrogate.ensemble import Surrogate

    sur = Surrogate.load()
    study = _study("profiles", tmp_path / "pr", DATA)
    ds = study.data.load()
    rows = profiles.unseen_rows(ds, sur)
    # this file's systems in the shipped surrogate's test split (the card's other list), whatever it trained on
    held_out = set(sur.card["training_data"]["test_systems"])
    keys = [system_key(dict(zip(INPUT_NAMES, map(float, x)))) for x in inputs_array(ds)]
    assert len(rows) == sum(k in held_out for k in keys) > 0
    rec = profiles.run(study, sur=sur, n_systems=2)
    trained = set(sur.card["training_data"]["train_systems"])
    for p in rec["results"]["systems"]:
        assert system_key(p["inputs"]) not in trained
    k = np.asarray(rec["results"]["curves"]["E_k"])
    assert k.shape == (2 * N_GRID,) and np.all(k >= 0)
    # one network (no ensemble spread): the same study, without the band
    one = Surrogate(members=sur.members[:1], card=sur.card)
    single = profiles.run(_study("profiles", tmp_path / "pr1", DATA), sur=one, n_systems=2)
    assert (tmp_path / "pr1" / "figure_profiles.png").exists() and single["complete"]


# -- active learning -------------------------------------------------------------------------------------------


def test_simulations_to_reach_interpolates():
    n, e = np.array([50, 75, 100]), np.array([0.3, 0.2, 0.1])
    assert active_learning.simulations_to_reach(n, e, 0.15) == pytest.approx(87.5)
    assert active_learning.simulations_to_reach(n, e, 0.05) == float("inf")
    assert active_learning.simulations_to_reach(n, e, 0.4) == 50


def test_reach_bootstrap_brackets_the_ratio():
    n = [50, 100, 150, 200]
    rnd = [[0.4, 0.3, 0.2, 0.1], [0.42, 0.31, 0.2, 0.12], [0.38, 0.29, 0.2, 0.08]]
    fast = [[0.4, 0.1, 0.05, 0.04], [0.42, 0.12, 0.06, 0.05], [0.38, 0.08, 0.04, 0.03]]  # at the target by n = 100
    same = [[0.4, 0.3, 0.2, 0.1]] * 3
    curves = {"random": {"n": n, "E_per_seed": rnd}, "fast": {"n": n, "E_per_seed": fast},
              "same": {"n": n, "E_per_seed": same}}
    b = active_learning.reach_bootstrap(curves, n_boot=500, seed=1)
    assert b["fast"]["p16"] >= 2.0 and b["fast"]["fraction_ge_2"] == 1.0
    assert b["random"]["p16"] == pytest.approx(1.0) and b["random"]["fraction_ge_2"] == 0.0
    # a rule whose every seed equals random's mean curve sits at 1x: its spread comes from the target's alone
    assert b["same"]["p16"] <= 1.0 + 1e-9 <= b["same"]["p84"] + 1e-9
    # with many seeds random's own resampled curve must still reach its target (ratio exactly 1, never 0)
    rng = np.random.default_rng(3)
    many = (0.1 + rng.random((10, 4)) * 0.01 + np.array([0.3, 0.2, 0.1, 0.0])).tolist()
    b10 = active_learning.reach_bootstrap({"random": {"n": n, "E_per_seed": many}}, n_boot=300, seed=2)
    assert b10["random"]["p16"] == pytest.approx(1.0) and b10["random"]["p84"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same seeds"):
        active_learning.reach_bootstrap({"random": {"n": n, "E_per_seed": rnd}, "x": {"n": n, "E_per_seed": rnd[:2]}})


class _FakeEnsemble:
    def predict_mean_std(self, X):
        return X[:, :1] * 0, np.repeat(X[:, 1:2], 4, axis=1)  # "spread" = the concentration


def test_acquisition_rules_choose_what_they_say():
    X = np.array([[4.0, c, 0.415, 0.415, -0.01] for c in (0.1, 0.5, 1.0, 1.5, 2.0)])
    rng = np.random.default_rng(0)
    assert active_learning._select("spread", _FakeEnsemble(), X, [0], [1, 2, 3, 4], 2, rng) == [4, 3]
    # coverage: the farthest system from the labelled c = 0.1 is c = 2.0, then the one farthest from both
    assert active_learning._select("coverage", None, X, [0], [1, 2, 3, 4], 2, rng) == [4, 2]
    assert sorted(active_learning._select("random", None, X, [0], [1, 2, 3, 4], 4, rng)) == [1, 2, 3, 4]


def test_active_learning_study_runs_resumably(tmp_path, synth):
    study = _study("active-learning", tmp_path / "al", synth)
    kw = dict(seeds=1, start=10, batch=10, rounds=1, n_test=20, members=2, epochs=40)
    rec = active_learning.run(study, **kw)
    curves = rec["results"]["curves"]
    assert curves["random"]["n"] == [10, 20] == curves["spread"]["n"]
    assert curves["random"]["E_mean"][0] == pytest.approx(curves["spread"]["E_mean"][0])  # same start set
    files = sorted(p.name for p in (tmp_path / "al" / "cache").glob("*-round[0-9]*.json"))
    assert len(files) == 6  # 3 rules x 2 rounds, each cached as it finished
    again = active_learning.run(_study("active-learning", tmp_path / "al", synth), **kw)
    assert again["results"]["curves"] == curves
    longer = active_learning.run(_study("active-learning", tmp_path / "al", synth), **{**kw, "rounds": 2})
    for rule, c in longer["results"]["curves"].items():  # a longer chain continues the cached one
        assert c["n"] == [10, 20, 30] and c["E_mean"][:2] == curves[rule]["E_mean"]


def test_softlabels_and_active_learning_refuse_bad_test_sizes(tmp_path, synth):
    from mdsurrogate.studies import softlabels

    with pytest.raises(ValueError, match="n_test must be in"):
        softlabels.run(_study("softlabels", tmp_path / "a", synth), sizes=[10], n_test=-5)
    with pytest.raises(ValueError, match="n_test must be in"):
        active_learning.run(_study("active-learning", tmp_path / "b", synth), n_test=-5)


def test_cli_lists_every_study():
    out = subprocess.run([sys.executable, "-c", "from mdsurrogate.cli import main; main()", "study", "--help"],
                         capture_output=True, text=True, check=True).stdout
    listed = set(re.findall(r"^\W+([a-z][a-z0-9-]+)\s{2,}\S", out, flags=re.M))  # first word of each command row
    assert listed >= {"ntrain", "separation", "speedup", "softlabels", "sensitivity", "trendlines", "profiles",
                      "active-learning", "kadupitiya2020"}


def test_cli_refuses_bad_options_in_one_line(tmp_path, synth):
    cmd = [sys.executable, "-c", "from mdsurrogate.cli import main; main()", "study", "ntrain", str(synth),
           "-o", str(tmp_path / "x"), "--sizes", "5,1000", "--n-test", "20"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode != 0 and "sizes must be in [2, 100]" in (r.stdout + r.stderr)
    assert not (tmp_path / "x").exists()


def test_studies_refuse_the_uncharged_system_in_one_line():
    src = DataSource.of([ROOT / "tests" / "data" / "uncharged_small.nc"])
    with pytest.raises(ValueError, match="uncharged-wall datasets .* have their own study"):
        src.load()
    charged = DataSource.of([ROOT / "data" / "paper_subset_1000.nc"], system="uncharged")
    with pytest.raises(ValueError, match="needs a dataset of the uncharged-wall system .* holds the charged"):
        charged.load()


def test_groups_are_systems(synth):
    ds = DataSource.of([synth]).load()
    assert np.unique(system_groups(inputs_array(ds))).size == 120


def test_provenance_commit_is_dirty_only_for_changes_under_the_package(tmp_path):
    """Results written into tracked folders (docs/studies) do not mark the code that wrote them as dirty."""
    import subprocess

    from mdsurrogate.provenance import commit_of

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "pkg").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "pkg" / "code.py").write_text("x = 1\n")
    (tmp_path / "docs" / "table.md").write_text("old\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    sha = commit_of(tmp_path / "pkg")
    assert len(sha) == 40
    (tmp_path / "docs" / "table.md").write_text("new result\n")
    (tmp_path / "pkg" / "new_untracked.py").write_text("")
    assert commit_of(tmp_path / "pkg") == sha
    (tmp_path / "pkg" / "code.py").write_text("x = 2\n")
    assert commit_of(tmp_path / "pkg") == sha + "+dirty"
    assert commit_of(tmp_path / "docs") == sha + "+dirty"
    assert commit_of(tmp_path.parent / "no-such-folder") == "unknown"
