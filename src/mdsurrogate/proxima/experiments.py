"""The paper's three experiments (tynes2024, section 3) with the LAMMPS Si targets.

For every seed a target-only run is made first; the ensemble is then trained once on target frames sampled from
those runs (the paper: 1024 target points, then no further training) and the same initial velocities are run
with PROXIMA (n = 0) and PROXIMA+BLEND (n = 10). Each run writes its per-step JSONL log and an npz trace.

1. `npt_experiment`: 800 K NPT, density from the last quarter, max |dV/dt| per run (Figs. 2, 3).
2. `hops_experiment`: 1573 K NVT, vacancy hop rate with standard error (Table 1).
3. `cost_report`: call counts and times, measured and modelled speedup (paper: 4 s vs 0.2 s steps, 1.5x).
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.signal import savgol_filter

from mdsurrogate.io import atomic_path, write_figure_atomic, write_json_atomic
from mdsurrogate.provenance import provenance
from mdsurrogate.proxima.calculator import ProximaCalculator, ProximaSettings
from mdsurrogate.proxima.hops import count_hops, diamond_sites_frac, rate_with_se, vacancy_track
from mdsurrogate.proxima.md import MDSettings, init_velocities, run_md
from mdsurrogate.proxima.pretrain import pretrain_cost_s
from mdsurrogate.proxima.surrogate import EnsembleSurrogate, SurrogateConfig
from mdsurrogate.proxima.targets import available_targets, density_g_cc, lammps_si, make_target, si_vacancy_cell

PAPER = {
    "density_g_cc": {"target": 2.166, "proxima": 2.163},
    "hop_rate_per_ps": {"target": [2.68, None], "proxima": [5.06, None], "blend": [2.80, 0.0852]},
    "speedup": 1.5, "t_dft_s": 4.0, "t_surrogate_s": 0.2,
}
CONDITIONS = ("target", "proxima", "blend")
#: velocity seeds of the target runs the default ensemble trains on (disjoint from the experiments' seeds)
TRAIN_SEED_OFFSET = 1000


@dataclass
class ExperimentSettings:
    """Sizes and controller settings shared by the experiments (paper defaults where noted)."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    steps: int = 1024  # paper: 2048 (NPT), 40000 (hops)
    potential: str = "sw"
    target_err: float = 0.9  # paper 3.1
    min_target_fraction: float = 0.2  # the paper's forced target fraction ("at least 20 %")
    n_blend: int = 10  # paper
    n_pretrain: int = 256  # paper: 1024
    epochs: int = 32  # paper
    lattice: float = 5.43
    equil_steps: int = 0  # hops: samples before this step are not counted
    sample_every: int = 10  # hops: position sampling interval (steps)
    min_dwell: int = 3  # hops: samples a new vacant site must persist
    train_seed: int = 1234
    model: str | None = None  # a pre-trained ensemble (`proxima train`): used as it is, no training here
    jobs: int = 1  # runs in parallel (processes, one core each)


def _provenance() -> dict:
    return provenance("ase", "torch", "torchani")


