"""Predicted vs MD profiles (sun2023 Figs. 6-7, kadupitiya2021 Figs. 4-5): four systems the surrogate never saw,
its mean and ensemble band over the MD with error bars for n+, n-, rho and S, their RMSE_j (kadupitiya2021
eq. 9) and A_j (eq. 10); and over every unseen system of the dataset the per-output curves E_k (sun2023 eq. 2)
and A_k vs the output index k.

The four systems are the papers' own where the dataset has them and the surrogate did not train on them
(sun2023 I-IV, kadupitiya2021 I-IV), completed with unseen systems drawn with the study's seed.
"""

from __future__ import annotations

import numpy as np

from mdsurrogate.dataset import inputs_array, to_arrays
from mdsurrogate.evaluation.metrics import (
    rmse_per_output,
    rmse_per_system,
    success_rate_per_output,
    success_rate_per_system,
)
from mdsurrogate.simulation.derived import charge_density, integrated_charge
from mdsurrogate.simulation.system import INPUT_NAMES, system_key
from mdsurrogate.studies.runner import StudyRun, md_table

PAPER_SYSTEMS = {
    "sun2023 I": (4.6, 0.25, 0.5225, 0.415, -0.01), "sun2023 II": (4.4, 1.0, 0.3075, 0.63, -0.01),
    "sun2023 III": (4.6, 1.75, 0.3075, 0.63, -0.01), "sun2023 IV": (4.0, 0.1, 0.63, 0.5225, -0.01),
    "kadupitiya2021 I": (4.8, 1.5, 0.415, 0.63, -0.02), "kadupitiya2021 II": (5.0, 2.0, 0.63, 0.63, -0.02),
    "kadupitiya2021 III": (4.4, 1.0, 0.415, 0.5225, -0.015), "kadupitiya2021 IV": (4.0, 1.5, 0.5225, 0.415, -0.015),
}
#: kadupitiya2021 (ModNN on the authors' data): A_j of systems I-IV, RMSE_j+ and RMSE_j-
PAPER_NUMBERS = {"kadupitiya2021": {"A_j": [0.975, 0.93, 0.98, 0.978], "RMSE_j+": [0.0007, 0.001, 0.0003, 0.0004],
                                    "RMSE_j-": [0.0004, 0.0009, 0.0003, 0.0005], "BaseNN A_j": "about 0.7"}}


def unseen_rows(ds, sur) -> np.ndarray:
    """Rows of ds whose system the surrogate did not train on (its card lists the training systems)."""
    trained = set(sur.card.get("training_data", {}).get("train_systems", []))
    keys = [system_key(dict(zip(INPUT_NAMES, map(float, x)))) for x in inputs_array(ds)]
    return np.array([i for i, k in enumerate(keys) if k not in trained], dtype=int)


def choose_systems(ds, rows: np.ndarray, n: int, seed: int) -> list[tuple[str, int]]:
    """(label, row): the papers' systems among `rows` first, then random ones of `rows`."""
    X = inputs_array(ds)
    out: list[tuple[str, int]] = []
    for label, x in PAPER_SYSTEMS.items():
        hit = [r for r in rows if np.all(np.abs(X[r] - np.asarray(x)) < 1e-6)]
        if hit and len(out) < n:
            out.append((label, int(hit[0])))
    rest = [r for r in np.random.default_rng(seed).permutation(rows) if r not in {r_ for _, r_ in out}]
    out += [(f"random unseen {i + 1}", int(r)) for i, r in enumerate(rest[: n - len(out)])]
    return out


def run(study: StudyRun, sur=None, n_systems: int = 4) -> dict:
    from mdsurrogate.surrogate.ensemble import Surrogate  # noqa: PLC0415 - torch

    sur = sur or Surrogate.load()
    ds = study.data.load()
    rows = unseen_rows(ds, sur)
    if rows.size == 0:
        raise ValueError("every system of the dataset was used to train this surrogate: give a dataset with "
                         "systems it has not seen")
    arrays = to_arrays(ds.isel(system=rows))
    mean, std = sur.predict_on_grid(arrays.X, arrays.Z)  # on the data's own bins (other datasets bin differently)
    picked = choose_systems(ds, rows, n_systems, study.seed)
    where = {int(r): i for i, r in enumerate(rows)}
    per = []
    for label, r in picked:
        i = where[r]
        y, yh, eps = arrays.Y[i:i + 1], mean[i:i + 1], arrays.EPS[i:i + 1]
        rm = rmse_per_system(y, yh)
        per.append({"system": label, "inputs": dict(zip(INPUT_NAMES, map(float, arrays.X[i]))),
                    "RMSE_j+": float(rm["plus"][0]), "RMSE_j-": float(rm["minus"][0]),
                    "A_j": float(success_rate_per_system(y, yh, eps)[0]),
                    "A_j(eps>0)": float(success_rate_per_system(y, yh, eps, exclude_zero_error=True)[0])})
    curves = {"E_k": rmse_per_output(arrays.Y, mean).tolist(),
              "A_k": success_rate_per_output(arrays.Y, mean, arrays.EPS).tolist(),
              "A_k(eps>0)": success_rate_per_output(arrays.Y, mean, arrays.EPS, exclude_zero_error=True).tolist()}
    _figures(study, ds, rows, picked, arrays, mean, std, curves)
    results = {"surrogate": sur.name, "n_unseen": int(rows.size), "systems": per, "curves": curves,
               "paper": PAPER_NUMBERS}
    return study.finish(results, _markdown(results), n_systems=int(ds.sizes["system"]))


