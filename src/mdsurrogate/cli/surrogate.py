"""CLI commands of the surrogate stage: train, predict, evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


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


def register(app: typer.Typer) -> None:
    """Attach this stage's commands to the main app."""

    @app.command("train")
    def train(
        data: Path = typer.Argument(..., help="dataset: NetCDF (system, point) or an authors' pickle (.pk)"),
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
    ) -> None:
        """Train a deep ensemble surrogate and save it (weights + card)."""
        import dataclasses

        import numpy as np
        import torch

        from mdsurrogate.dataset import load_dataset, split_indices, system_groups, to_arrays
        from mdsurrogate.evaluation.scoring import fit_and_score
        from mdsurrogate.surrogate.search import apply_params
        from mdsurrogate.surrogate.training import default_config, paper_config

        torch.set_num_threads(threads)
        if recipe not in ("default", "paper"):
            _fail(f"--recipe must be 'default' or 'paper', got {recipe!r}")
        try:
            ds = load_dataset(data, error_scale=error_scale)
            config = default_config(loss=loss, seed=seed) if recipe == "default" else paper_config(loss=loss,
                                                                                                   seed=seed)
            params = {k: v for k, v in dict(n1=n1, n2=n2, lr=lr).items() if v is not None}
            config = apply_params(config, params)
            if batch_size is not None:
                config = dataclasses.replace(config, batch_size=None if batch_size == 0 else batch_size)
            if epochs is not None:
                config = dataclasses.replace(config, max_epochs=epochs)
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
        except (ValueError, OSError) as exc:
            _fail(str(exc))
        sur.save(out)
        typer.echo(f"saved {members}-member surrogate to {out} (weights sha256 {sur.card['weights']['sha256'][:12]})")
        if report["metrics"]:
            rows = {"ensemble": report["metrics"]["test_ensemble"],
                    "member mean": report["metrics"]["test_member_mean"]}
            if baselines:
                from mdsurrogate.evaluation.baselines import run_baselines
                arr = to_arrays(ds)
                tr, te = split_indices(system_groups(arr.X), test_fraction, seed=seed)
                for row in run_baselines(arr.X[tr], arr.Y[tr], arr.X[te], arr.Y[te], arr.EPS[te], seed=seed):
                    rows[row.pop("model")] = row
            _metrics_table(f"random test split ({sur.card['training_data']['n_test']} systems)", rows)

    @app.command("report")
    def report(
        data: Path = typer.Argument(..., help="training dataset (NetCDF of a campaign, or an authors' pickle)"),
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
    ) -> None:
        """Random-split study: BaseNN/ModNN ensembles and baselines on one split, scored on the test split and
        on the external reference; writes report.json, report.md and the trained ensembles."""
        import torch

        from mdsurrogate.dataset import load_dataset
        from mdsurrogate.evaluation.studies import LOSS_NAMES, random_split_report, report_markdown
        from mdsurrogate.io import atomic_path, write_json_atomic
        from mdsurrogate.provenance import provenance
        from mdsurrogate.surrogate.training import default_config

        def config_fn(loss: str, seed_: int):
            import dataclasses

            cfg = default_config(loss=loss, seed=seed_)
            return cfg if epochs is None else dataclasses.replace(cfg, max_epochs=epochs)

        if not 0 < test_fraction < 1:
            _fail(f"--test-fraction must be in (0, 1), got {test_fraction}")
        if members < 1:
            _fail(f"--members must be >= 1, got {members}")
        if reference_md is not None and reference is None:
            _fail("--reference-md needs --reference (the MD it is compared with)")
        torch.set_num_threads(threads)
        loss_list = [x.strip() for x in losses.split(",") if x.strip()]
        bad = [x for x in loss_list if x not in LOSS_NAMES]
        if bad or not loss_list:
            _fail(f"--losses must be a comma-separated subset of {sorted(LOSS_NAMES)}, got {losses!r}")
        try:
            ds = load_dataset(data)
            ref = load_dataset(reference) if reference is not None else None
            ref_md = load_dataset(reference_md) if reference_md is not None else None
            pre = load_dataset(precise) if precise is not None else None
            rep, surs = random_split_report(ds, members=members, seed=seed, test_fraction=test_fraction,
                                            losses=tuple(loss_list), baselines=baselines, reference=ref,
                                            reference_md=ref_md, precise=pre, say=typer.echo, config_fn=config_fn)
        except (ValueError, OSError) as exc:
            _fail(str(exc))
        rep["provenance"] = provenance("torch", "scikit-learn", "xarray")
        rep["data"] = str(data)
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
        inputs: Optional[Path] = typer.Option(None, "--input", "-i",
                                              help="batch of systems: CSV/TSV with columns h,c,d_plus,d_minus,"
                                                   "sigma_s or a NetCDF with those variables"),
        model: Optional[Path] = typer.Option(None, help="saved surrogate directory (default: the shipped one)"),
        out: Path = typer.Option(Path("prediction"), "--out", "-o", help="output prefix: PREFIX.nc/.tsv/.png"),
        allow_extrapolation: bool = typer.Option(False, help="predict outside the training ranges (warns)"),
        plot: bool = typer.Option(True, help="write PREFIX.png"),
    ) -> None:
        """Predict density profiles with a saved surrogate; writes NetCDF, TSV and a PNG."""
        import warnings

        import numpy as np
        import pandas as pd

        from mdsurrogate.io import atomic_path, write_netcdf_atomic
        from mdsurrogate.surrogate.card import load_surrogate

        single = dict(h=h, c=c, d_plus=d_plus, d_minus=d_minus, sigma_s=sigma_s)
        try:
            if inputs is not None:
                if any(v is not None for v in single.values()):
                    _fail("give either --input or the five --h/--c/--d-plus/--d-minus/--sigma-s options, not both")
                if inputs.suffix == ".nc":
                    import xarray as xr
                    src = xr.load_dataset(inputs, engine="h5netcdf")
                else:
                    src = pd.read_csv(inputs, sep=None, engine="python")
            else:
                missing = [k for k, v in single.items() if v is None]
                if missing:
                    _fail(f"missing {', '.join('--' + m.replace('_', '-') for m in missing)} (or use --input)")
                src = single
            sur = load_surrogate(model)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                pred = sur.predict(src, allow_extrapolation=allow_extrapolation)
            for w in caught:
                typer.secho(f"warning: {w.message}", fg=typer.colors.YELLOW, err=True)
        except ValueError as exc:
            _fail(str(exc))
        out.parent.mkdir(parents=True, exist_ok=True)
        nc = write_netcdf_atomic(pred, out.with_suffix(".nc"))
        frame = pred.to_dataframe().reset_index()
        cols = ["system", "point", "h", "c", "d_plus", "d_minus", "sigma_s", "z", "n_plus", "n_minus"]
        cols += [v for v in ("n_plus_std", "n_minus_std") if v in frame]
        with atomic_path(out.with_suffix(".tsv")) as tmp:
            frame[cols].to_csv(tmp, sep="\t", index=False, float_format="%.6g")
        written = [str(nc), str(out.with_suffix(".tsv"))]
        if plot:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(6, 4))
            for j in range(min(pred.sizes["system"], 8)):
                p = pred.isel(system=j)
                z = p["z"].values
                label = f"h={float(p.h):g}, c={float(p.c):g}, d+={float(p.d_plus):g}, d-={float(p.d_minus):g}, " \
                        f"s={float(p.sigma_s):g}"
                for var, ls in (("n_plus", "-"), ("n_minus", "--")):
                    line, = ax.plot(z, p[var].values, ls, lw=1.2,
                                    label=f"{'n+' if var == 'n_plus' else 'n-'} {label}" if j < 4 else None)
                    if f"{var}_std" in p:
                        s = p[f"{var}_std"].values
                        ax.fill_between(z, p[var].values - s, p[var].values + s, color=line.get_color(), alpha=0.25)
            ax.set_xlabel("z (nm)")
            ax.set_ylabel("density (M)")
            ax.set_title(f"{sur.name}: ensemble mean +- std", fontsize=9)
            ax.legend(fontsize=6)
            fig.tight_layout()
            with atomic_path(out.with_suffix(".png")) as tmp:
                fig.savefig(tmp, dpi=120, format="png")
            plt.close(fig)
            written.append(str(out.with_suffix(".png")))
        n = pred.sizes["system"]
        peak = float(np.max(pred["n_plus"].values))
        typer.echo(f"predicted {n} profile(s) (max n+ {peak:.3f} M); wrote {', '.join(written)}")

    @app.command("evaluate")
    def evaluate(
        data: Path = typer.Argument(..., help="dataset with MD ground truth (NetCDF or authors' pickle)"),
        model: Optional[Path] = typer.Option(None, help="saved surrogate directory (default: the shipped one)"),
        error_scale: float = typer.Option(1.0, help="multiply the stored MD errors (1/2.1 for the authors' data)"),
        split: str = typer.Option("all", help="'all' systems, or 'test'/'train' as recorded in the card"),
        allow_extrapolation: bool = typer.Option(False, help="score systems outside the training ranges too"),
        out: Optional[Path] = typer.Option(None, help="write the metrics as JSON here"),
    ) -> None:
        """Score a saved surrogate against MD profiles: E, E_I/E_B, MSE, success rates."""
        import warnings

        import numpy as np

        from mdsurrogate.dataset import load_dataset, to_arrays
        from mdsurrogate.evaluation.metrics import evaluate_predictions, success_rate_per_system
        from mdsurrogate.io import write_json_atomic
        from mdsurrogate.provenance import provenance
        from mdsurrogate.surrogate.card import load_surrogate

        try:
            sur = load_surrogate(model)
            ds = load_dataset(data, error_scale=error_scale)
            if split != "all":
                if split not in ("train", "test"):
                    _fail(f"--split must be 'all', 'train' or 'test', got {split!r}")
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
                if ds.sizes["system"] != len(keep):
                    _fail(f"{data.name} holds {ds.sizes['system']} of the {len(keep)} {split} systems recorded in "
                          "the card: not the dataset this surrogate was split on")
            arr = to_arrays(ds)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sur.check_inputs(arr.X, allow_extrapolation)
            # the MD's own bins: profiles are interpolated when its grid differs from the surrogate's
            pred, _ = sur.predict_on_grid(arr.X, arr.Z, std=False)
        except ValueError as exc:
            _fail(str(exc))
        metrics = evaluate_predictions(arr.Y, pred, arr.EPS)
        a_j = success_rate_per_system(arr.Y, pred, arr.EPS)
        _metrics_table(f"{sur.name} on {data.name} ({len(arr)} systems, split={split})", {"ensemble": metrics})
        worst = np.argsort(a_j)[:3]
        keys = ds["key"].values if "key" in ds.coords else np.arange(len(arr))
        typer.echo("lowest success rates: " + ", ".join(f"{keys[i]}: {a_j[i]:.3f}" for i in worst))
        if out is not None:
            write_json_atomic(out, {"metrics": metrics, "A_j": dict(zip(map(str, keys), a_j.tolist())),
                                    "data": str(data), "split": split, "model": sur.name,
                                    "weights_sha256": sur.card["weights"]["sha256"],
                                    "provenance": provenance("torch")})
