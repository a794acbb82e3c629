"""The `mdsurrogate` command line: a thin layer over the pipeline stages.

Each stage's commands live in their own module here and are attached by its `register(app)`; heavy
imports happen inside the commands so that `mdsurrogate --help` stays fast.
"""

from __future__ import annotations

import typer

from mdsurrogate.cli import app as app_command
from mdsurrogate.cli import campaign, proxima, simulation, study, surrogate
from mdsurrogate.cli.common import SafeGroup

app = typer.Typer(
    cls=SafeGroup,
    name="mdsurrogate",
    help="MD campaigns, neural-network surrogates of their profiles, and PROXIMA on-the-fly control.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

for _module in (simulation, campaign, surrogate, study, proxima, app_command):
    _module.register(app)


def main() -> None:
    app()
