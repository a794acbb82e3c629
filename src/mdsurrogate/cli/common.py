"""What every command shares: one-line errors and the safety net that turns any unexpected exception into one
(never a traceback; MDSURROGATE_DEBUG=1 shows it)."""

from __future__ import annotations

import math
import os

import typer
from typer.core import TyperGroup

DEBUG_ENV = "MDSURROGATE_DEBUG"


def fail(msg: str, code: int = 2) -> None:
    """Print `error: msg` (one line) on stderr and exit with `code` (2: bad input or file)."""
    typer.secho(f"error: {' '.join(str(msg).split())}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


def check_error_scale(error_scale: float) -> None:
    """--error-scale: a factor on the stored MD errors in (0, 100] (1/2.1 corrects the authors')."""
    if not (math.isfinite(error_scale) and 0 < error_scale <= 100):
        fail(f"--error-scale must be a factor in (0, 100] (1/2.1 corrects the authors' errors), got {error_scale}")


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class SafeGroup(TyperGroup):
    """The top-level command group: an exception that escapes a command is reported in one line with exit code 1
    (2 for bad paths and values), the cause being named by the message."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            if os.environ.get(DEBUG_ENV):
                raise
            if type(exc).__module__.startswith(("click", "typer")):
                raise
            code = 2 if isinstance(exc, (ValueError, OSError)) else 1
            typer.secho(f"error: {type(exc).__name__}: {one_line(exc)}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=code) from None
