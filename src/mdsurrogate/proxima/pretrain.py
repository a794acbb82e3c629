"""An ensemble fit for the paper's tests (issue 16): target frames at both temperatures, a training curve, a test.

Paper 3.1 trains the ensemble on 1024 target points and then freezes it. Here the frames come from target-only
MD at both temperatures of the paper's experiments (800 K NPT and 1573 K NVT, the 63-atom vacancy cell), from
velocity seeds (1000 + k) disjoint from the experiments' seeds (0-9), sampled every `sample_every` steps after an
equilibration. Training runs until the validation force error stops improving (`SurrogateConfig.valid_every`,
`patience`; the state with the best validation error is kept), and the ensemble is then scored on frames of
independent target runs (seed 2000 + k), per temperature: force MAE, the max-atom force error of the ensemble
mean (the controller's error, compared with the 0.9 eV/A bound) and energy/stress errors.

Thermal frames alone leave the 0 K structures of the hop path (the relaxed simple and split vacancies, 0.3-1.5 eV
below every thermal frame) to extrapolation, and the ensemble trained on them alone misplaces SW's split-vacancy
well by 0.5 eV (docs/proxima.md). Two optional sets cover that region without using the hop path itself:
`low_t_states` (target MD at low temperature, seeds 1000 + k) and `quench_frames` (frames along target BFGS
relaxations of training frames of every state: their inherent structures and the way down to them). `init`
continues training from an earlier ensemble (its weights and energy shift) on the extended set.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mdsurrogate.io import atomic_path, write_figure_atomic, write_json_atomic
from mdsurrogate.provenance import provenance
from mdsurrogate.proxima.md import MDSettings, init_velocities, make_dynamics
from mdsurrogate.proxima.surrogate import EV_A3_TO_GPA, EnsembleSurrogate, SurrogateConfig
from mdsurrogate.proxima.targets import lammps_si, si_vacancy_cell

#: The two thermodynamic states of the paper's experiments: (MD kind, temperature in K).
STATES = (("npt", 800.0), ("nvt", 1573.0))
#: Frames kept along each quench (target BFGS relaxation of a training frame).
FRAMES_PER_QUENCH = 8
TRAIN_SEED0 = 1000
TEST_SEED0 = 2000


@dataclass
class PretrainSettings:
    """Training data and schedule (defaults: the paper's 1024 frames per temperature, 2 members)."""

    potential: str = "sw"
    frames_per_state: int = 1024
    runs_per_state: int = 4
    test_frames_per_state: int = 256
    sample_every: int = 10  # steps between stored frames (10 fs: decorrelated forces)
    equil_steps: int = 500
    max_epochs: int = 400
    valid_every: int = 5
    patience: int = 8  # checks without a 1 % better validation force error
    batch_size: int = 32
    lr: float = 1e-3
    n_members: int = 2
    seed: int = 1234
    lattice: float = 5.43
    low_t_states: tuple = ()  # extra (kind, temperature_K) states, e.g. (("nvt", 300.0),)
    low_t_frames_per_state: int = 256
    quench_frames: int = 0  # frames along target relaxations of training frames (FRAMES_PER_QUENCH per quench)
    w_energy: float = 1.0
    lr_decay: float = 0.0  # multiply lr by this after 2 validation checks without a 1 % gain (0: constant lr)
    init: str | None = None  # continue from this ensemble (weights, e0, architecture) instead of a fresh start


def collect_frames(kind: str, temperature_K: float, seeds: list[int], n_frames: int, ps: PretrainSettings,
                   progress=None) -> list[Atoms]:
    """Target-only MD of the vacancy cell, one run per seed; every `sample_every` steps after `equil_steps` a
    frame with the target's energy, forces and stress (SinglePointCalculator). n_frames in all."""
    target = lammps_si(ps.potential)
    per_run = -(-n_frames // len(seeds))
    frames: list[Atoms] = []
    for seed in seeds:
        atoms = si_vacancy_cell(ps.lattice)
        init_velocities(atoms, temperature_K, seed)
        atoms.calc = target
        md = MDSettings(kind=kind, temperature_K=temperature_K, steps=ps.equil_steps + per_run * ps.sample_every)
        dyn = make_dynamics(atoms, md)
        task = progress.add_task(f"target {kind} {temperature_K:.0f} K seed {seed}", total=md.steps) \
            if progress is not None else None
        state = {"step": 0}

        def snap():
            if state["step"] > ps.equil_steps and (state["step"] - ps.equil_steps) % ps.sample_every == 0:
                fr = atoms.copy()
                fr.calc = SinglePointCalculator(fr, energy=atoms.get_potential_energy(),
                                                forces=atoms.get_forces().copy(), stress=atoms.get_stress().copy())
                fr.info.update({"kind": kind, "temperature_K": temperature_K, "seed": seed, "step": state["step"]})
                frames.append(fr)
            if task is not None and state["step"]:
                progress.advance(task)
            state["step"] += 1

        dyn.attach(snap, interval=1)
        dyn.run(md.steps)
    return frames[:n_frames] if len(frames) > n_frames else frames


def quench_frames(frames: list[Atoms], n_frames: int, ps: PretrainSettings, fmax: float = 0.01,
                  max_steps: int = 400, progress=None) -> list[Atoms]:
    """Frames along target BFGS relaxations (fixed cell) of evenly spaced `frames`: FRAMES_PER_QUENCH per
    relaxation at log-spaced steps from the start to the relaxed end, so the energy range between the thermal
    states and their 0 K inherent structures is sampled."""
    from ase.optimize import BFGS  # noqa: PLC0415

    target = lammps_si(ps.potential)
    n_quench = -(-n_frames // FRAMES_PER_QUENCH)
    starts = np.linspace(0, len(frames) - 1, n_quench).round().astype(int) if n_quench else []
    task = progress.add_task("target quenches", total=len(starts)) if progress is not None else None
    out: list[Atoms] = []
    for i in starts:
        atoms = frames[i].copy()
        atoms.calc = target
        path: list[Atoms] = []

        def snap(atoms=atoms, path=path):
            fr = atoms.copy()
            fr.calc = SinglePointCalculator(fr, energy=atoms.get_potential_energy(),
                                            forces=atoms.get_forces().copy(), stress=atoms.get_stress().copy())
            fr.info.update({"kind": "quench", "from_kind": frames[i].info["kind"], "step": len(path),
                            "from_seed": frames[i].info["seed"], "from_step": frames[i].info["step"]})
            path.append(fr)

        opt = BFGS(atoms, logfile=None)
        opt.attach(snap, interval=1)
        opt.run(fmax=fmax, steps=max_steps)
        keep = np.unique(np.geomspace(1, len(path), FRAMES_PER_QUENCH).round().astype(int) - 1)
        out += [path[k] for k in keep]
        if task is not None:
            progress.advance(task)
    return out[:n_frames]


def score(surrogate: EnsembleSurrogate, frames: list[Atoms]) -> dict:
    """Errors of the ensemble mean against the target on `frames`: force MAE (eV/A, per component), the
    controller's error max_atoms |F_target - F_mean| (mean, median, 95th percentile, fraction above 0.9 eV/A),
    energy MAE per atom (eV) and stress MAE (GPa); plus the UQ-error correlation."""
    errs, f_abs, e_abs, s_abs, uqs = [], [], [], [], []
    for fr in frames:
        pred = surrogate.predict(fr)
        f_mean = pred.forces.mean(axis=0)
        f_t = fr.get_forces()
        errs.append(float(np.linalg.norm(f_t - f_mean, axis=-1).max()))
        f_abs.append(np.abs(f_t - f_mean).mean())
        e_abs.append(abs(pred.energy.mean() - fr.get_potential_energy()) / len(fr))
        s_abs.append(np.abs(pred.stress.mean(axis=0) - fr.get_stress()).mean() * EV_A3_TO_GPA)
        uqs.append(pred.uq)
    errs = np.array(errs)
    return {"n_frames": len(frames), "force_mae": float(np.mean(f_abs)),
            "max_atom_error_mean": float(errs.mean()), "max_atom_error_median": float(np.median(errs)),
            "max_atom_error_p95": float(np.percentile(errs, 95)),
            "fraction_above_0.9": float(np.mean(errs > 0.9)),
            "energy_mae_per_atom": float(np.mean(e_abs)), "stress_mae_gpa": float(np.mean(s_abs)),
            "uq_error_correlation": float(np.corrcoef(uqs, errs)[0, 1]) if len(errs) > 2 else float("nan"),
            "max_atom_errors": errs.tolist(), "uq": [float(u) for u in uqs]}


def pretrain(out: str | Path, ps: PretrainSettings | None = None, progress=None) -> dict:
    """Collect target frames at both temperatures, train the ensemble to a plateau of the validation force
    error, score it on independent runs; writes `ensemble.safetensors`, `frames.extxyz`, `pretrain.json` and
    `training_curve.png` / `error_histogram.png` into `out`."""
    from ase.io import write  # noqa: PLC0415 - ase.io is slow to import

    ps = ps or PretrainSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    train, test = [], {}
    for kind, temp in STATES:  # first and in this order: an `init` ensemble's validation frames stay held out
        train += collect_frames(kind, temp, [TRAIN_SEED0 + k for k in range(ps.runs_per_state)],
                                ps.frames_per_state, ps, progress)
        test[f"{kind}_{temp:.0f}K"] = collect_frames(kind, temp, [TEST_SEED0], ps.test_frames_per_state, ps,
                                                     progress)
    for kind, temp in ps.low_t_states:
        train += collect_frames(kind, temp, [TRAIN_SEED0 + k for k in range(ps.runs_per_state)],
                                ps.low_t_frames_per_state, ps, progress)
        test[f"{kind}_{temp:.0f}K"] = collect_frames(kind, temp, [TEST_SEED0], ps.test_frames_per_state, ps,
                                                     progress)
    if ps.quench_frames:  # starts spread over every sampled state: the 0 K structures of each basin
        train += quench_frames(list(train), ps.quench_frames, ps, progress=progress)
    t_collect = time.perf_counter() - t0
    with atomic_path(out / "frames.extxyz") as tmp:
        write(tmp, train, format="extxyz")
    init_card = None
    if ps.init:
        surrogate = EnsembleSurrogate.load(ps.init)
        cfg = replace(surrogate.config, epochs=ps.max_epochs, batch_size=ps.batch_size, lr=ps.lr,
                      valid_every=ps.valid_every, patience=ps.patience, w_energy=ps.w_energy, lr_decay=ps.lr_decay)
        if cfg.n_members != ps.n_members:
            raise ValueError(f"init ensemble {ps.init} has {cfg.n_members} members, settings ask {ps.n_members}")
        init_card = {"path": str(ps.init), "version": surrogate.version, "train_log": surrogate.train_log}
        card = Path(ps.init).parent / "pretrain.json"
        if card.is_file():  # how the init ensemble was made (its own init chain included)
            prev = json.loads(card.read_text())
            init_card["card"] = {k: prev.get(k) for k in ("settings", "frames_by_set", "n_train_frames",
                                                           "collect_time_s", "train_time_s", "init", "test",
                                                           "provenance")}
            for t in init_card["card"].get("test") or {}:
                init_card["card"]["test"][t] = {k: v for k, v in init_card["card"]["test"][t].items()
                                                if k not in ("max_atom_errors", "uq")}
        surrogate = EnsembleSurrogate(cfg, version=surrogate.version, e0=surrogate.e0, states=surrogate.states)
    else:
        cfg = SurrogateConfig(epochs=ps.max_epochs, batch_size=ps.batch_size, lr=ps.lr, n_members=ps.n_members,
                              valid_every=ps.valid_every, patience=ps.patience, w_energy=ps.w_energy,
                              lr_decay=ps.lr_decay)
        surrogate = EnsembleSurrogate(cfg)
    task = progress.add_task("train ensemble (to the validation plateau)", total=ps.n_members * ps.max_epochs) \
        if progress is not None else None
    t1 = time.perf_counter()
    log = surrogate.fit(train, np.random.default_rng(ps.seed),
                        progress=(lambda m, e: progress.advance(task)) if task is not None else None,
                        warm_start=init_card is not None)
    t_train = time.perf_counter() - t1
    surrogate.save(out / "ensemble.safetensors")
    scores = {name: score(surrogate, frames) for name, frames in test.items()}
    counts = {}
    for fr in train:
        key = "quench" if fr.info["kind"] == "quench" else f"{fr.info['kind']}_{fr.info['temperature_K']:.0f}K"
        counts[key] = counts.get(key, 0) + 1
    summary = {"settings": asdict(ps), "config": asdict(cfg), "n_train_frames": len(train), "frames_by_set": counts,
               "init": init_card,
               "collect_time_s": t_collect, "train_time_s": t_train, "train_log": log, "test": scores,
               "provenance": provenance("ase", "torch", "torchani")}
    summary["plots"] = [str(p) for p in plot_pretrain(summary, out)]
    write_json_atomic(out / "pretrain.json", summary)
    return summary


def plot_pretrain(summary: dict, out: Path, bound: float = 0.9) -> list[Path]:
    """Validation force MAE vs epoch for each member; the test-set histogram of the max-atom force error with
    its mean and median against the bound (paper Fig. 1)."""
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    paths = []
    stages = [summary["train_log"]]  # this training, then the `init` chain back to the first fresh start
    init = summary.get("init")
    while init:
        stages.append(init["train_log"])
        init = (init.get("card") or {}).get("init")
    stages.reverse()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    offset = 0
    for k, logs in enumerate(stages):
        for m in logs:
            c = m.get("curve", [])
            x = [offset + p["epoch"] for p in c]
            label = f"member {m['member']}" if k == len(stages) - 1 else None
            axes[0].plot(x, [p["valid_force_mae"] for p in c], "o-", ms=2, color=f"C{m['member']}", label=label)
            axes[1].plot(x, [p["valid_energy_mae_per_atom"] * 1e3 for p in c], "o-", ms=2, color=f"C{m['member']}")
        offset += max((m.get("epochs_run") or 0) for m in logs)
        if k < len(stages) - 1:
            for ax in axes:
                ax.axvline(offset, color="0.6", ls="--", lw=0.8)
    axes[0].set_ylabel("validation force MAE (eV/A)")
    axes[1].set_ylabel("validation energy MAE (meV/atom)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
    if len(stages) > 1:
        fig.suptitle("dashed: training continued from the previous stage's weights (`init`)", fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "training_curve.png")
    write_figure_atomic(fig, paths[-1])
    paths.append(plot_error_histogram({k: v["max_atom_errors"] for k, v in summary["test"].items()}, bound,
                                      out / "error_histogram.png", "independent target runs"))
    return paths


def plot_error_histogram(errors: dict[str, list[float]], bound: float, path: Path, title: str = "") -> Path:
    """Paper Fig. 1: histogram of the surrogate's error max_atoms |F_target - F_mean| with mean, median, bound."""
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    fig, axes = plt.subplots(1, len(errors), figsize=(4.2 * len(errors), 3.2), squeeze=False)
    for ax, (name, err) in zip(axes[0], errors.items()):
        err = np.asarray(err, dtype=float)
        err = err[np.isfinite(err)]
        ax.hist(err, bins=40, color="C0", alpha=0.7)
        if len(err):
            ax.axvline(err.mean(), color="C1", label=f"mean {err.mean():.2f}")
            ax.axvline(np.median(err), color="C2", ls="--", label=f"median {np.median(err):.2f}")
        ax.axvline(bound, color="k", ls=":", label=f"bound {bound:g}")
        ax.set_xlabel(r"max$_i$ |F$_{target}$ - F$_{mean}$| (eV/A)")
        ax.set_title(f"{name} ({len(err)})", fontsize=9)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    write_figure_atomic(fig, path)
    return path


def pretrain_cost_s(card: dict) -> float:
    """Wall time (s) of collecting and training, summed over a card's `init` chain back to the fresh start."""
    total = 0.0
    while card:
        total += float(card.get("collect_time_s") or 0.0) + float(card.get("train_time_s") or 0.0)
        card = ((card.get("init") or {}).get("card")) or {}
    return total


def shipped_ensemble_path() -> Path:
    """The ensemble trained by `proxima train` (defaults, SW target) that ships with the package."""
    from importlib import resources  # noqa: PLC0415

    return Path(str(resources.files("mdsurrogate") / "data" / "proxima_sw" / "ensemble.safetensors"))
