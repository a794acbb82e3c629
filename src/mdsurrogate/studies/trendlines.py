"""Trendlines from the surrogate (kadupitiya2020 Fig. 6, kadupitiya2021 Fig. 7): profiles with their ensemble
band, net charge density rho(z) and integrated charge S(z) while one input sweeps and the others stay fixed.

The concentration sweep of kadupitiya2021 Fig. 7 (c in [0.3, 2.0] M at h = 5 nm, d+ = 0.415, d- = 0.63 nm,
sigma_s = -0.01 C/m^2), and one sweep of every input over its training range around a base system. The
table gives, per swept value, the cation contact density (first maximum of n+ from the wall), the mid-plane
densities and the decay length of S (`analysis.sweeps`, the MD's definitions).
"""

from __future__ import annotations

import numpy as np

from mdsurrogate.analysis.sweeps import sweep
from mdsurrogate.simulation.system import INPUT_NAMES, INPUT_UNITS
from mdsurrogate.studies.runner import StudyRun, md_table

FIG7_BASE = {"h": 5.0, "d_plus": 0.415, "d_minus": 0.63, "sigma_s": -0.01}
FIG7_C = (0.3, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
BASE = {"h": 4.4, "c": 0.5, "d_plus": 0.415, "d_minus": 0.415, "sigma_s": -0.015}


def features(sw) -> list[dict]:
    """Per swept value: contact (first peak) of n+, mid-plane n+ and n-, decay length."""
    rows = []
    name = sw.attrs["input"]
    for i, v in enumerate(sw["value"].values):
        n_plus, n_minus = sw["n_plus"].values[i], sw["n_minus"].values[i]
        half = n_plus.size // 2
        left = n_plus[:half]
        peak = int(np.argmax(left))
        rows.append({name: float(v), "n+ contact (M)": float(left[peak]),
                     "z contact (nm)": float(sw["z"].values[i, peak]),
                     "n+ mid (M)": float(n_plus[half - 2:half + 2].mean()),
                     "n- mid (M)": float(n_minus[half - 2:half + 2].mean()),
                     "decay length (nm)": float(sw["decay_length"].values[i]) if "decay_length" in sw else np.nan,
                     "max spread n+ (M)": float(sw["n_plus_std"].values[i].max()) if "n_plus_std" in sw else np.nan})
    return rows


def run(study: StudyRun, sur=None, base: dict | None = None, n_values: int = 6) -> dict:
    from mdsurrogate.surrogate.ensemble import Surrogate  # noqa: PLC0415 - torch

    sur = sur or Surrogate.load()
    base = {**BASE, **(base or {})}
    if not 2 <= n_values <= 100:
        raise ValueError(f"n_values must be in [2, 100], got {n_values}")
    ranges = sur.training_ranges
    fig7_c = [c for c in FIG7_C if ranges["c"][0] <= c <= ranges["c"][1]]
    tick = study.progress.task("sweeps", 1 + len(INPUT_NAMES))
    sweeps = {"fig7_c": sweep(sur, FIG7_BASE, "c", fig7_c)}
    tick(1)
    for name in INPUT_NAMES:
        lo, hi = ranges[name]
        sweeps[name] = sweep(sur, base, name, np.linspace(lo, hi, n_values))
        tick(1)
    tables = {k: features(sw) for k, sw in sweeps.items()}
    _figures(study, sweeps)
    results = {"surrogate": sur.name, "base": base, "fig7_base": FIG7_BASE, "tables": tables}
    n_sys = sur.card.get("training_data", {}).get("n_systems")
    return study.finish(results, _markdown(results), n_systems=n_sys)


def _markdown(r: dict) -> str:
    cols = ["n+ contact (M)", "z contact (nm)", "n+ mid (M)", "n- mid (M)", "decay length (nm)", "max spread n+ (M)"]
    out = [f"Surrogate `{r['surrogate']}` (no MD in this study: every number is a prediction; the `profiles` study "
           "scores predictions against MD).", "",
           f"## Concentration sweep of kadupitiya2021 Fig. 7 ({r['fig7_base']})", "",
           md_table(r["tables"]["fig7_c"], ["c", *cols]),
           "kadupitiya2021: increasing c adds modulations to rho(z) and changes how S decays to 0 (their Fig. 7).",
           "", f"## One input at a time around {r['base']}", ""]
    for name in INPUT_NAMES:
        out += [f"### {name} ({INPUT_UNITS[name]})", "", md_table(r["tables"][name], [name, *cols])]
    return "\n".join(out) + "\n"


def _figures(study: StudyRun, sweeps: dict) -> None:
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    sw = sweeps["fig7_c"]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.cm.viridis(np.linspace(0, 1, sw.sizes["value"]))
    for i, v in enumerate(sw["value"].values):
        ax[0].plot(sw["z"].values[i], sw["rho"].values[i], color=colors[i], lw=1, label=f"c = {v:g} M")
        ax[1].plot(sw["z"].values[i], sw["S"].values[i], color=colors[i], lw=1)
    ax[0].set(xlabel="z (nm)", ylabel="rho (C/m^3)", title="net charge density (kadupitiya2021 Fig. 7a)")
    ax[1].set(xlabel="z (nm)", ylabel="S (C/m^2)", title="integrated charge (Fig. 7b)")
    ax[0].legend(fontsize=6)
    study.save_figure(fig, "figure_fig7_concentration")
    fig, axes = plt.subplots(2, len(INPUT_NAMES), figsize=(4 * len(INPUT_NAMES), 7))
    for col, name in enumerate(INPUT_NAMES):
        sw = sweeps[name]
        colors = plt.cm.plasma(np.linspace(0, 0.9, sw.sizes["value"]))
        for i, v in enumerate(sw["value"].values):
            z, m = sw["z"].values[i], sw["n_plus"].values[i]
            axes[0, col].plot(z, m, color=colors[i], lw=1, label=f"{v:.3g}")
            if "n_plus_std" in sw:
                s = sw["n_plus_std"].values[i]
                axes[0, col].fill_between(z, m - 2 * s, m + 2 * s, color=colors[i], alpha=0.2)
            axes[1, col].plot(z, sw["S"].values[i], color=colors[i], lw=1)
        axes[0, col].set(title=f"sweep of {name} ({INPUT_UNITS[name]})", ylabel="n+ (M)")
        axes[1, col].set(xlabel="z (nm)", ylabel="S (C/m^2)")
        axes[0, col].legend(fontsize=6)
    study.save_figure(fig, "figure_sweeps")
