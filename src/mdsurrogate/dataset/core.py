"""The consolidated profile dataset: one xarray Dataset (NetCDF via h5netcdf) for a whole campaign.

Layout (dims `system`, `point`)::

    coords   system (int), run_id (system), key (system; the authors' key), z (system, point) in nm
    inputs   h, c, d_plus, d_minus, sigma_s                      (system)
    profiles n_plus, n_minus, n_plus_err, n_minus_err            (system, point)  M
    derived  charge_density (C/m^3), integrated_charge (C/m^2)   (system, point)
    metadata preset, seed, steps, dt, wall_time_s, lammps_version, git_commit, mdsurrogate_version, ... (system)

One row per run: replicas of a system (several seeds) stay separate rows with the same inputs.
Notebook one-liners: `ds = load_dataset(path)`, `select(ds, c=1.0)`, `train, test = random_split(ds, 200, 600, seed=0)`,
`train, test = deterministic_separation(ds, {"c": 1.0}, f=0.1, seed=0)`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import xarray as xr

from mdsurrogate.campaign.layout import ledger_path, result_path, result_readable
from mdsurrogate.campaign.ledger import Ledger
from mdsurrogate.campaign.reuse import META_KEY, reuse_paths, run_ids_in
from mdsurrogate.dataset.arrays import input_names, refuse_uncharged, validate_dataset
from mdsurrogate.dataset.authors_pickle import dump_authors_pickle, load_authors_pickle
from mdsurrogate.io import file_sha256, safe_name, write_netcdf_atomic, write_text_atomic
from mdsurrogate.provenance import provenance
from mdsurrogate.simulation.derived import ELEMENTARY_CHARGE, MOLAR_TO_PER_M3, charge_density, integrated_charge
from mdsurrogate.simulation.profiles import relative_error
from mdsurrogate.simulation.system import (
    DERIVED_VARS,
    ERROR_VARS,
    INPUT_NAMES,
    INPUT_UNITS,
    PROFILE_VARS,
    UNCHARGED_INPUT_NAMES,
    UNCHARGED_INPUT_UNITS,
    ConfinedElectrolyte,
    make_system,
    parse_key,
    system_key,
    system_kind,
)


def effective_sigma_s(inputs: dict) -> float:
    """The wall charge a simulation of these inputs actually carries (quantised to whole counterions; 0 for the
    uncharged-wall system)."""
    if system_kind(inputs) == "uncharged":
        return 0.0
    return ConfinedElectrolyte(**inputs, allow_outside_design=True).counts.sigma_s_effective


# ---------------------------------------------------------------------------------------------- build

def from_profiles(records: Sequence[dict], attrs: dict | None = None):
    """Build the dataset from records: {'inputs': {5 inputs}, 'z', 'n_plus', 'n_minus', 'n_plus_err',
    'n_minus_err', optional 'charge_density', 'integrated_charge', 'run_id', 'meta': {name: scalar}}."""
    if not records:
        raise ValueError("no profiles to put in a dataset")
    kind = system_kind(records[0]["inputs"])
    if any(system_kind(r["inputs"]) != kind for r in records):
        raise ValueError("runs of the charged-wall and the uncharged-wall system cannot share a dataset")
    names, units = (UNCHARGED_INPUT_NAMES, UNCHARGED_INPUT_UNITS) if kind == "uncharged" else (INPUT_NAMES, INPUT_UNITS)
    n_points = len(records[0]["z"])
    for r in records:
        if len(r["z"]) != n_points:
            raise ValueError(f"run {r.get('run_id')} has {len(r['z'])} z points, the others {n_points}")
    data: dict = {}
    for k in names:
        data[k] = ("system", np.array([r["inputs"][k] for r in records], dtype=int if k in ("z_p", "z_n") else float),
                   {"units": units[k]})
    for v in PROFILE_VARS:
        data[v] = (("system", "point"), np.stack([np.asarray(r[v], dtype=float) for r in records]), {"units": "M"})
    valencies = [(make_system(r["inputs"], allow_outside_design=True).z_p,
                  make_system(r["inputs"], allow_outside_design=True).z_n) if kind == "uncharged" else (1, -1)
                 for r in records]
    rho = [np.asarray(r["charge_density"], float) if r.get("charge_density") is not None
           else charge_density(r["n_plus"], r["n_minus"], *v) for r, v in zip(records, valencies)]
    data["charge_density"] = (("system", "point"), np.stack(rho), {"units": "C/m^3", "long_name": "e (n+ - n-)"})
    s = [np.asarray(r["integrated_charge"], float) if r.get("integrated_charge") is not None
         else integrated_charge(r["z"], rho_i, effective_sigma_s(r["inputs"])) for r, rho_i in zip(records, rho)]
    data["integrated_charge"] = (("system", "point"), np.stack(s), {"units": "C/m^2"})
    meta_names = sorted({k for r in records for k in r.get("meta", {})} - set(data) - {"z"})
    for m in meta_names:
        vals = [r.get("meta", {}).get(m) for r in records]
        if all(isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) or x is None
               for x in vals):
            if all(isinstance(x, (int, np.integer)) for x in vals):  # integers stay integers, floats floats
                data[m] = ("system", np.array(vals, dtype=np.int64))
            else:
                data[m] = ("system", np.array([np.nan if x is None else float(x) for x in vals]))
        else:
            data[m] = ("system", np.array(["" if x is None else str(x) for x in vals], dtype=object))
    keys = [system_key(r["inputs"]) for r in records]
    run_ids = [r.get("run_id") or k for r, k in zip(records, keys)]
    coords = {
        "system": ("system", np.arange(len(records))),
        "run_id": ("system", np.array(run_ids, dtype=object)),
        "key": ("system", np.array(keys, dtype=object)),
        "z": (("system", "point"), np.stack([np.asarray(r["z"], dtype=float) for r in records]), {"units": "nm"}),
    }
    kind_attrs = {"system_kind": "uncharged"} if kind == "uncharged" else {}
    return xr.Dataset(data, coords=coords, attrs={**provenance("lammps", "xarray"), **kind_attrs, **(attrs or {})})


def from_runs(runs: Iterable, run_ids: Iterable[str] | None = None, attrs=None) -> xr.Dataset:
    """One dataset from per-run results: the engine's run Datasets as `simulate()` returns them, or their NetCDF
    files (paths), in any mix. run_ids default to the file stems, or to the system key and seed of an in-memory
    result."""
    runs = list(runs)
    run_ids = list(run_ids) if run_ids is not None else [None] * len(runs)
    if len(run_ids) != len(runs):
        raise ValueError(f"{len(run_ids)} run_ids for {len(runs)} runs")
    records = []
    for run, rid in zip(runs, run_ids):
        if isinstance(run, xr.Dataset):
            one = run
        else:
            with xr.open_dataset(run, engine="h5netcdf") as f:
                one = f.load()
            rid = rid or Path(run).stem
        names = UNCHARGED_INPUT_NAMES if one.attrs.get("system_kind") == "uncharged" else INPUT_NAMES
        missing = [k for k in names if k not in one.attrs]
        if missing or any(v not in one for v in PROFILE_VARS):
            raise ValueError(f"run {rid or '(in memory)'} is not an engine result: it lacks "
                             f"{missing or [v for v in PROFILE_VARS if v not in one]}")
        inputs = {k: (int(one.attrs[k]) if k in ("z_p", "z_n") else float(one.attrs[k])) for k in names}
        meta = {k: _scalar(v) for k, v in one.attrs.items()
                if k not in names and k != "system_kind" and _scalar(v) is not None}
        if rid is None:
            rid = f"{system_key(inputs)}_s{meta['seed']}" if "seed" in meta else system_key(inputs)
        rec = {"inputs": inputs, "z": one["z"].values, "run_id": rid, "meta": meta}
        for v in (*PROFILE_VARS, *DERIVED_VARS):
            rec[v] = one[v].values if v in one else None
        records.append(rec)
    return from_profiles(records, attrs=attrs)


def load_parts(*paths: str | os.PathLike, error_scale: float = 1.0) -> xr.Dataset:
    """One dataset from several dataset files (glob patterns allowed), concatenated along `system` in the order
    given; a run_id that appears twice is an error. Used for a campaign committed in parts (data/README.md).
    `error_scale` as in `load_dataset`; the attributes name every part (`source`: names joined by '+',
    `source_sha256`: the sha256 of the parts' 'name sha256' lines), for a surrogate card's provenance."""
    files: list[str] = []
    for p in paths:
        matched = sorted(glob.glob(str(p))) or [str(p)]
        files += [f for f in matched if f not in files]
    parts = [load_dataset(f, error_scale=error_scale) for f in files]
    ids = np.concatenate([part["run_id"].values.astype(str) for part in parts])
    uniq, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        raise ValueError(f"run {uniq[counts > 1][0]} is in more than one part")
    scales = [float(part.attrs.get("error_scale", 1.0)) for part in parts]  # stored scale x error_scale
    odd = [i for i, s in enumerate(scales) if not np.isclose(s, scales[0], rtol=1e-9)]
    if odd:
        raise ValueError(f"the parts' error bars are scaled differently: error_scale {scales[0]:g} in {files[0]}, "
                         f"{scales[odd[0]]:g} in {files[odd[0]]}; save them with one scale first")
    points = [part.sizes["point"] for part in parts]
    if len(set(points)) > 1:
        bad = next(i for i, n in enumerate(points) if n != points[0])
        raise ValueError(f"{files[bad]} has {points[bad]} profile points per run, {files[0]} {points[0]}: parts "
                         "of one dataset need one z grid size")
    names = {v for part in parts for v in part.variables}
    for part in parts:  # a variable some parts lack: text variables get '' (not NaN, which saves as 'nan')
        for v in names - set(part.variables):
            ref = next(p[v] for p in parts if v in p.variables)
            if ref.dtype.kind in "OUS" and ref.dims == ("system",):
                part[v] = ("system", np.full(part.sizes["system"], "", dtype=object))
    ds = xr.concat(parts, dim="system", data_vars="all", coords="all", compat="override", join="outer",
                   combine_attrs="drop_conflicts")
    ds = ds.assign_coords(system=np.arange(ds.sizes["system"]))
    if len(parts) > 1:
        lines = "".join(f"{Path(f).name} {file_sha256(f)}\n" for f in files)
        ds.attrs.update(source="+".join(Path(f).name for f in files),
                        source_sha256=hashlib.sha256(lines.encode()).hexdigest())
    if scales[0] != 1.0:
        ds.attrs["error_scale"] = scales[0]
    ds.attrs["parts"] = json.dumps([Path(f).name for f in files])
    return ds


def consolidate(directory: str | os.PathLike, out: str | os.PathLike | None = None):
    """The dataset of a campaign directory: every run the ledger records as done (checked readable), less the
    runs already stored in the campaign's `reuse` datasets (other than `out` itself), so that consolidating a
    session's runs into a new part file never duplicates a run that an earlier part holds."""
    with Ledger(ledger_path(directory), create=False) as ledger:
        rows = ledger.rows("done")
        name = ledger.get_meta("name") or Path(directory).name
        counts = ledger.counts()
        patterns = json.loads(ledger.get_meta(META_KEY) or "[]")
    own = Path(out).resolve() if out is not None else None
    if patterns:
        stored = run_ids_in([p for p in reuse_paths(patterns) if p != own])
        rows = [r for r in rows if r.run_id not in stored]
    if own is not None and own.is_file():  # never replace a file holding runs this directory cannot write again
        try:
            held = run_ids_in([own])
        except (OSError, ValueError, KeyError):
            raise RuntimeError(f"{out} exists and is not a dataset file; refusing to replace it") from None
        lost = held - {r.run_id for r in rows}
        if lost:
            raise RuntimeError(f"{out} holds {len(lost)} runs this campaign directory does not (e.g. "
                               f"{sorted(lost)[0]}): write a new file instead of replacing it")
    if patterns:
        if not rows:
            raise RuntimeError("every finished run of this campaign is already in its reused datasets: "
                               "nothing new to consolidate")
    # each result from this directory (results/<run_id>.nc), not from the absolute path the ledger recorded: a
    # copied or moved campaign directory consolidates its own files
    paths = [result_path(directory, r.run_id) for r in rows]
    bad = [r.run_id for r, p in zip(rows, paths) if not result_readable(p)]
    if bad:
        raise RuntimeError(f"{len(bad)} runs marked done have unreadable results (e.g. {bad[0]}); "
                           "run `mdsurrogate campaign run` to redo them")
    ds = from_runs(paths, [r.run_id for r in rows],
                        attrs={"campaign": name, "campaign_counts": str(counts)})
    ds["attempts"] = ("system", np.array([r.attempts for r in rows], dtype=np.int64))
    ds["ledger_wall_s"] = ("system", np.array([r.wall_s if r.wall_s is not None else np.nan for r in rows]))
    if out is not None:
        save(ds, out)
    return ds


def run_rel_errors(ds) -> np.ndarray:
    """Median relative standard error of each run (the worse of n+ and n-): the engine's stored `rel_error`, or the
    same formula (`simulation.profiles.relative_error`) on the stored profiles where a dataset lacks it."""
    if "rel_error" in ds:
        return np.asarray(ds["rel_error"].values, dtype=float)
    return np.array([max(relative_error(ds["n_plus"].values[i], ds["n_plus_err"].values[i]),
                         relative_error(ds["n_minus"].values[i], ds["n_minus_err"].values[i]))
                     for i in range(ds.sizes["system"])])


def summary(ds) -> dict:
    """The numbers a dataset's README states: runs, compute (core-hours = sum of wall time x MPI ranks), the
    median and 90th-percentile relative standard error of a run (`rel_error`), runs per value of every input, run
    lengths, seeds and engine versions. (E_MD, the noise floor of a surrogate scored on these labels, is the
    evaluation stage's `md_noise_floor(error_bars(ds))`.)"""
    n = ds.sizes["system"]
    wall = np.full(n, np.nan)  # per run: the ledger's wall time (the whole worker), else the engine's
    for name in ("wall_time_s", "ledger_wall_s"):
        if name in ds:
            v = np.asarray(ds[name].values, dtype=float)
            wall = np.where(np.isfinite(v), v, wall)
    ranks = np.asarray(ds["mpi_ranks"].values, dtype=float) if "mpi_ranks" in ds else np.ones(n)
    rel = run_rel_errors(ds)

    def distinct(name):
        return sorted({str(v) for v in np.asarray(ds[name].values).ravel()}) if name in ds else []

    def distinct_ints(name):  # NaN where a run lacks the attribute (runs of an older engine in one campaign)
        vals = np.asarray(ds[name].values, dtype=float).ravel() if name in ds else np.array([])
        return sorted({int(v) for v in vals if np.isfinite(v)})
    return {
        "n_runs": int(n),
        "n_systems": int(len(np.unique(system_groups(inputs_array(ds))))),
        "core_hours": float(np.nansum(wall * ranks) / 3600.0),
        "wall_s_mean": float(np.nanmean(wall)), "wall_s_min": float(np.nanmin(wall)),
        "wall_s_max": float(np.nanmax(wall)),
        "rel_error_median": float(np.nanmedian(rel)), "rel_error_p90": float(np.nanpercentile(rel, 90)),
        "runs_per_value": {k: {f"{v:g}": int(np.sum(np.isclose(ds[k].values, v)))
                               for v in np.unique(np.round(ds[k].values, 6))} for k in input_names(ds)},
        "equilibration_steps": distinct_ints("equilibration_steps"),
        "production_steps": distinct_ints("production_steps"), "seeds": distinct_ints("seed"),
        "lammps_version": distinct("lammps_version"), "mdsurrogate_version": distinct("mdsurrogate_version"),
        "git_commits": distinct("git_commit"),
    }


def error_bars(ds) -> np.ndarray:
    """(n_system, 2 P) MD standard errors [n+_err, n-_err], the layout of the surrogate's outputs."""
    return np.concatenate([ds["n_plus_err"].values, ds["n_minus_err"].values], axis=1)


def _scalar(v):
    if isinstance(v, np.ndarray):
        return v.item() if v.size == 1 else None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (int, float, str)):
        return v
    return None


