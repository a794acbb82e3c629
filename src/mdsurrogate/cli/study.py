"""`mdsurrogate study NAME DATA...`: the papers' studies, each writing figure(s).png, table.md and study.json into
an output folder (resumable: rerunning the same command reuses every model already trained there)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, List, Optional

import typer

from mdsurrogate.cli.common import fail

study_app = typer.Typer(help="The papers' studies as commands: figures, table.md and study.json in --out.",
                        no_args_is_help=True)

DATA_HELP = "dataset file(s): NetCDF of a campaign (several parts, globs allowed) or an authors' pickle"
REFERENCE_DEFAULT = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / \
    "nanoconfinement_d0415_subset.pk"


class RichProgress:
    """The studies' progress protocol drawn with rich bars."""

    def __init__(self) -> None:
        from rich.console import Console

        from mdsurrogate.cli.progress import rich_progress

        self.console = Console(stderr=True)
        self.bars = rich_progress(console=self.console)

    def __enter__(self):
        self.bars.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.stop()

    def task(self, description: str, total: int | None) -> Callable[[int], None]:
        tid = self.bars.add_task(description, total=total)
        return lambda n=1: self.bars.advance(tid, n)

    def say(self, message: str) -> None:
        self.console.print(message)


def _open(name: str, data: list[Path] | None, out: Path, seed: int, options: dict, error_scale: float = 1.0,
          workers: int = 1, threads: int = 1, progress=None, system: str = "charged"):
    from mdsurrogate.io import BadPath
    from mdsurrogate.studies.runner import DataSource, StudyRun

    if not 0 <= seed <= 2**32 - 1:
        fail(f"--seed must be an integer in [0, {2**32 - 1}], got {seed}")
    if options.get("members") is not None and not 1 <= options["members"] <= 64:
        fail(f"--members must be an integer in [1, 64], got {options['members']}")
    try:
        src = DataSource.of(data, error_scale, system=system) if data else None
        return StudyRun(name, out, seed, options, data=src, progress=progress, workers=workers, threads=threads)
    except (BadPath, ValueError) as exc:
        fail(str(exc))


def _reference(path: Optional[Path], use: bool):
    from mdsurrogate.io import BadPath
    from mdsurrogate.studies.runner import DataSource

    if not use:
        return None
    if path is None:
        if not REFERENCE_DEFAULT.is_file():
            typer.echo(f"note: the authors' reference data ({REFERENCE_DEFAULT}) is not here; no external test "
                       "(give --reference PATH)", err=True)
            return None
        path = REFERENCE_DEFAULT
    try:
        return DataSource.of([path], option="--reference")
    except BadPath as exc:
        fail(f"{exc} (give --reference PATH or --no-reference)")


def _run_study(mod, name: str, data, out: Path, seed: int, options: dict, run_kw: dict, workers: int = 1,
               threads: int = 1, from_cache: bool = False, system: str = "charged") -> None:
    """Open the study folder, run `mod.run(study, **run_kw)` under progress bars, report; one-line errors."""
    with RichProgress() as bar:
        study = _open(name, data, out, seed, options, workers=workers, threads=threads, progress=bar, system=system)
        study.from_cache = from_cache
        try:
            record = mod.run(study, **run_kw)
        except ValueError as exc:
            fail(str(exc))
    _done(record, out)


def _done(record: dict, out: Path) -> None:
    typer.echo(f"study {record['study']} on {record['n_systems']} systems: {out}/table.md, study.json, "
               f"{', '.join(record['figures'])} ({record['wall_time_s']:.0f} s)")


