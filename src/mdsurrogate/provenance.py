"""Provenance recorded in every result file: code version, git commit, engine and library versions."""

from __future__ import annotations

import datetime as _dt
import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from mdsurrogate import __version__


@functools.cache
def git_commit() -> str:
    """The git commit of the source tree, with '+dirty' when the package's own files (src/mdsurrogate) have
    uncommitted changes (results written into tracked folders elsewhere, e.g. docs/studies, do not count: they are
    what the code produced); 'unknown' outside git."""
    return commit_of(Path(__file__).resolve().parent)


def commit_of(folder: Path) -> str:
    """HEAD of the git repository holding `folder`, '+dirty' when tracked files under `folder` changed."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."], cwd=folder,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def provenance(*packages: str) -> dict[str, str]:
    """Flat dict of strings, suitable as NetCDF/JSON attributes."""
    info = {
        "mdsurrogate_version": __version__,
        "git_commit": git_commit(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for pkg in ("numpy", *packages):
        info[f"{pkg}_version"] = package_version(pkg)
    return info