# ---------------------------------------------------------------------------------------------- io

def save(ds, path: str | os.PathLike) -> Path:
    """Write atomically as NetCDF4 (h5netcdf)."""
    return write_netcdf_atomic(ds, path)


def load_dataset(path: str | os.PathLike, error_scale: float = 1.0) -> xr.Dataset:
    """Read a dataset fully into memory (the file is closed afterwards) from NetCDF (.nc) or an authors' pickle
    (.pk/.pkl/.pickle, safe loader, the authors' keys as `key`) and check it (`arrays.validate_dataset`).

    error_scale multiplies the stored standard errors (1/2.1 corrects the authors' overestimate); the file's name
    and sha256 go into the attributes (for a surrogate card's provenance)."""
    path = Path(path)
    if not error_scale > 0 or not np.isfinite(error_scale):
        raise ValueError(f"error_scale must be a finite number > 0, got {error_scale}")
    try:
        if path.suffix in (".pk", ".pkl", ".pickle"):
            ds = from_authors_pickle(path, error_scale=error_scale)
        else:
            ds = xr.load_dataset(path, engine="h5netcdf")
    except Exception as exc:  # noqa: BLE001 - corrupt, truncated or hostile files: one message naming the file
        kind = "an authors' profile pickle" if path.suffix in (".pk", ".pkl", ".pickle") else "a NetCDF dataset"
        raise ValueError(f"{path}: not readable as {kind} ({type(exc).__name__}: {exc})") from None
    if path.suffix in (".pk", ".pkl", ".pickle"):
        ds = ds.assign_coords(key=("system", ds["run_id"].values))
        ds.attrs.update(source=path.name, source_sha256=file_sha256(path), error_scale=float(error_scale),
                        format="authors_pickle")
    else:
        if error_scale != 1.0:
            for name in ERROR_VARS:
                ds[name] = (ds[name] * error_scale).assign_attrs(ds[name].attrs)
            ds.attrs["error_scale"] = float(ds.attrs.get("error_scale", 1.0)) * error_scale
        sha = file_sha256(path)
        if ds.attrs.get("source_sha256", sha) != sha:  # saved from another dataset file: keep that one as parent
            ds.attrs.update(parent_source=ds.attrs.get("source", "unknown"), parent_sha256=ds.attrs["source_sha256"])
        ds.attrs.update(source=path.name, source_sha256=sha)
    validate_dataset(ds)
    return ds


