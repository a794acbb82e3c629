"""kadupitiya2020's study on its own system (issue 12): features, scores, backward elimination, the study end to end
on the committed 30-system campaign of the uncharged-wall system, and its command."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mdsurrogate.dataset import load_dataset
from mdsurrogate.evaluation.metrics import success_rate_per_system
from mdsurrogate.studies import kadupitiya2020 as k20
from mdsurrogate.studies.runner import DataSource, StudyRun

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "uncharged_small.nc"


def test_density_features_read_contact_mid_and_peak_of_a_known_profile():
    h, d = np.array([3.0, 4.0]), np.array([0.5, 0.7])
    z = np.stack([np.linspace(-x / 2, x / 2, 150) for x in h])
    # a symmetric profile: layer of height 2 + (row) centred 0.1 nm inside contact, bulk 0.5 + 0.1 z^2
    zc = (h / 2 - d / 2)[:, None]
    n = 0.5 + 0.1 * z ** 2 + (2 + np.arange(2))[:, None] * np.exp(-((np.abs(z) - (zc - 0.1)) / 0.08) ** 2)
    n[np.abs(z) > zc + 0.05] = 0.0
    err = np.full_like(n, 0.02)
    F, E = k20.density_features(z, n, err, h, d)
    for i in range(2):
        assert F[i, 0] == pytest.approx(0.5 + 0.1 * zc[i, 0] ** 2 + (2 + i) * np.exp(-(0.1 / 0.08) ** 2), rel=0.03)
        assert F[i, 1] == pytest.approx(0.5, abs=1e-3)  # z = 0 lies between two points
        assert F[i, 2] == pytest.approx(0.5 + 0.1 * (zc[i, 0] - 0.1) ** 2 + 2 + i, rel=0.03)
    np.testing.assert_allclose(E, 0.02 / np.sqrt(2))  # two independent halves averaged
    # an asymmetric profile is averaged with its mirror image
    F2, _ = k20.density_features(z, n * np.linspace(0.9, 1.1, 150), err, h, d)
    np.testing.assert_allclose(F2[:, 1], F[:, 1], rtol=1e-3)


def test_feature_scores_count_strictly_inside_the_error_bar():
    F = np.zeros((4, 3))
    E = np.full((4, 3), 0.1)
    P = np.array([[0.05, 0.1, -0.2], [0.0, 0.0, 0.0], [0.2, 0.09, 0.0], [-0.05, 0.3, 0.11]])
    s = k20.feature_scores(F, E, P)
    assert s["contact"]["success"] == pytest.approx(0.75)
    assert s["mid"]["success"] == pytest.approx(0.5)  # 0.1 is not < 0.1 (eq. 1's strict step)
    assert s["peak"]["success"] == pytest.approx(0.5)
    assert s["mid"]["mse"] == pytest.approx((0.01 + 0 + 0.0081 + 0.09) / 4)


def test_adjusted_r2_penalises_regressors():
    assert k20.adjusted_r2(0.9, 101, 10) == pytest.approx(1 - 0.1 * 100 / 90)
    assert np.isnan(k20.adjusted_r2(0.9, 10, 9))


def test_backward_elimination_keeps_the_informative_inputs_and_drops_noise_and_constants():
    rng = np.random.default_rng(1)
    n = 400
    X = np.column_stack([rng.uniform(3, 4, n), rng.uniform(0.3, 0.9, n), rng.integers(1, 4, n).astype(float),
                         np.full(n, -1.0), rng.uniform(0.5, 0.75, n), rng.uniform(size=n)])
    y = 0.4 * X[:, 1] + 0.2 * X[:, 2] ** 2 - 0.5 * X[:, 4] + 0.3 * X[:, 0] + rng.normal(0, 0.01, n)
    res = k20.backward_elimination(X, y, list(k20.CANDIDATES), degree=2)
    assert sorted(res["kept"]) == sorted(["h", "c", "z_p", "d"])
    dropped = [s["dropped"] for s in res["steps"] if "dropped" in s]
    assert set(dropped) == {"z_n", "random control"}
    last = res["steps"][-1]
    assert "dropped" not in last and all(res["adj_r2"] - v > 1e-3 for v in last["adj_r2_without"].values())


@pytest.fixture(scope="module")
def small_surrogate():
    from mdsurrogate.surrogate.fit import fit_surrogate
    from mdsurrogate.surrogate.training import default_config

    ds = load_dataset(FIXTURE)
    sur, _ = fit_surrogate(ds, replace(default_config(), max_epochs=300), n_members=2, n_test=0, seed=0,
                           name="k20-test")
    return sur


def test_study_end_to_end_on_the_small_campaign(tmp_path, small_surrogate):
    ds = load_dataset(FIXTURE)
    # MD of one Fig. 6 point: a campaign system relabelled (the study matches inputs; A_i is then checkable)
    md = ds.isel(system=[0]).copy(deep=True)
    for name, v in {"h": 3.0, "c": 0.5, "z_p": 1, "z_n": -1, "d": 0.7}.items():
        md[name].values[:] = v
    md_file = tmp_path / "fig6.nc"
    md.to_netcdf(md_file)
    src = DataSource.of([FIXTURE], system="uncharged")
    study = StudyRun("kadupitiya2020", tmp_path / "out", 0, {}, data=src)
    models = ("baselines", "ann_paper", "ann_ours", "profile")
    rec = k20.run(study, folds=3, models=models, paper_epochs=20, epochs=400, degree=1, paper_folds=1,
                  profile_folds=1, sur=small_surrogate,
                  fig6_md=DataSource.of([md_file], system="uncharged"))
    out = tmp_path / "out"
    for f in ("table.md", "study.json", "figure_table1.png", "figure_parity.png", "figure_elimination.png",
              "figure_fig6.png"):
        assert (out / f).is_file(), f
    assert rec["n_systems"] == 30
    rows = {r["model"]: r for r in rec["results"]["table1"]}
    assert len(rows) == 9  # five baselines, a tuned one, two feature ANNs, the profile surrogate
    assert rows["kernel ridge (rbf, tuned)"]["contact MSE"] < rows["kernel ridge (rbf, gamma 0.1)"]["contact MSE"]
    assert rows[k20.ANN_PAPER]["n_predicted"] == 10 and rows[k20.ANN_OURS]["n_predicted"] == 30
    assert rows[k20.PROFILE]["n_predicted"] == 10
    var = rec["results"]["md_error_bars"]
    for f in k20.FEATURES:
        # better than predicting the mean (the features depend strongly on z_p and c)
        assert rows[k20.ANN_OURS][f"{f} MSE"] < 0.5 * var[f]["var_M2"]
        assert rows["random forest (depth 4, 25 trees)"][f"{f} MSE"] < var[f]["var_M2"]
        assert all(0 <= r[f"{f} success %"] <= 100 for r in rows.values())
    # the elimination (degree 1 on 30 systems) drops the constant z_n (it adds nothing) and keeps z_p
    for el in rec["results"]["elimination"].values():
        assert "z_n" in [s.get("dropped") for s in el["steps"]] and "z_p" in el["kept"]
    pts = rec["results"]["fig6"]["points"]
    assert len(pts) == 6 and all(len(p["pred"]) == 150 for p in pts)
    hit = [p for p in pts if "md" in p]
    assert [(p["c"], p["z_p"]) for p in hit] == [(0.5, 1)] and hit[0]["md_source"] == "fig6_md"
    y, e = md["n_plus"].values, md["n_plus_err"].values
    assert hit[0]["A_i"] == pytest.approx(success_rate_per_system(y, np.asarray(hit[0]["pred"])[None], e,
                                                                  exclude_zero_error=True)[0])
    assert "A_i (paper)" in (out / "table.md").read_text()
    # rerunning the same study trains nothing again (every fold is cached)
    cached = len(list((out / "cache").glob("*.json")))
    assert cached == 3 + 1 + 3 + 1
    again = k20.run(StudyRun("kadupitiya2020", out, 0, {}, data=src, from_cache=True), folds=3, models=models,
                    paper_epochs=20, epochs=400, degree=1, paper_folds=1, profile_folds=1, sur=small_surrogate)
    assert again["complete"] and again["results"]["table1"] == rec["results"]["table1"]
    json.loads((out / "study.json").read_text())


def test_study_refuses_bad_options_and_the_other_system(tmp_path):
    src = DataSource.of([FIXTURE], system="uncharged")
    with pytest.raises(ValueError, match=r"folds must be in \[2, 30\]"):
        k20.run(StudyRun("kadupitiya2020", tmp_path / "a", 0, {}, data=src), folds=31)
    with pytest.raises(ValueError, match=r"paper_folds must be in \[1, 3\]"):
        k20.run(StudyRun("kadupitiya2020", tmp_path / "b", 0, {}, data=src), folds=3, paper_folds=4)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    r = subprocess.run([sys.executable, "-c", "from mdsurrogate.cli import main; main()", "study", "kadupitiya2020",
                        str(ROOT / "data" / "paper_subset_1000.nc"), "-o", str(tmp_path / "c")],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "needs a dataset of the uncharged-wall system" in (r.stdout + r.stderr)
    assert "Traceback" not in r.stderr
    # options checked before any fold trains (an --epochs 0 used to fail inside the tasks)
    from typer.testing import CliRunner

    from mdsurrogate.cli import app

    for args, message in ((["--epochs", "0"], "--epochs must be an integer in [1, 1000000], got 0"),
                          (["--models", ","], "--models must list at least one")):
        res = CliRunner().invoke(app, ["study", "kadupitiya2020", str(FIXTURE), "-o", str(tmp_path / "d"), *args])
        assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "d").exists()


def test_folds_keep_replicas_of_a_system_together():
    import xarray as xr
    from sklearn.model_selection import KFold

    ds = load_dataset(FIXTURE)
    n = ds.sizes["system"]
    plain = k20.system_folds(ds, 5, seed=3)  # no replicas: scikit-learn's row folds, as the cached results used
    for (tr, te), (a, b) in zip(plain, KFold(5, shuffle=True, random_state=3).split(np.arange(n))):
        assert np.array_equal(tr, a) and np.array_equal(te, b)
    twin = ds.isel(system=[0, 1, 2, 3])
    twin = twin.assign(run_id=("system", [f"{r}-replica" for r in twin["run_id"].values.astype(str)]))
    both = xr.concat([ds, twin], dim="system")
    for tr, te in k20.system_folds(both, 5, seed=3):
        for i in range(4):  # row i and its replica n + i fall on the same side of every fold
            assert (i in te) == (n + i in te) and (i in tr) == (n + i in tr)
    with pytest.raises(ValueError, match=rf"folds must be in \[2, {n}\]"):
        k20.system_folds(both, n + 1, seed=0)  # n + 4 rows, but n systems


def test_a_recipe_change_cannot_reuse_cached_folds_silently():
    """The fold cache is keyed by TASK_VERSION, not by the recipes: a change to a recipe, the features or the
    baselines must come with a TASK_VERSION bump (and the new fingerprint)."""
    assert k20.recipe_fingerprint() == k20.RECIPE_FINGERPRINT, (
        "kadupitiya2020 recipes, features or baselines changed: bump TASK_VERSION and set RECIPE_FINGERPRINT to "
        f"{k20.recipe_fingerprint()!r}")


def test_baselines_carry_the_papers_hyperparameters():
    """kadupitiya2020 section 4.1: SVR rbf gamma 0.1, C 100, epsilon 0.1; kernel ridge rbf gamma 0.1 (scikit-learn's
    own default gamma 'scale' is about 1.5 on the design-scaled inputs: another model)."""
    from mdsurrogate.evaluation.baselines import baseline_models

    models = {name: factory() for name, factory in baseline_models().items()}
    svr = models["SVR (rbf, gamma 0.1, C 100, eps 0.1)"][-1].estimator
    assert (svr.kernel, svr.gamma, svr.C, svr.epsilon) == ("rbf", 0.1, 100.0, 0.1)
    kr = models["kernel ridge (rbf, gamma 0.1)"][-1]
    assert (kr.kernel, kr.gamma) == ("rbf", 0.1)
