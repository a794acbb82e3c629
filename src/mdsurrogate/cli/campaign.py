"""CLI commands of the campaign stage: `mdsurrogate campaign validate|run|status|consolidate|export`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

campaign_app = typer.Typer(name="campaign", help="Define, run, resume and inspect MD campaigns; build the dataset.",
                           no_args_is_help=True)


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _load(spec: Path):
    from mdsurrogate.campaign.spec import SpecError, load_spec  # noqa: PLC0415

    try:
        return load_spec(spec)
    except (SpecError, FileNotFoundError) as exc:
        _fail(f"{spec}: {exc}")


@campaign_app.command("validate")
def validate(spec: Path = typer.Argument(..., help="campaign spec (.toml or .yaml)")) -> None:
    """Check a spec and print what it would run (nothing is run)."""
    s = _load(spec)
    n_sys = len(s.systems)
    typer.echo(f"{s.name}: {n_sys} systems x {len(s.seeds)} seeds = {len(s.runs)} runs; controls {s.controls}; "
               f"execution {s.execution}")


@campaign_app.command("run")
def run(
    spec: Path = typer.Argument(..., help="campaign spec (.toml or .yaml)"),
    directory: Optional[Path] = typer.Option(None, "--dir", help="campaign directory (default: from the spec)"),
    workers: Optional[int] = typer.Option(None, "--workers", "-n", min=1, help="concurrent runs"),
    cores: Optional[int] = typer.Option(None, "--cores", "-m", min=1, help="MPI ranks per run"),
    backend: Optional[str] = typer.Option(None, help="local | parsl"),
    parsl_config: Optional[str] = typer.Option(None, help="local | threads | path to a python file with `config`"),
    max_attempts: Optional[int] = typer.Option(None, min=1, help="tries per run before it counts as failed"),
    limit: Optional[int] = typer.Option(None, min=1, help="start at most this many runs now (run in pieces)"),
    retry_failed: bool = typer.Option(False, help="give runs that used up their attempts a fresh set"),
    run_fn: Optional[str] = typer.Option(None, help="'module:function' to run instead of the MD engine "
                                                    "(e.g. mdsurrogate.campaign.synthetic:simulate for a dry run)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Run or resume a campaign: finished runs are never repeated, failures are retried up to a limit."""
    from mdsurrogate.campaign.execute import run_campaign  # noqa: PLC0415
    from mdsurrogate.campaign.ledger import LedgerBusy, LedgerMismatch  # noqa: PLC0415
    from mdsurrogate.campaign.worker import DEFAULT_RUN_FN  # noqa: PLC0415
    from mdsurrogate.cli.progress import CampaignProgress  # noqa: PLC0415

    s = _load(spec)
    if backend is not None and backend not in ("local", "parsl"):
        _fail(f"--backend must be 'local' or 'parsl', got {backend!r}")
    try:
        summary = run_campaign(s, directory, run_fn=run_fn or DEFAULT_RUN_FN, workers=workers, cores_per_run=cores,
                               backend=backend, parsl_config=parsl_config, max_attempts=max_attempts, limit=limit,
                               retry_failed=retry_failed, observer=CampaignProgress() if progress else None,
                               log=typer.echo)
    except (LedgerBusy, LedgerMismatch, ValueError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        typer.echo("interrupted; run the same command again to resume")
        raise typer.Exit(130)
    c = summary.counts
    typer.echo(f"{summary.directory}: started {summary.started} now; done {c.get('done', 0)}, "
               f"failed {c.get('failed', 0)}, pending {c.get('pending', 0)}")
    if c.get("failed"):
        raise typer.Exit(1)


@campaign_app.command("status")
def status(
    directory: Path = typer.Argument(..., help="campaign directory, or its spec file"),
    as_json: bool = typer.Option(False, "--json", help="print the status as JSON"),
) -> None:
    """Counts, failures with reasons and an ETA."""
    import json  # noqa: PLC0415

    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from mdsurrogate.campaign.execute import campaign_status  # noqa: PLC0415
    from mdsurrogate.campaign.layout import campaign_dir  # noqa: PLC0415

    if directory.is_file():
        directory = campaign_dir(_load(directory))
    try:
        st = campaign_status(directory)
    except FileNotFoundError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(st, indent=2, default=str))
        return
    console = Console()
    c = st["counts"]
    console.print(f"[bold]{st['directory']}[/]: {st['total']} runs - done {c['done']}, running {c['running']}, "
                  f"pending {c['pending']}, failed {c['failed']} ({st['exhausted']} out of attempts)"
                  + (f"; {st['reused']} more already in the reused datasets" if st.get("reused") else ""))
    if st["mean_wall_s"] is not None:
        eta = "-" if st["remaining"] == 0 else _fmt_s(st["eta_s"])
        console.print(f"mean wall time per run {_fmt_s(st['mean_wall_s'])}; {st['core_hours_done']:.2f} core-hours "
                      f"done; ETA {eta} at {st['workers']} concurrent runs")
    else:
        console.print("ETA: unknown until a run has finished")
    if st["failures"]:
        table = Table("run", "attempts", "reason", title="failures")
        for f in st["failures"][:50]:
            table.add_row(f["run_id"], str(f["attempts"]), f["reason"] or "")
        console.print(table)


