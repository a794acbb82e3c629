"""CLI commands of the proxima stage: `mdsurrogate proxima npt | hops | cost | smoke`.

Every numeric option is checked before any work starts; a bad value ends with a one-line `error:` naming the
option and its allowed range (exit code 2).
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

proxima_app = typer.Typer(help="PROXIMA and PROXIMA+BLEND on-the-fly surrogate control (tynes2024).",
                          no_args_is_help=True)

POTENTIALS = ("sw", "tersoff")
TARGETS = ("sw", "tersoff", "tblite", "cp2k")
SAMPLE_EVERY = 10  # hops: positions are sampled every 10 steps (ExperimentSettings.sample_every)


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _check_int(option: str, value: int, lo: int, hi: int | None = None) -> None:
    if value < lo or (hi is not None and value > hi):
        _fail(f"{option} must be {f'in [{lo}, {hi}]' if hi is not None else f'>= {lo}'}, got {value}")


def _check_float(option: str, value: float, lo: float, hi: float = math.inf, lo_open: bool = False,
                 unit: str = "") -> None:
    ok = math.isfinite(value) and (value > lo if lo_open else value >= lo) and value <= hi
    if not ok:
        if hi == math.inf:
            rng = f"{'>' if lo_open else '>='} {lo:g}"
        else:
            rng = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
        _fail(f"{option} must be a finite number {rng}{f' ({unit})' if unit else ''}, got {value}")


def _check_common(seeds: int, steps: int, potential: str, target_err: float, min_target_fraction: float,
                  n_blend: int, n_pretrain: int, epochs: int, min_steps: int = 1) -> None:
    """The options shared by `npt` and `hops`."""
    _check_int("--seeds", seeds, 1, 10_000)
    _check_int("--steps", steps, min_steps, 10**9)
    if potential not in POTENTIALS:
        _fail(f"--potential must be one of {', '.join(POTENTIALS)}, got {potential!r}")
    _check_float("--target-err", target_err, 0.0, lo_open=True, unit="eV/A")
    _check_float("--min-target-fraction", min_target_fraction, 0.0, 1.0)
    _check_int("--n-blend", n_blend, 0, 10**6)
    _check_int("--n-pretrain", n_pretrain, 1, 10**6)
    _check_int("--epochs", epochs, 1, 10**6)


def _check_out(out: Path) -> None:
    """--out: a folder (new, or one an earlier run of the experiment wrote: they resume), never a file."""
    from mdsurrogate.io import BadPath, check_output

    if str(out).strip() in ("", "."):
        _fail(f"--out: give an output folder, got {str(out)!r}")
    try:
        check_output(out, "--out", kind="dir", overwrite=True)
    except BadPath as exc:
        _fail(str(exc))


def _check_model_jobs(model: Path | None, jobs: int) -> None:
    import os

    _check_int("--jobs", jobs, 1, os.cpu_count() or 1)
    if model is not None:
        _load_ensemble_option("--model", model)


def _load_ensemble_option(name: str, path: Path):
    """The trained ensemble a --model/--init option names, or one `error:` line saying what is wrong with it."""
    if not path.is_file():
        _fail(f"{name} {path} is not a file (give the ensemble.safetensors that `proxima train` wrote)")
    from mdsurrogate.proxima.surrogate import EnsembleSurrogate

    try:
        sur = EnsembleSurrogate.load(path)
    except ValueError as exc:
        _fail(f"{name}: {exc}")
    if not sur.trained:
        _fail(f"{name} {path} holds an untrained ensemble")
    return sur


def _settings(seeds: int, steps: int, potential: str, target_err: float, min_target_fraction: float,
              n_blend: int, n_pretrain: int, epochs: int, **extra):
    from mdsurrogate.proxima.experiments import ExperimentSettings

    return ExperimentSettings(seeds=list(range(seeds)), steps=steps, potential=potential, target_err=target_err,
                              min_target_fraction=min_target_fraction, n_blend=n_blend, n_pretrain=n_pretrain,
                              epochs=epochs, **extra)


@proxima_app.command()
def npt(
    out: Path = typer.Option(None, help="output directory (default runs/proxima/npt, or runs/proxima/npt_berendsen "
                             "with --barostat berendsen)"),
    seeds: int = typer.Option(4, help="velocity seeds per condition"),
    steps: int = typer.Option(2048, help="MD steps of 1 fs (paper: 2048)"),
    potential: str = typer.Option("sw", help="target: sw or tersoff"),
    target_err: float = typer.Option(0.9, help="force error bound, eV/A (paper 0.9)"),
    min_target_fraction: float = typer.Option(0.2, help="forced target fraction (paper: at least 0.2)"),
    n_blend: int = typer.Option(10, help="blending steps of PROXIMA+BLEND"),
    n_pretrain: int = typer.Option(256, help="target frames the ensemble is trained on (paper 1024)"),
    epochs: int = typer.Option(32, help="training epochs (paper 32)"),
    barostat: str = typer.Option("parrinello-rahman", help="parrinello-rahman (paper) or berendsen (paper 3.2's "
                                 "check: no piston momentum)"),
    model: Path = typer.Option(None, help="pre-trained ensemble (`proxima train`'s ensemble.safetensors): used as "
                               "it is, no training from the target runs"),
    jobs: int = typer.Option(1, help="runs in parallel, one core each (with --model: all runs at once)"),
    full: bool = typer.Option(False, help="paper settings: 10 seeds, 2048 steps, 1024 training frames"),
):
    """Experiment 1: 800 K NPT density and max |dV/dt| (paper Figs. 2-3)."""
    from mdsurrogate.cli.progress import rich_progress
    from mdsurrogate.proxima.experiments import npt_experiment

    if full:
        seeds, steps, n_pretrain = 10, 2048, 1024
    _check_common(seeds, steps, potential, target_err, min_target_fraction, n_blend, n_pretrain, epochs)
    if barostat not in ("parrinello-rahman", "berendsen"):
        _fail(f"--barostat must be parrinello-rahman or berendsen, got {barostat!r}")
    out = out or Path("runs/proxima/npt" if barostat == "parrinello-rahman" else "runs/proxima/npt_berendsen")
    _check_out(out)
    _check_model_jobs(model, jobs)
    es = _settings(seeds, steps, potential, target_err, min_target_fraction, n_blend, n_pretrain, epochs,
                   model=str(model) if model else None, jobs=jobs)
    with rich_progress() as bar:
        s = npt_experiment(out, es, progress=bar, barostat=barostat)
    for cond, c in s["conditions"].items():
        p = c["density_paired_vs_target"]
        typer.echo(f"{cond:8s} density {c['density_g_cc_mean']:.4f} g/cc ({p['rel_diff_mean']:+.2%} +- "
                   f"{p['rel_diff_se']:.2%} paired over {p['n_pairs']} seeds)"
                   f"  median max|dV/dt| {c['max_abs_dVdt_median']:.3f} A^3/fs")
    typer.echo(f"wrote {out / 'summary.json'}")


@proxima_app.command()
def hops(
    out: Path = typer.Option(Path("runs/proxima/hops"), help="output directory"),
    seeds: int = typer.Option(4, help="velocity seeds per condition (paper 10)"),
    steps: int = typer.Option(6000, help="NVT steps of 1 fs, >= 10 (paper 40000)"),
    potential: str = typer.Option("sw", help="target: sw or tersoff"),
    target_err: float = typer.Option(0.9, help="force error bound, eV/A"),
    min_target_fraction: float = typer.Option(0.2, help="forced target fraction (paper: at least 0.2)"),
    n_blend: int = typer.Option(10, help="blending steps of PROXIMA+BLEND"),
    n_pretrain: int = typer.Option(256, help="target frames the ensemble is trained on"),
    epochs: int = typer.Option(32, help="training epochs"),
    lattice: float = typer.Option(5.43, help="lattice constant of the NVT cell, A (4 to 8)"),
    equil_steps: int = typer.Option(500, help="steps not counted for hops (at most steps - 10)"),
    min_dwell: int = typer.Option(3, help="samples (10 fs each) a new vacant site must persist"),
    model: Path = typer.Option(None, help="pre-trained ensemble (`proxima train`'s ensemble.safetensors): used as "
                               "it is, no training from the target runs"),
    jobs: int = typer.Option(1, help="runs in parallel, one core each (with --model: all runs at once)"),
    full: bool = typer.Option(False, help="paper settings: 10 seeds, 40000 steps, 1024 training frames"),
):
    """Experiment 2: vacancy hop rate at 1573 K NVT, Wigner-Seitz detection (paper Table 1)."""
    from mdsurrogate.cli.progress import rich_progress
    from mdsurrogate.proxima.experiments import hops_experiment

    if full:
        seeds, steps, n_pretrain = 10, 40000, 1024
    _check_common(seeds, steps, potential, target_err, min_target_fraction, n_blend, n_pretrain, epochs,
                  min_steps=SAMPLE_EVERY)
    _check_float("--lattice", lattice, 4.0, 8.0, unit="A")
    _check_int("--equil-steps", equil_steps, 0, steps - SAMPLE_EVERY)
    _check_int("--min-dwell", min_dwell, 1, 10**9)
    _check_out(out)
    _check_model_jobs(model, jobs)
    es = _settings(seeds, steps, potential, target_err, min_target_fraction, n_blend, n_pretrain, epochs,
                   lattice=lattice, equil_steps=equil_steps, min_dwell=min_dwell, sample_every=SAMPLE_EVERY,
                   model=str(model) if model else None, jobs=jobs)
    with rich_progress() as bar:
        s = hops_experiment(out, es, progress=bar)
    for cond, c in s["conditions"].items():
        p = c["rate_paired_vs_target"]
        typer.echo(f"{cond:8s} hop rate {c['rate_per_ps']:.3f} +- {c['se']:.3f} /ps ({p['rel_diff_mean']:+.1%} +- "
                   f"{p['rel_diff_se']:.1%} paired over {p['n_pairs']} seeds)")
    typer.echo(f"wrote {out / 'summary.json'}")


@proxima_app.command()
def cost(
    out: Path = typer.Option(Path("runs/proxima/cost"), help="output directory"),
    inputs: list[Path] = typer.Option([Path("runs/proxima/npt"), Path("runs/proxima/hops")],
                                      help="experiment directories with summary.json"),
    expensive: list[str] = typer.Option(["tblite", "cp2k"], help="expensive targets to time, when installed"),
    smoke_dir: Path = typer.Option(Path("runs/proxima/smoke"), help="where `proxima smoke` wrote its measured "
                                   "time per call (used instead of timing the target again)"),
):
    """Experiment 3: target/surrogate call counts and times, measured and modelled speedup (paper: 1.5x)."""
    from mdsurrogate.proxima.experiments import cost_report

    unknown = [e for e in expensive if e not in TARGETS]
    if unknown:
        _fail(f"--expensive must name targets among {', '.join(TARGETS)}, got {unknown[0]!r}")
    _check_out(out)
    found = [p for p in inputs if (p / "summary.json").exists() or p.is_file()]
    if not found:
        _fail("no experiment summaries found; run `proxima npt` / `proxima hops` first")
    try:
        r = cost_report(out, found, expensive, smoke_dir=smoke_dir)
    except (KeyError, ValueError) as exc:  # a summary.json that is not an experiment summary
        _fail(f"cannot read the experiment summaries {[str(p) for p in found]}: {type(exc).__name__}: {exc}")
    typer.echo(f"per-call target time (s): {r['per_call_target_s']}")
    for path, exp in r["experiments"].items():
        for cond, e in exp.items():
            if cond.startswith("_"):
                continue
            line = (f"{path} {cond:8s} target calls {e['target_calls']:.0f}/{e['calls']} "
                    f"surrogate calls {e['surrogate_calls']:.0f} measured speedup {e['measured_speedup']:.2f}")
            if "modelled_speedup" in e:
                line += " modelled " + ", ".join(f"{k} {v:.2f}" for k, v in e["modelled_speedup"].items())
            typer.echo(line)
    typer.echo(f"wrote {out / 'cost.json'}")


@proxima_app.command()
def train(
    out: Path = typer.Option(Path("runs/proxima/model"), help="output directory"),
    potential: str = typer.Option("sw", help="target: sw or tersoff"),
    frames_per_state: int = typer.Option(1024, help="training frames at each temperature (paper: 1024 in all)"),
    runs_per_state: int = typer.Option(4, help="target runs per temperature the frames come from"),
    test_frames: int = typer.Option(256, help="frames per temperature of the independent test run"),
    max_epochs: int = typer.Option(400, help="epoch limit (training stops earlier at the validation plateau)"),
    valid_every: int = typer.Option(5, help="epochs between validation checks (the training curve)"),
    patience: int = typer.Option(8, help="checks without a 1 %% better validation force error before stopping"),
    batch_size: int = typer.Option(32, help="frames per batch"),
    members: int = typer.Option(2, help="ensemble members (paper 2)"),
    seed: int = typer.Option(1234, help="seed of the members' splits and initialisations"),
    low_t: list[float] = typer.Option([], "--low-t", help="extra NVT temperature (K) to sample, repeatable (the "
                                      "shipped ensemble: 30 and 300)"),
    low_t_frames: int = typer.Option(256, help="training frames at each --low-t temperature"),
    quench_frames: int = typer.Option(0, help="frames along target relaxations of training frames (0 K inherent "
                                      "structures; the shipped ensemble: 512)"),
    w_energy: float = typer.Option(1.0, help="weight of the per-atom energy loss"),
    lr: float = typer.Option(1e-3, help="Adam learning rate"),
    lr_decay: float = typer.Option(0.0, help="multiply the learning rate by this after 2 checks without a 1 %% "
                                   "gain (0: constant)"),
    init: Path = typer.Option(None, help="continue training this ensemble (ensemble.safetensors) on the frames"),
):
    """Train the ensemble on target frames at 800 K NPT and 1573 K NVT (and optionally low temperatures and
    quenches) until the validation force error stops improving; score it on independent target runs (training
    curve and paper Fig. 1 histogram)."""
    from mdsurrogate.cli.progress import rich_progress
    from mdsurrogate.proxima.pretrain import PretrainSettings, pretrain

    if potential not in POTENTIALS:
        _fail(f"--potential must be one of {', '.join(POTENTIALS)}, got {potential!r}")
    _check_int("--frames-per-state", frames_per_state, 8, 10**6)
    _check_int("--runs-per-state", runs_per_state, 1, frames_per_state)
    _check_int("--test-frames", test_frames, 3, 10**6)
    _check_int("--max-epochs", max_epochs, 1, 10**6)
    _check_int("--valid-every", valid_every, 1, max_epochs)
    _check_int("--patience", patience, 0, 10**6)
    _check_int("--batch-size", batch_size, 1, 10**6)
    _check_int("--seed", seed, 0, 2**32 - 1)
    _check_int("--members", members, 2, 16)
    for t in low_t:
        if not 1.0 <= t <= 3000.0:
            _fail(f"--low-t must be a temperature in [1, 3000] K, got {t}")
    _check_int("--low-t-frames", low_t_frames, 1, 10**6)
    _check_int("--quench-frames", quench_frames, 0, 10**6)
    _check_out(out)
    for name, v, lo, hi in (("--w-energy", w_energy, 0.0, 1e6), ("--lr", lr, 1e-8, 1.0), ("--lr-decay", lr_decay, 0.0,
                                                                                          0.99)):
        if not lo <= v <= hi:
            _fail(f"{name} must be in [{lo:g}, {hi:g}], got {v}")
    if init is not None:
        n_init = _load_ensemble_option("--init", init).config.n_members
        if n_init != members:
            _fail(f"--members must equal the --init ensemble's {n_init} members, got {members}")
    ps = PretrainSettings(potential=potential, frames_per_state=frames_per_state, runs_per_state=runs_per_state,
                          test_frames_per_state=test_frames, max_epochs=max_epochs, valid_every=valid_every,
                          patience=patience, batch_size=batch_size, n_members=members, seed=seed,
                          low_t_states=tuple(("nvt", float(t)) for t in low_t), low_t_frames_per_state=low_t_frames,
                          quench_frames=quench_frames, w_energy=w_energy, lr=lr, lr_decay=lr_decay,
                          init=str(init) if init else None)
    with rich_progress() as bar:
        s = pretrain(out, ps, progress=bar)
    for m in s["train_log"]:
        typer.echo(f"member {m['member']}: best epoch {m.get('best_epoch')} of {m.get('epochs_run')}, validation "
                   f"force MAE {m['valid_force_mae']:.4f} eV/A")
    for name, t in s["test"].items():
        typer.echo(f"test {name}: force MAE {t['force_mae']:.4f} eV/A, max-atom error mean "
                   f"{t['max_atom_error_mean']:.3f} / median {t['max_atom_error_median']:.3f} eV/A "
                   f"({t['fraction_above_0.9']:.1%} above 0.9)")
    typer.echo(f"wrote {out / 'pretrain.json'}")


@proxima_app.command()
def barrier(
    model: Path = typer.Option(None, help="ensemble to check (default: the shipped one, "
                               "mdsurrogate/data/proxima_sw/ensemble.safetensors)"),
    out: Path = typer.Option(Path("runs/proxima/barrier"), help="output directory"),
    potential: str = typer.Option("sw", help="target: sw or tersoff"),
    images: int = typer.Option(5, help="intermediate NEB images"),
):
    """The vacancy hop band (NEB) on the target and on the ensemble: the check before a hop-rate run."""
    from mdsurrogate.proxima.barrier import barrier_report
    from mdsurrogate.proxima.pretrain import shipped_ensemble_path

    if potential not in POTENTIALS:
        _fail(f"--potential must be one of {', '.join(POTENTIALS)}, got {potential!r}")
    _check_int("--images", images, 1, 32)
    _check_out(out)
    model = model or shipped_ensemble_path()
    _check_model_jobs(model, 1)
    r = barrier_report(model, out, potential, images)
    t, s = r["target"], r["surrogate_neb"]
    typer.echo(f"target: well {t['well_eV']:.3f} eV, span {t['span_eV']:.3f} eV; ensemble: well {s['well_eV']:.3f} "
               f"eV, span {s['span_eV']:.3f} eV (rate factor {r['span_rate_factor']:.2f} at {r['temperature_K']:.0f} K)"
               f"; max difference on the target's images {r['max_abs_diff_on_target_path_eV']:.3f} eV")
    typer.echo(f"wrote {out / 'barrier.json'}")


@proxima_app.command()
def smoke(target: str = typer.Argument(..., help="tblite or cp2k"),
          steps: int = typer.Option(3, help="NVE steps of 1 fs (>= 1)"),
          out: Path = typer.Option(Path("runs/proxima/smoke"))):
    """A short PROXIMA run with an expensive target (optional dependencies)."""
    from mdsurrogate.io import write_json_atomic
    from mdsurrogate.proxima.experiments import smoke_run
    from mdsurrogate.proxima.targets import available_targets

    _check_int("--steps", steps, 1, 10**9)
    _check_out(out)
    if target not in available_targets():
        _fail(f"target {target!r} is not available here (have {', '.join(available_targets())})")
    r = smoke_run(target, steps=steps, out=out)
    write_json_atomic(out / f"smoke_{target}.json", r)
    typer.echo(r)


def register(app: typer.Typer) -> None:
    """Attach this stage's commands to the main app."""
    app.add_typer(proxima_app, name="proxima")
