"""Sobol sensitivity of the predicted structure to the ion sizes (kadupitiya2021 section 4, Fig. 8).

d+ ~ N(0.4, 0.01^2) nm and d- ~ N(0.6, 0.015^2) nm, h = 4.5 nm, sigma_s = -0.015 C/m^2, at c = 0.3 and 1.9 M;
SALib's sampling and estimators (`analysis.sensitivity.sobol_indices`) on about 1e6 surrogate evaluations per
case; first-order indices S1 of n+, n- and of the net charge density rho (the paper's output) as functions of z
and at the paper's five z values. The paper normalises its two indices to S+ + S- = 1 (its pie charts); the
table gives the raw S1 and that normalised share.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from mdsurrogate.analysis.sensitivity import sobol_indices
from mdsurrogate.simulation.system import INPUT_NAMES, N_GRID
from mdsurrogate.studies.runner import StudyRun, md_table

PAPER_Z = {"I": -2.05, "II": -1.95, "III": -1.85, "IV": -1.55, "V": -1.0}
CASES = (0.3, 1.9)
#: kadupitiya2021's shares S+ / (S+ + S-) of rho's variance (%, section 4; '' where it gives only a relation)
PAPER = {0.3: {"I": "S+ > 99", "II": "S+ 22.5, S- 77", "III": "S+ 83, S- 16.9", "IV": "S+ ~ S-", "V": ""},
         1.9: {"I": "S+ > 99", "II": "S- marginally > S+", "III": "S- >~ 3 S+", "IV": "S+ ~ 2 S-", "V": "S+ ~ S-"}}


def problem_inputs(c: float) -> dict:
    return {"h": 4.5, "c": float(c), "d_plus": ("norm", 0.4, 0.01), "d_minus": ("norm", 0.6, 0.015),
            "sigma_s": -0.015}


def run(study: StudyRun, sur=None, n: int = 2**18, cases=CASES) -> dict:
    from mdsurrogate.surrogate.ensemble import Surrogate  # noqa: PLC0415 - torch

    sur = sur or Surrogate.load()
    if n < 16:
        raise ValueError(f"n (SALib's base sample) must be >= 16, got {n}")

    def rho_model(X: np.ndarray) -> np.ndarray:  # rho is proportional to n+ - n- (monovalent): same indices
        m = sur.predict_mean_std(X, std=False)[0]
        return m[:, :N_GRID] - m[:, N_GRID:]

    tick = study.progress.task("Sobol analyses", 2 * len(cases))
    out, sets = {}, {}
    for c in cases:
        inputs = problem_inputs(c)
        ions = sobol_indices(sur, inputs, n, seed=study.seed, allow_extrapolation=True)
        tick(1)
        rho = sobol_indices(rho_model, {k: inputs[k] for k in INPUT_NAMES}, n, seed=study.seed)
        tick(1)
        z = ions["z"].values
        mean = sur.predict_mean_std(np.array([[4.5, c, 0.4, 0.6, -0.015]]), std=False)[0][0]
        lo, hi = sur.training_ranges["d_minus"]
        frac_out = float(norm.sf((hi - 0.6) / 0.015) + norm.cdf((lo - 0.6) / 0.015))
        at = []
        for label, zz in PAPER_Z.items():
            k = int(np.argmin(np.abs(z - zz)))
            s_p, s_m = float(rho["S1"].sel(input="d_plus").values[k]), float(rho["S1"].sel(input="d_minus").values[k])
            tot = s_p + s_m
            at.append({"c (M)": c, "z": label, "z (nm)": float(z[k]), "rho S1(d+)": s_p, "rho S1(d-)": s_m,
                       "share S+ (%)": 100 * s_p / tot if tot > 0 else np.nan,
                       "share S- (%)": 100 * s_m / tot if tot > 0 else np.nan,
                       "n+ S1(d+)": float(ions["S1_n_plus"].sel(input="d_plus").values[k]),
                       "n- S1(d-)": float(ions["S1_n_minus"].sel(input="d_minus").values[k]),
                       "paper (rho)": PAPER.get(c, {}).get(label, "")})
        out[str(c)] = {"n_evaluations": int(ions.attrs["n_evaluations"]),
                       "wall_time_s": float(ions.attrs["wall_time_s"]),
                       "eval_time_s": float(ions.attrs["eval_time_s"]),
                       "rho_wall_time_s": float(rho.attrs["wall_time_s"]), "at_paper_z": at,
                       "d_minus_beyond_training_range": frac_out}
        sets[c] = (z, ions, rho, mean)
    _figures(study, sets)
    results = {"surrogate": sur.name, "n": n, "cases": out, "paper_z": PAPER_Z,
               "setup": "d+ ~ N(0.4, 0.01^2), d- ~ N(0.6, 0.015^2) nm, h 4.5 nm, sigma_s -0.015 C/m^2"}
    n_sys = sur.card.get("training_data", {}).get("n_systems")
    return study.finish(results, _markdown(results), n_systems=n_sys)


def _markdown(r: dict) -> str:
    rows = [row for case in r["cases"].values() for row in case["at_paper_z"]]
    out = [f"Surrogate `{r['surrogate']}`; {r['setup']}; SALib N = {r['n']}.", ""]
    for c, case in r["cases"].items():
        out.append(f"- c = {c} M: {case['n_evaluations']:,} evaluations of n+/n- in {case['wall_time_s']:.1f} s "
                   f"({case['eval_time_s']:.1f} s in the surrogate), rho in {case['rho_wall_time_s']:.1f} s; "
                   f"{100 * case['d_minus_beyond_training_range']:.1f} % of the d- draws lie beyond the training "
                   "range (predicted by extrapolation)")
    out += ["", md_table(rows, ["c (M)", "z", "z (nm)", "rho S1(d+)", "rho S1(d-)", "share S+ (%)", "share S- (%)",
                                "n+ S1(d+)", "n- S1(d-)", "paper (rho)"],
                         {"c (M)": ".1f", "z (nm)": ".3f", "share S+ (%)": ".1f", "share S- (%)": ".1f"})]
    return "\n".join(out) + "\n"


def _figures(study: StudyRun, sets: dict) -> None:
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    cases = list(sets)
    fig, axes = plt.subplots(len(cases), 1 + len(PAPER_Z), figsize=(3.2 * (1 + len(PAPER_Z)), 3.4 * len(cases)),
                             squeeze=False)
    for row, c in enumerate(cases):
        z, ions, rho, mean = sets[c]
        ax = axes[row, 0]
        ax.plot(z, mean[:N_GRID], color="brown", label="n+")
        ax.plot(z, mean[N_GRID:], color="green", label="n-")
        for zz in PAPER_Z.values():
            ax.axvline(zz, color="k", ls="--", lw=0.6)
        ax.set(xlim=(z[0], 0), xlabel="z (nm)", ylabel="n (M)", title=f"c = {c} M, d+ 0.4, d- 0.6")
        ax.legend(fontsize=7)
        for col, (label, zz) in enumerate(PAPER_Z.items(), start=1):
            k = int(np.argmin(np.abs(z - zz)))
            s = np.clip([rho["S1"].sel(input="d_plus").values[k], rho["S1"].sel(input="d_minus").values[k]], 0, None)
            a = axes[row, col]
            if s.sum() > 0:
                a.pie(s, labels=["S+", "S-"], colors=["orange", "lightgreen"], autopct="%1.0f%%",
                      textprops={"fontsize": 7})
            a.set_title(f"{label}: z = {zz} nm", fontsize=8)
    fig.suptitle("share of rho's variance from d+ and d- (kadupitiya2021 Fig. 8)")
    study.save_figure(fig, "figure_pies")
    fig, axes = plt.subplots(1, len(cases), figsize=(6 * len(cases), 4), squeeze=False)
    for ax, c in zip(axes[0], cases):
        z, ions, rho, _ = sets[c]
        left = z <= 0
        ax.plot(z[left], ions["S1_n_plus"].sel(input="d_plus").values[left], label="S1 of n+ to d+")
        ax.plot(z[left], ions["S1_n_minus"].sel(input="d_minus").values[left], label="S1 of n- to d-")
        ax.plot(z[left], rho["S1"].sel(input="d_plus").values[left], "--", label="S1 of rho to d+")
        ax.plot(z[left], rho["S1"].sel(input="d_minus").values[left], "--", label="S1 of rho to d-")
        ax.set(xlabel="z (nm)", ylabel="first-order index", title=f"c = {c} M", ylim=(-0.05, 1.05))
        ax.legend(fontsize=7)
    study.save_figure(fig, "figure_indices_vs_z")