def _save_npz(path: Path, arrays: dict) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def _one_run(cond: str, seed: int, es: ExperimentSettings, md, out: Path, surrogate_blob: bytes | None,
             keep_frames: bool, progress=None) -> tuple:
    """One run of one condition (a process-pool task): returns (cond, seed, trace arrays, counts, frames)."""
    torch.set_num_threads(1)
    atoms = si_vacancy_cell(es.lattice)
    init_velocities(atoms, md.temperature_K, seed)
    db = out / "db" / f"{cond}_seed{seed}.db"
    if db.exists():
        db.unlink()
    n_blend = {"target": 0, "proxima": 0, "blend": es.n_blend}[cond]
    settings = ProximaSettings(target_err=es.target_err, min_target_fraction=es.min_target_fraction,
                               n_blend=n_blend, train_freq=None, seed=seed)
    # the target-only condition never gets the ensemble (with a trained one it would switch like PROXIMA)
    surrogate = EnsembleSurrogate.from_bytes(surrogate_blob) if surrogate_blob is not None and cond != "target" \
        else None
    calc = ProximaCalculator(lammps_si(es.potential), surrogate=surrogate, settings=settings,
                             db_path=db if cond != "target" else None)
    trace = run_md(atoms, calc, md, log_path=out / "logs" / f"{cond}_seed{seed}.jsonl", progress=progress,
                   label=f"{cond} seed {seed}")
    arrays = trace.arrays()
    _save_npz(out / "traces" / f"{cond}_seed{seed}.npz", arrays)
    counts = calc.counts() | {"wall_s": trace.wall_s, "steps": md.steps}
    frames = calc.training_frames() if keep_frames else None
    if frames is not None and len(frames) > es.n_pretrain:  # at most what training can pick from this run, evenly
        # spaced: every frame (12 kB each, 40 001 per run at hops --full) would travel back to the parent
        frames = [frames[i] for i in np.linspace(0, len(frames) - 1, es.n_pretrain).round().astype(int)]
    return cond, seed, arrays, counts, frames


def _one_thread() -> None:
    """Pool initializer: one thread per worker process for every threaded library (one core per run)."""
    import os  # noqa: PLC0415

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    torch.set_num_threads(1)


def _run_all(jobs: list[tuple], es: ExperimentSettings, md, out: Path, blob: bytes | None, keep_frames: bool,
             results: dict, progress=None) -> list:
    """Run (cond, seed) jobs, in `es.jobs` processes when > 1 (a progress task counts finished runs)."""
    frames = []
    if es.jobs <= 1 or len(jobs) == 1:
        for cond, seed in jobs:
            c, sd, arr, counts, fr = _one_run(cond, seed, es, md, out, blob, keep_frames, progress)
            results[c][sd] = (arr, counts)
            frames.append(fr)
        return frames
    import multiprocessing  # noqa: PLC0415 - only for parallel runs
    from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

    task = progress.add_task(f"{len(jobs)} runs, {es.jobs} at a time", total=len(jobs)) if progress else None
    with ProcessPoolExecutor(max_workers=es.jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_one_thread) as pool:
        futures = [pool.submit(_one_run, cond, seed, es, md, out, blob, keep_frames) for cond, seed in jobs]
        try:
            for fut in futures:
                c, sd, arr, counts, fr = fut.result()
                results[c][sd] = (arr, counts)
                frames.append(fr)
                if task is not None:
                    progress.advance(task)
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return frames