def _ints(text: Optional[str], option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        fail(f"{option} must be comma-separated integers, got {text!r}")
    if not values:
        fail(f"{option} must list at least one integer (comma-separated), got {text!r}")
    return values


def _floats(text: str, option: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        fail(f"{option} must be comma-separated numbers, got {text!r}")
    if not values or not all(math.isfinite(v) for v in values):
        fail(f"{option} must list at least one finite number (comma-separated), got {text!r}")
    return values


@study_app.command("ntrain")
def ntrain(
    data: List[Path] = typer.Argument(..., help=DATA_HELP),
    out: Path = typer.Option(Path("out/studies/ntrain"), "--out", "-o", help="study folder (resumable)"),
    sizes: Optional[str] = typer.Option(None, help="comma-separated N_train (default: sun2023's that fit, plus all)"),
    repeats: int = typer.Option(10, help="training sets per N_train (seeds)"),
    n_test: Optional[int] = typer.Option(None, help="test systems (default 500, or 20 % under 1000 systems)"),
    recipe: str = typer.Option("default", help="training recipe: 'default' (ours) or 'paper'"),
    epochs: Optional[int] = typer.Option(None, help="cap on the recipe's epochs"),
    members: int = typer.Option(1, help="ensemble members per model"),
    reference: Optional[Path] = typer.Option(None, help="the authors' 81 systems (default ../shared/reference)"),
    use_reference: bool = typer.Option(True, "--reference-score/--no-reference", help="score on the reference"),
    seed: int = typer.Option(0, help="seed of the test set, the training sets and the networks"),
    from_cache: bool = typer.Option(False, help="report from the models already in --out's cache; train nothing"),
    workers: int = typer.Option(1, help="models trained at once (processes)"),
    threads: int = typer.Option(1, help="torch threads per process"),
) -> None:
    """Accuracy vs N_train (sun2023 Figs. 5, 8): E, E_I/E_B and success rate with error bars over training sets,
    power-law fits, convergence point; each model also scored on the authors' MD."""
    from mdsurrogate.studies import ntrain as mod

    opts = dict(sizes=_ints(sizes, "--sizes"), repeats=repeats, n_test=n_test, recipe_name=recipe, epochs=epochs,
                members=members)
    ref = _reference(reference, use_reference)
    _run_study(mod, "ntrain", data, out, seed, {**opts, "reference": bool(ref)}, dict(reference=ref, **opts),
               workers, threads, from_cache)


@study_app.command("separation")
def separation(
    data: List[Path] = typer.Argument(..., help=DATA_HELP),
    out: Path = typer.Option(Path("out/studies/separation"), "--out", "-o", help="study folder (resumable)"),
    fractions: str = typer.Option("0,0.01,0.1,0.5", help="fractions f of the held-out systems shown in training"),
    holdouts: str = typer.Option("c=1.0;d_plus=0.415;c=0.25,0.75,1.25,1.75",
                                 help="';'-separated hold-outs NAME=V1,V2 (an input and its held-out values)"),
    recipe: str = typer.Option("default", help="training recipe: 'default' (ours) or 'paper'"),
    epochs: Optional[int] = typer.Option(None, help="cap on the recipe's epochs"),
    members: int = typer.Option(1, help="ensemble members per model"),
    parallel_runs: int = typer.Option(2, help="MD runs the campaign ran at once (t_train = t_seq / this)"),
    reference: Optional[Path] = typer.Option(None, help="the authors' MD for the representative profile"),
    use_reference: bool = typer.Option(True, "--reference-score/--no-reference", help="use the reference"),
    seed: int = typer.Option(0, help="seed of the systems moved back and of the networks"),
    from_cache: bool = typer.Option(False, help="report from the models already in --out's cache; train nothing"),
    workers: int = typer.Option(1, help="models trained at once (processes)"),
    threads: int = typer.Option(1, help="torch threads per process"),
) -> None:
    """Deterministic separation (sun2023 Figs. 9-10): hold out c = 1 M, d+ = 0.415 nm, or four c values; show a
    fraction f back; E_I/E_B on the rest vs f and the net speedup S' (eq. 10)."""
    from mdsurrogate.simulation.system import INPUT_NAMES
    from mdsurrogate.studies import separation as mod

    hold: dict[str, dict] = {}
    for part in holdouts.split(";"):
        name, _, values = part.partition("=")
        if name.strip() not in INPUT_NAMES or not values:
            fail(f"--holdouts: each hold-out is INPUT=V1,V2 with INPUT one of {', '.join(INPUT_NAMES)}; got {part!r}")
        hold[part.strip()] = {name.strip(): _floats(values, "--holdouts")}
    opts = dict(holdouts=hold, fractions=tuple(_floats(fractions, "--fractions")), recipe_name=recipe,
                epochs=epochs, members=members, parallel_runs=parallel_runs)
    ref = _reference(reference, use_reference)
    _run_study(mod, "separation", data, out, seed, {**opts, "reference": bool(ref)}, dict(reference=ref, **opts),
               workers, threads, from_cache)


@study_app.command("softlabels")
def softlabels(
    data: List[Path] = typer.Argument(..., help=DATA_HELP),
    out: Path = typer.Option(Path("out/studies/softlabels"), "--out", "-o", help="study folder (resumable)"),
    sizes: Optional[str] = typer.Option(None, help="comma-separated N_train (default 100,300,800 where they fit)"),
    recipes: str = typer.Option("paper,default", help="recipes to compare: 'paper' and/or 'default'"),
    n_test: Optional[int] = typer.Option(None, help="test systems (default 200, or 20 %% under 1000 systems)"),
    paper_epochs: int = typer.Option(9500, help="epochs of the paper's recipe (kadupitiya2021: 9500+)"),
    epochs: Optional[int] = typer.Option(None, help="cap on our recipe's epochs"),
    repeats: int = typer.Option(1, help="training sets and seeds per N_train (paired BaseNN/ModNN ratios, SE)"),
    reference: Optional[Path] = typer.Option(None, help="the authors' 81 systems (default ../shared/reference)"),
    use_reference: bool = typer.Option(True, "--reference-score/--no-reference", help="score on the reference"),
    seed: int = typer.Option(0, help="seed of the test set, the training sets and the networks"),
    from_cache: bool = typer.Option(False, help="report from the models already in --out's cache; train nothing"),
    workers: int = typer.Option(1, help="networks trained at once (processes)"),
    threads: int = typer.Option(1, help="torch threads per process"),
) -> None:
    """BaseNN vs ModNN (kadupitiya2021 Figs. 3-4): loss vs epoch, interface/bulk errors at three N_train under the
    paper's recipe and ours; which condition gives soft labels their gain."""
    from mdsurrogate.studies import softlabels as mod

    recipe_list = tuple(x.strip() for x in recipes.split(",") if x.strip())
    bad = [x for x in recipe_list if x not in ("paper", "default")]
    if bad or not recipe_list:
        fail(f"--recipes takes 'paper' and/or 'default', got {recipes!r}")
    if not 1 <= paper_epochs <= 10**6:
        fail(f"--paper-epochs must be in [1, 1000000], got {paper_epochs}")
    if not 1 <= repeats <= 100:
        fail(f"--repeats must be in [1, 100], got {repeats}")
    opts = dict(sizes=_ints(sizes, "--sizes"), recipes=recipe_list, n_test=n_test, paper_epochs=paper_epochs,
                epochs=epochs, repeats=repeats)
    ref = _reference(reference, use_reference)
    _run_study(mod, "softlabels", data, out, seed, {**opts, "reference": bool(ref)}, dict(reference=ref, **opts),
               workers, threads, from_cache)


@study_app.command("active-learning")
def active_learning(
    data: List[Path] = typer.Argument(..., help=DATA_HELP),
    out: Path = typer.Option(Path("out/studies/active-learning"), "--out", "-o", help="study folder (resumable)"),
    rules: str = typer.Option("spread,coverage,random", help="acquisition rules (random is the reference)"),
    seeds: int = typer.Option(5, help="chains per rule"),
    start: int = typer.Option(50, help="systems to start from"),
    batch: int = typer.Option(25, help="systems added per round"),
    rounds: int = typer.Option(10, help="rounds"),
    n_test: Optional[int] = typer.Option(None, help="test systems (default 500, or 20 %% under 1000 systems)"),
    members: int = typer.Option(3, help="ensemble members (>= 2: the spread rule needs them)"),
    epochs: int = typer.Option(1500, help="cap on our recipe's epochs per network"),
    seed: int = typer.Option(0, help="seed of the test set"),
    from_cache: bool = typer.Option(False, help="report from the chains already in --out's cache; run nothing"),
    workers: int = typer.Option(1, help="chains run at once (processes)"),
    threads: int = typer.Option(1, help="torch threads per process"),
) -> None:
    """Active learning (beyond the papers): ensemble spread and input-space coverage vs random acquisition; E vs
    the number of simulations and how many each needs to match random sampling's best."""
    from mdsurrogate.studies import active_learning as mod

    rule_list = tuple(x.strip() for x in rules.split(",") if x.strip())
    for name, v, lo, hi in (("--seeds", seeds, 1, 100), ("--start", start, 2, 10**6), ("--batch", batch, 1, 10**6),
                            ("--rounds", rounds, 1, 1000), ("--members", members, 2, 64),
                            ("--epochs", epochs, 1, 10**6)):
        if not lo <= v <= hi:
            fail(f"{name} must be in [{lo}, {hi}], got {v}")
    opts = dict(rules=rule_list, seeds=seeds, start=start, batch=batch, rounds=rounds, n_test=n_test,
                members=members, epochs=epochs)
    _run_study(mod, "active-learning", data, out, seed, opts, opts, workers, threads, from_cache)


def _surrogate(model: Optional[Path]):
    from mdsurrogate.surrogate.card import SurrogateLoadError
    from mdsurrogate.surrogate.ensemble import Surrogate

    try:
        return Surrogate.load(model, system="charged")  # these studies sweep the charged-wall inputs
    except (SurrogateLoadError, OSError) as exc:
        fail(f"--model: {exc}")


MODEL_HELP = "saved surrogate folder (default: the one shipped in the package)"


@study_app.command("speedup")
def speedup(
    data: Optional[List[Path]] = typer.Argument(None, help=DATA_HELP + " (its run length is used)"),
    out: Path = typer.Option(Path("out/studies/speedup"), "--out", "-o", help="study folder (resumable)"),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP),
    steps: Optional[int] = typer.Option(None, help="MD run length in steps (default: the dataset's)"),
    ranks: int = typer.Option(2, help="MPI ranks of the parallel MD run (t_train)"),
    probe_steps: str = typer.Option("1000,3000", help="two short runs of the authors' preset to extrapolate"),
    seed: int = typer.Option(0, help="seed of the MD runs"),
) -> None:
    """Speedup with measured times (sun2023 eqs. 4-10): t_seq, t_train (parallel MD), t_p, t_fit; S/S_HPC vs
    N_train and S vs the number of predictions, with the break-even point."""
    from mdsurrogate.studies import speedup as mod

    probes = _ints(probe_steps, "--probe-steps")
    if len(probes) != 2:
        fail(f"--probe-steps takes two step counts, got {probe_steps!r}")
    sur = _surrogate(model)
    opts = {"steps": steps, "ranks": ranks, "probe_steps": tuple(probes)}
    _run_study(mod, "speedup", data, out, seed, {**opts, "model": str(model) if model else "shipped"},
               dict(sur=sur, **opts))


@study_app.command("profiles")
def profiles(
    data: List[Path] = typer.Argument(..., help=DATA_HELP),
    out: Path = typer.Option(Path("out/studies/profiles"), "--out", "-o", help="study folder"),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP),
    n_systems: int = typer.Option(4, help="systems to plot"),
    seed: int = typer.Option(0, help="seed of the systems drawn"),
) -> None:
    """Predicted vs MD profiles (n+, n-, rho, S) of unseen systems with the ensemble band; RMSE_j, A_j; E_k and
    A_k vs output index over every unseen system."""
    from mdsurrogate.studies import profiles as mod

    if not 1 <= n_systems <= 12:
        fail(f"--n-systems must be in [1, 12], got {n_systems}")
    sur = _surrogate(model)
    _run_study(mod, "profiles", data, out, seed, {"n_systems": n_systems, "model": str(model) if model else
                                                  "shipped"}, dict(sur=sur, n_systems=n_systems))


