"""kadupitiya2020 on its own system (multivalent ions between uncharged walls): Table 1, input selection, Fig. 6.

Table 1 (section 4.1): the cation contact, mid-point and peak densities predicted by an ANN and by five baselines
(polynomial of degree 4, kernel ridge, SVR, decision tree, random forest; `evaluation.baselines`, the paper's
hyperparameters; kernel ridge also tuned by an inner grid search), scored by the success rate (prediction
within the MD error bar) and the MSE under k-fold cross-validation (k = 20, the MSE averaged over folds). Beside the
paper's ANN on the three features (2 hidden layers of 512 and 256, dropout 0.15, Adam 1e-4, batch 25, 4000 epochs,
MSE; section 3.2) we score our recipe on the same three features and our full-profile surrogate (features read off
its predicted profile).

The features, one definition for MD and predictions, on the profile symmetrized about z = 0 (the walls are equal):
  contact  n+ at z_c = -h/2 + d/2 (an ion touching the wall: the WCA wall's sigma is d/2), linear interpolation
  mid      n+ at z = 0
  peak     max over z of n+ (its error bar: the MD error at the MD maximum)
with error bars sqrt(e(z)^2 + e(-z)^2) / 2.

Input selection (section 3): backward elimination with the adjusted R^2 (1 - (1 - R^2)(n - 1)/(n - p - 1), p the
regressors) of a least-squares polynomial in the candidate inputs, per feature; candidates h, c, z_p, z_n, d and a
control input of uniform random numbers that carries no information and must be eliminated.

Fig. 6: cation density for z_p = 1, 2, 3 at c = 0.5 and 0.9 M (h = 3.0 nm, z_n = -1, d = 0.7 nm) from the surrogate
with MD at those points and the success rates A_i of eq. 2 over the points of non-zero MD density.
"""

from __future__ import annotations

import numpy as np

from mdsurrogate.dataset import inputs_array, system_groups
from mdsurrogate.studies.runner import DataSource, StudyRun, cached_dataset, md_table, task_key

FEATURES = ("contact", "mid", "peak")
FEATURE_LABELS = {"contact": "contact density", "mid": "mid-point density", "peak": "peak density"}
#: Bump when a task's result would change for the same inputs (feature definitions, recipes); the cached fold
#: results are keyed by it. `recipe_fingerprint()` must equal RECIPE_FINGERPRINT (a test checks it), so that a change
#: to a recipe or a feature definition cannot silently reuse the old folds: bump TASK_VERSION and update both.
TASK_VERSION = 4
RECIPE_FINGERPRINT = "0c360b594ecdd6c6"

#: kadupitiya2020 Table 1: success % and MSE of contact, mid-point and peak density (2060 test systems, 20-fold CV).
PAPER_TABLE1 = {
    "polynomial": (61.04, 0.0129300, 60.84, 0.0187700, 61.87, 0.0100400),
    "kernel ridge": (78.86, 0.0030900, 76.57, 0.0041200, 75.93, 0.0049800),
    "SVR": (80.11, 0.0012700, 79.55, 0.0024900, 81.98, 0.0010600),
    "decision tree": (68.44, 0.0084600, 64.54, 0.0094900, 62.47, 0.0110700),
    "random forest": (74.15, 0.0045700, 70.85, 0.0078900, 75.09, 0.0040800),
    "ANN": (95.52, 0.0000718, 92.07, 0.0002293, 94.78, 0.0002306),
}
#: Our rows in the order of the paper's, with the paper row each compares with.
MODEL_ROWS = (
    ("polynomial (degree 4)", "polynomial"),
    ("kernel ridge (rbf, gamma 0.1)", "kernel ridge"),
    ("SVR (rbf, gamma 0.1, C 100, eps 0.1)", "SVR"),
    ("decision tree (depth 4)", "decision tree"),
    ("random forest (depth 4, 25 trees)", "random forest"),
    ("kernel ridge (rbf, tuned)", "kernel ridge"),
    ("ANN, paper recipe (512-256, dropout 0.15, Adam 1e-4, batch 25)", "ANN"),
    ("ANN, our recipe (128-256 SiLU, full batch, early stopping)", "ANN"),
    ("profile surrogate (ours, 300 outputs; features of its profile)", "ANN"),
)
ANN_PAPER, ANN_OURS, PROFILE = (r[0] for r in MODEL_ROWS[6:])
SHORT_NAMES = dict(zip((r[0] for r in MODEL_ROWS), ("polynomial", "kernel ridge", "SVR", "decision tree",
                                                    "random forest", "kernel ridge, tuned",
                                                    "ANN, paper recipe", "ANN, our recipe", "profile surrogate")))
