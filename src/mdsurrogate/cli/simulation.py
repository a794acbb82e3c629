"""CLI commands of the simulation stage: simulate, demo, validate, check-accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from mdsurrogate.cli.common import fail

console = Console()


_CONTROL_OPTIONS = {"time_tau": "--time-tau", "steps": "--steps", "timeout_s": "--timeout",
                    "target_rel_error": "--target-error", "preset": "--preset", "mpi_ranks": "--ranks",
                    "seed": "--seed"}


def _system(h, c, d_plus, d_minus, sigma_s, allow_outside_design):
    from mdsurrogate.simulation.system import ConfinedElectrolyte, InvalidInput

    try:
        return ConfinedElectrolyte(h=h, c=c, d_plus=d_plus, d_minus=d_minus, sigma_s=sigma_s,
                                   allow_outside_design=allow_outside_design)
    except InvalidInput as exc:
        fail(f"--{str(exc).split()[0].replace('_', '-')}: {exc}")


def _uncharged_system(h, c, z_p, z_n, d, allow_outside_design):
    from mdsurrogate.simulation.system import InvalidInput, UnchargedElectrolyte

    try:
        return UnchargedElectrolyte(h=h, c=c, z_p=z_p, z_n=z_n, d=d, allow_outside_design=allow_outside_design)
    except InvalidInput as exc:
        name = str(exc).split()[0]
        fail(f"--{ {'z_p': 'zp', 'z_n': 'zn'}.get(name, name)}: {exc}")


_CHARGED_ONLY = {"d_plus": "--d-plus", "d_minus": "--d-minus", "sigma_s": "--sigma-s"}
_UNCHARGED_ONLY = {"z_p": "--zp", "z_n": "--zn", "d": "--d"}


def _run_and_write(system, controls, out_dir: Path, label: str, plot: bool = True):
    from mdsurrogate.cli.progress import run_progress
    from mdsurrogate.simulation import SimulationFailed, simulate
    from mdsurrogate.simulation.export import plot_profiles, write_summary, write_tsv

    out_dir.mkdir(parents=True, exist_ok=True)
    with run_progress(label, console=console) as update:
        try:
            ds = simulate(system, controls, out=out_dir / "profiles.nc", workdir=out_dir / "lammps", progress=update)
        except SimulationFailed as exc:
            console.print(f"[red]simulation failed[/red] ({exc.reason}): {exc.detail}; log: {exc.log_path}")
            raise typer.Exit(2) from None
    write_tsv(ds, out_dir)
    write_summary(ds, out_dir / "summary.json")
    if plot:
        plot_profiles(ds, out_dir / "profiles.png")
    return ds


def register(app: typer.Typer) -> None:
    """Attach this stage's commands to the main app."""

    @app.command()
    def simulate(
        system_kind: str = typer.Option("charged", "--system", help="charged: monovalent ions between charged walls "
                                        "(the later papers); uncharged: ions of valencies --zp/--zn and one "
                                        "diameter --d between uncharged walls (kadupitiya2020)"),
        h: Optional[float] = typer.Option(None, help="confinement length h (nm); default and design range: 4.4, "
                                                     "4.0-5.0 (charged); 3.0, 3.0-4.0 (uncharged)"),
        c: Optional[float] = typer.Option(None, help="salt concentration c (M); default and design range: 0.5, "
                                                     "0.1-2.0 (charged); 0.5, 0.3-0.9, anions per volume "
                                                     "(uncharged)"),
        d_plus: Optional[float] = typer.Option(None, help="charged: cation diameter d+ (nm), default 0.415, "
                                                          "design range 0.2-0.63"),
        d_minus: Optional[float] = typer.Option(None, help="charged: anion diameter d- (nm), default 0.415, "
                                                           "design range 0.2-0.63"),
        sigma_s: Optional[float] = typer.Option(None, help="charged: surface charge density (C/m^2), default "
                                                           "-0.015, design range -0.02 to -0.01"),
        zp: Optional[int] = typer.Option(None, "--zp", help="uncharged: cation valency z_p, 1, 2 or 3 (default 1)"),
        zn: Optional[int] = typer.Option(None, "--zn", help="uncharged: anion valency z_n, -1 or -2 (default -1)"),
        d: Optional[float] = typer.Option(None, "--d", help="uncharged: diameter of every ion (nm), default 0.5, "
                                                            "design range 0.5-0.75"),
        preset: str = typer.Option("production", help="engine preset: production or authors"),
        time_tau: Optional[float] = typer.Option(None, help="total simulated time in tau (default: the preset's)"),
        steps: Optional[int] = typer.Option(None, help="total steps (overrides time_tau)"),
        target_error: Optional[float] = typer.Option(None, help="stop once the median relative standard error "
                                                                "of both profiles is below this"),
        seed: int = typer.Option(1, help="random seed (positions, velocities)"),
        ranks: int = typer.Option(1, help="MPI ranks"),
        timeout: Optional[float] = typer.Option(None, help="wall-clock limit in seconds"),
        out: Path = typer.Option(Path("out/simulation"), help="output directory"),
        overwrite: bool = typer.Option(False, help="replace the results of an earlier run in --out"),
        allow_outside_design: bool = typer.Option(False, help="allow inputs outside the papers' design ranges"),
    ) -> None:
        """Run one MD simulation; writes profiles.nc, TSV files, profiles.png and summary.json."""
        from mdsurrogate.io import BadPath, check_output
        from mdsurrogate.simulation.settings import RunControls

        given = {"d_plus": d_plus, "d_minus": d_minus, "sigma_s": sigma_s, "z_p": zp, "z_n": zn, "d": d}
        if system_kind == "charged":
            wrong = [opt for name, opt in _UNCHARGED_ONLY.items() if given[name] is not None]
            if wrong:
                fail(f"{wrong[0]}: only for --system uncharged")
            system = _system(4.4 if h is None else h, 0.5 if c is None else c,
                             0.415 if d_plus is None else d_plus, 0.415 if d_minus is None else d_minus,
                             -0.015 if sigma_s is None else sigma_s, allow_outside_design)
        elif system_kind == "uncharged":
            wrong = [opt for name, opt in _CHARGED_ONLY.items() if given[name] is not None]
            if wrong:
                fail(f"{wrong[0]}: only for --system charged (the uncharged system has one diameter --d and no "
                     "wall charge)")
            system = _uncharged_system(3.0 if h is None else h, 0.5 if c is None else c, 1 if zp is None else zp,
                                       -1 if zn is None else zn, 0.5 if d is None else d, allow_outside_design)
        else:
            fail(f"--system: must be 'charged' or 'uncharged', got {system_kind!r}")
        try:
            controls = RunControls(preset=preset, time_tau=time_tau, steps=steps, seed=seed, mpi_ranks=ranks,
                                   target_rel_error=target_error, timeout_s=timeout)
        except ValueError as exc:
            fail(f"{_CONTROL_OPTIONS[str(exc).split()[0]]}: {exc}" if str(exc).split()[0] in _CONTROL_OPTIONS
                 else str(exc))
        try:
            check_output(out, "--out", kind="dir", overwrite=overwrite, replaceable="summary.json")
        except BadPath as exc:
            fail(str(exc))
        ds = _run_and_write(system, controls, out, system.key())
        from mdsurrogate.simulation.export import summary

        console.print_json(json.dumps(summary(ds), default=float))
        console.print(f"wrote {out}/profiles.nc, profiles.png, summary.json, *.dat")

    @app.command()
    def demo(out: Path = typer.Option(Path("out/demo"), help="output directory"),
             time_tau: float = typer.Option(400.0, help="simulated time in tau (about a minute on 2 cores)")) -> None:
        """The main job on the embedded default: a short production-preset simulation of h = 4.4 nm,
        c = 0.5 M, d = 0.415 nm, sigma_s = -0.015 C/m^2; writes profiles, a PNG plot and a summary (replacing
        those of an earlier demo in the same folder, never a folder it did not write)."""
        from mdsurrogate.io import BadPath, check_output
        from mdsurrogate.simulation.export import summary
        from mdsurrogate.simulation.settings import RunControls

        system = _system(4.4, 0.5, 0.415, 0.415, -0.015, False)
        try:
            controls = RunControls(time_tau=time_tau, mpi_ranks=1, seed=1)
            check_output(out, "--out", kind="dir", overwrite=True, replaceable="summary.json")
        except BadPath as exc:
            fail(str(exc))
        except ValueError as exc:
            fail(f"--time-tau: {exc}")
        ds = _run_and_write(system, controls, out, "demo " + system.key())
        s = summary(ds)
        console.print(f"[green]done[/green] in {s['wall_time_s']:.0f} s: {out}/profiles.nc, profiles.png, "
                      f"summary.json, density_profile_*.dat")
        console.print(f"median relative error {s['rel_error']:.3f}; S(0) = {s['S_midplane_C_per_m2']:.2e} "
                      f"+- {s['S_midplane_err_C_per_m2']:.1e} C/m^2 (electroneutrality: 0)")

    @app.command()
    def validate(
        reference: Optional[Path] = typer.Option(None, help="authors' reference pickle (default: ../shared/"
                                                              "reference/nanoconfinement_d0415_subset.pk)"),
        presets: str = typer.Option("production,authors", help="comma-separated presets"),
        production_time: float = typer.Option(2000.0, help="simulated time (tau) of production-preset runs"),
        authors_time: float = typer.Option(100.0, help="simulated time (tau) of authors-preset runs"),
        ranks: int = typer.Option(1, help="MPI ranks per run"),
        seed: int = typer.Option(1),
        out: Path = typer.Option(Path("out/validation"), help="output directory"),
        reuse: bool = typer.Option(True, help="reuse finished runs found in the output directory"),
    ) -> None:
        """Run the engine on reference systems and report agreement with the authors' MD."""
        import xarray as xr

        from mdsurrogate.dataset.authors_pickle import load_authors_pickle
        from mdsurrogate.io import BadPath, check_input, check_output, write_json_atomic, write_text_atomic
        from mdsurrogate.simulation.export import plot_profiles
        from mdsurrogate.simulation.settings import PRESETS, RunControls
        from mdsurrogate.simulation.validate import (
            VALIDATION_SYSTEMS,
            compare_to_reference,
            find_reference_file,
            reference_entry,
        )

        preset_list = [p.strip() for p in presets.split(",") if p.strip()]
        if not preset_list or any(p not in PRESETS for p in preset_list):
            fail(f"--presets must be a comma-separated subset of {sorted(PRESETS)}, got {presets!r}")
        for option, preset_, value in (("--production-time", "production", production_time),
                                       ("--authors-time", "authors", authors_time)):
            try:
                RunControls(preset=preset_, time_tau=value, mpi_ranks=ranks, seed=seed)
            except ValueError as exc:
                fail(f"{option} (or --ranks/--seed): {exc}")
        ref_path = reference or find_reference_file()
        if ref_path is None:
            fail("--reference: the authors' reference pickle was not found; pass --reference")
        try:
            check_input(ref_path, "--reference")
            check_output(out, "--out", kind="dir", overwrite=True)
            profiles = load_authors_pickle(ref_path)
        except BadPath as exc:
            fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - any unpickling problem: a corrupt or hostile file
            fail(f"--reference: {ref_path} is not an authors' profile pickle ({type(exc).__name__}: {exc})")
        rows = []
        for preset in preset_list:
            for system in VALIDATION_SYSTEMS:
                run_dir = out / preset / system.key()
                nc = run_dir / "profiles.nc"
                time_tau = production_time if preset == "production" else authors_time
                if reuse and nc.exists():
                    ds = xr.load_dataset(nc, engine="h5netcdf")
                else:
                    controls = RunControls(preset=preset, time_tau=time_tau, seed=seed, mpi_ranks=ranks)
                    ds = _run_and_write(system, controls, run_dir, f"{preset} {system.key()}", plot=False)
                entry = reference_entry(profiles, system)
                cmp = compare_to_reference(ds, entry)
                cmp_raw = compare_to_reference(ds, entry, reference_error_scale=1.0)
                ref_ds = xr.Dataset({"n_plus": ("z", entry["pos"][:, 1]), "n_minus": ("z", entry["neg"][:, 1])},
                                    coords={"z": entry["pos"][:, 0]})
                plot_profiles(ds, run_dir / "vs_reference.png", reference=ref_ds,
                              title=f"{preset}: {system.key()} (dashed: authors' MD)")
                row = {"preset": preset, **cmp.as_dict(), "agreement_unscaled_ref_errors": cmp_raw.agreement,
                       "time_tau": float(ds.attrs["production_time_tau"])
                       / (1 - float(ds.attrs["engine_equilibration_fraction"])),
                       "wall_time_s": float(ds.attrs["wall_time_s"])}
                rows.append(row)
                console.print(f"{preset:10s} {system.key():45s} agreement {cmp.agreement:.3f} "
                              f"(reference errors as stored {cmp_raw.agreement:.3f}; incl. contact-onset bins "
                              f"{cmp.agreement_all_bins:.3f}) rel.err {cmp.rel_error_ours:.3f}")
        write_json_atomic(out / "validation.json", rows)
        lines = ["| preset | system | agreement (ref err / 2.1) | agreement (ref err as stored) | "
                 "incl. contact-onset bins | our rel. error | simulated time (tau) | wall (s) |",
                 "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['preset']} | {r['system_key']} | {r['agreement']:.3f} | "
                         f"{r['agreement_unscaled_ref_errors']:.3f} | {r['agreement_all_bins']:.3f} | "
                         f"{r['rel_error_ours']:.3f} | "
                         f"{r['time_tau']:.0f} | {r['wall_time_s']:.0f} |")
        write_text_atomic(out / "validation.md", "\n".join(lines) + "\n")
        console.print("\n".join(lines))

    @app.command("check-accuracy")
    def check_accuracy(
        h: float = typer.Option(4.4), c: float = typer.Option(1.0), d_plus: float = typer.Option(0.415),
        d_minus: float = typer.Option(0.415), sigma_s: float = typer.Option(-0.02),
        preset: str = typer.Option("production"),
        allow_outside_design: bool = typer.Option(False),
    ) -> None:
        """Force errors of the preset (PPPM vs a 1e-7 reference; uniform-sheet vs mesh walls) and NVE drift."""
        from mdsurrogate.simulation.accuracy import energy_drift, force_errors
        from mdsurrogate.simulation.settings import RunControls

        system = _system(h, c, d_plus, d_minus, sigma_s, allow_outside_design)
        try:
            controls = RunControls(preset=preset)
        except ValueError as exc:
            fail(f"--preset: {exc}")
        res = {"forces": force_errors(system, controls), "nve": energy_drift(system, controls)}
        console.print_json(json.dumps(res))