def _markdown(r: dict) -> str:
    rows = [{"system": p["system"], "inputs (h, c, d+, d-, sigma_s)": tuple(round(v, 4) for v in p["inputs"].values()),
             **{k: p[k] for k in ("RMSE_j+", "RMSE_j-", "A_j", "A_j(eps>0)")}} for p in r["systems"]]
    k = np.asarray(r["curves"]["E_k"])
    half = k.size // 2
    a = np.asarray(r["curves"]["A_k"])
    out = [f"Surrogate `{r['surrogate']}` on systems it never trained on ({r['n_unseen']} in the dataset). "
           "Errors in M; A_j = share of the 1004 outputs within the MD error bar (eq. 10).", "",
           md_table(rows, list(rows[0]), {"RMSE_j+": ".4f"}),
           f"Per-output curves over the {r['n_unseen']} unseen systems: E_k at the interface (first/last 50 points "
           f"of each profile) {np.r_[k[:50], k[half - 50:half + 50], k[-50:]].mean():.4f} M, in the middle "
           f"{np.r_[k[200:302], k[half + 200:half + 302]].mean():.4f} M; A_k ranges {np.nanmin(a):.2f}-"
           f"{np.nanmax(a):.2f}.", "",
           "kadupitiya2021 (ModNN, the authors' MD, their four systems): A_j = 0.975, 0.93, 0.98, 0.978; RMSE_j+ = "
           "0.0007, 0.001, 0.0003, 0.0004; RMSE_j- = 0.0004, 0.0009, 0.0003, 0.0005 (BaseNN A_j about 0.7), "
           "scored against the authors' 1e4-tau runs with their stored errors (about 2.1x overstated). On the "
           "authors' reference data the comparable number is A_j(eps>0) (docs/surrogate.md); on our 222-tau MD "
           "(honest, larger errors relative to the signal) A_j measures the labels' noise as much as the model."]
    return "\n".join(out) + "\n"


def _figures(study, ds, rows, picked, arrays, mean, std, curves) -> None:
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    where = {int(r): i for i, r in enumerate(rows)}
    half = arrays.Y.shape[1] // 2
    fig, axes = plt.subplots(4, len(picked), figsize=(4.2 * len(picked), 12), squeeze=False)
    for col, (label, r) in enumerate(picked):
        i = where[r]
        z = arrays.Z[i]
        sigma = float(arrays.X[i, INPUT_NAMES.index("sigma_s")])
        y, e, m = arrays.Y[i], arrays.EPS[i], mean[i]
        s = std[i] if std is not None else None  # one network: no ensemble band
        for row, (sl, name) in enumerate(((slice(0, half), "n+ (M)"), (slice(half, None), "n- (M)"))):
            ax = axes[row, col]
            ax.errorbar(z, y[sl], yerr=e[sl], fmt=".", ms=2, color="gray", alpha=0.6, label="MD")
            ax.plot(z, m[sl], color="C3", lw=1.2, label="ANN mean")
            if s is not None:
                ax.fill_between(z, m[sl] - 2 * s[sl], m[sl] + 2 * s[sl], color="C3", alpha=0.25,
                                label="ANN +- 2 std")
            ax.set(ylabel=name)
        rho_md, rho_ml = charge_density(y[:half], y[half:]), charge_density(m[:half], m[half:])
        axes[2, col].plot(z, rho_md, ".", ms=2, color="gray", label="MD")
        axes[2, col].plot(z, rho_ml, color="C3", lw=1.2, label="ANN")
        axes[2, col].set(ylabel="rho (C/m^3)")
        axes[3, col].plot(z, integrated_charge(z, rho_md, sigma), ".", ms=2, color="gray", label="MD")
        axes[3, col].plot(z, integrated_charge(z, rho_ml, sigma), color="C3", lw=1.2, label="ANN")
        axes[3, col].set(ylabel="S (C/m^2)", xlabel="z (nm)")
        x = arrays.X[i]
        axes[0, col].set_title(f"{label}\n(h {x[0]:g}, c {x[1]:g}, d+ {x[2]:g}, d- {x[3]:g}, s {x[4]:g})", fontsize=8)
        axes[0, col].legend(fontsize=6)
    study.save_figure(fig, "figure_profiles")
    k = np.arange(1, half + 1)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ek = np.asarray(curves["E_k"])
    ax[0].plot(k, ek[:half], label="E_k+ (cations)")
    ax[0].plot(k, ek[half:], label="E_k- (anions)")
    ax[0].set(xlabel="output index k", ylabel="E_k (M)", title="RMSE per output (sun2023 Fig. 7)")
    ax[0].legend(fontsize=7)
    ak, ak0 = np.asarray(curves["A_k"]), np.asarray(curves["A_k(eps>0)"])
    ax[1].plot(k, ak[:half], label="A_k+")
    ax[1].plot(k, ak[half:], label="A_k-")
    ax[1].plot(k, ak0[:half], ":", label="A_k+ over eps > 0")
    ax[1].set(xlabel="output index k", ylabel="A_k", title="success rate per output")
    ax[1].legend(fontsize=7)
    study.save_figure(fig, "figure_per_output")