#: Fig. 6: inputs and the paper's A_i for z_p = 1, 2, 3 at each c.
FIG6_FIXED = {"h": 3.0, "z_n": -1, "d": 0.7}
FIG6_C = (0.5, 0.9)
PAPER_FIG6_A = {0.5: (0.93, 0.98, 0.92), 0.9: (0.93, 0.96, 0.89)}
CANDIDATES = ("h", "c", "z_p", "z_n", "d", "random control")


# ------------------------------------------------------------------------------------------------------ features

def symmetrized(n: np.ndarray, err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n(z) + n(-z)) / 2 and its standard error sqrt(e(z)^2 + e(-z)^2) / 2 of profiles (N, P) on grids symmetric
    about z = 0."""
    n, err = np.atleast_2d(n), np.atleast_2d(err)
    return (n + n[:, ::-1]) / 2, np.sqrt(err ** 2 + err[:, ::-1] ** 2) / 2


def density_features(z: np.ndarray, n_plus: np.ndarray, n_plus_err: np.ndarray, h: np.ndarray, d: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Contact, mid-point and peak cation density (N, 3) and their MD error bars (N, 3) of profiles (N, P) on
    grids z (N, P) symmetric about 0 (module docstring: contact at z = -h/2 + d/2, mid at 0, peak the maximum)."""
    z = np.atleast_2d(np.asarray(z, dtype=float))
    ns, es = symmetrized(np.asarray(n_plus, dtype=float), np.asarray(n_plus_err, dtype=float))
    h, d = np.broadcast_to(np.asarray(h, dtype=float), len(z)), np.broadcast_to(np.asarray(d, dtype=float), len(z))
    F, E = np.empty((len(z), 3)), np.empty((len(z), 3))
    for i in range(len(z)):
        zc = -h[i] / 2 + d[i] / 2
        F[i, 0], E[i, 0] = np.interp(zc, z[i], ns[i]), np.interp(zc, z[i], es[i])
        F[i, 1], E[i, 1] = np.interp(0.0, z[i], ns[i]), np.interp(0.0, z[i], es[i])
        k = int(np.argmax(ns[i]))
        F[i, 2], E[i, 2] = ns[i, k], es[i, k]
    return F, E


def dataset_features(ds) -> tuple[np.ndarray, np.ndarray]:
    """`density_features` of every system of an uncharged-wall dataset."""
    return density_features(ds["z"].values, ds["n_plus"].values, ds["n_plus_err"].values, ds["h"].values,
                            ds["d"].values)


def feature_scores(F: np.ndarray, E: np.ndarray, P: np.ndarray) -> dict[str, dict[str, float]]:
    """Per feature: success rate (|P - F| < E, the step function of eq. 1) and MSE over all rows."""
    out = {}
    for j, name in enumerate(FEATURES):
        out[name] = {"success": float(np.mean(np.abs(P[:, j] - F[:, j]) < E[:, j])),
                     "mse": float(np.mean((P[:, j] - F[:, j]) ** 2))}
    return out


# ------------------------------------------------------------------------------------------------ fold tasks

def _feature_net_config(recipe: str, seed: int, epochs: int | None):
    from dataclasses import replace  # noqa: PLC0415

    from mdsurrogate.surrogate.models import NetworkConfig  # noqa: PLC0415 - torch
    from mdsurrogate.surrogate.training import TrainConfig, default_config  # noqa: PLC0415 - torch

    if recipe == "paper":  # kadupitiya2020 section 3.2
        net = NetworkConfig(hidden=(512, 256), activations=("relu", "relu"), dropout=0.15, n_inputs=5, n_outputs=3,
                            system="uncharged")
        return TrainConfig(network=net, loss="mse", lr=1e-4, batch_size=25, max_epochs=epochs or 4000, patience=None,
                           schedule="constant", output_scaling="none", val_fraction=0.0, seed=seed)
    cfg = default_config(loss="mse", seed=seed)
    cfg = replace(cfg, network=replace(cfg.network, system="uncharged", n_inputs=5, n_outputs=3, mirror=False))
    return cfg if epochs is None else replace(cfg, max_epochs=epochs)


