"""Studies of the surrogate papers on a project dataset (sun2023).

`random_split_report`: one random test split (sun2023 "random splitting"); BaseNN and ModNN deep ensembles and the
scikit-learn baselines trained on the same systems; every model scored on the test split and, as an external test
set never used for training, on the authors' MD of the reference slice, interpolated onto the authors' bins.
Optionally our own MD of a few reference systems is scored against the authors' MD too: the MD-vs-MD difference
is the floor of any surrogate trained on our MD and scored against theirs. Optionally a precise test set (the same
engine, runs several times longer): every model is scored on its systems that were not used for training (labels
with smaller errors, so E comes closer to the model's own error), and the systems it shares with the dataset check
the dataset's error bars (`error_bar_calibration`: two independent runs of one system).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import xarray as xr

from mdsurrogate.dataset import (
    AUTHORS_ERROR_OVERESTIMATE,
    regrid_profiles,
    split_indices,
    system_groups,
    to_arrays,
    z_half_widths,
)
from mdsurrogate.dataset.arrays import dataset_schema
from mdsurrogate.evaluation.metrics import error_bar_calibration, evaluate_predictions, md_noise_floor
from mdsurrogate.evaluation.scoring import fit_and_score

LOSS_NAMES = {"mse": "BaseNN", "soft": "ModNN"}


def _match(X: np.ndarray, Xq: np.ndarray) -> list[tuple[int, int]]:
    """(i, j) pairs with X[i] == Xq[j] (inputs equal to 1e-6)."""
    pairs = []
    for j, x in enumerate(Xq):
        hit = np.flatnonzero(np.all(np.abs(X - x) < 1e-6, axis=1))
        if hit.size:
            pairs.append((int(hit[0]), j))
    return pairs


def authors_error_divisor(reference: xr.Dataset) -> float:
    """What divides the reference's stored errors to give the authors' raw errors / 2.1: 2.1 times the error_scale
    the file was loaded or imported with (a reference already corrected by 1/2.1 is not corrected twice)."""
    return AUTHORS_ERROR_OVERESTIMATE * float(reference.attrs.get("error_scale", 1.0))


def _score_sets(y_hat: np.ndarray, ref, scale: float) -> dict:
    """Metrics against the reference with its stored errors and with errors / scale."""
    return {"stored_errors": evaluate_predictions(ref.Y, y_hat, ref.EPS),
            "errors_div_2.1": evaluate_predictions(ref.Y, y_hat, ref.EPS / scale)}


def random_split_report(ds: xr.Dataset, *, members: int = 5, seed: int = 0, test_fraction: float = 0.2,
                        losses: tuple[str, ...] = ("mse", "soft"), baselines: bool = True,
                        reference: xr.Dataset | None = None, reference_md: xr.Dataset | None = None,
                        precise: xr.Dataset | None = None, config_fn: Callable | None = None,
                        say: Callable[[str], None] = lambda m: None) -> tuple[dict, dict]:
    """Train and score every model on one random split of `ds`; returns (report, {loss: Surrogate}).

    report["test"]: {model: metrics on the test split}; report["reference"]: {model: {"stored_errors": ...,
    "errors_div_2.1": ...}} on `reference` (the authors' MD, scored on their own bins); report["md_check"]:
    for the systems of `reference_md` (our MD of reference systems): our MD and each model vs the authors' MD;
    report["precise"]: every model on the systems of `precise` outside the training split ("unseen") and the
    error-bar check on the systems `precise` shares with `ds` ("replica_check").
    `config_fn(loss, seed)` gives the training recipe (default: `training.default_config`).
    """
    from mdsurrogate.evaluation.baselines import fit_baselines  # noqa: PLC0415 - torch
    from mdsurrogate.surrogate.training import default_config  # noqa: PLC0415 - torch

    config_fn = config_fn or (lambda loss, s: default_config(loss=loss, seed=s))
    arrays = to_arrays(ds)
    tr, te = split_indices(system_groups(arrays.X), test_fraction, seed=seed)
    test = arrays.take(te)
    report: dict = {"dataset": {k: ds.attrs.get(k) for k in ("source", "source_sha256", "campaign") if k in ds.attrs},
                    "n_systems": len(arrays), "n_train": len(tr), "n_test": len(te), "split_seed": seed,
                    "test_fraction": test_fraction, "members": members, "test": {}, "training": {}}
    surrogates: dict = {}
    predictors: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {}
    for loss in losses:
        name = LOSS_NAMES[loss]
        say(f"training the {name} ensemble ({members} members, {len(tr)} systems)")
        sur, rep = fit_and_score(ds, config_fn(loss, seed), n_members=members, n_test=test_fraction, seed=seed,
                                 name=f"{name.lower()}-ensemble")
        surrogates[loss] = sur
        report["test"][f"{name} ensemble of {members}"] = rep["metrics"]["test_ensemble"]
        report["test"][f"{name}, mean over members"] = rep["metrics"]["test_member_mean"]
        report["training"][name] = {"train_time_s": float(sum(m["train_time_s"] for m in rep["members"])),
                                    "best_epochs": [m["best_epoch"] for m in rep["members"]]}
        predictors[f"{name} ensemble of {members}"] = (
            lambda X, Z, s=sur: s.predict_on_grid(X, Z, std=False)[0])
    if baselines:
        say("fitting the baselines")
        hw = z_half_widths(ds.isel(system=tr))  # the baselines learn profiles on the training data's grids
        hs, aw = np.array(list(hw)), np.array(list(hw.values()))

        def z_model(h: np.ndarray) -> np.ndarray:
            a = np.interp(h, hs, aw) if len(hs) > 1 else np.asarray(h) / 2 + (aw[0] - hs[0] / 2)
            return np.asarray(a)[:, None] * np.linspace(-1.0, 1.0, arrays.Z.shape[1])[None, :]
        schema = dataset_schema(ds)  # the uncharged system: its own input ranges and interface width
        for name, (model, fit_s) in fit_baselines(arrays.X[tr], arrays.Y[tr], seed=seed, schema=schema).items():
            y_hat = np.asarray(model.predict(test.X)).reshape(test.Y.shape)
            report["test"][name] = {**evaluate_predictions(test.Y, y_hat, test.EPS, n_interface=schema.n_interface),
                                    "fit_s": fit_s}
            predictors[name] = (lambda X, Z, m=model: regrid_profiles(
                np.asarray(m.predict(X)).reshape(len(X), -1), z_model(X[:, 0]), Z))

    if reference_md is not None and reference is None:
        raise ValueError("reference_md needs reference (the MD it is compared with)")
    if reference is not None:
        say("scoring on the reference (authors' MD)")
        ref = to_arrays(reference)
        divisor = authors_error_divisor(reference)
        report["reference"] = {"n_systems": len(ref), "note": "authors' MD on their own bins; "
                               "'errors_div_2.1' divides their stored errors by 2.1 (their notebook)"}
        for name, fn in predictors.items():
            report["reference"][name] = _score_sets(fn(ref.X, ref.Z), ref, divisor)
        if reference_md is not None:
            ours = to_arrays(reference_md)
            pairs = _match(ref.X, ours.X)
            if not pairs:
                say("warning: no system of the reference MD check is in the reference; MD check skipped")
            if pairs:
                idx = np.array([i for i, _ in pairs])
                sub = ref.take(idx)
                md = regrid_profiles(ours.Y[[j for _, j in pairs]], ours.Z[[j for _, j in pairs]], sub.Z)
                check = {"systems": [dict(zip(("h", "c", "d_plus", "d_minus", "sigma_s"), map(float, sub.X[k])))
                                     for k in range(len(sub))],
                         "our MD (same controls as the dataset)": _score_sets(md, sub, divisor)}
                for name, fn in predictors.items():
                    check[name] = _score_sets(fn(sub.X, sub.Z), sub, divisor)
                report["md_check"] = check
    if precise is not None:
        report["precise"] = _precise_section(arrays, tr, to_arrays(precise), predictors, say)
    return report, surrogates


def _precise_section(arrays, tr: np.ndarray, pre, predictors: dict, say: Callable[[str], None]) -> dict:
    """Scores on the precise systems outside the training split; error-bar check on the shared systems."""
    say("scoring on the precise test set")
    seen = {j for _, j in _match(arrays.X[tr], pre.X)}
    unseen = np.array([j for j in range(len(pre)) if j not in seen], dtype=int)
    sec: dict = {"n_systems": len(pre), "n_unseen": int(unseen.size), "E_MD_precise": None, "unseen": {}}
    if unseen.size:
        sub = pre.take(unseen)
        sec["E_MD_precise"] = md_noise_floor(sub.EPS)
        for name, fn in predictors.items():
            sec["unseen"][name] = evaluate_predictions(sub.Y, fn(sub.X, sub.Z), sub.EPS)
    pairs = _match(arrays.X, pre.X)
    if pairs:
        a = arrays.take(np.array([i for i, _ in pairs]))
        b = pre.take(np.array([j for _, j in pairs]))
        y_b, eps_b = b.Y, b.EPS
        if a.Z.shape != b.Z.shape or not np.allclose(a.Z, b.Z):
            y_b, eps_b = regrid_profiles(b.Y, b.Z, a.Z), regrid_profiles(b.EPS, b.Z, a.Z)
        sec["replica_check"] = {"n_systems": len(pairs), **error_bar_calibration(a.Y, a.EPS, y_b, eps_b)}
    return sec


def report_markdown(report: dict) -> str:
    """The report's tables in Markdown."""
    cols = ("E", "E_I+", "E_B+", "E_I-", "E_B-", "MSE", "E_MD", "A", "A_eps>0")

    def table(rows: dict[str, dict], columns=cols) -> list[str]:
        lines = ["| model | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
        for name, m in rows.items():
            cells = [(f"{m[c]:.2e}" if c == "MSE" else f"{m[c]:.4f}") if c in m else "" for c in columns]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return lines

    out = [f"## Random split: {report['n_train']} training / {report['n_test']} test systems "
           f"(seed {report['split_seed']})", ""]
    out += table(report["test"]) + [""]
    for name, t in report.get("training", {}).items():
        out.append(f"- {name}: {t['train_time_s']:.0f} s of training in all, best epochs {t['best_epochs']}")
    if "reference" in report:
        ref = report["reference"]
        models = [k for k in ref if isinstance(ref[k], dict)]
        out += ["", f"## External test: the authors' MD of {ref['n_systems']} reference systems", ""]
        out += table({m: ref[m]["stored_errors"] for m in models}, cols) + [""]
        out += ["Success rates with the authors' errors / 2.1:", ""]
        out += table({m: ref[m]["errors_div_2.1"] for m in models}, ("E", "A", "A_eps>0")) + [""]
    if "md_check" in report:
        chk = report["md_check"]
        models = [k for k in chk if k != "systems"]
        out += [f"## MD vs MD on {len(chk['systems'])} reference systems (our MD with the dataset's controls vs "
                "the authors' MD)", ""]
        out += table({m: chk[m]["stored_errors"] for m in models}, ("E", "E_I+", "E_B+", "E_I-", "E_B-", "A"))
        out += [""]
    if "precise" in report:
        pre = report["precise"]
        if pre["unseen"]:
            out += [f"## Precise test set: {pre['n_unseen']} of its {pre['n_systems']} systems were not used for "
                    f"training (their E_MD {pre['E_MD_precise']:.4f})", ""]
            out += table(pre["unseen"]) + [""]
        if "replica_check" in pre:
            rc = pre["replica_check"]
            out += [f"## Error bars: the dataset's runs vs the precise runs of the same {rc['n_systems']} systems",
                    "", f"|z| < 1 on {rc['within_1']:.3f} of {rc['n_points']} points (0.683 if the error bars are "
                    f"right; about 0.67 with 20-block estimates of them), |z| < 2 on {rc['within_2']:.3f} (0.954), "
                    f"rms z {rc['z_rms']:.2f} (1; about 1.03 with 20-block estimates); E between the "
                    f"runs {rc['E_between']:.4f}, expected from their errors {rc['E_expected']:.4f}.", ""]
    return "\n".join(out) + "\n"
