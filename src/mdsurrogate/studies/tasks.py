"""The studies' one expensive task: train a model on some systems of a dataset and score it (run in pool workers,
so it takes files and row numbers, never live objects), and the recipes the studies name."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mdsurrogate.dataset import to_arrays
from mdsurrogate.evaluation.metrics import evaluate_predictions
from mdsurrogate.studies.runner import DataSource, cached_dataset

RECIPES = ("default", "paper")


def recipe(name: str, loss: str = "mse", seed: int = 0, epochs: int | None = None) -> dict:
    """A training recipe as a dict: 'default' (ours, `training.default_config`) or 'paper' (`paper_config`:
    Adam 1e-4, batch 32, dropout 0.1, fixed epochs; 9500 by default as in kadupitiya2021). `epochs` caps it."""
    from mdsurrogate.surrogate.training import default_config, paper_config  # noqa: PLC0415 - torch

    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {name!r}")
    cfg = default_config(loss=loss, seed=seed) if name == "default" else paper_config(9500, loss=loss, seed=seed)
    if epochs is not None:
        if not 1 <= epochs <= 10**6:
            raise ValueError(f"epochs must be an integer in [1, 1000000], got {epochs}")
        cfg = replace(cfg, max_epochs=int(epochs))
    return cfg.as_dict()


def _metrics(y, y_hat, eps) -> dict:
    return {k: float(v) for k, v in evaluate_predictions(y, y_hat, eps).items()}


def train_and_score(data: DataSource, train_rows: list[int], test_sets: dict[str, list[int]], config: dict,
                    n_members: int = 1, seed: int = 0, reference: DataSource | None = None,
                    history: bool = False, predict: list[list[float]] | None = None) -> dict:
    """Train an ensemble of `n_members` (1 = one network) with `config` on `train_rows` of the dataset and score
    its mean on each test set (rows of the same dataset) and, optionally, on `reference` (the authors' MD,
    regridded onto their bins; scored with their stored errors and with errors / 2.1). `predict`: input rows
    whose predicted mean profiles (on the model's index grid, with z) are returned too."""
    from mdsurrogate.surrogate.fit import fit_surrogate  # noqa: PLC0415 - torch
    from mdsurrogate.surrogate.training import TrainConfig  # noqa: PLC0415 - torch

    ds = cached_dataset(data)
    cfg = TrainConfig.from_dict(config)
    sur, rep = fit_surrogate(ds.isel(system=np.asarray(train_rows, dtype=int)), cfg, n_members=n_members, n_test=0,
                             seed=seed, name="study")
    arrays = to_arrays(ds)
    out: dict = {"n_train": len(train_rows), "train_time_s": float(sum(m["train_time_s"] for m in rep["members"])),
                 "best_epochs": [int(m["best_epoch"]) for m in rep["members"]], "test": {}}
    for name, rows in test_sets.items():
        if len(rows) == 0:
            continue
        t = arrays.take(np.asarray(rows, dtype=int))
        out["test"][name] = _metrics(t.Y, sur.predict_array(t.X).mean(axis=0), t.EPS)
    if reference is not None:
        out.update(reference_scores(sur, reference))
    if predict:
        Xp = np.asarray(predict, dtype=float)
        out["predictions"] = {"X": Xp.tolist(), "Y": sur.predict_array(Xp).mean(axis=0).tolist(),
                              "z": sur.z_grid(Xp[:, 0]).tolist()}
    if history:
        out["history"] = [m.get("history", []) for m in rep["members"]]
    return out


def reference_scores(sur, reference: DataSource) -> dict:
    """A surrogate's errors on the authors' MD (its mean interpolated onto their bins by `predict_on_grid`), with
    their stored errors and with errors / 2.1 (`AUTHORS_ERROR_OVERESTIMATE`)."""
    from mdsurrogate.evaluation.studies import authors_error_divisor  # noqa: PLC0415

    loaded = cached_reference(reference)
    ref = to_arrays(loaded)
    y_hat = sur.predict_on_grid(ref.X, ref.Z, std=False)[0]
    divisor = authors_error_divisor(loaded)  # a reference loaded corrected is not corrected twice
    return {"reference": _metrics(ref.Y, y_hat, ref.EPS),
            "reference_errors_div_2.1": _metrics(ref.Y, y_hat, ref.EPS / divisor)}


_REF_CACHE: dict = {}


def cached_reference(src: DataSource):
    key = (src.files, src.sha256, src.error_scale)
    if key not in _REF_CACHE:
        _REF_CACHE[key] = src.load()
    return _REF_CACHE[key]
