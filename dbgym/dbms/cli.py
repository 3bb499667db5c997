"""CLI commands for PostgreSQL instances: doctor, clean, instance smoke.

(`dbgym docker ...` commands live in docker_cli.py and are attached here too.)
"""

from __future__ import annotations

import typer

from dbgym.dbms.docker_cli import register_docker

instance_app = typer.Typer(help="Run PostgreSQL instances.", no_args_is_help=True)


def doctor_cmd() -> None:
    """Say which backends (local, docker) are usable here, and why not."""
    from dbgym.dbms.doctor import doctor

    any_usable = False
    for report in doctor():
        any_usable |= report.usable
        status = "usable" if report.usable else "NOT usable"
        typer.echo(f"{report.backend}: {status}")
        for line in report.details:
            typer.echo(f"  - {line}")
        for line in report.problems:
            typer.echo(f"  ! {line}")
    if not any_usable:
        from dbgym.errors import BackendUnavailableError

        raise BackendUnavailableError("no backend is usable here (see the problems above)")


def clean_cmd() -> None:
    """Remove servers, containers and files left by dbgym processes that died."""
    from dbgym.dbms.instance_registry import clean

    report = clean()
    for line in report.removed:
        typer.echo(f"removed {line}")
    for line in report.live:
        typer.echo(f"kept    {line}")
    for line in report.errors:
        typer.echo(f"error   {line}", err=True)
    if not report.removed:
        typer.echo("nothing to clean")
    if report.errors:
        from dbgym.errors import InstanceError

        raise InstanceError(f"{len(report.errors)} leftover(s) could not be removed (see above)")


@instance_app.command("smoke")
def smoke_cmd(
    backend: str = typer.Option("local", help="local or docker"),
) -> None:
    """Launch an instance, query, apply a knob, snapshot/restore, close."""
    from dbgym.dbms.smoke import smoke

    smoke(backend=backend, echo=typer.echo)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the top-level `dbgym` app."""
    app.command("doctor")(doctor_cmd)
    app.command("clean")(clean_cmd)
    app.add_typer(instance_app, name="instance")
    register_docker(app)
