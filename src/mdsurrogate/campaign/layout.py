"""The layout of a campaign directory, which the dataset stage reads too::

    <dir>/ledger.sqlite        the single source of truth (ledger.py)
    <dir>/spec.toml|yaml       the spec it was started from (earlier versions kept as spec.<time>.toml)
    <dir>/supervisor.json      the supervisor's heartbeat (backends.py)
    <dir>/results/<run>.nc     one result per finished run, written atomically by the run function
    <dir>/work/<run>/          the run's working directory (LAMMPS input, logs, worker log, status, progress)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import numpy as np

from mdsurrogate.campaign.spec import CampaignSpec
from mdsurrogate.io import write_text_atomic
from mdsurrogate.simulation.system import PROFILE_VARS


def campaign_dir(spec: CampaignSpec, directory: str | os.PathLike | None = None) -> Path:
    """The campaign's directory: the argument, else the spec's campaign.directory, else runs/campaigns/<name>."""
    if directory is not None:
        return Path(directory)
    if spec.directory:
        return Path(spec.directory)
    return Path("runs") / "campaigns" / spec.name


def ledger_path(root: str | os.PathLike) -> Path:
    return Path(root) / "ledger.sqlite"


def result_path(root: str | os.PathLike, run_id: str) -> Path:
    return Path(root) / "results" / f"{run_id}.nc"


def result_readable(path: str | os.PathLike) -> bool:
    """True if `path` is a complete per-run result: a NetCDF4/HDF5 file with the profile variables and `z`,
    non-empty and finite. Read with h5py directly (a few ms per file: resuming 1000 runs checks them all)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            n = f["z"].shape[0]
            for v in PROFILE_VARS:
                a = f[v][()]
                if a.shape != (n,) or n == 0 or not np.all(np.isfinite(a)):
                    return False
            return True
    except Exception:  # noqa: BLE001 - any read problem means "not a result"
        return False


def save_spec_copy(root: Path, spec: CampaignSpec) -> None:
    """Keep the spec text in the campaign directory; a changed spec keeps the earlier one under a time stamp."""
    suffix = spec.source_suffix
    target = root / f"spec{suffix}"
    if not target.exists() or target.read_text() != spec.source:
        if target.exists():
            stamp = time.strftime("%Y%m%dT%H%M%S")
            target.rename(root / f"spec.{stamp}{suffix}")
        write_text_atomic(target, spec.source)
