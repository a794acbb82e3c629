"""The one runner every study shares: its output folder, resumable cached tasks (a process pool for the ones that
train), progress, figures, and the three result files.

A study writes into its folder `figure*.png`, `table.md` and `study.json` (the study's numbers, its options, the
seed, the dataset files with their sha256 and system count, and `provenance()`). Expensive tasks (one trained
model each) are cached as `cache/<task key>.json` the moment they finish, so a study stopped part-way reruns
only what is missing: the key is a hash of everything the task depends on (data file hashes, rows, recipe, seed).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np
import xarray as xr

from mdsurrogate.dataset import load_dataset, load_parts
from mdsurrogate.dataset.arrays import dataset_schema, refuse_uncharged
from mdsurrogate.io import BadPath, check_input, file_sha256, write_json_atomic, write_text_atomic
from mdsurrogate.provenance import provenance
from mdsurrogate.simulation.system import system_schema

MARKER = "study.marker.json"


class Progress(Protocol):
    """What a study reports while it works (the CLI draws rich bars; tests pass `Quiet`)."""

    def task(self, description: str, total: int | None) -> Callable[[int], None]: ...

    def say(self, message: str) -> None: ...


class Quiet:
    """A progress sink that prints nothing."""

    def task(self, description: str, total: int | None) -> Callable[[int], None]:
        return lambda n=1: None

    def say(self, message: str) -> None:
        pass


@dataclass(frozen=True)
class DataSource:
    """The dataset files of a study (one or more parts, glob patterns allowed) and their hashes."""

    files: tuple[str, ...]
    sha256: tuple[str, ...]
    error_scale: float = 1.0
    #: The system kind the study needs ('charged': sun2023/kadupitiya2021; 'uncharged': kadupitiya2020's Table 1).
    system: str = "charged"

    @classmethod
    def of(cls, paths: Sequence[str | os.PathLike], error_scale: float = 1.0, option: str = "DATA",
           system: str = "charged") -> "DataSource":
        files: list[str] = []
        for p in paths:
            matched = sorted(glob.glob(str(p))) or [str(p)]
            for f in matched:
                check_input(f, option)
                if str(Path(f).resolve()) not in files:
                    files.append(str(Path(f).resolve()))
        if not files:
            raise BadPath(f"{option}: no dataset file given")
        if not (np.isfinite(error_scale) and error_scale > 0):
            raise ValueError(f"error_scale must be a finite number > 0, got {error_scale}")
        system_schema(system)
        return cls(tuple(files), tuple(file_sha256(f) for f in files), float(error_scale), system)

    def load(self) -> xr.Dataset:
        """The dataset, refused in one line unless it is of the study's system kind (`system`)."""
        ds = load_dataset(self.files[0], error_scale=self.error_scale) if len(self.files) == 1 else \
            load_parts(*self.files, error_scale=self.error_scale)
        if self.system == "charged":
            refuse_uncharged(ds, "their own study (`mdsurrogate study kadupitiya2020`), not this one")
        elif dataset_schema(ds).kind != self.system:
            raise ValueError(f"this study needs a dataset of the {self.system}-wall system (inputs "
                             f"{system_schema(self.system).describe()}); {', '.join(Path(f).name for f in self.files)} "
                             f"holds the {dataset_schema(ds).kind}-wall system")
        return ds

    def describe(self) -> dict:
        return {"files": [Path(f).name for f in self.files], "sha256": list(self.sha256),
                "error_scale": self.error_scale, "system": self.system}


_DATA_CACHE: dict[tuple, xr.Dataset] = {}


def cached_dataset(src: DataSource) -> xr.Dataset:
    """The dataset of `src`, loaded once per process (pool workers reuse it across tasks)."""
    key = (src.files, src.sha256, src.error_scale)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = src.load()
    return _DATA_CACHE[key]


def reference_key(reference: DataSource | None) -> Any:
    """What a task's reference scores depend on: the files' hashes, and the error scale where it is not 1 (the
    keys of results cached before the scale was part of them stay valid)."""
    if reference is None:
        return None
    return reference.sha256 if reference.error_scale == 1.0 else [reference.sha256, reference.error_scale]


def task_key(*parts: Any) -> str:
    """A stable hash of a task's JSON-able description (what its result depends on)."""
    blob = json.dumps(parts, sort_keys=True, default=_jsonable).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    raise TypeError(f"not JSON-able: {type(o).__name__}")


def _init_worker(threads: int) -> None:
    import torch  # noqa: PLC0415 - torch

    torch.set_num_threads(threads)


