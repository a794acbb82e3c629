"""CLI commands of the surrogate stage: train, predict, evaluate."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import List, Optional

import typer

from mdsurrogate.cli.common import check_error_scale, fail


def _fail(msg: str) -> None:
    fail(msg)


def _check_common(threads: int | None = None, members: int | None = None, error_scale: float | None = None,
                  test_fraction: float | None = None, allow_zero_test: bool = True, seed: int | None = None) -> None:
    """The numeric options several commands share, checked before any work."""
    if seed is not None and not 0 <= seed <= 2**32 - 1:
        _fail(f"--seed must be an integer in [0, {2**32 - 1}], got {seed}")
    if threads is not None and not 1 <= threads <= 256:
        _fail(f"--threads must be an integer in [1, 256], got {threads}")
    if members is not None and not 1 <= members <= 64:
        _fail(f"--members must be an integer in [1, 64], got {members}")
    if error_scale is not None:
        check_error_scale(error_scale)
    if test_fraction is not None and not ((allow_zero_test and test_fraction == 0) or 0 < test_fraction < 1):
        _fail(f"--test-fraction must be {'0 (no test split) or ' if allow_zero_test else ''}a fraction in (0, 1), "
              f"got {test_fraction}")


def _data_files(paths: list[Path]) -> list[Path]:
    """The dataset files of DATA arguments (glob patterns expanded, each checked readable; BadPath otherwise)."""
    import glob

    from mdsurrogate.io import check_input

    files: list[Path] = []
    for p in paths:
        for f in sorted(glob.glob(str(p))) or [str(p)]:
            check_input(f, "DATA")
            if Path(f) not in files:
                files.append(Path(f))
    return files


def _load_data(files: list[Path], error_scale: float = 1.0):
    """The dataset of one file, or of a campaign's parts joined (`dataset.load_parts`)."""
    from mdsurrogate.dataset import load_dataset, load_parts

    return load_dataset(files[0], error_scale=error_scale) if len(files) == 1 else \
        load_parts(*files, error_scale=error_scale)


