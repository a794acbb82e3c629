"""CLI commands of the campaign stage: `mdsurrogate campaign validate|run|status|consolidate|export`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mdsurrogate.cli.common import check_error_scale, fail

campaign_app = typer.Typer(name="campaign", help="Define, run, resume and inspect MD campaigns; build the dataset.",
                           no_args_is_help=True)


def _load(spec: Path, option: str = "SPEC"):
    from mdsurrogate.campaign.spec import SpecError, load_spec  # noqa: PLC0415
    from mdsurrogate.io import BadPath, check_input  # noqa: PLC0415

    try:
        check_input(spec, option)  # a folder or a FIFO: refused before it is opened (a FIFO would block)
    except BadPath as exc:
        fail(str(exc))
    try:
        return load_spec(spec)
    except (SpecError, FileNotFoundError) as exc:
        fail(f"{option} {spec}: {exc}")


def _campaign_dir(directory: Path):
    """DIRECTORY (a campaign folder, or its spec file) -> (the folder, the spec or None); the folder and its
    ledger must exist (nothing is created)."""
    from mdsurrogate.campaign.layout import campaign_dir, ledger_path  # noqa: PLC0415
    from mdsurrogate.io import BadPath, check_input  # noqa: PLC0415

    spec = None
    if directory.is_file():
        spec = _load(directory, "DIRECTORY")
        directory = campaign_dir(spec)
    try:
        check_input(directory, "DIRECTORY", kind="dir")
    except BadPath as exc:
        fail(f"{exc} (give a campaign folder or its spec file)")
    if not (ledger_path(directory).exists() or ledger_path(directory).is_symlink()):
        fail(f"DIRECTORY: no campaign ledger at {ledger_path(directory)}; is {directory} a campaign folder?")
    return directory, spec


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
    workers: Optional[int] = typer.Option(None, "--workers", "-n", help="concurrent runs"),
    cores: Optional[int] = typer.Option(None, "--cores", "-m", help="MPI ranks per run"),
    backend: Optional[str] = typer.Option(None, help="local | parsl"),
    parsl_config: Optional[str] = typer.Option(None, help="local | threads | path to a python file with `config`"),
    max_attempts: Optional[int] = typer.Option(None, help="tries per run before it counts as failed"),
    limit: Optional[int] = typer.Option(None, help="start at most this many runs now (run in pieces)"),
    retry_failed: bool = typer.Option(False, help="give runs that used up their attempts a fresh set"),
    drop_removed: bool = typer.Option(False, help="delete pending or failed runs that are no longer in the spec "
                                                  "from the ledger (by default they are ignored)"),
    run_fn: Optional[str] = typer.Option(None, help="'module:function' to run instead of the MD engine "
                                                    "(e.g. mdsurrogate.campaign.synthetic:simulate for a dry run)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Run or resume a campaign: finished runs are never repeated, failures are retried up to a limit."""
    from mdsurrogate.campaign.execute import run_campaign  # noqa: PLC0415
    from mdsurrogate.campaign.ledger import LedgerBusy, LedgerMismatch, LedgerUnreadable  # noqa: PLC0415
    from mdsurrogate.campaign.spec import MAX_ATTEMPTS  # noqa: PLC0415
    from mdsurrogate.campaign.worker import DEFAULT_RUN_FN, check_run_fn  # noqa: PLC0415
    from mdsurrogate.cli.progress import CampaignProgress  # noqa: PLC0415

    for option, value, hi in (("--workers", workers, 1024), ("--cores", cores, 1024),
                              ("--max-attempts", max_attempts, MAX_ATTEMPTS), ("--limit", limit, 10**7)):
        if value is not None and not 1 <= value <= hi:
            fail(f"{option} must be an integer in [1, {hi}], got {value}")
    s = _load(spec)
    if backend is not None and backend not in ("local", "parsl"):
        fail(f"--backend must be 'local' or 'parsl', got {backend!r}")
    run_fn = DEFAULT_RUN_FN if run_fn is None else run_fn
    try:
        check_run_fn(run_fn, "--run-fn")  # here, not in every worker
    except ValueError as exc:
        fail(str(exc))
    if directory is not None and (directory.is_symlink() or directory.exists()) and not directory.is_dir():
        fail(f"--dir: {directory} exists and is not a folder")
    if directory is not None and str(directory).strip() in ("", "."):
        fail(f"--dir: give the campaign's own folder, got {str(directory)!r}")
    if directory is not None and directory.is_dir() and any(directory.iterdir()) and not (
            (directory / "ledger.sqlite").exists() or (directory / "ledger.sqlite").is_symlink()):
        fail(f"--dir: {directory} holds other files and no campaign ledger: give a new folder or the campaign's own")
    try:
        summary = run_campaign(s, directory, run_fn=run_fn, workers=workers, cores_per_run=cores,
                               backend=backend, parsl_config=parsl_config, max_attempts=max_attempts, limit=limit,
                               retry_failed=retry_failed, drop_removed=drop_removed,
                               observer=CampaignProgress() if progress else None, log=typer.echo)
    except (LedgerBusy, LedgerMismatch, LedgerUnreadable, ValueError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        try:
            typer.echo("interrupted; run the same command again to resume")
        except OSError:  # the terminal is gone (SIGHUP)
            pass
        raise typer.Exit(130) from None
    c = summary.counts
    typer.echo(f"{summary.directory}: started {summary.started} now; done {c.get('done', 0)}, "
               f"failed {c.get('failed', 0)}, pending {c.get('pending', 0)}"
               + (f"; {summary.not_in_spec} runs no longer in the spec ignored" if summary.not_in_spec else ""))
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
    from mdsurrogate.campaign.ledger import LedgerUnreadable  # noqa: PLC0415

    directory, spec = _campaign_dir(directory)
    try:
        st = campaign_status(directory, None if spec is None else {r.run_id for r in spec.runs})
    except (FileNotFoundError, LedgerUnreadable) as exc:
        fail(f"DIRECTORY: {exc}")
    if as_json:
        typer.echo(json.dumps(st, indent=2, default=str))
        return
    console = Console()
    c = st["counts"]
    console.print(f"[bold]{st['directory']}[/]: {st['total']} runs - done {c['done']}, running {c['running']}, "
                  f"pending {c['pending']}, failed {c['failed']} ({st['exhausted']} out of attempts)"
                  + (f"; {st['reused']} more already in the reused datasets" if st.get("reused") else "")
                  + (f"; {st['not_in_spec']} pending or failed runs not in the spec (ignored; `campaign run "
                     "--drop-removed` deletes them)" if st.get("not_in_spec") else ""))
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
    from mdsurrogate.campaign.layout import ledger_path  # noqa: PLC0415
    from mdsurrogate.campaign.ledger import Ledger, LedgerUnreadable  # noqa: PLC0415
    from mdsurrogate.io import BadPath, check_output  # noqa: PLC0415

    directory, _ = _campaign_dir(directory)
    try:
        with Ledger(ledger_path(directory), create=False) as ledger:  # read-only use: nothing is created
            results = [r.result for r in ledger.rows("done") if r.result]
    except (FileNotFoundError, LedgerUnreadable) as exc:
        fail(f"DIRECTORY: {exc}")
    out = out or directory / "dataset.nc"
    try:
        own = [ledger_path(directory), *(directory / n for n in ("ledger.sqlite.lock", "spec.toml", "spec.yaml",
                                                                  "supervisor.json"))]
        # never the campaign's own files; an existing dataset file is rewritten only when this campaign holds
        # every run it stores (`dataset.consolidate` checks)
        check_output(out, "--out", overwrite=True, inputs=[*own, *results])
        if figures is not None:  # a folder of earlier summary figures, never another one
            check_output(figures, "--figures", kind="dir", overwrite=True, replaceable="errors.png")
    except BadPath as exc:
        fail(str(exc))
    from mdsurrogate.dataset import consolidate as _consolidate  # noqa: PLC0415

    try:
        ds = _consolidate(directory, out)
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        fail(str(exc))
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
    error_scale: float = typer.Option(1.0, help="multiply imported errors, a finite number > 0 (authors' pickle: "
                                                "1/2.1 corrects them)"),
    overwrite: bool = typer.Option(False, help="-f tsv: write into a folder that is not empty (its run folders "
                                               "are replaced)"),
) -> None:
    """Convert between the dataset (NetCDF), the authors' pickle format and nanoHUB-style tab-separated files."""
    from mdsurrogate import dataset  # noqa: PLC0415
    from mdsurrogate.io import BadPath, check_input, check_output, safe_name  # noqa: PLC0415

    if fmt not in ("netcdf", "pickle", "tsv"):
        fail(f"--format must be netcdf, pickle or tsv, got {fmt!r}")
    check_error_scale(error_scale)
    try:
        check_input(source, "SOURCE")
        check_output(out, "--out", kind="dir" if fmt == "tsv" else "file", overwrite=overwrite, inputs=[source])
    except BadPath as exc:
        fail(str(exc))
    try:
        if source.suffix in (".pk", ".pkl", ".pickle"):
            ds = dataset.from_authors_pickle(source, error_scale=error_scale)
            dataset.validate_dataset(ds)
        else:
            ds = dataset.load_dataset(source, error_scale=error_scale)
    except (ValueError, OSError) as exc:
        fail(f"SOURCE {source}: {exc}")
    except Exception as exc:  # noqa: BLE001 - any unpickling/decoding problem: a corrupt or foreign file
        fail(f"SOURCE {source} is not a dataset or an authors' pickle ({type(exc).__name__}: {exc})")
    if fmt == "tsv":  # one folder per run_id: each must be a plain name, never '../x' or an absolute path
        seen: set[str] = set()
        for rid in (str(v) for v in ds["run_id"].values):
            try:
                safe_name(rid, "run_id")
            except BadPath as exc:
                fail(f"SOURCE {source}: {exc}; the tsv export makes one folder per run_id")
            if rid in seen:
                fail(f"SOURCE {source}: run_id {rid!r} appears twice; the tsv export makes one folder per run_id")
            seen.add(rid)
    try:
        if fmt == "netcdf":
            dataset.save(ds, out)
        elif fmt == "pickle":
            dataset.to_authors_pickle(ds, out)
        else:
            dataset.export_tsv(ds, out)
    except (ValueError, OSError) as exc:
        fail(f"--out {out}: {exc}")
    typer.echo(f"wrote {out} ({fmt}, {ds.sizes['system']} systems)")


def register(app: typer.Typer) -> None:
    """Attach this stage's commands to the main app."""
    app.add_typer(campaign_app, name="campaign")
