"""Scoring a surrogate on held-out MD (sun2023 eqs. 2-7, kadupitiya2021 eq. 10): the ensemble and its members on
a test split, and fitting with that score in the card (what `mdsurrogate train` ships)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from mdsurrogate.dataset import Arrays, to_arrays
from mdsurrogate.evaluation.metrics import evaluate_predictions, success_rate_per_system
from mdsurrogate.surrogate.ensemble import Surrogate
from mdsurrogate.surrogate.fit import fit_surrogate


def score_surrogate(sur: Surrogate, test: Arrays) -> dict:
    """Metrics of the ensemble mean (`test_ensemble`), the mean over members (`test_member_mean`) and the success
    rate A_j of every test system (`test_A_j`) against the MD labels and error bars of `test`."""
    pred = sur.predict_array(test.X)
    k = sur.schema.n_interface  # 50 of 502 points (the papers), 15 of 150 for the uncharged system
    metrics: dict = {"test_ensemble": evaluate_predictions(test.Y, pred.mean(axis=0), test.EPS, n_interface=k)}
    per_member = [evaluate_predictions(test.Y, p, test.EPS, n_interface=k) for p in pred]
    metrics["test_member_mean"] = {k: float(np.mean([m[k] for m in per_member])) for k in per_member[0]}
    metrics["test_A_j"] = success_rate_per_system(test.Y, pred.mean(axis=0), test.EPS).tolist()
    metrics["units"] = "E, E_I/E_B in M; MSE in M^2; A = success rate (kadupitiya2021 eq. 10)"
    return metrics


def fit_and_score(ds: xr.Dataset, config=None, n_members: int = 5, n_test: int | float = 0.2, seed: int = 0,
                  name: str = "surrogate", description: str = "", checkpoint_dir: str | Path | None = None
                  ) -> tuple[Surrogate, dict]:
    """`fit_surrogate`, then `score_surrogate` on the held-out test split; the metrics go into the card and the
    report (none when n_test = 0)."""
    sur, report = fit_surrogate(ds, config, n_members=n_members, n_test=n_test, seed=seed, name=name,
                                description=description, checkpoint_dir=checkpoint_dir)
    te = report["split"]["test"]
    metrics = score_surrogate(sur, to_arrays(ds).take(te)) if len(te) else {}
    sur.card["metrics"] = metrics
    report["metrics"] = metrics
    return sur, report
