"""Speedup of the surrogate including the cost of its training data (sun2023 eqs. 4-10, kadupitiya2020 section 4.5),
from times measured on this machine.

t_seq: one MD run of a representative system on one core (production preset, the dataset's run length);
t_train: the same run parallelised over `ranks` MPI ranks (sun2023: "the average runtime of the parallelized MD
simulation"), so S_HPC = t_seq / t_train; the authors' preset, whose full runs are too long to time here, is
extrapolated from two short runs (cost per step from their difference, times the preset's steps); t_fit: the
wall time of training the shipped surrogate (its card); t_p: one profile from the shipped surrogate.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from mdsurrogate.evaluation.speedup import baseline_speedup, net_speedup_from_baseline, s_hpc, speedup
from mdsurrogate.simulation.settings import PRESETS, RunControls
from mdsurrogate.simulation.system import ConfinedElectrolyte
from mdsurrogate.studies.runner import StudyRun, md_table, task_key

#: sun2023 section 3.1 (MD of confined electrolytes on their cluster) and Fig. 5 inset
PAPER = {"t_seq_s": 24 * 3600.0, "t_train_s": 3.5 * 3600.0, "t_p_s": 0.3, "S_HPC": 7.0, "N_test": 500,
         "S/S_HPC_at_150": 4.3, "S/S_HPC_at_3550": 1.14}
DEFAULT_SYSTEM = {"h": 4.4, "c": 0.5, "d_plus": 0.415, "d_minus": 0.415, "sigma_s": -0.015}


def _timed_run(system: ConfinedElectrolyte, controls: RunControls) -> float:
    from mdsurrogate.simulation.engine import simulate  # noqa: PLC0415 - LAMMPS (heavy)

    t0 = time.perf_counter()
    simulate(system, controls)
    return time.perf_counter() - t0


def authors_controls(steps: int, seed: int) -> RunControls:
    """A short run of the authors' preset (4+ blocks of 200 steps) for timing."""
    return RunControls(preset="authors", steps=steps, seed=seed, n_blocks=4, overrides={"block_steps": 200})


def measure_prediction(sur, x: np.ndarray, repeats: int = 200) -> dict:
    """t_p: median time of one profile (mean and spread), and the time per profile in a batch of 10 000."""
    x = np.asarray(x, float).reshape(1, -1)
    for _ in range(10):
        sur.predict_mean_std(x)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sur.predict_mean_std(x)
        ts.append(time.perf_counter() - t0)
    batch = np.repeat(x, 10_000, axis=0)
    t0 = time.perf_counter()
    sur.predict_mean_std(batch)
    return {"t_p_s": float(np.median(ts)), "t_p_batch_s": (time.perf_counter() - t0) / len(batch)}


def curves(t_seq: float, t_train: float, t_p: float, t_fit: float, n_train_values, n_test: int,
           n_train: int, n_p_values) -> dict:
    """S/S_HPC vs N_train (eq. 5 and the exact eq. 4 with N_p = N_test + N_train, with and without the network's
    training time), S vs the number of predictions N_p at `n_train`, and the break-even N_p (S = 1). t_fit is the
    training time measured at `n_train`; at another N_train it is scaled in proportion (full-batch epochs cost in
    proportion to N_train at a fixed epoch budget: the ntrain study's networks took 68, 163, 284 and 478 s at
    N_train 150, 300, 550 and 995)."""
    shpc = s_hpc(t_seq, t_train)
    rows = []
    for n in n_train_values:
        n_p = n_test + n
        fit_n = t_fit * n / n_train
        rows.append({"N_train": int(n), "S/S_HPC (eq. 5)": 1.0 + n_test / n,
                     "S/S_HPC (eq. 4)": speedup(n_p, t_seq, t_p, n, t_train) / shpc,
                     "S/S_HPC (eq. 4 + t_fit)": n_p * t_seq / (n_p * t_p + n * t_train + fit_n) / shpc})
    n_p = np.asarray(n_p_values, float)
    s_np = n_p * t_seq / (n_p * t_p + n_train * t_train)
    s_np_fit = n_p * t_seq / (n_p * t_p + n_train * t_train + t_fit)
    return {"S_HPC": shpc, "vs_n_train": rows, "N_p": n_p.tolist(), "S_vs_N_p": s_np.tolist(),
            "S_vs_N_p_with_fit": s_np_fit.tolist(),
            "break_even_N_p": n_train * t_train / (t_seq - t_p) if t_seq > t_p else float("inf"),
            "break_even_N_p_with_fit": (n_train * t_train + t_fit) / (t_seq - t_p) if t_seq > t_p else float("inf")}


