"""The `dbgym` command. Commands are thin: each calls a function tests can call directly.

Sub-command groups live next to the code they drive and are attached here:
- dbgym/dbms/cli.py      -> doctor, clean, docker build-image, instance smoke
- dbgym/workload/cli.py  -> workload inspect / replay
"""

from __future__ import annotations

import typer

from dbgym import __version__
from dbgym.dbms.cli import register as register_dbms
from dbgym.workload.cli import register as register_workload

app = typer.Typer(
    name="dbgym",
    help="dbgym: a database gym on a real PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """dbgym: a database gym on a real PostgreSQL."""


@app.command()
def version() -> None:
    """Print dbgym's version and the Rust core's version."""
    from dbgym import core_version

    typer.echo(f"dbgym {__version__} (core {core_version})")


register_dbms(app)
register_workload(app)


def main() -> None:
    app()
