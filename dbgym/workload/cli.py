"""The `dbgym workload` group and its `inspect` command (dbgym/cli.py attaches `replay` and
`state`, which live beside their code)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dbgym.workload.cli_options import Lenient, LogFormat, LogLinePrefix, Top

workload_app = typer.Typer(
    name="workload", help="Workloads: inspect logs and SQL, replay them.", no_args_is_help=True
)


def register(app: typer.Typer) -> typer.Typer:
    """Attach the `workload` group (with `inspect`) to the top-level `dbgym` app; returns
    the group, for the commands of other packages."""
    _register_inspect(workload_app)
    app.add_typer(workload_app)
    return workload_app


# -- inspect (helper "trace") ---------------------------------------------------------
def _register_inspect(group: typer.Typer) -> None:
    @group.command("inspect")
    def inspect_cmd(
        source: Annotated[Path, typer.Argument(help="A server log, a .sql file or a directory")],
        format: LogFormat = None,
        log_line_prefix: LogLinePrefix = None,
        lenient: Lenient = False,
        top: Top = 10,
    ) -> None:
        """Counts, sessions and the most frequent templates of a workload source."""
        from dbgym.workload.describe import load_source, render, summarize

        w = load_source(source, format=format, log_line_prefix=log_line_prefix, lenient=lenient)
        render(summarize(w, top=top))