def run_conditions(es: ExperimentSettings, md, out: Path, progress=None) -> dict:
    """Target-only runs for every seed, then PROXIMA and BLEND runs with one ensemble: the pre-trained
    `es.model` when given (all runs independent, run together), else one trained here on frames sampled evenly
    from target runs of other velocity seeds (TRAIN_SEED_OFFSET + seed; paper 3.1: 1024 target points, then no
    further training; never from the test runs' own target twins, whose trajectories they repeat).

    Returns {condition: {seed: (trace arrays, counts)}, "_train": {...}} and writes logs/traces under `out`.
    """
    torch.set_num_threads(1)
    results: dict = {c: {} for c in CONDITIONS}
    if es.model is not None:
        surrogate = EnsembleSurrogate.load(es.model)
        blob = surrogate.to_bytes()
        jobs = [(c, s) for s in es.seeds for c in CONDITIONS]
        _run_all(jobs, es, md, out, blob, False, results, progress)
        surrogate.save(out / "model" / "ensemble.safetensors")
        pre = Path(es.model).parent / "pretrain.json"  # `proxima train`'s record, when beside the model
        info = json.loads(pre.read_text()) if pre.is_file() else {}
        results["_train"] = {"model": str(es.model), "log": surrogate.train_log,
                             "time_s": pretrain_cost_s(info), "n_frames": info.get("n_train_frames")}
        return results
    # training frames from target runs of other velocity seeds (TRAIN_SEED_OFFSET + s, as `proxima train`): the
    # test runs share their initial velocities with their target twins, so frames of the twins' trajectories
    # (futures included) would put the answers into the training set
    scratch: dict = {c: {} for c in CONDITIONS}
    frames = _run_all([("target", TRAIN_SEED_OFFSET + s) for s in es.seeds], es, md, out / "pretrain", None, True,
                      scratch, progress)
    pool = [f for run in frames for f in run]
    pick = np.linspace(0, len(pool) - 1, min(es.n_pretrain, len(pool))).round().astype(int)
    surrogate = EnsembleSurrogate(SurrogateConfig(epochs=es.epochs))
    t0 = time.perf_counter()
    train_task = progress.add_task("train ensemble", total=2 * es.epochs) if progress is not None else None
    train_log = surrogate.fit([pool[i] for i in pick], np.random.default_rng(es.train_seed),
                              progress=(lambda m, e: progress.advance(train_task)) if progress else None)
    train_time = time.perf_counter() - t0
    surrogate.save(out / "model" / "ensemble.safetensors")
    jobs = [(c, s) for s in es.seeds for c in CONDITIONS]
    _run_all(jobs, es, md, out, surrogate.to_bytes(), False, results, progress)
    results["_train"] = {"time_s": train_time, "n_frames": int(len(pick)), "log": train_log,
                         "seeds": [TRAIN_SEED_OFFSET + s for s in es.seeds]}
    return results


def controller_stats(arr: dict, bound: float, window: int = 256) -> dict:
    """The controller over a run: threshold (median, last), fraction of steps on the pure surrogate and mean
    surrogate weight per `window` steps, and the surrogate's error at target calls (mean, median; paper Fig. 1)."""
    thr = np.asarray(arr["threshold"], dtype=float)
    used = np.asarray(arr["used_surrogate"], dtype=float)
    lam = 1.0 - np.asarray(arr["lambda_target"], dtype=float)
    err = np.asarray(arr["error"], dtype=float)
    err = err[np.isfinite(err)]
    n = len(used) // window
    return {"threshold_median": _nanstat(np.median, thr),
            "threshold_last": float(thr[np.isfinite(thr)][-1]) if np.isfinite(thr).any() else float("nan"),
            "surrogate_fraction_per_window": [float(used[k * window:(k + 1) * window].mean()) for k in range(n)],
            "surrogate_weight_per_window": [float(lam[k * window:(k + 1) * window].mean()) for k in range(n)],
            "window_steps": window,
            "error_mean": float(err.mean()) if len(err) else float("nan"),
            "error_median": float(np.median(err)) if len(err) else float("nan"),
            "error_fraction_above_bound": float(np.mean(err > bound)) if len(err) else float("nan")}


def condition_runs(runs: dict, cond: str) -> list[dict]:
    """The per-run records of one condition in a summary's `runs` ({"<cond>_seed<k>": record})."""
    return [r for k, r in runs.items() if k.startswith(cond + "_")]


