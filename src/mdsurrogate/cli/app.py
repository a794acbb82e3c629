"""`mdsurrogate app`: serve the web app (Panel) on this machine."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Optional

import typer

from mdsurrogate.cli.common import fail


def register(app: typer.Typer) -> None:
    """Attach the app command to the main app."""

    @app.command("app")
    def serve_app(
        port: int = typer.Option(5006, help="TCP port (0: any free port; the URL printed says which)"),
        address: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 for every interface)"),
        show: bool = typer.Option(False, help="open the page in a browser"),
        workdir: Optional[Path] = typer.Option(None, help="folder for the sessions' MD runs (default: a temporary "
                                                           "folder; each session gets its own subfolder)"),
        allow_websocket_origin: Optional[list[str]] = typer.Option(
            None, help="extra HOST[:PORT] allowed to open the page (e.g. a proxy's name); repeatable"),
    ) -> None:
        """Serve the "Ions in nanoconfinement" web app (Panel): ML predictions, MD runs, sweeps, sensitivity."""
        import os

        if not 0 <= port <= 65535:
            fail(f"--port must be in [0, 65535], got {port}")
        if not address.strip():
            fail("--address must be a host name or IP address (127.0.0.1, or 0.0.0.0 for every interface), got ''")
        try:
            with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
                s.bind((address, port))
                port = port or s.getsockname()[1]
        except OSError as exc:
            fail(f"--port/--address: cannot listen on {address}:{port} ({exc.strerror or exc})")
        if workdir is not None:
            from mdsurrogate.io import BadPath, check_output

            try:
                check_output(workdir, "--workdir", kind="dir", overwrite=True)
            except BadPath as exc:
                fail(str(exc))
            workdir.mkdir(parents=True, exist_ok=True)
            os.environ["MDSURROGATE_APP_WORKDIR"] = str(workdir.resolve())

        import signal

        import panel as pn

        from mdsurrogate.app.core import close_all_sessions, shipped_surrogate
        from mdsurrogate.app.ui import create_app

        shipped_surrogate()  # load once before the first page
        host = f"[{address}]" if ":" in address else address
        origins = [f"{host}:{port}", f"localhost:{port}", f"127.0.0.1:{port}", *(allow_websocket_origin or [])]
        server = pn.serve(create_app, port=port, address=address, show=False, start=False,
                          websocket_origin=origins, title="Ions in nanoconfinement")
        server.start()
        url = f"http://{'127.0.0.1' if address in ('0.0.0.0', '::') else host}:{port}/"
        typer.echo(f"mdsurrogate app: serving at {url} (Ctrl-C stops it)", err=False)
        if show:
            server.io_loop.add_callback(server.show, "/")

        def terminate(signum, frame):  # SIGTERM: stop as Ctrl-C does, through the cleanup below
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, terminate)
        try:
            server.io_loop.start()
        except KeyboardInterrupt:
            typer.echo("stopped")
        finally:
            # the sessions' MD runs live in their own process groups: cancel them and remove the sessions' folders
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            close_all_sessions()