@study_app.command("trendlines")
def trendlines(
    out: Path = typer.Option(Path("out/studies/trendlines"), "--out", "-o", help="study folder"),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP),
    n_values: int = typer.Option(6, help="values per swept input"),
) -> None:
    """Trendlines from the surrogate (kadupitiya2020 Fig. 6, kadupitiya2021 Fig. 7): profiles, rho(z), S(z)
    while one input sweeps; the concentration sweep of Fig. 7."""
    from mdsurrogate.studies import trendlines as mod

    sur = _surrogate(model)
    _run_study(mod, "trendlines", None, out, 0, {"n_values": n_values, "model": str(model) if model else "shipped"},
               dict(sur=sur, n_values=n_values))


@study_app.command("sensitivity")
def sensitivity(
    out: Path = typer.Option(Path("out/studies/sensitivity"), "--out", "-o", help="study folder"),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP),
    n: int = typer.Option(2**18, help="SALib base sample N (N (k+2) = about 1e6 evaluations for the default)"),
    seed: int = typer.Option(0, help="SALib sampling and bootstrap seed"),
) -> None:
    """Sobol indices of n+, n- and rho to d+ ~ N(0.4, 0.01^2) and d- ~ N(0.6, 0.015^2) nm at c = 0.3 and 1.9 M
    (kadupitiya2021 Fig. 8), SALib sampling and estimators, 1e6 surrogate evaluations per case."""
    from mdsurrogate.studies import sensitivity as mod

    if not 16 <= n <= 2**20:
        fail(f"--n must be in [16, {2**20}] (memory: the bootstrap holds n x 100 counts), got {n}")
    sur = _surrogate(model)
    _run_study(mod, "sensitivity", None, out, seed, {"n": n, "model": str(model) if model else "shipped"},
               dict(sur=sur, n=n))