def recipe_fingerprint() -> str:
    """sha256 of what a fold's result depends on beyond its key: the three training configurations (dicts) and
    the source of the feature definitions and of the baselines' construction (our code, not scikit-learn's)."""
    import dataclasses  # noqa: PLC0415
    import hashlib  # noqa: PLC0415
    import inspect  # noqa: PLC0415
    import json  # noqa: PLC0415

    from mdsurrogate.evaluation import baselines  # noqa: PLC0415
    from mdsurrogate.surrogate.training import default_config  # noqa: PLC0415 - torch

    configs = [dataclasses.asdict(c) for c in (_feature_net_config("paper", 0, None),
                                                _feature_net_config("ours", 0, None), default_config(seed=0))]
    code = [inspect.getsource(f) for f in (density_features, symmetrized, baselines.baseline_models,
                                           baselines.tuned_baseline_models, baselines.fit_baselines, baselines._scaler)]
    return hashlib.sha256(json.dumps([configs, code], sort_keys=True, default=str).encode()).hexdigest()[:16]


def fold_task(data: DataSource, train_rows: list[int], test_rows: list[int], model: str, seed: int,
              epochs: int | None = None) -> dict:
    """Fit `model` ('baselines', 'ann_paper', 'ann_ours', 'profile') on the training rows and predict the three
    features of the test rows: {"rows", "pred": {row model name: (n_test, 3)}, "fit_s"}."""
    import time  # noqa: PLC0415

    from mdsurrogate.dataset import to_arrays  # noqa: PLC0415
    from mdsurrogate.dataset.arrays import Arrays  # noqa: PLC0415
    from mdsurrogate.simulation.system import UNCHARGED_SCHEMA  # noqa: PLC0415

    ds = cached_dataset(data)
    tr, te = np.asarray(train_rows, dtype=int), np.asarray(test_rows, dtype=int)
    arrays = to_arrays(ds)
    F, E = dataset_features(ds)
    Xtr, Xte = arrays.X[tr], arrays.X[te]
    preds, fit_s, best = {}, {}, {}
    t0 = time.perf_counter()
    if model == "baselines":
        from mdsurrogate.evaluation.baselines import fit_baselines, tuned_baseline_models  # noqa: PLC0415

        for name, (m, s) in fit_baselines(Xtr, F[tr], seed=seed, schema=UNCHARGED_SCHEMA).items():
            preds[name] = np.asarray(m.predict(Xte)).reshape(len(te), 3).tolist()
            fit_s[name] = s
        for name, factory in tuned_baseline_models(seed, UNCHARGED_SCHEMA).items():
            t1 = time.perf_counter()
            m = factory().fit(Xtr, F[tr])
            fit_s[name] = time.perf_counter() - t1
            preds[name] = np.asarray(m.predict(Xte)).reshape(len(te), 3).tolist()
            best[name] = {k.rsplit("__", 1)[-1]: v for k, v in m.best_params_.items()}
    elif model in ("ann_paper", "ann_ours"):
        from mdsurrogate.surrogate.training import predict_arrays, train_network  # noqa: PLC0415 - torch

        cfg = _feature_net_config("paper" if model == "ann_paper" else "ours", seed, epochs)
        res = train_network(Arrays(Xtr, F[tr], E[tr], arrays.Z[tr]), cfg)
        name = ANN_PAPER if model == "ann_paper" else ANN_OURS
        preds[name] = predict_arrays([res.model], Xte)[0].tolist()
        fit_s[name] = res.train_time_s
    elif model == "profile":
        from dataclasses import replace  # noqa: PLC0415

        from mdsurrogate.surrogate.fit import fit_surrogate  # noqa: PLC0415 - torch
        from mdsurrogate.surrogate.training import default_config  # noqa: PLC0415 - torch

        cfg = default_config(seed=seed)
        if epochs is not None:
            cfg = replace(cfg, max_epochs=epochs)
        sur, rep = fit_surrogate(ds.isel(system=tr), cfg, n_members=1, n_test=0, seed=seed, name="fold")
        Y = sur.predict_array(Xte).mean(axis=0)
        p = Y.shape[1] // 2
        P, _ = density_features(arrays.Z[te], Y[:, :p], np.zeros((len(te), p)), Xte[:, 0], Xte[:, 4])
        preds[PROFILE] = P.tolist()
        fit_s[PROFILE] = rep["members"][0]["train_time_s"]
    else:
        raise ValueError(f"model must be one of baselines, ann_paper, ann_ours, profile; got {model!r}")
    return {"rows": te.tolist(), "pred": preds, "fit_s": fit_s, "best_params": best,
            "wall_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------------------- backward elimination

def adjusted_r2(r2: float, n: int, p: int) -> float:
    """1 - (1 - R^2)(n - 1)/(n - p - 1) for n samples and p regressors (NaN when n <= p + 1)."""
    return float(1 - (1 - r2) * (n - 1) / (n - p - 1)) if n > p + 1 else float("nan")


def polynomial_adjusted_r2(X: np.ndarray, y: np.ndarray, degree: int) -> tuple[float, int]:
    """Adjusted R^2 of a least-squares polynomial of `degree` in the columns of X (inputs min-max scaled; constant
    columns dropped, they only repeat the intercept) and its number of regressors."""
    from sklearn.linear_model import LinearRegression  # noqa: PLC0415
    from sklearn.preprocessing import PolynomialFeatures  # noqa: PLC0415

    X = np.asarray(X, dtype=float)
    span = X.max(axis=0) - X.min(axis=0) if len(X) else np.zeros(X.shape[1])
    X = (X[:, span > 0] - X[:, span > 0].min(axis=0)) / span[span > 0]
    if X.shape[1] == 0:
        return 0.0, 0
    Phi = PolynomialFeatures(degree, include_bias=False).fit_transform(X)
    fit = LinearRegression().fit(Phi, y)
    r2 = float(fit.score(Phi, y))
    return adjusted_r2(r2, len(y), Phi.shape[1]), int(Phi.shape[1])


def backward_elimination(X: np.ndarray, y: np.ndarray, names: list[str], degree: int = 3, tol: float = 1e-3
                         ) -> dict:
    """Backward elimination with the adjusted R^2 (kadupitiya2020 section 3): from all candidate inputs, drop at
    each step the input whose removal lowers the adjusted R^2 least, while that loss is below `tol`; the inputs
    left are the significant ones. Returns the steps (adjusted R^2 with each remaining input dropped) and the kept
    inputs."""
    keep = list(range(len(names)))
    steps = []
    full, _ = polynomial_adjusted_r2(X[:, keep], y, degree)
    while len(keep) > 1:
        drops = {}
        for j in keep:
            rest = [k for k in keep if k != j]
            drops[names[j]] = polynomial_adjusted_r2(X[:, rest], y, degree)[0]
        worst = max(drops, key=lambda k: drops[k])
        step = {"inputs": [names[k] for k in keep], "adj_r2": full, "adj_r2_without": drops}
        if full - drops[worst] < tol:
            step["dropped"] = worst
            steps.append(step)
            keep = [k for k in keep if names[k] != worst]
            full = drops[worst]
        else:
            steps.append(step)
            break
    return {"steps": steps, "kept": [names[k] for k in keep], "adj_r2": full, "degree": degree, "tol": tol}


# ------------------------------------------------------------------------------------------------------- run

def system_folds(ds, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k-fold (train rows, test rows) over systems, not rows: replicas (equal inputs, other seeds) stay on one side.
    Without replicas the labels are the row numbers, so these are scikit-learn's shuffled KFold row folds."""
    from sklearn.model_selection import KFold  # noqa: PLC0415

    groups = system_groups(inputs_array(ds))
    labels = np.unique(groups)
    if not 2 <= folds <= labels.size:
        raise ValueError(f"folds must be in [2, {labels.size}] (the dataset's distinct systems), got {folds}")
    return [(np.flatnonzero(np.isin(groups, labels[a])), np.flatnonzero(np.isin(groups, labels[b])))
            for a, b in KFold(folds, shuffle=True, random_state=seed).split(labels)]


def run(study: StudyRun, folds: int = 20, models: tuple[str, ...] = ("baselines", "ann_paper", "ann_ours",
                                                                     "profile"),
        paper_epochs: int = 4000, epochs: int | None = None, degree: int = 3, sur=None,
        fig6_md: DataSource | None = None, paper_folds: int | None = None, profile_folds: int | None = None
        ) -> dict:
    """Table 1 by k-fold cross-validation, the input selection, and Fig. 6 (when a surrogate of the system is
    given or shipped); see the module docstring. `paper_folds`: the paper's ANN (4000 epochs at batch 25, the
    costly row) on only the first that many of the `folds` folds (default all); its row then scores the systems
    those folds held out. `profile_folds` likewise for the full-profile surrogate (300 outputs)."""
    ds = cached_dataset(study.data)
    n = ds.sizes["system"]
    splits = system_folds(ds, folds, study.seed)
    if not 1 <= paper_epochs <= 10**6:
        raise ValueError(f"paper_epochs must be in [1, 1000000], got {paper_epochs}")
    paper_folds = folds if paper_folds is None else paper_folds
    profile_folds = folds if profile_folds is None else profile_folds
    for name, v in (("paper_folds", paper_folds), ("profile_folds", profile_folds)):
        if not 1 <= v <= folds:
            raise ValueError(f"{name} must be in [1, {folds}] (the folds), got {v}")
    n_folds = {"ann_paper": paper_folds, "profile": profile_folds}
    if not 1 <= degree <= 5:
        raise ValueError(f"degree must be in [1, 5], got {degree}")
    bad = [m for m in models if m not in ("baselines", "ann_paper", "ann_ours", "profile")]
    if bad:
        raise ValueError(f"models must be among baselines, ann_paper, ann_ours, profile; got {bad}")
    F, E = dataset_features(ds)
    tasks = []
    for model in models:
        ep = {"ann_paper": paper_epochs, "baselines": None}.get(model, epochs)  # what the task's result depends on
        for k, (tr, te) in enumerate(splits[:n_folds.get(model, folds)]):
            key = task_key("kadupitiya2020", TASK_VERSION, study.data.sha256, study.data.error_scale, model, ep,
                           study.seed + k, tr, te)
            tasks.append((key, fold_task, dict(data=study.data, train_rows=tr.tolist(), test_rows=te.tolist(),
                                               model=model, seed=study.seed + k, epochs=ep)))
    done = study.run_tasks(f"Table 1: {len(models)} model groups x {folds} folds", tasks)
    oof = out_of_fold([done[key] for key, _, _ in tasks if key in done])
    table = _table1(F, E, oof)
    X = np.stack([ds[k].values.astype(float) for k in ("h", "c", "z_p", "z_n", "d")], axis=1)
    control = np.random.default_rng(study.seed).uniform(size=(n, 1))
    elimination = {f: backward_elimination(np.hstack([X, control]), F[:, j], list(CANDIDATES), degree)
                   for j, f in enumerate(FEATURES)}
    fig6 = _fig6(study, ds, sur, fig6_md)
    results = {"n_systems": n, "folds": folds, "models": list(models), "paper_epochs": paper_epochs,
               "paper_folds": paper_folds, "profile_folds": profile_folds,
               "table1": table, "md_error_bars": _error_summary(F, E), "elimination": elimination, "fig6": fig6,
               "paper": {"table1": PAPER_TABLE1, "fig6_A": {str(k): v for k, v in PAPER_FIG6_A.items()}}}
    _figures(study, F, E, table, oof, elimination, fig6)
    return study.finish(results, _markdown(results), n_systems=n)


def out_of_fold(results: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray, list[tuple]]]:
    """{model: (rows, predictions (n, 3), per fold (rows, predictions, fit seconds))} of the finished fold tasks."""
    folds: dict[str, list[tuple]] = {}
    for r in results:
        rows = np.asarray(r["rows"], dtype=int)
        for name, p in r["pred"].items():
            folds.setdefault(name, []).append((rows, np.asarray(p, dtype=float), float(r["fit_s"][name])))
    return {name: (np.concatenate([f[0] for f in fs]), np.concatenate([f[1] for f in fs]), fs)
            for name, fs in folds.items()}


def _table1(F: np.ndarray, E: np.ndarray, oof: dict) -> list[dict]:
    """Rows of Table 1: per model, the success rate over every out-of-fold prediction and the MSE averaged over the
    folds (the paper's rule), per feature; models with no finished fold are left out."""
    out = []
    for name, paper_name in MODEL_ROWS:
        if name not in oof:
            continue
        rows, P, fs = oof[name]
        pooled = feature_scores(F[rows], E[rows], P)
        row: dict = {"model": name, "paper_row": paper_name, "n_folds": len(fs), "n_predicted": len(rows),
                     "fit_s_mean": float(np.mean([f[2] for f in fs]))}
        for j, f in enumerate(FEATURES):
            row[f"{f} success %"] = 100 * pooled[f]["success"]
            row[f"{f} MSE"] = float(np.mean([np.mean((p[:, j] - F[r, j]) ** 2) for r, p, _ in fs]))
            row[f"{f} R2"] = float(1 - np.sum((P[:, j] - F[rows, j]) ** 2)
                                   / np.sum((F[rows, j] - F[rows, j].mean()) ** 2))
        out.append(row)
    return out


def _error_summary(F: np.ndarray, E: np.ndarray) -> dict:
    """The MD error bars of the features: median (M), median relative to the value, and `mse_of_md_noise` = mean e^2,
    the MSE that the exact (noise-free) feature would score against these labels (an independent MD run of the same
    length would score twice that, 2 e^2)."""
    out = {}
    for j, f in enumerate(FEATURES):
        pos = F[:, j] > 0
        out[f] = {"median_err_M": float(np.median(E[:, j])),
                  "median_rel_err": float(np.median(E[pos, j] / F[pos, j])) if pos.any() else float("nan"),
                  "mse_of_md_noise": float(np.mean(E[:, j] ** 2)),
                  "mean_value_M": float(F[:, j].mean()), "var_M2": float(F[:, j].var())}
    return out


def _fig6(study: StudyRun, ds, sur, fig6_md: DataSource | None) -> dict:
    """Predictions (mean, spread) at the Fig. 6 points and MD where a dataset holds the point (the --fig6-md data
    first, then the study's dataset), with A_i over the points of non-zero MD density."""
    from mdsurrogate.evaluation.metrics import success_rate_per_system  # noqa: PLC0415

    if sur is None:
        from mdsurrogate.surrogate.ensemble import Surrogate, default_surrogate_path  # noqa: PLC0415 - torch

        if not (default_surrogate_path("uncharged") / "card.json").is_file():
            study.progress.say("Fig. 6 left out: no surrogate of the uncharged-wall system is shipped or given")
            return {}
        sur = Surrogate.load(system="uncharged")
    if sur.system_kind != "uncharged":
        raise ValueError(f"Fig. 6 needs a surrogate of the uncharged-wall system, got one of the {sur.system_kind} "
                         "system")
    train_keys = set(sur.card.get("training_data", {}).get("train_systems", []))
    sources = ([("fig6_md", cached_dataset(fig6_md))] if fig6_md is not None else []) + [("dataset", ds)]
    points = []
    for c in FIG6_C:
        for i, zp in enumerate((1, 2, 3)):
            inputs = {"h": FIG6_FIXED["h"], "c": c, "z_p": zp, "z_n": FIG6_FIXED["z_n"], "d": FIG6_FIXED["d"]}
            pred = sur.predict(inputs)
            point = {**inputs, "z": pred["z"].values[0].tolist(), "pred": pred["n_plus"].values[0].tolist(),
                     "pred_std": pred["n_plus_std"].values[0].tolist() if "n_plus_std" in pred else None,
                     "paper_A_i": PAPER_FIG6_A[c][i]}
            for label, src in sources:
                hit = np.flatnonzero(np.isclose(src["h"].values, inputs["h"]) & np.isclose(src["c"].values, c)
                                     & (src["z_p"].values == zp) & (src["z_n"].values == inputs["z_n"])
                                     & np.isclose(src["d"].values, inputs["d"]))
                if hit.size:
                    s = src.isel(system=int(hit[0]))
                    y, e = s["n_plus"].values, s["n_plus_err"].values
                    pred_on_md = np.interp(s["z"].values, pred["z"].values[0], pred["n_plus"].values[0])
                    point.update(md_source=label, md_key=str(s["key"].values), md=y.tolist(), md_err=e.tolist(),
                                 md_z=s["z"].values.tolist(), in_training=str(s["key"].values) in train_keys,
                                 A_i=float(success_rate_per_system(y[None], pred_on_md[None], e[None],
                                                                   exclude_zero_error=True)[0]))
                    break
            points.append(point)
    return {"surrogate": sur.name, "points": points}


def _markdown(r: dict) -> str:
    f6 = r["fig6"]
    out = [f"kadupitiya2020 on its own system: {r['n_systems']} systems of the uncharged-wall dataset, "
           f"{r['folds']}-fold cross-validation (every system predicted once, by the model of the fold that held it "
           "out). Success: prediction within the MD error bar of the feature (eq. 1's step function); MSE in M^2, "
           "averaged over the folds. Paper: 6864 runs of ~5 ns, 2060 test systems.", "",
           "## Table 1: ours", ""]
    cols = ["model"] + [f"{f} {m}" for f in FEATURES for m in ("success %", "MSE")] + ["n_predicted",
                                                                                         "fit_s_mean"]
    fmt = {c: (".2f" if "success" in c else ".2e" if "MSE" in c else ".1f") for c in cols}
    for key, what in (("paper_folds", "The paper-recipe ANN (4000 epochs at batch 25 per fold)"),
                      ("profile_folds", "The profile surrogate")):
        if r.get(key, r["folds"]) < r["folds"]:
            out.append(f"{what} ran on {r[key]} of the {r['folds']} folds (time); its row scores the systems those "
                       "folds held out (`n_predicted`).\n")
    out.append(md_table(r["table1"], cols, fmt))
    out += ["## Table 1: the paper's", ""]
    prow = [{"model": k, **{f"{f} {m}": v[2 * j + (m == "MSE")] for j, f in enumerate(FEATURES)
                            for m in ("success %", "MSE")}} for k, v in r["paper"]["table1"].items()]
    out.append(md_table(prow, cols[:-2], fmt))
    out += ["## The MD error bars of the features (they set what a success is)", "",
            md_table([{"feature": f, **v} for f, v in r["md_error_bars"].items()],
                     ["feature", "median_err_M", "median_rel_err", "mse_of_md_noise", "mean_value_M", "var_M2"],
                     {"median_err_M": ".4f", "median_rel_err": ".3f", "mse_of_md_noise": ".2e", "mean_value_M": ".3f",
                      "var_M2": ".2e"}),
            "`mse_of_md_noise` = mean e^2 is the MSE that the exact feature would score against these noisy labels "
            "(an independent MD run of the same length would score 2 e^2): an MSE near it is at the labels' noise "
            "floor.", "",
            f"## Input selection: backward elimination with the adjusted R^2 (polynomial of degree "
            f"{next(iter(r['elimination'].values()))['degree']})", ""]
    for f, el in r["elimination"].items():
        out += [f"### {FEATURE_LABELS[f]}: kept {', '.join(el['kept'])} (adjusted R^2 {el['adj_r2']:.4f})", ""]
        rows = []
        for k, st in enumerate(el["steps"]):
            rows.append({"step": k + 1, "adjusted R^2": st["adj_r2"], "dropped": st.get("dropped", "(stop)"),
                         **{f"without {name}": v for name, v in st["adj_r2_without"].items()}})
        cols_el = ["step", "adjusted R^2", "dropped"] + [f"without {c}" for c in CANDIDATES]
        out.append(md_table(rows, cols_el, {c: ".4f" for c in cols_el}))
    out += ["## Fig. 6: trendlines and A_i", ""]
    if f6:
        rows = [{"c (M)": p["c"], "z_p": p["z_p"], "A_i (ours)": p.get("A_i", float("nan")),
                 "A_i (paper)": p["paper_A_i"], "MD": p.get("md_source", "none"),
                 "in training": {True: "yes", False: "no"}.get(p.get("in_training"), "")} for p in f6["points"]]
        out += [f"Surrogate `{f6['surrogate']}`; h = 3.0 nm, z_n = -1, d = 0.7 nm; A_i over the points of non-zero "
                "MD density (eq. 2).", "", md_table(rows, list(rows[0]), {"A_i (ours)": ".3f", "A_i (paper)": ".2f"})]
    else:
        out.append("Left out: no surrogate of the uncharged-wall system was given or shipped.")
    return "\n".join(out) + "\n"


def _figures(study: StudyRun, F, E, table, oof, elimination, fig6) -> None:
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    if table:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
        names = [SHORT_NAMES.get(r["model"], r["model"][:24]) for r in table]
        for j, f in enumerate(FEATURES):
            ours = [r[f"{f} success %"] for r in table]
            paper = [PAPER_TABLE1[r["paper_row"]][2 * j] for r in table]
            y = np.arange(len(table))
            axes[j].barh(y - 0.2, ours, 0.4, label="ours", color="tab:blue")
            axes[j].barh(y + 0.2, paper, 0.4, label="kadupitiya2020 Table 1", color="tab:gray")
            axes[j].set(title=f"{FEATURE_LABELS[f]}: success rate", xlabel="success %", xlim=(0, 100))
            axes[j].set_yticks(y, names, fontsize=7)
        axes[0].invert_yaxis()
        axes[0].legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        study.save_figure(fig, "figure_table1")
        shown = [r for r in table if r["model"] in (ANN_PAPER, PROFILE)] or table[-1:]
        fig, axes = plt.subplots(len(shown), 3, figsize=(14, 4.2 * len(shown)), squeeze=False)
        for i, r in enumerate(shown):
            rows, P, _ = oof[r["model"]]
            for j, f in enumerate(FEATURES):
                ax = axes[i, j]
                ax.errorbar(F[rows, j], P[:, j], xerr=E[rows, j], fmt="o", ms=2, alpha=0.6, lw=0.5,
                            color=("tab:red", "tab:green", "tab:blue")[j])
                lo, hi = F[:, j].min(), F[:, j].max()
                ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
                ax.set(xlabel=f"MD {FEATURE_LABELS[f]} (M)", ylabel="predicted, out of fold (M)",
                       title=f"{r['model'][:48]}: success {r[f + ' success %']:.1f} %")
                ax.title.set_fontsize(8)
        fig.tight_layout()
        study.save_figure(fig, "figure_parity")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for j, (f, el) in enumerate(elimination.items()):
        first = el["steps"][0]
        names = list(first["adj_r2_without"])
        axes[j].bar(names, [first["adj_r2"] - first["adj_r2_without"][k] for k in names], color="tab:purple")
        axes[j].axhline(el["tol"], color="k", ls="--", lw=0.8, label=f"elimination threshold {el['tol']:g}")
        axes[j].set_yscale("symlog", linthresh=1e-4)
        axes[j].legend(fontsize=7)
        axes[j].set(title=f"{FEATURE_LABELS[f]}: loss of adjusted R^2 when dropped (full {first['adj_r2']:.3f})",
                    ylabel="adjusted R^2 (all) - (without input)")
        axes[j].tick_params(axis="x", labelsize=7, rotation=30)
        axes[j].title.set_fontsize(8)
    fig.tight_layout()
    study.save_figure(fig, "figure_elimination")
    if fig6:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.3), sharey=True)
        colors = {1: "tab:blue", 2: "tab:orange", 3: "tab:green"}
        for ax, c in zip(axes, FIG6_C):
            for p in fig6["points"]:
                if p["c"] != c:
                    continue
                z, m = np.asarray(p["z"]), np.asarray(p["pred"])
                half = z <= 0
                ax.plot(z[half], m[half], color=colors[p["z_p"]], lw=1.5,
                        label=f"z_p = {p['z_p']} surrogate" + (f" (A_i {p['A_i']:.2f}; paper {p['paper_A_i']:.2f})"
                                                               if "A_i" in p else ""))
                if p.get("pred_std") is not None:
                    s = np.asarray(p["pred_std"])
                    ax.fill_between(z[half], (m - 2 * s)[half], (m + 2 * s)[half], color=colors[p["z_p"]], alpha=0.2)
                if "md" in p:
                    zm, y, e = np.asarray(p["md_z"]), np.asarray(p["md"]), np.asarray(p["md_err"])
                    hm = zm <= 0
                    ax.errorbar(zm[hm], y[hm], yerr=e[hm], fmt="o", ms=2.5, color=colors[p["z_p"]], mfc="none",
                                lw=0.6)
            ax.set(title=f"kadupitiya2020 Fig. 6: c = {c} M, h = 3.0 nm, d = 0.7 nm, z_n = -1", xlabel="z (nm)",
                   ylabel="cation density n+ (M)")
            ax.legend(fontsize=7)
        fig.tight_layout()
        study.save_figure(fig, "figure_fig6")