def _nanstat(fn, values) -> float:
    v = np.asarray(values, dtype=float)
    return float(fn(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")


def _controller_summary(runs: dict, cond: str) -> dict:
    """Per condition: surrogate fraction (mean over seeds), its time course, the threshold and the errors."""
    rs = condition_runs(runs, cond)
    windows = np.mean([r["surrogate_fraction_per_window"] for r in rs], axis=0)
    return {"surrogate_fraction": float(np.mean([r["surrogate_fraction"] for r in rs])),
            "surrogate_fraction_per_window": windows.tolist(),
            "threshold_median": _nanstat(np.median, [r["threshold_median"] for r in rs]),
            "error_median_of_runs": _nanstat(np.median, [r["error_median"] for r in rs]),
            "error_mean_of_runs": _nanstat(np.mean, [r["error_mean"] for r in rs]),
            "target_fraction": float(np.mean([r["target_calls"] / max(r["calls"], 1) for r in rs]))}


def plot_controller(results: dict, es: ExperimentSettings, md, out: Path) -> list[Path]:
    """Paper Fig. 1 from the runs (errors at target calls, all seeds, mean and median against the bound) and
    the controller over time: threshold and the fraction of steps on the pure surrogate (mean over seeds)."""
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    from mdsurrogate.proxima.pretrain import plot_error_histogram  # noqa: PLC0415

    labels = {"proxima": "PROXIMA", "blend": "PROXIMA+BLEND"}
    errors = {labels[c]: np.concatenate([np.asarray(a["error"])[np.isfinite(a["error"])]
                                         for a, _ in results[c].values()]) for c in labels}
    paths = [plot_error_histogram(errors, es.target_err, out / "fig1_error_histogram.png",
                                  f"surrogate error at target calls, {len(es.seeds)} seeds")]
    fig, ax = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    t = np.arange(md.steps + 1) * md.dt_fs / 1000.0
    w = max(1, (md.steps + 1) // 64)
    for k, (cond, label) in enumerate(labels.items()):
        with warnings.catch_warnings():  # steps before the first threshold are NaN in every seed
            warnings.simplefilter("ignore", RuntimeWarning)
            thr = np.nanmedian(np.array([a["threshold"] for a, _ in results[cond].values()], dtype=float), axis=0)
        used = np.mean([a["used_surrogate"] for a, _ in results[cond].values()], axis=0)
        ax[0].plot(t, thr, f"C{3 * k}", lw=1, label=label)
        smooth = np.convolve(used, np.ones(w) / w, mode="same")
        ax[1].plot(t, smooth, f"C{3 * k}", lw=1, label=label)
    ax[0].axhline(es.target_err, color="k", ls=":", lw=0.8)
    ax[0].set_ylabel("UQ threshold (eV/A)\nmedian over seeds")
    ax[1].set_ylabel(f"pure-surrogate steps\n(mean over seeds, {w}-step window)")
    ax[1].set_xlabel("time (ps)")
    ax[0].legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "controller.png")
    write_figure_atomic(fig, paths[-1])
    return paths


def max_dvdt(volume: np.ndarray, dt_fs: float) -> float:
    """Maximum |dV/dt| of a run in A^3/fs (paper Fig. 3)."""
    return float(np.abs(np.gradient(np.asarray(volume), dt_fs)).max())


def high_freq_rms(volume: np.ndarray, window: int = 21) -> float:
    """RMS of the volume minus a cubic Savitzky-Golay smooth over `window` steps (A^3): Fig. 2's fast jitter."""

    v = np.asarray(volume, dtype=float)
    if len(v) < window:
        return float("nan")
    h = window // 2
    return float(np.sqrt(np.mean((v - savgol_filter(v, window, 3))[h:len(v) - h] ** 2)))


def paired_difference(values: dict[int, float], reference: dict[int, float]) -> dict:
    """Per-seed differences of a condition from the target-only run of the same seed: mean, its standard error
    (SD of the differences / sqrt(n), valid whatever their correlation) and both relative to the target's mean."""
    seeds = sorted(set(values) & set(reference))
    d = np.array([values[k] - reference[k] for k in seeds], dtype=float)
    ref = float(np.mean([reference[k] for k in seeds])) if seeds else float("nan")
    se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    mean = float(d.mean()) if len(d) else float("nan")
    return {"n_pairs": len(seeds), "diff_mean": mean, "diff_se": se,
            "rel_diff_mean": mean / ref if ref else float("nan"), "rel_diff_se": se / abs(ref) if ref else float("nan")}


def npt_summary(results: dict, es: ExperimentSettings, md) -> dict:

    n_atoms = 63
    summary: dict = {"runs": {}, "conditions": {}}
    last = max(1, md.steps // 4)
    for cond in CONDITIONS:
        dens, grads, hfs = [], [], []
        for seed, (arr, counts) in results[cond].items():
            v = arr["volume"]
            d = float(density_g_cc(n_atoms, v[-last:].mean()))
            g = max_dvdt(v, md.dt_fs)
            hf = high_freq_rms(v)
            dens.append(d)
            grads.append(g)
            hfs.append(hf)
            summary["runs"][f"{cond}_seed{seed}"] = {
                "density_g_cc": d, "max_abs_dVdt_A3_per_fs": g, "volume_hf_rms_A3": hf,
                "surrogate_fraction": float(np.mean(arr["used_surrogate"])),
                "mean_lambda_target": float(np.mean(arr["lambda_target"])), **counts,
                **controller_stats(arr, es.target_err)}
        summary["conditions"][cond] = {**_controller_summary(summary["runs"], cond),
            "density_g_cc_mean": float(np.mean(dens)), "density_g_cc_std": float(np.std(dens, ddof=1)) if
            len(dens) > 1 else float("nan"),
            "max_abs_dVdt_median": float(np.median(grads)), "max_abs_dVdt_mean": float(np.mean(grads)),
            "max_abs_dVdt": grads, "density": dens, "volume_hf_rms_A3_mean": float(np.mean(hfs)),
            "volume_hf_rms_A3": hfs}
    ref = summary["conditions"]["target"]["density_g_cc_mean"]
    by_seed = {cond: {seed: summary["runs"][f"{cond}_seed{seed}"]["density_g_cc"] for seed in results[cond]}
               for cond in CONDITIONS}
    for cond in CONDITIONS:
        c = summary["conditions"][cond]
        c["density_rel_err_vs_target"] = (c["density_g_cc_mean"] - ref) / ref
        c["density_paired_vs_target"] = paired_difference(by_seed[cond], by_seed["target"])
    summary["train"] = results["_train"]
    return summary


def plot_npt(results: dict, summary: dict, md, out: Path) -> list[Path]:
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    paths = []
    fig, ax = plt.subplots(1, 2, figsize=(8, 3.5))
    data = [summary["conditions"][c]["max_abs_dVdt"] for c in CONDITIONS]
    ax[0].boxplot(data)
    ax[0].set_xticks(range(1, 4), ["target", "PROXIMA", "PROXIMA+BLEND"])
    ax[0].set_ylabel(r"max |dV/dt| ($\AA^3$/fs)")
    ax[1].boxplot([summary["conditions"][c]["density"] for c in CONDITIONS])
    ax[1].set_xticks(range(1, 4), ["target", "PROXIMA", "PROXIMA+BLEND"])
    ax[1].set_ylabel("density, last quarter (g/cc)")
    fig.tight_layout()
    paths.append(out / "fig3_boxplots.png")
    write_figure_atomic(fig, paths[-1])

    seed = sorted(results["target"])[0]
    t = np.arange(md.steps + 1) * md.dt_fs
    fig, ax = plt.subplots(2, 1, figsize=(8, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax[0].plot(t, results["target"][seed][0]["volume"], "k--", lw=1, label="target only")
    prox = results["proxima"][seed][0]
    ax[0].plot(t, prox["volume"], "C0", lw=1, label="PROXIMA")
    ax[0].plot(t, results["blend"][seed][0]["volume"], "C3", lw=1, label="PROXIMA+BLEND")
    used = prox["used_surrogate"] > 0
    ax[0].fill_between(t, 0, 1, where=used, color="C0", alpha=0.12, transform=ax[0].get_xaxis_transform(),
                       label="PROXIMA used surrogate")
    ax[0].set_ylabel(r"volume ($\AA^3$)")
    ax[0].legend(fontsize=7)
    ax[1].plot(t, 1 - results["blend"][seed][0]["lambda_target"], "C3", lw=1)
    ax[1].set_ylabel(r"$\lambda$ (surrogate)")
    ax[1].set_xlabel("time (fs)")
    fig.tight_layout()
    paths.append(out / "fig2_volume_trace.png")
    write_figure_atomic(fig, paths[-1])
    return paths


def npt_experiment(out: str | Path, es: ExperimentSettings | None = None, temperature_K: float = 800.0,
                   progress=None, barostat: str = "parrinello-rahman") -> dict:
    """Experiment 1 (paper 3.1-3.2): 800 K NPT of the 63-atom vacancy cell under the three conditions.
    `progress`: a rich Progress (the CLI's) that gets one task per run and one for training."""

    es = es or ExperimentSettings()
    out = Path(out)
    kinds = {"parrinello-rahman": "npt", "berendsen": "npt_berendsen"}
    if barostat not in kinds:
        raise ValueError(f"barostat must be one of {sorted(kinds)}, got {barostat!r}")
    md = MDSettings(kind=kinds[barostat], temperature_K=temperature_K, steps=es.steps)
    results = run_conditions(es, md, out, progress)
    summary = npt_summary(results, es, md)
    summary.update({"settings": asdict(es), "md": asdict(md), "paper": PAPER, "provenance": _provenance()})
    summary["plots"] = [str(p) for p in plot_npt(results, summary, md, out) + plot_controller(results, es, md, out)]
    write_json_atomic(out / "summary.json", summary)
    return summary


def hops_summary(results: dict, es: ExperimentSettings, md) -> dict:

    sites = diamond_sites_frac(2)
    summary: dict = {"runs": {}, "conditions": {}}
    first = es.equil_steps // max(md.sample_every, 1)
    for cond in CONDITIONS:
        rates = []
        for seed, (arr, counts) in results[cond].items():
            pos = arr["positions"]
            track = vacancy_track(pos, arr["cell"][0], sites)
            track = track[first:]
            hops = count_hops(track, es.min_dwell)
            time_ps = (len(track) - 1) * md.sample_every * md.dt_fs / 1000.0
            rate = hops / time_ps
            rates.append(rate)
            summary["runs"][f"{cond}_seed{seed}"] = {
                "hops": hops, "time_ps": time_ps, "rate_per_ps": rate, "valid_fraction": float(np.mean(track >= 0)),
                "surrogate_fraction": float(np.mean(arr["used_surrogate"])),
                "mean_T_K": float(np.mean(arr["temperature"])), **counts, **controller_stats(arr, es.target_err)}
        mean, se = rate_with_se(rates)
        summary["conditions"][cond] = {"rate_per_ps": mean, "se": se, "rates": rates,
                                       **_controller_summary(summary["runs"], cond)}
    ref = summary["conditions"]["target"]["rate_per_ps"]
    by_seed = {cond: {seed: summary["runs"][f"{cond}_seed{seed}"]["rate_per_ps"] for seed in results[cond]}
               for cond in CONDITIONS}
    for cond in CONDITIONS:
        c = summary["conditions"][cond]
        c["rel_err_vs_target"] = (c["rate_per_ps"] - ref) / ref if ref else float("nan")
        c["rate_paired_vs_target"] = paired_difference(by_seed[cond], by_seed["target"])
    summary["train"] = results["_train"]
    return summary


def plot_hops(summary: dict, out: Path) -> Path:
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    c = summary["conditions"]
    ax.bar(range(3), [c[k]["rate_per_ps"] for k in CONDITIONS], yerr=[c[k]["se"] for k in CONDITIONS], capsize=4,
           color=["0.5", "C0", "C3"])
    ax.set_xticks(range(3), ["target", "PROXIMA", "PROXIMA+BLEND"])
    ax.set_ylabel("vacancy hop rate (1/ps)")
    fig.tight_layout()
    path = out / "table1_hop_rates.png"
    write_figure_atomic(fig, path)
    return path


def hops_experiment(out: str | Path, es: ExperimentSettings | None = None, temperature_K: float = 1573.0,
                    progress=None) -> dict:
    """Experiment 2 (paper 3.3, Table 1): vacancy hop rate in 1573 K NVT, Wigner-Seitz detection.
    `progress`: as for `npt_experiment`."""

    es = es or ExperimentSettings()
    out = Path(out)
    md = MDSettings(kind="nvt", temperature_K=temperature_K, steps=es.steps, sample_every=es.sample_every)
    results = run_conditions(es, md, out, progress)
    summary = hops_summary(results, es, md)
    summary.update({"settings": asdict(es), "md": asdict(md), "paper": PAPER, "provenance": _provenance()})
    summary["plots"] = [str(p) for p in [plot_hops(summary, out), *plot_controller(results, es, md, out)]]
    write_json_atomic(out / "summary.json", summary)
    return summary


def time_target(calc, n_calls: int = 3, seed: int = 0) -> float:
    """Mean seconds per call of `calc` on rattled 63-atom vacancy cells."""

    times = []
    for k in range(n_calls):
        atoms = si_vacancy_cell()
        atoms.rattle(0.05, seed=seed + k)
        atoms.calc = calc
        t0 = time.perf_counter()
        atoms.get_forces()
        atoms.get_stress()
        times.append(time.perf_counter() - t0)
    return float(np.mean(times))


def modelled_speedup(steps: int, target_calls: int, t_target: float, t_surrogate: float) -> float:
    """Target-only time over PROXIMA time, with the ensemble evaluated every step."""
    return steps * t_target / (target_calls * t_target + steps * t_surrogate)


def cost_report(out: str | Path, inputs: list[str | Path], expensive: list[str] | None = None,
                n_time_calls: int = 2, smoke_dir: str | Path | None = None) -> dict:
    """Experiment 3: counts and times from experiment summaries; measured and modelled speedups. An expensive
    target's time per call comes from its smoke run (`smoke_dir`/smoke_NAME.json, `proxima smoke NAME`) when
    there is one, else from timing `n_time_calls` calls here."""

    out = Path(out)
    per_call: dict = {"paper_dft": PAPER["t_dft_s"]}
    sources: dict = {"paper_dft": "paper 3.1"}
    for name in expensive or []:
        smoke = Path(smoke_dir) / f"smoke_{name}.json" if smoke_dir is not None else None
        if smoke is not None and smoke.is_file():
            rec = json.loads(smoke.read_text())
            per_call[name] = float(rec.get("t_target_call_s", rec["target_time_s"] / max(rec["target_calls"], 1)))
            sources[name] = str(smoke)
        elif name in available_targets():
            per_call[name] = time_target(make_target(name), n_time_calls)
            sources[name] = f"timed here, {n_time_calls} calls"
    report: dict = {"per_call_target_s": per_call, "per_call_source": sources, "experiments": {}}
    loaded = []
    for path in inputs:
        path = Path(path)
        summ = json.loads((path / "summary.json").read_text() if path.is_dir() else path.read_text())
        loaded.append((path.name, summ))
        runs = summ["runs"]
        t_train = float(summ.get("train", {}).get("time_s", 0.0))
        card = Path(str(summ.get("train", {}).get("model", ""))).parent / "pretrain.json"
        if summ.get("train", {}).get("model") and card.is_file():  # the whole init chain of a `proxima train` model
            t_train = pretrain_cost_s(json.loads(card.read_text()))
        exp: dict = {"_train_time_s": t_train}
        tgt_wall = np.mean([r["wall_s"] for r in condition_runs(runs, "target")])
        for cond in CONDITIONS:
            rs = condition_runs(runs, cond)
            steps = int(np.mean([r["steps"] for r in rs])) + 1
            tc = float(np.mean([r["target_calls"] for r in rs]))
            sc = float(np.mean([r["surrogate_calls"] for r in rs]))
            t_s = float(np.sum([r["surrogate_time_s"] for r in rs]) / max(1, np.sum([r["calls"] for r in rs])))
            t_f = float(np.sum([r["target_time_s"] for r in rs]) / max(1, np.sum([r["target_calls"] for r in rs])))
            wall = float(np.mean([r["wall_s"] for r in rs]))
            entry = {"calls": steps, "target_calls": tc, "surrogate_calls": sc, "target_fraction": tc / steps,
                     "t_target_call_s": t_f, "t_surrogate_call_s": t_s, "wall_s": wall,
                     "measured_speedup": float(tgt_wall / wall)}
            if cond != "target":
                entry["modelled_speedup"] = {
                    "paper_times_4s_0.2s": modelled_speedup(steps, int(tc), PAPER["t_dft_s"], PAPER["t_surrogate_s"]),
                    "paper_times_plus_one_training": steps * PAPER["t_dft_s"] / (
                        tc * PAPER["t_dft_s"] + steps * PAPER["t_surrogate_s"] + t_train),
                    **{f"{name}_with_measured_surrogate": modelled_speedup(steps, int(tc), t, t_s)
                       for name, t in per_call.items()}}
            exp[cond] = entry
        report["experiments"][str(path)] = exp
    report["plots"] = [str(plot_runtimes(report, loaded, out))]
    report["paper"] = {"speedup": PAPER["speedup"], "t_dft_s": PAPER["t_dft_s"],
                       "t_surrogate_s": PAPER["t_surrogate_s"]}
    report["provenance"] = _provenance()
    write_json_atomic(out / "cost.json", report)
    return report


def run_runtimes(runs: dict, cond: str, t_target: float | None) -> list[float]:
    """Per-run runtime (s) of one condition: measured wall time (t_target None), or modelled with a target of
    `t_target` s per call: target calls x t_target + the run's measured surrogate time (every step)."""
    rs = condition_runs(runs, cond)
    if t_target is None:
        return [float(r["wall_s"]) for r in rs]
    return [r["target_calls"] * t_target + r["surrogate_time_s"] for r in rs]


def plot_runtimes(report: dict, summaries: list[tuple[str, dict]], out: Path) -> Path:
    """Paper Fig. 4: runtimes of the runs by condition, measured (SW target) and modelled with each expensive
    target's measured (or the paper's 4 s DFT) time per call; one row per experiment."""
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    per_call = {"measured (SW)": None, **{f"{k} {v:.3g} s/call": v for k, v in report["per_call_target_s"].items()}}
    fig, axes = plt.subplots(len(summaries), len(per_call), figsize=(3.2 * len(per_call), 2.8 * len(summaries)),
                             squeeze=False)
    for row, (name, summ) in zip(axes, summaries):
        for ax, (label, t) in zip(row, per_call.items()):
            data = [np.array(run_runtimes(summ["runs"], c, t)) / 3600 for c in CONDITIONS]
            ax.boxplot(data)
            ax.set_xticks(range(1, 4), ["target", "PROXIMA", "+BLEND"], fontsize=7)
            ax.set_title(f"{name}: {label}", fontsize=8)
            ax.set_ylabel("runtime (h)", fontsize=8)
    fig.tight_layout()
    path = out / "fig4_runtime_boxplot.png"
    write_figure_atomic(fig, path)
    return path


def smoke_run(target_name: str, steps: int = 3, seed: int = 0, out: str | Path | None = None) -> dict:
    """A few PROXIMA NVT steps with an expensive target (tblite, cp2k): runs, logs, counts calls."""


    torch.set_num_threads(1)
    atoms = si_vacancy_cell()
    init_velocities(atoms, 800.0, seed)
    calc = ProximaCalculator(make_target(target_name, workdir=out),
                             settings=ProximaSettings(train_freq=None, seed=seed))
    log = Path(out) / f"smoke_{target_name}.jsonl" if out else None
    trace = run_md(atoms, calc, MDSettings(kind="nve", steps=steps), log_path=log)
    counts = calc.counts()
    return {"target": target_name, "energy": trace.energy, **counts,
            "t_target_call_s": counts["target_time_s"] / max(counts["target_calls"], 1),
            "provenance": _provenance()}