def _metrics_table(title: str, rows: dict[str, dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    cols = ["E", "E_I+", "E_B+", "E_I-", "E_B-", "MSE", "E_MD", "A", "A_eps>0"]
    table = Table(title=title)
    table.add_column("model")
    for c in cols:
        table.add_column(c, justify="right")
    for name, m in rows.items():
        table.add_row(name, *[(f"{m[c]:.2e}" if c == "MSE" else f"{m[c]:.4f}") if c in m else "-" for c in cols])
    import sys

    Console(width=None if sys.stdout.isatty() else 160).print(table)


#: Systems predicted and written per chunk by `predict` (about 8 MB per array): memory stays bounded.
PREDICT_CHUNK = 1024
#: `predict` writes the (one row per point) TSV by default only for batches up to this size.
TSV_AUTO_MAX = 100


def _read_systems(path: Path, names: tuple[str, ...] | None = None):
    """The systems of a batch file: a NetCDF with the five input variables (`names`, default the charged
    system's), or a CSV/TSV table with those columns."""
    import pandas as pd
    import xarray as xr

    from mdsurrogate.simulation.system import INPUT_NAMES

    names = INPUT_NAMES if names is None else names
    try:
        if path.suffix == ".nc":
            with xr.open_dataset(path, engine="h5netcdf") as f:
                return {k: f[k].values for k in names if k in f}
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        if len(lines) < 2:
            raise ValueError("a header and no rows")
        table = pd.read_csv(path, sep=None, engine="python", skipinitialspace=True)  # ',', tab, ';', ' ' sniffed
        table.columns = [str(c).strip() for c in table.columns]
    except (OSError, ValueError, TypeError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ValueError(f"--input: {path} is not a readable table or NetCDF ({type(exc).__name__}: {exc})") from None
    if table.empty:
        raise ValueError(f"--input: {path} has no systems (a header and no rows)")
    return table


def _write_predictions(sur, X, nc_path: Path, tsv_path: Path | None, extrapolated: bool):
    """Predict in chunks and write NetCDF (and TSV) as they come; returns (max n+, the first <= 8 profiles)."""
    import h5netcdf
    import numpy as np

    from mdsurrogate.io import atomic_path, guard_h5netcdf
    from mdsurrogate.surrogate.ensemble import DERIVED_ATTRS, derived_profiles

    guard_h5netcdf()
    schema = sur.schema
    INPUT_NAMES, N_GRID = schema.input_names, schema.n_points  # noqa: N806 - the system's names and points
    n = len(X)
    spread = len(sur.members) > 1
    peak, first = 0.0, None
    with contextlib.ExitStack() as stack:
        nc_tmp = stack.enter_context(atomic_path(nc_path))
        f = stack.enter_context(h5netcdf.File(nc_tmp, "w"))
        f.dimensions = {"system": n, "point": N_GRID}
        for name in INPUT_NAMES:
            v = f.create_variable(name, ("system",), "i8" if name in schema.integer_inputs else "f8")
            v.attrs.update(units=schema.units[name], long_name=schema.long_names[name])
        f.create_variable("z", ("system", "point"), "f8").attrs["units"] = "nm"
        outs = ["n_plus", "n_minus"] + (["n_plus_std", "n_minus_std"] if spread else [])
        for name in outs:
            v = f.create_variable(name, ("system", "point"), "f8")
            v.attrs.update(units="M", coordinates="z")
        # the MD's derived quantities of the mean profiles (`surrogate.ensemble.derived_profiles`)
        derived_1d = ("sigma_s_effective", "decay_length")
        for name in ("charge_density", "integrated_charge", *derived_1d):
            v = f.create_variable(name, ("system",) if name in derived_1d else ("system", "point"), "f8")
            v.attrs.update(DERIVED_ATTRS[name], **({} if name in derived_1d else {"coordinates": "z"}))
        outs += ["charge_density", "integrated_charge"]
        f.attrs.update(surrogate=sur.name, system_kind=schema.kind,
                       weights_sha256=sur.card.get("weights", {}).get("sha256", "unsaved"),
                       n_members=len(sur.members), extrapolated=int(extrapolated))
        tsv = None
        if tsv_path is not None:
            tsv = stack.enter_context(open(stack.enter_context(atomic_path(tsv_path)), "w"))
            tsv.write("\t".join(["system", "point", *INPUT_NAMES, "z", *outs, *derived_1d]) + "\n")
        for i in range(0, n, PREDICT_CHUNK):
            x = X[i:i + PREDICT_CHUNK]
            mean, std = sur.predict_mean_std(x, std=spread)
            if not np.all(np.isfinite(mean)) or (std is not None and not np.all(np.isfinite(std))):
                raise ValueError(f"surrogate {sur.name!r} produced non-finite profiles; its weights are damaged")
            z = sur.z_grid(x[:, 0])
            cols = {"n_plus": mean[:, :N_GRID], "n_minus": mean[:, N_GRID:]}
            if spread:
                cols.update(n_plus_std=std[:, :N_GRID], n_minus_std=std[:, N_GRID:])
            derived = derived_profiles(x, z, cols["n_plus"], cols["n_minus"], schema)
            cols.update(charge_density=derived["charge_density"], integrated_charge=derived["integrated_charge"])
            for k, name in enumerate(INPUT_NAMES):
                f.variables[name][i:i + len(x)] = np.round(x[:, k]) if name in schema.integer_inputs else x[:, k]
            f.variables["z"][i:i + len(x)] = z
            for name, arr in cols.items():
                f.variables[name][i:i + len(x)] = arr
            for name in derived_1d:
                f.variables[name][i:i + len(x)] = derived[name]
            peak = max(peak, float(cols["n_plus"].max()))
            if first is None:
                first = (x[:8], z[:8], {k: v[:8] for k, v in cols.items()})
            if tsv is not None:
                rows = len(x) * N_GRID
                block = np.column_stack([np.repeat(np.arange(i, i + len(x)), N_GRID), np.tile(np.arange(N_GRID),
                                         len(x)), *[np.repeat(x[:, k], N_GRID) for k in range(len(INPUT_NAMES))],
                                         z.reshape(rows), *[cols[o].reshape(rows) for o in outs],
                                         *[np.repeat(derived[o], N_GRID) for o in derived_1d]])
                np.savetxt(tsv, block, delimiter="\t", fmt=["%d", "%d"] + ["%.6g"] * (block.shape[1] - 2))
    return peak, first


def _plot_predictions(first, name: str, path: Path, names: tuple[str, ...] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mdsurrogate.io import atomic_path

    x, z, cols = first
    short = {"d_plus": "d+", "d_minus": "d-", "sigma_s": "s"}
    names = ("h", "c", "d_plus", "d_minus", "sigma_s") if names is None else names
    fig, ax = plt.subplots(figsize=(6, 4))
    for j in range(len(x)):
        label = ", ".join(f"{short.get(k, k)}={v:g}" for k, v in zip(names, x[j]))
        for var, ls in (("n_plus", "-"), ("n_minus", "--")):
            line, = ax.plot(z[j], cols[var][j], ls, lw=1.2,
                            label=f"{'n+' if var == 'n_plus' else 'n-'} {label}" if j < 4 else None)
            if f"{var}_std" in cols:
                sd = cols[f"{var}_std"][j]
                ax.fill_between(z[j], cols[var][j] - sd, cols[var][j] + sd, color=line.get_color(), alpha=0.25)
    ax.set_xlabel("z (nm)")
    ax.set_ylabel("density (M)")
    ax.set_title(f"{name}: ensemble mean +- std", fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def register(app: typer.Typer) -> None:
    """Attach this stage's commands to the main app."""

    @app.command("train")
    def train(
        data: List[Path] = typer.Argument(..., help="dataset: NetCDF (system, point) or an authors' pickle (.pk); "
                                                    "several NetCDF parts of one campaign (globs allowed) are joined"),
        out: Path = typer.Option(..., "--out", "-o", help="directory of the saved surrogate"),
        members: int = typer.Option(5, help="ensemble members (independently seeded networks)"),
        loss: str = typer.Option("mse", help="'mse' (BaseNN) or 'soft' (ModNN, soft labels from the MD errors)"),
        recipe: str = typer.Option("default", help="'default' (fast) or 'paper' (Adam 1e-4, batch 32, fixed epochs)"),
        epochs: Optional[int] = typer.Option(None, help="max epochs (default: recipe's)"),
        n1: Optional[int] = typer.Option(None, help="width of hidden layer 1"),
        n2: Optional[int] = typer.Option(None, help="width of hidden layer 2"),
        lr: Optional[float] = typer.Option(None, help="learning rate"),
        batch_size: Optional[int] = typer.Option(None, help="batch size (0 = full batch)"),
        test_fraction: float = typer.Option(0.2, help="random test split held out for the card's metrics (0: none)"),
        error_scale: float = typer.Option(1.0, help="multiply the stored MD errors (1/2.1 for the authors' data)"),
        seed: int = typer.Option(0, help="seed of split, initialisation, batches and soft labels"),
        baselines: bool = typer.Option(False, help="also fit the scikit-learn baselines on the same split"),
        search: bool = typer.Option(False, help="grid-search n1, n2, lr, batch size first (paper recipe: the "
                                                "papers' grid; default recipe: the same widths, lr {5e-3, 1e-2}, "
                                                "batch {full, 32})"),
        search_epochs: int = typer.Option(300, help="max epochs of each grid-search point"),
        workers: int = typer.Option(2, help="processes of the grid search"),
        threads: int = typer.Option(1, help="torch CPU threads"),
        name: str = typer.Option("surrogate", help="name stored in the card"),
        overwrite: bool = typer.Option(False, help="replace a saved surrogate already in --out"),
    ) -> None:
        """Train a deep ensemble surrogate and save it (weights + card)."""
        import dataclasses

        import numpy as np
        import torch

        from mdsurrogate.dataset import split_indices, system_groups, to_arrays
        from mdsurrogate.dataset.arrays import dataset_schema
        from mdsurrogate.evaluation.scoring import fit_and_score
        from mdsurrogate.io import BadPath, check_output
        from mdsurrogate.surrogate.search import apply_params
        from mdsurrogate.surrogate.training import default_config, paper_config

        _check_common(threads, members, error_scale, test_fraction, seed=seed)
        if recipe not in ("default", "paper"):
            _fail(f"--recipe must be 'default' or 'paper', got {recipe!r}")
        if loss not in ("mse", "soft"):
            _fail(f"--loss must be 'mse' (BaseNN) or 'soft' (ModNN), got {loss!r}")
        if lr is not None and not (math.isfinite(lr) and 0 < lr <= 1):
            _fail(f"--lr must be a learning rate in (0, 1], got {lr}")
        for option, value, lo, hi in (("--epochs", epochs, 1, 10**6), ("--n1", n1, 1, 8192), ("--n2", n2, 1, 8192),
                                      ("--batch-size", batch_size, 0, 10**6), ("--search-epochs", search_epochs, 1,
                                                                               10**6), ("--workers", workers, 1, 64)):
            if value is not None and not lo <= value <= hi:
                _fail(f"{option} must be an integer in [{lo}, {hi}], got {value}")
        fixed = [o for o, v in (("--n1", n1), ("--n2", n2), ("--lr", lr), ("--batch-size", batch_size))
                 if v is not None]
        if search and fixed:
            _fail(f"--search chooses n1, n2, lr and the batch size itself: drop {', '.join(fixed)} or --search")
        if baselines and test_fraction == 0:
            _fail("--baselines are scored on the test split: give --test-fraction in (0, 1)")
        try:
            files = _data_files(data)
            check_output(out, "--out", kind="dir", overwrite=overwrite, inputs=files, replaceable="card.json")
        except BadPath as exc:
            _fail(str(exc))
        torch.set_num_threads(threads)
        try:
            ds = _load_data(files, error_scale)
            config = default_config(loss=loss, seed=seed) if recipe == "default" else paper_config(loss=loss,
                                                                                                   seed=seed)
            params = {k: v for k, v in dict(n1=n1, n2=n2, lr=lr).items() if v is not None}
            config = apply_params(config, params)
            if batch_size is not None:
                config = dataclasses.replace(config, batch_size=None if batch_size == 0 else batch_size)
            if epochs is not None:
                config = dataclasses.replace(config, max_epochs=epochs)
            schema = dataset_schema(ds)  # the dataset's system kind: its inputs, outputs and input scaling
            config = dataclasses.replace(config, network=config.network.for_system(schema.kind))
            if search:
                from mdsurrogate.surrogate.search import DEFAULT_SEARCH_GRID, PAPER_SEARCH_GRID, grid_search

                arr = to_arrays(ds)
                tr = (split_indices(system_groups(arr.X), test_fraction, seed=seed)[0] if test_fraction
                      else np.arange(len(arr)))
                found = grid_search(arr.take(np.asarray(tr)), dataclasses.replace(config, max_epochs=search_epochs),
                                    PAPER_SEARCH_GRID if recipe == "paper" else DEFAULT_SEARCH_GRID,
                                    n_workers=workers, seed=seed)
                for res in found[:5]:
                    typer.echo(f"  search: {res.params} val MSE {res.val_mse:.3e} (best epoch {res.best_epoch})")
                config = apply_params(config, found[0].params)
                typer.echo(f"grid search best: {found[0].params}")
            sur, report = fit_and_score(ds, config, n_members=members, n_test=test_fraction, seed=seed, name=name)
            sur.save(out)  # refuses a diverged (non-finite) ensemble
        except (ValueError, OSError) as exc:
            _fail(str(exc))
        typer.echo(f"saved {members}-member surrogate to {out} (weights sha256 {sur.card['weights']['sha256'][:12]})")
        if report["metrics"]:
            rows = {"ensemble": report["metrics"]["test_ensemble"],
                    "member mean": report["metrics"]["test_member_mean"]}
            if baselines:
                from mdsurrogate.evaluation.baselines import run_baselines
                arr = to_arrays(ds)
                tr, te = split_indices(system_groups(arr.X), test_fraction, seed=seed)
                for row in run_baselines(arr.X[tr], arr.Y[tr], arr.X[te], arr.Y[te], arr.EPS[te], seed=seed,
                                         schema=schema):
                    rows[row.pop("model")] = row
            _metrics_table(f"random test split ({sur.card['training_data']['n_test']} systems)", rows)

    @app.command("report")
    def report(
        data: List[Path] = typer.Argument(..., help="training dataset (NetCDF of a campaign, or an authors' "
                                                    "pickle); parts of one campaign (globs allowed) are joined"),
        out: Path = typer.Option(Path("out/surrogate_report"), "--out", "-o", help="report directory"),
        members: int = typer.Option(5, help="ensemble members of each ANN"),
        losses: str = typer.Option("mse,soft", help="comma-separated: 'mse' (BaseNN) and/or 'soft' (ModNN)"),
        test_fraction: float = typer.Option(0.2, help="random test split"),
        seed: int = typer.Option(0, help="seed of the split and of the training"),
        baselines: bool = typer.Option(True, help="fit the scikit-learn baselines on the same split"),
        reference: Optional[Path] = typer.Option(None, help="external test set: the authors' pickle (or NetCDF)"),
        reference_md: Optional[Path] = typer.Option(None, help="our MD of reference systems (NetCDF), scored "
                                                                "against the reference as the MD-vs-MD floor"),
        precise: Optional[Path] = typer.Option(None, help="precise test set (NetCDF of longer runs of the same "
                                                           "engine): scored where unseen, error-bar check where "
                                                           "shared with DATA"),
        ship: Optional[Path] = typer.Option(None, help="also save the first ANN ensemble here (e.g. the packaged "
                                                        "src/mdsurrogate/data/surrogate_default), reference "
                                                        "metrics in its card"),
        epochs: Optional[int] = typer.Option(None, help="max epochs (default: the default recipe's)"),
        threads: int = typer.Option(1, help="torch CPU threads"),
        overwrite: bool = typer.Option(False, help="replace an earlier report in --out"),
    ) -> None:
        """Random-split study: BaseNN/ModNN ensembles and baselines on one split, scored on the test split and
        on the external reference; writes report.json, report.md and the trained ensembles."""
        import torch

        from mdsurrogate.dataset import load_dataset
        from mdsurrogate.dataset.arrays import dataset_schema
        from mdsurrogate.evaluation.studies import LOSS_NAMES, random_split_report, report_markdown
        from mdsurrogate.io import atomic_path, write_json_atomic
        from mdsurrogate.provenance import provenance
        from mdsurrogate.surrogate.training import default_config

        def config_fn(loss: str, seed_: int):
            import dataclasses

            cfg = default_config(loss=loss, seed=seed_)
            return cfg if epochs is None else dataclasses.replace(cfg, max_epochs=epochs)

        from mdsurrogate.io import BadPath, check_input, check_output

        _check_common(threads, members, None, test_fraction, allow_zero_test=False, seed=seed)
        if epochs is not None and not 1 <= epochs <= 10**6:
            _fail(f"--epochs must be an integer in [1, 1000000], got {epochs}")
        try:
            files = _data_files(data)
            inputs = [*files, reference, reference_md, precise]
            for option, path in zip(("--reference", "--reference-md", "--precise"), inputs[len(files):]):
                if path is not None:
                    check_input(path, option)
            check_output(out, "--out", kind="dir", overwrite=overwrite, inputs=inputs, replaceable="report.json")
            if ship is not None:
                check_output(ship, "--ship", kind="dir", overwrite=True, inputs=inputs, replaceable="card.json")
                o, s_ = out.resolve(), ship.resolve()
                if o == s_ or o in s_.parents or s_ in o.parents:
                    raise BadPath(f"--ship: {ship} and --out {out} must be separate folders")
        except BadPath as exc:
            _fail(str(exc))
        if reference_md is not None and reference is None:
            _fail("--reference-md needs --reference (the MD it is compared with)")
        torch.set_num_threads(threads)
        loss_list = [x.strip() for x in losses.split(",") if x.strip()]
        bad = [x for x in loss_list if x not in LOSS_NAMES]
        if bad or not loss_list:
            _fail(f"--losses must be a comma-separated subset of {sorted(LOSS_NAMES)}, got {losses!r}")
        try:
            ds = _load_data(files)
            ref = load_dataset(reference) if reference is not None else None
            ref_md = load_dataset(reference_md) if reference_md is not None else None
            pre = load_dataset(precise) if precise is not None else None
            kind = dataset_schema(ds).kind
            for option, other in (("--reference", ref), ("--reference-md", ref_md), ("--precise", pre)):
                if other is not None and dataset_schema(other).kind != kind:
                    raise ValueError(f"{option}: a {dataset_schema(other).kind}-wall dataset, DATA is of the "
                                     f"{kind}-wall system: score a surrogate on MD of its own system")
            rep, surs = random_split_report(ds, members=members, seed=seed, test_fraction=test_fraction,
                                            losses=tuple(loss_list), baselines=baselines, reference=ref,
                                            reference_md=ref_md, precise=pre, say=typer.echo, config_fn=config_fn)
        except (ValueError, OSError) as exc:
            _fail(str(exc))
        rep["provenance"] = provenance("torch", "scikit-learn", "xarray")
        rep["data"] = " ".join(str(f) for f in files)
        rep["reference_file"] = str(reference) if reference is not None else None
        rep["precise_file"] = str(precise) if precise is not None else None
        out.mkdir(parents=True, exist_ok=True)
        for loss, sur in surs.items():
            name = LOSS_NAMES[loss]
            if "reference" in rep:
                sur.card["metrics"]["external_test"] = {
                    "data": str(reference.name), **rep["reference"][f"{name} ensemble of {members}"]}
            if rep.get("precise", {}).get("unseen"):
                sur.card["metrics"]["precise_test"] = {
                    "data": str(precise.name), "n_systems": rep["precise"]["n_unseen"],
                    **rep["precise"]["unseen"][f"{name} ensemble of {members}"]}
            sur.save(out / "models" / name.lower())
        write_json_atomic(out / "report.json", rep)
        with atomic_path(out / "report.md") as tmp:
            tmp.write_text(report_markdown(rep))
        if ship is not None:
            surs[loss_list[0]].save(ship)
            typer.echo(f"shipped the {LOSS_NAMES[loss_list[0]]} ensemble to {ship}")
        typer.echo(report_markdown(rep))
        typer.echo(f"wrote {out / 'report.json'}, {out / 'report.md'} and {out / 'models'}")

    @app.command("predict")
    def predict(
        h: Optional[float] = typer.Option(None, help="confinement length h (nm)"),
        c: Optional[float] = typer.Option(None, help="salt concentration c (M)"),
        d_plus: Optional[float] = typer.Option(None, "--d-plus", help="cation diameter (nm)"),
        d_minus: Optional[float] = typer.Option(None, "--d-minus", help="anion diameter (nm)"),
        sigma_s: Optional[float] = typer.Option(None, "--sigma-s", help="surface charge density (C/m^2, < 0)"),
        system: Optional[str] = typer.Option(None, help="'charged' (walls of charge sigma_s, the default) or "
                                                         "'uncharged' (kadupitiya2020: --zp, --zn, --d); default: "
                                                         "the --model's kind"),
        zp: Optional[int] = typer.Option(None, "--zp", help="cation valency (uncharged system)"),
        zn: Optional[int] = typer.Option(None, "--zn", help="anion valency, negative (uncharged system)"),
        d: Optional[float] = typer.Option(None, "--d", help="ion diameter (nm; uncharged system)"),
        inputs: Optional[Path] = typer.Option(None, "--input", "-i",
                                              help="batch of systems: CSV/TSV with columns h,c,d_plus,d_minus,"
                                                   "sigma_s (uncharged: h,c,z_p,z_n,d) or a NetCDF with those "
                                                   "variables"),
        model: Optional[Path] = typer.Option(None, help="saved surrogate directory (default: the shipped one of "
                                                        "--system)"),
        out: Path = typer.Option(Path("prediction"), "--out", "-o", help="output prefix: PREFIX.nc/.tsv/.png"),
        allow_extrapolation: bool = typer.Option(False, help="predict outside the training ranges (warns)"),
        plot: bool = typer.Option(True, help="write PREFIX.png (the first 8 systems)"),
        overwrite: bool = typer.Option(False, help="replace existing PREFIX.* files"),
        tsv: Optional[bool] = typer.Option(None, "--tsv/--no-tsv", help="write PREFIX.tsv (one row per point; "
                                                                        f"default: only for <= {TSV_AUTO_MAX} "
                                                                        "systems)"),
    ) -> None:
        """Predict density profiles with a saved surrogate, with the MD's derived quantities of the mean profiles
        (charge_density, integrated_charge, decay_length, sigma_s_effective); writes NetCDF, TSV and a PNG.
        Batches are predicted and written in chunks of {chunk} systems, so memory stays bounded for any batch
        size."""
        import warnings

        from mdsurrogate.io import BadPath, check_input, check_output, prefix_path
        from mdsurrogate.surrogate.card import SurrogateLoadError, load_surrogate
        from mdsurrogate.surrogate.ensemble import inputs_to_array

        if system not in (None, "charged", "uncharged"):
            _fail(f"--system must be 'charged' or 'uncharged', got {system!r}")
        charged_opts = dict(d_plus=d_plus, d_minus=d_minus, sigma_s=sigma_s)
        uncharged_opts = dict(z_p=zp, z_n=zn, d=d)
        flag = {"z_p": "--zp", "z_n": "--zn"}
        if system is None and model is None and any(v is not None for v in uncharged_opts.values()):
            _fail("--zp, --zn and --d belong to the uncharged system: add --system uncharged")
        try:  # the surrogate first: its kind decides the inputs (--system, else the model's, else charged)
            sur = load_surrogate(model, system=system)
        except (SurrogateLoadError, ValueError) as exc:
            _fail(str(exc))
        kind = sur.system_kind
        other = {k: v for k, v in (uncharged_opts if kind == "charged" else charged_opts).items() if v is not None}
        if other:
            _fail(f"{', '.join(flag.get(k, '--' + k.replace('_', '-')) for k in other)} belong to the "
                  f"{'uncharged' if kind == 'charged' else 'charged'} system; this surrogate is of the {kind}-wall "
                  f"system (inputs {', '.join(sur.schema.input_names)})")
        single = dict(h=h, c=c, **(charged_opts if kind == "charged" else uncharged_opts))
        if inputs is not None and any(v is not None for v in single.values()):
            _fail(f"give either --input or the five {'/'.join(flag.get(k, '--' + k.replace('_', '-')) for k in single)}"
                  " options, not both")
        if inputs is None:
            missing = [k for k, v in single.items() if v is None]
            if missing:
                _fail(f"missing {', '.join(flag.get(m, '--' + m.replace('_', '-')) for m in missing)} "
                      "(or use --input)")
        known = (".nc", ".tsv", ".png")
        try:
            paths = {ext: prefix_path(out, ext, known) for ext in known}
            if inputs is not None:
                check_input(inputs, "--input")
            if Path(out).is_dir():
                raise BadPath(f"--out: {out} is a folder; give a file name prefix (e.g. {Path(out) / 'prediction'})")
            for ext, path in paths.items():
                check_output(path, "--out", overwrite=overwrite, inputs=[inputs, model])
            src = _read_systems(inputs, sur.schema.input_names) if inputs is not None else single
            X = inputs_to_array(src, sur.schema)
            if len(X) == 0:
                raise ValueError(f"--input: {inputs} has no systems")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                extrapolated = sur.check_inputs(X, allow_extrapolation)
            for w in caught:
                typer.secho(f"warning: {w.message}", fg=typer.colors.YELLOW, err=True)
        except (BadPath, ValueError) as exc:
            _fail(str(exc))
        write_tsv = len(X) <= TSV_AUTO_MAX if tsv is None else tsv
        try:
            peak, first = _write_predictions(sur, X, paths[".nc"], paths[".tsv"] if write_tsv else None,
                                             extrapolated)
        except ValueError as exc:
            _fail(str(exc))
        written = [str(paths[".nc"])] + ([str(paths[".tsv"])] if write_tsv else [])
        if plot:
            _plot_predictions(first, sur.name, paths[".png"], sur.schema.input_names)
            written.append(str(paths[".png"]))
        typer.echo(f"predicted {len(X)} profile(s) (max n+ {peak:.3f} M); wrote {', '.join(written)}")

    predict.__doc__ = predict.__doc__.format(chunk=PREDICT_CHUNK)

    @app.command("evaluate")
    def evaluate(
        data: List[Path] = typer.Argument(..., help="dataset with MD ground truth (NetCDF or authors' pickle); "
                                                    "several parts of one campaign (globs allowed) are joined"),
        model: Optional[Path] = typer.Option(None, help="saved surrogate directory (default: the shipped one)"),
        error_scale: float = typer.Option(1.0, help="multiply the stored MD errors (1/2.1 for the authors' data)"),
        split: str = typer.Option("all", help="'all' systems, or 'test'/'train' as recorded in the card"),
        allow_extrapolation: bool = typer.Option(False, help="score systems outside the training ranges too"),
        out: Optional[Path] = typer.Option(None, help="write the metrics as JSON here"),
        overwrite: bool = typer.Option(False, help="replace an existing --out file"),
    ) -> None:
        """Score a saved surrogate against MD profiles: E, E_I/E_B, MSE, success rates."""
        import warnings

        import numpy as np

        from mdsurrogate.dataset import to_arrays
        from mdsurrogate.dataset.arrays import dataset_schema
        from mdsurrogate.evaluation.metrics import evaluate_predictions, success_rate_per_system
        from mdsurrogate.io import BadPath, check_output, write_json_atomic
        from mdsurrogate.provenance import provenance
        from mdsurrogate.surrogate.card import load_surrogate

        _check_common(error_scale=error_scale)
        if split not in ("all", "train", "test"):
            _fail(f"--split must be 'all', 'train' or 'test', got {split!r}")
        try:
            files = _data_files(data)
            if out is not None:
                check_output(out, "--out", overwrite=overwrite, inputs=[*files, model])
        except BadPath as exc:
            _fail(str(exc))
        try:
            ds = _load_data(files, error_scale)
            kind = dataset_schema(ds).kind
            sur = load_surrogate(model, system=kind)  # the shipped one of the data's kind; another kind refused
            if split != "all":
                from mdsurrogate.simulation.system import parse_key, system_key

                def norm(k: str) -> str:  # 'c_1.0' (authors' files) and 'c_1' (system_key) name the same system
                    try:
                        return system_key(parse_key(str(k)))
                    except ValueError:
                        return str(k)

                keep = {norm(k) for k in sur.card["training_data"].get(f"{split}_systems", [])}
                if "key" not in ds.coords or not keep:
                    _fail(f"the card records no {split} systems by key; use --split all")
                ds = ds.isel(system=[i for i, k in enumerate(ds["key"].values) if norm(k) in keep])
                found = {norm(k) for k in ds["key"].values}  # systems, not rows: replicas share a key
                if found != keep:
                    _fail(f"{'+'.join(f.name for f in files)} holds {len(found)} of the {len(keep)} {split} "
                          "systems recorded in the card: not the dataset this surrogate was split on")
            arr = to_arrays(ds)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                extrapolated = bool(np.any(sur.check_inputs(arr.X, allow_extrapolation)))
            # the MD's own bins: profiles are interpolated when its grid differs from the surrogate's
            pred, _ = sur.predict_on_grid(arr.X, arr.Z, std=False)
        except ValueError as exc:
            _fail(str(exc))
        metrics = evaluate_predictions(arr.Y, pred, arr.EPS, n_interface=sur.schema.n_interface)
        a_j = success_rate_per_system(arr.Y, pred, arr.EPS)
        names = "+".join(f.name for f in files)
        _metrics_table(f"{sur.name} on {names} ({len(arr)} systems, split={split})", {"ensemble": metrics})
        worst = np.argsort(a_j)[:3]
        keys = ds["key"].values if "key" in ds.coords else np.arange(len(arr))
        typer.echo("lowest success rates: " + ", ".join(f"{keys[i]}: {a_j[i]:.3f}" for i in worst))
        if out is not None:
            write_json_atomic(out, {"metrics": metrics, "A_j": dict(zip(map(str, keys), a_j.tolist())),
                                    "data": " ".join(str(f) for f in files), "split": split, "model": sur.name,
                                    "extrapolated": extrapolated,
                                    "weights_sha256": sur.card.get("weights", {}).get("sha256"),
                                    "provenance": provenance("torch")})
