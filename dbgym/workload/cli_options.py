"""Command-line options shared by the workload commands (`inspect`, `replay`)."""

from __future__ import annotations

from typing import Annotated

import typer

LogFormat = Annotated[
    str | None, typer.Option(help="stderr | csvlog | jsonlog (default: detected)")
]
LogLinePrefix = Annotated[
    str | None, typer.Option(help="The server's log_line_prefix (stderr logs)")
]
Lenient = Annotated[bool, typer.Option(help="Skip and count malformed lines")]
Top = Annotated[int, typer.Option(help="How many templates to list")]
