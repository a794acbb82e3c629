"""CLI commands of the simulation stage: simulate, demo, validate."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach this stage's commands to the main app."""