@dataclass
class StudyRun:
    """One study's output folder, options and progress. `run_tasks` caches, `finish` writes the results."""

    name: str
    out: Path
    seed: int
    options: dict
    data: DataSource | None = None
    progress: Progress = field(default_factory=Quiet)
    workers: int = 1
    threads: int = 1
    started: float = field(default_factory=time.time)
    figures: list[str] = field(default_factory=list)
    from_cache: bool = False  # report from the models already cached; train nothing
    missing: int = 0  # tasks left out by from_cache

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        marker = self.out / MARKER
        if self.out.exists():
            if not self.out.is_dir():
                raise BadPath(f"--out: {self.out} exists and is not a folder")
            if marker.is_file():
                other = json.loads(marker.read_text()).get("study")
                if other != self.name:
                    raise BadPath(f"--out: {self.out} holds the study {other!r}, not {self.name!r}; choose another "
                                  "folder")
            elif any(self.out.iterdir()):
                raise BadPath(f"--out: folder {self.out} is not empty and is not a study folder; choose another")
        if not 1 <= self.workers <= 64:
            raise ValueError(f"workers must be in [1, 64], got {self.workers}")
        if not 1 <= self.threads <= 256:
            raise ValueError(f"threads must be in [1, 256], got {self.threads}")

    def _prepare(self) -> None:
        """Create the folder and its marker at the first write (a study refused for its options leaves nothing)."""
        if not (self.out / MARKER).is_file():
            (self.out / "cache").mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.out / MARKER, {"study": self.name})

    # -- cached tasks ------------------------------------------------------------------------------------------
    def _cache_file(self, key: str) -> Path:
        return self.out / "cache" / f"{key}.json"

    def cached(self, key: str, fn: Callable[[], dict]) -> dict:
        """fn() once; its (JSON) result is kept under cache/ and returned on every later call or run."""
        path = self._cache_file(key)
        if path.is_file():
            return json.loads(path.read_text())
        result = fn()
        self._prepare()
        write_json_atomic(path, result)
        return result

    def run_tasks(self, description: str, tasks: Iterable[tuple[str, Callable[..., dict], dict]]) -> dict[str, dict]:
        """Run `fn(**kwargs)` for every (key, fn, kwargs) not cached yet, `workers` at a time in spawned processes
        (fn must be a module-level function), with a progress bar; results are cached as they finish."""
        tasks = list(tasks)
        results: dict[str, dict] = {}
        todo = []
        for key, fn, kw in tasks:
            if self._cache_file(key).is_file():
                results[key] = json.loads(self._cache_file(key).read_text())
            else:
                todo.append((key, fn, kw))
        if self.from_cache:
            self.missing += len(todo)
            if todo:
                self.progress.say(f"{description}: reporting {len(tasks) - len(todo)} of {len(tasks)} tasks from the "
                                  f"cache; {len(todo)} not run (rerun without --from-cache to complete)")
            return results
        advance = self.progress.task(description, len(tasks))
        advance(len(tasks) - len(todo))
        if todo:
            self.progress.say(f"{description}: {len(tasks) - len(todo)} of {len(tasks)} cached, {len(todo)} to run")
        self._prepare()
        if self.workers == 1 or len(todo) <= 1:
            _init_worker(self.threads)
            for key, fn, kw in todo:
                results[key] = fn(**kw)
                write_json_atomic(self._cache_file(key), results[key])
                advance(1)
        elif todo:
            failed: list[tuple[str, BaseException]] = []
            with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                     initargs=(self.threads,)) as pool:
                futures = {pool.submit(fn, **kw): key for key, fn, kw in todo}
                for fut in as_completed(futures):  # every success is cached, even when another task fails
                    key = futures[fut]
                    try:
                        results[key] = fut.result()
                    except Exception as exc:  # noqa: BLE001 - reported below, after the others are kept
                        failed.append((key, exc))
                        continue
                    write_json_atomic(self._cache_file(key), results[key])
                    advance(1)
            if failed:
                key, exc = failed[0]
                raise RuntimeError(f"{description}: {len(failed)} of {len(todo)} tasks failed (first: task {key}: "
                                   f"{type(exc).__name__}: {exc}); the others are cached, rerun to retry") from exc
        return results

    # -- outputs -----------------------------------------------------------------------------------------------
    def save_figure(self, fig, name: str = "figure") -> Path:
        """Save a matplotlib figure as `<name>.png` (atomically) and close it."""
        import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

        self._prepare()
        path = self.out / f"{name}.png"
        tmp = self.out / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=130, bbox_inches="tight")
        plt.close(fig)
        os.replace(tmp, path)
        if path.name not in self.figures:
            self.figures.append(path.name)
        return path

    def finish(self, results: dict, table_md: str, n_systems: int | None = None) -> dict:
        """Write table.md and study.json (results, options, seed, data, systems used, wall time, provenance)."""
        record = {"study": self.name, "n_systems": n_systems, "seed": self.seed, "options": self.options,
                  "complete": self.missing == 0, "tasks_missing": self.missing,
                  "data": self.data.describe() if self.data else None, "figures": self.figures,
                  "wall_time_s": round(time.time() - self.started, 1), "results": results,
                  "provenance": provenance("torch", "scikit-learn", "SALib", "xarray")}
        self._prepare()
        header = f"# Study `{self.name}`" + (f" on {n_systems} systems" if n_systems is not None else "") + "\n\n"
        if self.missing:
            header += (f"**Partial:** {self.missing} of the study's trained models were not run yet; the tables use "
                       "the ones that were (rerun the command to complete it: it resumes from `cache/`).\n\n")
        write_text_atomic(self.out / "table.md", header + table_md.rstrip() + "\n")
        write_json_atomic(self.out / "study.json", json.loads(json.dumps(record, default=_jsonable)))
        return record


def md_table(rows: Sequence[dict], columns: Sequence[str], fmt: dict[str, str] | None = None) -> str:
    """A Markdown table of `rows` (dicts) over `columns`; numbers formatted by `fmt[column]` (default '.4f')."""
    fmt = fmt or {}
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in
                                                              range(len(columns))) + "|"]
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            if isinstance(v, (float, np.floating)):
                cells.append(format(float(v), fmt.get(c, ".4f")) if np.isfinite(v) else "")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