# ---------------------------------------------------------------------------------------------- selecting

def _isin(values, wanted) -> np.ndarray:
    wanted = np.atleast_1d(np.asarray(wanted, dtype=float))
    values = np.asarray(values, dtype=float)
    return np.any(np.abs(values[:, None] - wanted[None, :]) < 1e-9, axis=1)


def _mask(ds, values: dict) -> np.ndarray:
    mask = np.ones(ds.sizes["system"], dtype=bool)
    for k, v in values.items():
        if k not in input_names(ds):
            raise ValueError(f"unknown input {k!r}; inputs are {list(input_names(ds))}")
        mask &= _isin(ds[k].values, v)
    return mask


def select(ds, **values):
    """Systems whose inputs equal the given values (a value or a list each), e.g. select(ds, c=[0.5, 1.0])."""
    return ds.isel(system=np.flatnonzero(_mask(ds, values)))


def inputs_array(ds) -> np.ndarray:
    """(n_system, 5) array of the inputs in INPUT_NAMES order (UNCHARGED_INPUT_NAMES for the uncharged system)."""
    return np.stack([ds[k].values for k in input_names(ds)], axis=1)


def system_groups(X: np.ndarray) -> np.ndarray:
    """Label of the system of every row (rows with equal inputs to 1e-6, i.e. replicas with other seeds, share a
    label), numbered by first appearance: rows of a dataset without replicas get 0, 1, 2, ..."""
    labels, seen = np.empty(len(X), dtype=np.int64), {}
    for i, x in enumerate(np.round(np.asarray(X, dtype=float), 6)):
        labels[i] = seen.setdefault(tuple(x), len(seen))
    return labels



