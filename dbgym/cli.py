"""The `dbgym` command. Commands are thin: each calls a function tests can call directly.

Sub-command groups live next to the code they drive and are attached here:
- dbgym/dbms/cli.py      -> doctor, clean, docker build-image, instance smoke
- dbgym/workload/cli.py  -> workload inspect (the group)
- dbgym/replayer/cli.py  -> workload replay
- dbgym/state/cli.py     -> workload state build|list|clear
- dbgym/runner/cli.py    -> run (a model on an environment: the main job)
- dbgym/project/cli.py   -> sims list|show|start|cancel|delete|reconcile|export
- dbgym/bench/cli.py     -> bench (compare configurations; --self: the project's benches)

Errors have one handler (`_Group.invoke`): a command raises a DbgymError (or the user
presses Ctrl-C), and the command prints `error: <message>` to stderr and exits with the
code of dbgym.errors.EXIT_CODES (2 = invalid argument, 3 = the server or its backend
failed, 1 = any other dbgym error, 130 = interrupted). Option values typer itself refuses
exit with 2 too. Commands never pick exit codes themselves.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from dbgym import __version__
from dbgym.bench.cli import register_bench
from dbgym.dbms.cli import register as register_dbms
from dbgym.errors import DbgymError, exit_code
from dbgym.project.cli import register_sims
from dbgym.replayer.cli import register_replay
from dbgym.runner.cli import register_run
from dbgym.state.cli import register_state
from dbgym.workload.cli import register as register_workload


def error_line(error: BaseException) -> str:
    """`error: <message>` (continuation lines of a long message indented)."""
    text = str(error).strip() or type(error).__name__
    return "error: " + text.replace("\n", "\n  ")


class _Group(TyperGroup):
    """The root group: every command runs inside `invoke`, which maps errors to exit codes."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (DbgymError, KeyboardInterrupt) as e:
            message = "error: interrupted" if isinstance(e, KeyboardInterrupt) else error_line(e)
            typer.echo(message, err=True)
            raise typer.Exit(exit_code(e)) from e


app = typer.Typer(
    cls=_Group,
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
register_run(app)
register_sims(app)
register_bench(app)
_workload = register_workload(app)
register_replay(_workload)
register_state(_workload)


def main() -> None:
    app()