def _fmt_s(s: float) -> str:
    s = float(s)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


@campaign_app.command("consolidate")
def consolidate(
    directory: Path = typer.Argument(..., help="campaign directory, or its spec file"),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="dataset file (default <dir>/dataset.nc)"),
    figures: Optional[Path] = typer.Option(None, "--figures", help="also write the summary figures and "
                                                                   "summary.json (compute, errors, coverage) here"),
) -> None:
    """Gather every finished run into one NetCDF dataset; print its summary (runs, core-hours, errors)."""
    from mdsurrogate.campaign.layout import campaign_dir  # noqa: PLC0415
    from mdsurrogate.dataset import consolidate as _consolidate  # noqa: PLC0415

    if directory.is_file():
        directory = campaign_dir(_load(directory))
    out = out or directory / "dataset.nc"
    try:
        ds = _consolidate(directory, out)
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
    from mdsurrogate.dataset import error_bars, summary  # noqa: PLC0415
    from mdsurrogate.evaluation.metrics import md_noise_floor  # noqa: PLC0415

    typer.echo(f"wrote {out}: {ds.sizes['system']} runs x {ds.sizes['point']} points")
    info = {**summary(ds), "E_MD": md_noise_floor(error_bars(ds))}
    typer.echo(f"{info['n_systems']} systems, {info['core_hours']:.2f} core-hours ({info['wall_s_mean']:.0f} s per "
               f"run), median relative error {info['rel_error_median']:.3f} (90 % below "
               f"{info['rel_error_p90']:.3f}), E_MD {info['E_MD']:.4f} M")
    if figures is not None:
        from mdsurrogate.dataset.figures import summary_figures  # noqa: PLC0415
        from mdsurrogate.io import write_json_atomic  # noqa: PLC0415
        from mdsurrogate.provenance import provenance  # noqa: PLC0415

        paths = summary_figures(ds, figures)
        write_json_atomic(figures / "summary.json", {"dataset": str(out), **info, "provenance": provenance()})
        typer.echo(f"wrote {', '.join(str(p) for p in paths)} and {figures / 'summary.json'}")


@campaign_app.command("export")
def export(
    source: Path = typer.Argument(..., help="a dataset (.nc) or an authors' pickle (.pk/.pkl) to import"),
    out: Path = typer.Option(..., "-o", "--out", help="output file (.nc, .pk) or folder (tsv)"),
    fmt: str = typer.Option("netcdf", "--format", "-f", help="netcdf | pickle | tsv"),
    error_scale: float = typer.Option(1.0, help="multiply imported errors (authors' pickle: 1/2.1 corrects them)"),
) -> None:
    """Convert between the dataset (NetCDF), the authors' pickle format and nanoHUB-style tab-separated files."""
    from mdsurrogate import dataset  # noqa: PLC0415

    if fmt not in ("netcdf", "pickle", "tsv"):
        _fail(f"--format must be netcdf, pickle or tsv, got {fmt!r}")
    if not source.exists():
        _fail(f"{source} does not exist")
    try:
        if source.suffix in (".pk", ".pkl", ".pickle"):
            ds = dataset.from_authors_pickle(source, error_scale=error_scale)
            dataset.validate_dataset(ds)
        else:
            ds = dataset.load_dataset(source, error_scale=error_scale)
        if fmt == "netcdf":
            dataset.save(ds, out)
        elif fmt == "pickle":
            dataset.to_authors_pickle(ds, out)
        else:
            dataset.export_tsv(ds, out)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    typer.echo(f"wrote {out} ({fmt}, {ds.sizes['system']} systems)")


def register(app: typer.Typer) -> None:
    """Attach this stage's commands to the main app."""
    app.add_typer(campaign_app, name="campaign")