# ---------------------------------------------------------------------------------------------- formats

def from_authors_pickle(path: str | os.PathLike, error_scale: float = 1.0):
    """Import the authors' profile pickle (safe loader) as a dataset; errors multiplied by error_scale.

    The upstream notebook says their stored errors are 2.1x too large; pass error_scale=1/2.1 to apply that."""
    if not (np.isfinite(error_scale) and error_scale > 0):
        raise ValueError(f"error_scale must be a finite number > 0, got {error_scale}")
    profiles = load_authors_pickle(path)
    records = []
    for key in sorted(profiles):
        pos, neg = profiles[key]["pos"], profiles[key]["neg"]
        if pos.shape != neg.shape or not np.allclose(pos[:, 0], neg[:, 0]):
            raise ValueError(f"{path}: {key!r} has different z grids for cations and anions")
        records.append({"inputs": parse_key(key), "z": pos[:, 0], "run_id": key,
                        "n_plus": pos[:, 1], "n_minus": neg[:, 1],
                        "n_plus_err": pos[:, 2] * error_scale, "n_minus_err": neg[:, 2] * error_scale,
                        "meta": {"preset": "authors-dataset", "source_key": key}})
    if not records:
        raise ValueError(f"{path}: no profiles")
    return from_profiles(records, attrs={"source": f"authors' pickle {Path(path).name}",
                                         "error_scale": float(error_scale),
                                         "lammps_version": "unknown (the authors' MD; this import ran no LAMMPS)"})


