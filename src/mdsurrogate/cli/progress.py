"""The command line's progress displays (rich): one bar factory, the engine's block progress of one run, and a
campaign's bars (the campaign from the ledger counts, one bar per running run from its progress.json)."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mdsurrogate.campaign.execute import CampaignObserver


def rich_progress(*middle: Any, console: Console | None = None) -> Progress:
    """A bar with the project's columns: description, bar, `middle` (default: done/total), elapsed, remaining."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), *(middle or (MofNCompleteColumn(),)),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


@contextlib.contextmanager
def run_progress(description: str, console: Console | None = None) -> Iterator:
    """Yields the engine's progress callback (blocks done, planned, relative error) drawing one bar."""
    with rich_progress(TextColumn("{task.completed}/{task.total} blocks"), TextColumn("rel. err {task.fields[err]}"),
                       console=console) as bar:
        task = bar.add_task(description, total=None, err="-")

        def update(done: int, planned: int, err: float) -> None:
            bar.update(task, completed=done, total=planned, err="-" if err == float("inf") else f"{err:.3f}")

        yield update


class CampaignProgress(CampaignObserver):
    """The campaign's bar (ledger counts) and one bar per running run, fed by the run's progress.json (blocks
    done / planned, current relative error; re-read at most once a second)."""

    def __init__(self) -> None:
        self._p = rich_progress(MofNCompleteColumn(), TextColumn("{task.fields[info]}"))
        self._runs: dict[str, tuple[Any, Path]] = {}
        self._last = 0.0
        self._task = None

    def start(self, counts: dict[str, int]) -> None:
        self._p.start()
        self._task = self._p.add_task("campaign", total=sum(counts.values()), completed=counts["done"], info="")
        self.update(counts)

    def run_started(self, run_id: str, workdir: Path) -> None:
        (workdir / "progress.json").unlink(missing_ok=True)
        label = run_id if len(run_id) <= 48 else run_id[:45] + "..."
        self._runs[run_id] = (self._p.add_task(label, total=None, info="starting"), workdir / "progress.json")

    def run_finished(self, run_id: str) -> None:
        if run_id in self._runs:
            self._p.remove_task(self._runs.pop(run_id)[0])

    def update(self, counts: dict[str, int]) -> None:
        self._p.update(self._task, completed=counts["done"],
                       info=f"running {counts['running']}  failed {counts['failed']}  pending {counts['pending']}")

    def refresh(self) -> None:
        if time.monotonic() - self._last < 1.0:
            return
        self._last = time.monotonic()
        for tid, path in self._runs.values():
            try:
                info = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            err = info.get("rel_error")
            self._p.update(tid, total=max(info["planned"], 1), completed=info["done"],
                           info="" if err is None else f"rel. error {err:.3f}")

    def stop(self) -> None:
        self._p.stop()
