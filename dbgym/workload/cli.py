"""CLI commands for workloads: `dbgym workload inspect|replay`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the top-level `dbgym` app."""
