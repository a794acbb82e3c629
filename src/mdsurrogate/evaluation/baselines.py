"""The scikit-learn baselines the papers compared with the ANN (kadupitiya2020 Table 1), on the same splits.

Inputs are min-max scaled over the design ranges, as for the ANN; every model predicts all 1004 outputs.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LinearRegression
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, PolynomialFeatures
from sklearn.svm import SVR
from sklearn.tree import DecisionTreeRegressor

from mdsurrogate.evaluation.metrics import evaluate_predictions
from mdsurrogate.simulation.system import CHARGED_SCHEMA, SystemSchema


def _scaler(schema: SystemSchema = CHARGED_SCHEMA):
    lo, hi = schema.design_minmax()
    return FunctionTransformer(lambda X: (np.asarray(X, float) - lo) / (hi - lo))


def baseline_models(seed: int = 0, schema: SystemSchema = CHARGED_SCHEMA) -> dict[str, Callable[[], object]]:
    """Factories of the papers' baselines (kadupitiya2020 section 4.1): polynomial (degree 4), kernel ridge (rbf,
    gamma 0.1), SVR (rbf, gamma 0.1, C 100, epsilon 0.1), decision tree (depth 4), random forest (depth 4, 25
    trees); inputs min-max scaled over the design ranges of the schema's system (default the charged one)."""

    return {
        "polynomial (degree 4)": lambda: make_pipeline(_scaler(schema), PolynomialFeatures(4), LinearRegression()),
        "kernel ridge (rbf, gamma 0.1)": lambda: make_pipeline(_scaler(schema), KernelRidge(kernel="rbf", gamma=0.1)),
        "SVR (rbf, gamma 0.1, C 100, eps 0.1)": lambda: make_pipeline(_scaler(schema), MultiOutputRegressor(
            SVR(kernel="rbf", gamma=0.1, C=100.0, epsilon=0.1))),
        "decision tree (depth 4)": lambda: make_pipeline(_scaler(schema), DecisionTreeRegressor(max_depth=4,
                                                                                           random_state=seed)),
        "random forest (depth 4, 25 trees)": lambda: make_pipeline(_scaler(schema), RandomForestRegressor(
            n_estimators=25, max_depth=4, random_state=seed, n_jobs=1)),
    }


def tuned_baseline_models(seed: int = 0, schema: SystemSchema = CHARGED_SCHEMA, cv: int = 5
                          ) -> dict[str, Callable[[], object]]:
    """Kernel ridge with its hyperparameters chosen by an inner `cv`-fold grid search on the training data
    (scikit-learn GridSearchCV, MSE): the papers' fixed gamma 0.1 was tuned on their data and units, not on ours.
    Inputs min-max scaled as for the others. (A tuned SVR was tried and left out: libsvm's fits at large C and small
    epsilon took minutes per fold on 950 systems.)"""
    from sklearn.model_selection import GridSearchCV, KFold  # noqa: PLC0415

    folds = KFold(cv, shuffle=True, random_state=seed)
    krr = {"kernelridge__alpha": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1], "kernelridge__gamma": [0.1, 0.3, 1.0, 3.0, 10.0]}
    return {
        "kernel ridge (rbf, tuned)": lambda: GridSearchCV(make_pipeline(_scaler(schema), KernelRidge(kernel="rbf")),
                                                          krr, cv=folds, scoring="neg_mean_squared_error"),
    }


def fit_baselines(X_train: np.ndarray, Y_train: np.ndarray, seed: int = 0,
                  only: list[str] | None = None, schema: SystemSchema = CHARGED_SCHEMA
                  ) -> dict[str, tuple[object, float]]:
    """Fit every baseline on (X_train, Y_train) of the schema's system: {name: (fitted model, fit seconds)}."""
    out = {}
    for name, factory in baseline_models(seed, schema).items():
        if only is not None and name not in only:
            continue
        model = factory()
        t0 = time.perf_counter()
        model.fit(X_train, Y_train)
        out[name] = (model, time.perf_counter() - t0)
    return out


def run_baselines(X_train: np.ndarray, Y_train: np.ndarray, X_test: np.ndarray, Y_test: np.ndarray,
                  EPS_test: np.ndarray | None = None, seed: int = 0,
                  only: list[str] | None = None, schema: SystemSchema = CHARGED_SCHEMA) -> list[dict]:
    """Fit every baseline on (X_train, Y_train) of the schema's system, score on the test split (E_I/E_B over the
    schema's interface width); one dict of metrics per model."""
    rows = []
    for name, (model, fit_s) in fit_baselines(X_train, Y_train, seed, only, schema).items():
        t0 = time.perf_counter()
        y_hat = np.asarray(model.predict(X_test)).reshape(Y_test.shape)
        rows.append({"model": name, **evaluate_predictions(Y_test, y_hat, EPS_test, n_interface=schema.n_interface),
                     "fit_s": fit_s, "predict_s": time.perf_counter() - t0})
    return rows


def comparison_table(rows: list[dict], columns: tuple[str, ...] = ("E", "E_I+", "E_B+", "E_I-", "E_B-", "MSE", "E_MD",
                                                                     "A", "A_eps>0", "fit_s")) -> str:
    """A Markdown table with one row per model."""
    cols = [c for c in columns if any(c in r for r in rows)]
    lines = ["| model | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, float("nan"))
            cells.append(f"{v:.2e}" if c == "MSE" else f"{v:.1f}" if c.endswith("_s") else f"{v:.4f}")
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