@study_app.command("kadupitiya2020")
def kadupitiya2020(
    data: List[Path] = typer.Argument(..., help="dataset file(s) of the uncharged-wall system (parts, globs allowed)"),
    out: Path = typer.Option(Path("out/studies/kadupitiya2020"), "--out", "-o", help="study folder (resumable)"),
    folds: int = typer.Option(20, help="k of the k-fold cross-validation (the paper's 20)"),
    models: str = typer.Option("baselines,ann_paper,ann_ours,profile",
                               help="model groups: baselines (the five), ann_paper, ann_ours, profile"),
    paper_epochs: int = typer.Option(4000, help="epochs of the paper's ANN recipe"),
    paper_folds: Optional[int] = typer.Option(None, help="folds the paper's ANN runs on (default all; it is costly)"),
    profile_folds: Optional[int] = typer.Option(None, help="folds the profile surrogate runs on (default all)"),
    epochs: Optional[int] = typer.Option(None, help="cap on our recipe's epochs (ann_ours, profile)"),
    degree: int = typer.Option(3, help="polynomial degree of the backward elimination's least-squares fits"),
    model: Optional[Path] = typer.Option(None, help="uncharged-wall surrogate for Fig. 6 (default: the shipped one)"),
    fig6_md: Optional[List[Path]] = typer.Option(None, "--fig6-md", help="MD of the Fig. 6 systems "
                                                  "(campaigns/kadupitiya2020_fig6.toml); else the dataset's, if any"),
    seed: int = typer.Option(0, help="seed of the folds, the networks and the control input"),
    from_cache: bool = typer.Option(False, help="report from the folds already in --out's cache; train nothing"),
    workers: int = typer.Option(1, help="fold tasks run at once (processes)"),
    threads: int = typer.Option(1, help="torch threads per process"),
) -> None:
    """kadupitiya2020 on its own system (uncharged walls, multivalent ions): Table 1 (contact, mid-point and peak
    density by the ANN and five baselines, success rate and MSE under k-fold CV), input selection by backward
    elimination with the adjusted R^2, and the Fig. 6 trendlines with MD and A_i."""
    from mdsurrogate.io import BadPath
    from mdsurrogate.studies import kadupitiya2020 as mod
    from mdsurrogate.studies.runner import DataSource
    from mdsurrogate.surrogate.card import SurrogateLoadError
    from mdsurrogate.surrogate.ensemble import Surrogate

    model_list = tuple(x.strip() for x in models.split(",") if x.strip())
    if not model_list:
        fail(f"--models must list at least one of baselines, ann_paper, ann_ours, profile, got {models!r}")
    for option, value, lo, hi in (("--epochs", epochs, 1, 10**6), ("--paper-epochs", paper_epochs, 1, 10**6),
                                  ("--folds", folds, 2, 1000), ("--paper-folds", paper_folds, 1, 1000),
                                  ("--profile-folds", profile_folds, 1, 1000), ("--degree", degree, 1, 5)):
        if value is not None and not lo <= value <= hi:
            fail(f"{option} must be an integer in [{lo}, {hi}], got {value}")
    sur = None
    if model is not None:
        try:
            sur = Surrogate.load(model, system="uncharged")
        except (SurrogateLoadError, OSError, ValueError) as exc:
            fail(f"--model: {exc}")
    md = None
    if fig6_md:
        try:
            md = DataSource.of(fig6_md, option="--fig6-md", system="uncharged")
        except (BadPath, ValueError) as exc:
            fail(str(exc))
    opts = dict(folds=folds, models=model_list, paper_epochs=paper_epochs, epochs=epochs, degree=degree,
                paper_folds=paper_folds, profile_folds=profile_folds)
    _run_study(mod, "kadupitiya2020", data, out, seed,
               {**opts, "model": str(model) if model else "shipped", "fig6_md": [str(f) for f in fig6_md or []]},
               dict(sur=sur, fig6_md=md, **opts), workers, threads, from_cache, system="uncharged")


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")