def run(study: StudyRun, sur=None, system: dict | None = None, steps: int | None = None, ranks: int = 2,
        probe_steps: tuple[int, int] = (1000, 3000), n_test: int = 500, n_train: int | None = None) -> dict:
    """Measure the times (cached in the study folder: a rerun reuses them) and compute the speedups."""
    from mdsurrogate.surrogate.ensemble import Surrogate  # noqa: PLC0415 - torch

    sur = sur or Surrogate.load()
    system = {**DEFAULT_SYSTEM, **(system or {})}
    electrolyte = ConfinedElectrolyte(**system)
    ds = study.data.load() if study.data else None
    if steps is None:
        if ds is None or "equilibration_steps" not in ds:
            raise ValueError("give the run length (steps) or a dataset whose runs record it")
        steps = int(np.median(ds["equilibration_steps"].values + ds["production_steps"].values))
    if not 1 <= ranks <= 1024:
        raise ValueError(f"ranks must be in [1, 1024], got {ranks}")
    lo, hi = probe_steps
    if not 0 < lo < hi:
        raise ValueError(f"probe_steps must be two increasing step counts, got {probe_steps}")
    load_before = os.getloadavg()[0]
    tick = study.progress.task("MD timings", 4)

    def md(controls: RunControls, tag: str) -> float:
        key = task_key("md", tag, electrolyte.inputs(), dataclasses.asdict(controls), study.seed)
        out = study.cached(f"md-{tag}-{key}", lambda: {"wall_s": _timed_run(electrolyte, controls)})["wall_s"]
        tick(1)
        return out

    t_seq = md(RunControls(steps=steps, seed=study.seed + 1), "seq")
    t_par = md(RunControls(steps=steps, seed=study.seed + 1, mpi_ranks=ranks), "par")
    t_lo = md(authors_controls(lo, study.seed + 1), "authors")
    t_hi = md(authors_controls(hi, study.seed + 1), "authors")
    per_step = (t_hi - t_lo) / (hi - lo)
    a = PRESETS["authors"]
    authors_steps = int(round(a.time_tau / a.dt))
    t_authors = t_lo + per_step * (authors_steps - lo)
    pred = measure_prediction(sur, np.array([system[k] for k in DEFAULT_SYSTEM]))
    t_fit = float(sum(m.get("train_time_s", 0.0) for m in sur.card.get("training", {}).get("members", []))) or \
        float("nan")
    td = sur.card.get("training_data", {})
    n_train = n_train or int(td.get("n_train_rows") or td.get("n_train") or 800)  # MD runs the training cost
    sizes = [150, 200, 250, 300, 350, 400, 450, 500, 550, 1050, 1550, 2050, 2550, 3050, 3550]
    n_p = np.unique(np.geomspace(1, 1e7, 57).round()).astype(int)
    fit = t_fit if np.isfinite(t_fit) else 0.0
    ours = curves(t_seq, t_par, pred["t_p_s"], fit, sizes, n_test, n_train, n_p)
    paper = curves(PAPER["t_seq_s"], PAPER["t_train_s"], PAPER["t_p_s"], 0.0, sizes, n_test, n_train, n_p)
    n_total = 4050
    s_b = baseline_speedup(ours["S_HPC"], n_total, 1550)
    times = {"system": system, "steps": steps, "ranks": ranks, "t_seq_s": t_seq, "t_train_s": t_par,
             "authors_preset": {"probe_steps": [lo, hi], "probe_wall_s": [t_lo, t_hi], "s_per_step": per_step,
                                "steps": authors_steps, "t_seq_extrapolated_s": t_authors},
             "t_fit_s": t_fit, "t_fit_source": "sum of the shipped surrogate's member training times (its card)",
             **pred, "n_train_shipped": n_train, "load_average_before": load_before,
             "cpu_count": os.cpu_count()}
    results = {"times": times, "ours": ours, "paper_times": PAPER, "paper_curves": paper,
               "S_B(N_total=4050, N_train=1550)": s_b,
               "S'(f=0.1)": net_speedup_from_baseline(s_b, ours["S_HPC"], 0.1)}
    _figures(study, ours, paper, n_train)
    return study.finish(results, _markdown(results), n_systems=ds.sizes["system"] if ds is not None else None)


