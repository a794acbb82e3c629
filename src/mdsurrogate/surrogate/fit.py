"""Fitting a surrogate: a deep ensemble trained on a random training split of a dataset, with its card."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import xarray as xr

from mdsurrogate.dataset import split_indices, system_groups, to_arrays, z_half_widths
from mdsurrogate.dataset.arrays import dataset_schema
from mdsurrogate.surrogate.card import build_card
from mdsurrogate.surrogate.ensemble import Surrogate

#: Rows of each member's training history kept in the card (epoch, train loss, validation MSE, time).
HISTORY_ROWS = 200


def thin_history(history: list[dict], keep: int = HISTORY_ROWS) -> list[dict]:
    """At most `keep` evenly spaced rows of a training history (first and last kept), numbers rounded to 6
    significant digits: the loss curve every saved surrogate carries in its card."""
    if len(history) > keep:
        idx = np.unique(np.linspace(0, len(history) - 1, keep).round().astype(int))
        history = [history[i] for i in idx]
    return [{k: (int(v) if k == "epoch" else float(f"{v:.6g}")) for k, v in row.items()} for row in history]


def fit_surrogate(ds: xr.Dataset, config=None, n_members: int = 5, n_test: int | float = 0.2, seed: int = 0,
                  name: str = "surrogate", description: str = "", checkpoint_dir: str | Path | None = None
                  ) -> tuple[Surrogate, dict]:
    """Train a deep ensemble on a random training split of `ds` (sun2023 random splitting, replicas kept together)
    and return (Surrogate with card, report); the card lists the train and test systems, report["split"] their
    rows. n_test = 0 trains on every system. Scoring on the test split is the evaluation stage's
    (`evaluation.scoring.fit_and_score` does both). The system kind is the dataset's (`dataset_schema`): the
    network's inputs, input scaling and outputs follow it (`NetworkConfig.for_system`), the card records it."""
    from mdsurrogate.surrogate.training import default_config, train_ensemble  # noqa: PLC0415 - torch

    config = default_config() if config is None else config
    kind = dataset_schema(ds).kind
    config = dataclasses.replace(config, seed=int(seed))  # the seed the card records is the one the members came from
    if config.network.system != kind:
        config = dataclasses.replace(config, network=config.network.for_system(kind))
    arrays = to_arrays(ds)
    groups = system_groups(arrays.X)
    if n_test:
        tr, te = split_indices(groups, n_test, seed=seed)
    else:
        tr, te = np.arange(len(arrays)), np.array([], dtype=int)
    train = arrays.take(tr)
    results = train_ensemble(train, config, n_members=n_members, seed=seed, checkpoint_dir=checkpoint_dir)
    members = [r.model for r in results]
    keys = [str(k) for k in ds["key"].values] if "key" in ds.coords else None
    training_data = {
        "source": ds.attrs.get("source", "unknown"), "source_sha256": ds.attrs.get("source_sha256", "unknown"),
        "error_scale": float(ds.attrs.get("error_scale", 1.0)),
        # systems (replicas with other seeds count once), and the rows (runs) they hold
        "n_systems": int(np.unique(groups).size), "n_train": int(np.unique(groups[tr]).size),
        "n_test": int(np.unique(groups[te]).size), "n_rows": int(len(arrays)), "n_train_rows": int(len(tr)),
        "n_test_rows": int(len(te)), "split": "random", "split_seed": int(seed),
        "train_systems": [keys[i] for i in tr] if keys else tr.tolist(),
        "test_systems": [keys[i] for i in te] if keys else te.tolist(),
    }
    metrics: dict = {}
    report: dict = {"members": [{"seed": r.config.seed, "best_epoch": r.best_epoch, "best_val_mse": r.best_val_mse,
                                 "train_time_s": r.train_time_s, "history": thin_history(r.history)}
                                for r in results]}
    sur = Surrogate(members=members, card={})
    sur.card = build_card(members, name=name, training_X=train.X, z_half_width=z_half_widths(ds.isel(system=tr)),
                          train_config=config.as_dict(), member_info=report["members"], training_data=training_data,
                          metrics=metrics, description=description)
    report["split"] = {"train": tr, "test": te}
    return sur, report
