"""The one input/output layer every command uses.

Writing is atomic (a result either exists complete or not at all, on any error, a full disk included) and
checked before any work starts: an output never replaces a special file (device, FIFO, a symlink to one), a
command's own input, or a directory holding files the user did not ask to replace. Inputs must be regular,
readable files (a FIFO would block forever). Every refusal is a `BadPath` whose message starts with the option.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

NAME_MAX = 255  # bytes per path component on Linux file systems


class BadPath(ValueError):
    """An input or output path that cannot be used; the message starts with the option that named it."""


def _components_ok(path: Path, option: str) -> None:
    if str(path) in ("", "."):
        raise BadPath(f"{option}: give a file or folder name, got {str(path)!r}")
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise BadPath(f"{option}: the name {part[:40]}... is longer than {NAME_MAX} bytes")


def _writable_ancestor(path: Path, option: str) -> None:
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise BadPath(f"{option}: {parent} is not a folder, so {path} cannot be created")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadPath(f"{option}: no permission to write in {parent}")
    try:  # the real test (root passes os.access everywhere, /proc and read-only mounts refuse files)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise BadPath(f"{option}: cannot write in {parent} ({exc.strerror or exc})") from None


def check_input(path: str | os.PathLike, option: str, kind: str = "file") -> Path:
    """An existing, readable regular file (kind='file') or folder (kind='dir')."""
    p = Path(path)
    _components_ok(p, option)
    if not p.exists():
        raise BadPath(f"{option}: {p} does not exist")
    mode = p.stat().st_mode
    if kind == "dir":
        if not stat.S_ISDIR(mode):
            raise BadPath(f"{option}: {p} is not a folder")
    elif not stat.S_ISREG(mode):
        raise BadPath(f"{option}: {p} is not a regular file")
    if not os.access(p, os.R_OK):
        raise BadPath(f"{option}: no permission to read {p}")
    return p


def check_output(path: str | os.PathLike, option: str, kind: str = "file", overwrite: bool = False,
                 inputs: Iterable[str | os.PathLike | None] = (), replaceable: str | None = None) -> Path:
    """Check an output before any work is done (never writes anything).

    kind='file': an existing regular file is replaced only with `overwrite` (never a special file or a
    folder). kind='dir': an existing folder must be empty, or `overwrite` be given and, when `replaceable` names
    a file, hold that file (e.g. 'card.json': only a saved surrogate is replaced). Never an output that is, or
    (for a folder) contains, one of the command's `inputs`."""
    p = Path(path)
    _components_ok(p, option)
    target = p.resolve()
    for inp in inputs:
        if inp is None:
            continue
        src = Path(inp).resolve()
        if src == target or (kind == "dir" and target in src.parents) or (src.is_dir() and src in target.parents):
            raise BadPath(f"{option}: {p} would overwrite the command's own input {inp}")
    if p.is_symlink() or p.exists():
        try:
            mode = p.stat().st_mode  # follows a symlink: a link to /dev/stdout is a character device
        except OSError:
            raise BadPath(f"{option}: {p} is a broken symbolic link") from None
        if kind == "file":
            if p.is_symlink() or not stat.S_ISREG(mode):
                raise BadPath(f"{option}: {p} exists and is not a regular file; refusing to replace it")
            if not overwrite:
                raise BadPath(f"{option}: {p} exists; pass --overwrite to replace it")
        else:
            if p.is_symlink() or not stat.S_ISDIR(mode):
                raise BadPath(f"{option}: {p} exists and is not a folder")
            if any(p.iterdir()):
                if not overwrite:
                    raise BadPath(f"{option}: folder {p} is not empty; pass --overwrite to replace its contents")
                if replaceable is not None and not (p / replaceable).is_file():
                    raise BadPath(f"{option}: folder {p} has no {replaceable}; refusing to replace a folder this "
                                  "command did not write")
    _writable_ancestor(target, option)
    return p


def prefix_path(prefix: str | os.PathLike, suffix: str, known: Iterable[str] = (), option: str = "--out") -> Path:
    """PREFIX + suffix without cutting a dotted prefix ('run_h4.5' -> 'run_h4.5.nc'); a prefix that already ends
    in one of the `known` suffixes loses it first ('pred.nc' -> 'pred' + suffix)."""
    _components_ok(Path(prefix), option)
    p = Path(prefix)
    if p.name in ("", ".", ".."):
        raise BadPath(f"{option}: give a file name prefix, got {str(prefix)!r}")
    if p.suffix in set(known):
        p = p.with_suffix("")
    return p.with_name(p.name + suffix)


SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$")


def safe_name(name: str, what: str = "name") -> str:
    """A string used as a file or folder name: letters, digits and . _ + - only, not starting with a dot (so never
    '..' or an absolute path)."""
    if not SAFE_NAME.match(str(name)):
        raise BadPath(f"{what} {str(name)[:60]!r} cannot be used as a file name (letters, digits, '._+-' only)")
    return str(name)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _umask() -> int:
    """The process umask, read from /proc (os.umask can only read it by setting it, which would let another
    thread create a file under umask 0 meanwhile); the mask at import where /proc lacks it."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return _IMPORT_UMASK


_IMPORT_UMASK = os.umask(0o022)
os.umask(_IMPORT_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success fsync it and rename it onto `path`.

    On any exception the temporary file is removed and `path` is left untouched.
    """
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise BadPath(f"{path} exists and is not a regular file; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; results should be as readable as any file
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_figure_atomic(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG at `path` atomically, then close it."""
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib only where figures are made

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def guard_h5netcdf() -> None:
    """Make a failed close of an h5netcdf file final. When closing fails (a full disk), h5netcdf leaves the file
    marked open and its __del__ flushes it again at garbage collection, which crashes HDF5 (segmentation fault);
    with this guard the first failure is the error the user sees and the process exits cleanly."""
    import h5netcdf  # noqa: PLC0415 - only where NetCDF is written

    if getattr(h5netcdf.File, "_mdsurrogate_guarded", False):
        return
    original = h5netcdf.File.close

    def close(self):
        try:
            original(self)
        except Exception:
            self._closed = True
            raise

    def finalize(self):
        try:
            close(self)
        except Exception:  # noqa: BLE001 - reported where it first failed
            pass

    h5netcdf.File.close, h5netcdf.File.__del__ = close, finalize
    h5netcdf.File._mdsurrogate_guarded = True


def write_netcdf_atomic(ds, path: str | os.PathLike) -> Path:
    """Write an xarray Dataset to NetCDF4 (h5netcdf engine) atomically."""
    guard_h5netcdf()
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return Path(path)