def _markdown(r: dict) -> str:
    t, o, p = r["times"], r["ours"], r["paper_times"]
    s_net = r["S'(f=0.1)"]
    rows = [{"quantity": "t_seq (1 core)", "ours": f"{t['t_seq_s']:.1f} s", "paper": "24 h"},
            {"quantity": f"t_train (parallel MD, {t['ranks']} ranks)", "ours": f"{t['t_train_s']:.1f} s",
             "paper": "3.5 h"},
            {"quantity": "S_HPC = t_seq / t_train", "ours": f"{o['S_HPC']:.2f}", "paper": f"{p['S_HPC']:g}"},
            {"quantity": "t_p (one profile, mean + spread)", "ours": f"{1e3 * t['t_p_s']:.2f} ms",
             "paper": "0.3 s"},
            {"quantity": "t_p per profile in a batch of 10^4", "ours": f"{1e6 * t['t_p_batch_s']:.1f} us",
             "paper": ""},
            {"quantity": "t_fit (training the shipped ensemble)", "ours": f"{t['t_fit_s']:.0f} s", "paper": "ignored"},
            {"quantity": "authors' preset, one full run (extrapolated)",
             "ours": f"{t['authors_preset']['t_seq_extrapolated_s'] / 3600:.1f} h "
                     f"({1e3 * t['authors_preset']['s_per_step']:.2f} ms/step x {t['authors_preset']['steps']})",
             "paper": "24 h (on their cluster's core)"},
            {"quantity": f"break-even N_p at N_train = {t['n_train_shipped']}",
             "ours": f"{o['break_even_N_p']:.0f} ({o['break_even_N_p_with_fit']:.0f} with t_fit)",
             "paper": f"{r['paper_curves']['break_even_N_p']:.0f} (their times)"}]
    out = [f"Representative system {t['system']}, production preset, {t['steps']} steps; every time measured "
           f"in this study on this machine ({t['cpu_count']} cores, 1-minute load average "
           f"{t['load_average_before']:.2f} before the first run; times cached under cache/ are reused by a rerun).",
           "",
           md_table(rows, ["quantity", "ours", "paper"]), "",
           "S/S_HPC vs N_train with N_p = N_test + N_train (sun2023 Fig. 5 inset, N_test = 500):", "",
           md_table([x for x in o["vs_n_train"]], ["N_train", "S/S_HPC (eq. 5)", "S/S_HPC (eq. 4)",
                                                    "S/S_HPC (eq. 4 + t_fit)"], {"N_train": "d"}),
           "The paper's inset: 4.3 at N_train = 150 and 1.14 at 3550 (eq. 5). With our t_p / t_train the exact eq. 4 "
           "equals eq. 5 to the shown digits; only t_fit (the shipped ensemble's, scaled in proportion to N_train), "
           "which the paper ignores, lowers S, by the same small fraction at every N_train.",
           f"S_B (eq. 8, N_total 4050, N_train 1550) = {r['S_B(N_total=4050, N_train=1550)']:.2f}; S' (eq. 10, "
           f"f = 10 %) = {s_net:.2f}."]
    return "\n".join(out) + "\n"


def _figures(study: StudyRun, ours: dict, paper: dict, n_train: int) -> None:
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    n = [r["N_train"] for r in ours["vs_n_train"]]
    for col, style in (("S/S_HPC (eq. 5)", "o-"), ("S/S_HPC (eq. 4)", "x--"), ("S/S_HPC (eq. 4 + t_fit)", "s:")):
        ax[0].plot(n, [r[col] for r in ours["vs_n_train"]], style, ms=4, label=col)
    ax[0].axhline(1.0, color="red", ls=":", lw=1, label="S = S_HPC")
    ax[0].set(xlabel="N_train", ylabel="S / S_HPC", title="speedup vs N_train (sun2023 Fig. 5 inset)")
    ax[0].legend(fontsize=7)
    ax[1].loglog(ours["N_p"], ours["S_vs_N_p"], label="ours (measured times)")
    ax[1].loglog(ours["N_p"], ours["S_vs_N_p_with_fit"], "--", label="ours + network training")
    ax[1].loglog(paper["N_p"], paper["S_vs_N_p"], ":", label="paper's times (24 h, 3.5 h, 0.3 s)")
    ax[1].axhline(1.0, color="gray", lw=0.8)
    ax[1].axvline(ours["break_even_N_p"], color="C0", lw=0.8, ls="-.")
    ax[1].set(xlabel="number of predictions N_p", ylabel="S (eq. 4)", title=f"speedup vs N_p (N_train = {n_train})")
    ax[1].legend(fontsize=7)
    study.save_figure(fig, "figure_speedup")
