"""CLI commands for PostgreSQL instances: doctor, clean, docker build-image."""

from __future__ import annotations

import typer

from dbgym.dbms.docker_cli import register_docker


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the top-level `dbgym` app."""
    register_docker(app)