def to_authors_pickle(ds, path: str | os.PathLike) -> Path:
    """Export to the authors' pickle format (one entry per system; replicas of a system are refused)."""
    refuse_uncharged(ds, "no authors' pickle format yet (save them as NetCDF or export_tsv)")
    out: dict = {}
    source = ds["source_key"].values if "source_key" in ds else None
    for i in range(ds.sizes["system"]):
        key = str(source[i]) if source is not None and str(source[i]) not in ("", "nan") else \
            system_key({k: float(ds[k].values[i]) for k in INPUT_NAMES}, authors_spelling=True)
        if key in out:
            raise ValueError(f"system {key} appears more than once; select one replica per system first")
        z = ds["z"].values[i]
        out[key] = {"pos": np.column_stack([z, ds["n_plus"].values[i], ds["n_plus_err"].values[i]]),
                    "neg": np.column_stack([z, ds["n_minus"].values[i], ds["n_minus_err"].values[i]])}
    return dump_authors_pickle(out, path)


def export_tsv(ds, directory: str | os.PathLike) -> list[Path]:
    """nanoHUB-style tab-separated files, one folder per run: n_plus.tsv, n_minus.tsv (z nm, n M, err M),
    charge_density.tsv (z, rho C/m^3, err: the valency-weighted density errors in quadrature) and
    integrated_charge.tsv (z, S C/m^2). Returns the folders."""
    directory = Path(directory)
    names = [safe_name(str(r), "run_id") for r in ds["run_id"].values]  # every name checked before any write
    if len(set(names)) != len(names):
        raise ValueError("run_id values repeat: each run needs its own folder")
    n = ds.sizes["system"]
    zp = ds["z_p"].values.astype(float) if "z_p" in ds else np.ones(n)  # valencies (uncharged-wall system)
    zn = ds["z_n"].values.astype(float) if "z_n" in ds else -np.ones(n)
    folders = []
    for i in range(n):
        folder = directory / names[i]
        z = ds["z"].values[i]
        cols = {
            "n_plus": (ds["n_plus"].values[i], ds["n_plus_err"].values[i], "n_M"),
            "n_minus": (ds["n_minus"].values[i], ds["n_minus_err"].values[i], "n_M"),
            "charge_density": (ds["charge_density"].values[i], ELEMENTARY_CHARGE * MOLAR_TO_PER_M3
                               * np.hypot(zp[i] * ds["n_plus_err"].values[i], zn[i] * ds["n_minus_err"].values[i]),
                               "rho_C_per_m3"),
        }
        for name, (val, err, label) in cols.items():
            unit = "C_per_m3" if name == "charge_density" else "M"
            lines = [f"# z_nm\t{label}\terr_{unit}"] + [f"{a:.6g}\t{b:.6g}\t{c:.6g}" for a, b, c in zip(z, val, err)]
            write_text_atomic(folder / f"{name}.tsv", "\n".join(lines) + "\n")
        s = ds["integrated_charge"].values[i]
        write_text_atomic(folder / "integrated_charge.tsv",
                          "\n".join(["# z_nm\tS_C_per_m2"] + [f"{a:.6g}\t{b:.6g}" for a, b in zip(z, s)]) + "\n")
        folders.append(folder)
    return folders


def read_tsv(path: str | os.PathLike) -> np.ndarray:
    """Read one exported .tsv file back as an array (columns as written)."""
    return np.loadtxt(path, delimiter="\t", comments="#", ndmin=2)
