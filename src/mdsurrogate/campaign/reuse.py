"""Runs a campaign does not repeat: those already in committed datasets (`[campaign] reuse = [...]`).

A long campaign (the full 4050-point grid) spans many working sessions on machines whose campaign directory is
not kept; what each session finished is consolidated into a dataset file and committed. A spec that lists those
files under `reuse` skips every run whose `run_id` is in them, after checking that they were made under the same
run controls (preset, schedule, engine settings), so the union of the files is one consistent campaign.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
import xarray as xr

from mdsurrogate.campaign.spec import CampaignSpec, SpecError
from mdsurrogate.simulation.settings import RunControls
from mdsurrogate.simulation.system import system_kind

META_KEY = "reuse"  # ledger meta: the spec's reuse patterns made absolute (JSON list), for consolidation


def reuse_paths(patterns: tuple[str, ...] | list[str], base: str | os.PathLike | None = None) -> list[Path]:
    """The dataset files the glob patterns match (relative patterns from `base`, default the working directory),
    sorted and deduplicated."""
    base = Path(base) if base is not None else Path.cwd()
    out: dict[str, Path] = {}
    for pat in patterns:
        full = pat if os.path.isabs(pat) else str(base / pat)
        if not glob.has_magic(full) and not os.path.isfile(full):
            raise SpecError("campaign.reuse", f"{pat} not found (relative paths are taken from the working "
                                              f"directory {base}); run from the folder the spec expects")
        for m in sorted(glob.glob(full)):
            p = Path(m).resolve()
            if p.is_file():
                out.setdefault(str(p), p)
    return list(out.values())


#: run attributes that datasets written without them (other run functions, older files) hold implicitly
ABSENT_MEANS = {"target_rel_error": -1.0}


def expected_run_attrs(controls: dict) -> dict:
    """The per-run attributes that a run made under these campaign controls carries (preset, schedule,
    engine settings); a reused run must match all of them."""
    rc = RunControls(**{k: v for k, v in controls.items() if k != "timeout_s"})
    eq, prod = rc.schedule()
    attrs = {"preset": rc.preset, "equilibration_steps": eq, "production_steps_planned": prod,
             "n_error_blocks": rc.n_blocks,  # a run stopped early at a target error is another kind of run
             "target_rel_error": rc.target_rel_error if rc.target_rel_error is not None else -1.0}
    attrs.update(rc.settings().as_attrs())
    return attrs


def reused_runs(spec: CampaignSpec, base: str | os.PathLike | None = None,
                skip: tuple[str | os.PathLike, ...] = ()) -> dict[str, Path]:
    """run_id -> dataset file for every run of `spec` found in its `reuse` datasets (files in `skip` ignored).

    Raises SpecError('campaign.reuse') when a file cannot be read or holds runs of the spec made under other
    run controls or for the other system kind (charged or uncharged walls)."""

    wanted = {r.run_id for r in spec.runs}
    kind = system_kind(spec.runs[0].inputs) if spec.runs else "charged"
    skipped = {Path(s).resolve() for s in skip}
    expect = expected_run_attrs(spec.controls)
    found: dict[str, Path] = {}
    for path in reuse_paths(spec.reuse, base):
        if path in skipped:
            continue
        try:
            with xr.open_dataset(path, engine="h5netcdf") as ds:
                ids = [str(x) for x in ds["run_id"].values]
                rows = [i for i, rid in enumerate(ids) if rid in wanted]
                stored_kind = ds.attrs.get("system_kind", "charged")
                if rows and stored_kind != kind:
                    raise SpecError("campaign.reuse", f"{path} holds runs of the {stored_kind}-wall system (e.g. "
                                                      f"{ids[rows[0]]}), the spec's are {kind}; it cannot be reused")
                for name, value in expect.items():
                    if not rows:
                        break
                    if name not in ds and name not in ABSENT_MEANS:
                        raise SpecError("campaign.reuse", f"{path} lacks '{name}': cannot check its run controls")
                    got = ds[name].values[rows] if name in ds else np.full(len(rows), ABSENT_MEANS[name])
                    ok = (np.isclose(got.astype(float), float(value), rtol=1e-9, atol=0)
                          if isinstance(value, (int, float)) and not isinstance(value, bool)
                          else got.astype(str) == str(value))
                    if not np.all(ok):
                        first = int(np.argmin(ok))
                        raise SpecError("campaign.reuse",
                                        f"{path}: run {ids[rows[first]]} has {name} = {got[first].item()!r}, the "
                                        f"spec's controls give {value!r}; it cannot be reused")
        except (OSError, KeyError, ValueError) as exc:
            if isinstance(exc, SpecError):
                raise
            raise SpecError("campaign.reuse", f"cannot read {path} as a dataset: {exc}") from None
        for i in rows:
            found.setdefault(ids[i], path)
    return found


def absolute_patterns(patterns: tuple[str, ...] | list[str], base: str | os.PathLike | None = None) -> list[str]:
    base = Path(base) if base is not None else Path.cwd()
    return [p if os.path.isabs(p) else str((base / p).absolute()) for p in patterns]


def run_ids_in(paths: list[Path]) -> set[str]:
    """Every run_id stored in these dataset files."""

    ids: set[str] = set()
    for path in paths:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ids.update(str(x) for x in ds["run_id"].values)
    return ids
