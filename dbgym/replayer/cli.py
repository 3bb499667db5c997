"""`dbgym workload replay SOURCE --dsn DSN`: replay a log or SQL source and print a summary.

The command is a thin wrapper over `replay_source`, which tests call directly. It exits
non-zero when the server went away during the replay or no statement succeeded
(`replay_failure`: 3 when the server went away or refused the logins, 1 when every
statement failed otherwise; errors go through the one handler in dbgym/cli.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import dbgym._core as _core
from dbgym.errors import (
    ConnectError,
    DbgymError,
    InvalidArgumentError,
    ServerCrashedError,
    WorkloadError,
)
from dbgym.replayer.run import Identity, ReplayResult, ReplaySummary, replay
from dbgym.workload.cli_options import Lenient, LogFormat, LogLinePrefix, Top


def load_trace(
    source: Path,
    format: str | None = None,
    log_line_prefix: str | None = None,
    lenient: bool = False,
) -> _core.Trace:
    """A server log (stderr/csvlog/jsonlog), a .sql file or a directory of them."""
    from dbgym.workload.describe import load_source

    if not source.exists():
        raise InvalidArgumentError(f"{source}: no such file or directory")
    w = load_source(source, format=format, log_line_prefix=log_line_prefix, lenient=lenient)
    return w.trace


def parse_settings(specs: list[str]) -> dict[int, dict[str, str]]:
    """`TEMPLATE_ID:NAME=VALUE` items into {template_id: {name: value}}."""
    out: dict[int, dict[str, str]] = {}
    for spec in specs:
        tid, sep, rest = spec.partition(":")
        name, eq, value = rest.partition("=")
        if not (sep and eq and tid.strip().isdigit() and name.strip()):
            raise InvalidArgumentError(
                f"--setting {spec!r}: expected TEMPLATE_ID:NAME=VALUE, e.g. 3:enable_hashjoin=off"
            )
        out.setdefault(int(tid), {})[name.strip()] = value.strip()
    return out


def replay_source(
    source: Path,
    dsn: str,
    *,
    speed: float | None = 1.0,
    concurrency: int | None = None,
    statement_timeout: float | None = None,
    settings: list[str] | None = None,
    format: str | None = None,
    log_line_prefix: str | None = None,
    lenient: bool = False,
    progress: bool | None = None,
    identity: Identity = "dsn",
) -> tuple[_core.Trace, ReplayResult]:
    trace = load_trace(source, format=format, log_line_prefix=log_line_prefix, lenient=lenient)
    result = replay(
        dsn,
        trace,
        speed=speed,
        concurrency=concurrency,
        statement_timeout=statement_timeout,
        template_settings=parse_settings(settings or []),
        progress=progress,
        identity=identity,
    )
    return trace, result


def render(trace: _core.Trace, result: ReplayResult, top: int = 10) -> ReplaySummary:
    """Prints the summary and the `top` most frequent templates (with their text);
    returns the summary."""
    from rich.console import Console
    from rich.table import Table

    s = result.summary()
    console = Console()
    console.print(s.text(top=0), markup=False, highlight=False)
    texts = {tid: text for tid, text, _ in trace.templates()}
    table = Table("template", "ok", "p50 ms", "p95 ms", "p99 ms", "max ms", "text")
    ranked = s.top(top)
    for tid, st in ranked:
        text = texts.get(tid, "")
        table.add_row(
            str(tid),
            str(st.count),
            f"{st.p50_ms:.3f}",
            f"{st.p95_ms:.3f}",
            f"{st.p99_ms:.3f}",
            f"{st.max_ms:.3f}",
            text if len(text) <= 60 else text[:57] + "...",
        )
    if ranked:
        console.print(table)
    return s


def replay_failure(s: ReplaySummary) -> DbgymError | None:
    """The error `dbgym workload replay` exits with, or None: the server went away during
    the replay (ServerCrashedError: the figures are not a measurement of that server), or
    statements ran and none succeeded, because the server refused the logins (ConnectError)
    or for other reasons (WorkloadError)."""
    done = f"{s.succeeded} of {s.statements} statements succeeded"
    if s.server_gone:
        return ServerCrashedError(
            f"the server went away during the replay: {s.connection_lost} statements failed "
            f"on a lost or refused connection; {done}"
        )
    if s.statements == 0 or s.succeeded > 0:
        return None
    if s.logins_failed:
        return ConnectError(
            f"the server refused the logins: {s.login_refused} statements of sessions it "
            f"did not let in; {done}"
        )
    return WorkloadError(f"no statement succeeded: {done}")


def register_replay(group: typer.Typer) -> None:
    @group.command("replay")
    def replay_cmd(
        source: Annotated[Path, typer.Argument(help="A server log, a .sql file or a directory")],
        dsn: Annotated[str, typer.Option(help="Target server (libpq URI or key=value)")],
        speed: Annotated[
            float, typer.Option(help="1.0 = logged timing, 2.0 = twice as fast")
        ] = 1.0,
        fast: Annotated[bool, typer.Option("--fast", help="As fast as possible")] = False,
        concurrency: Annotated[
            int | None, typer.Option(help="At most this many connections")
        ] = None,
        statement_timeout: Annotated[
            float | None, typer.Option(help="Seconds, SET on every connection")
        ] = None,
        setting: Annotated[
            list[str] | None,
            typer.Option(help="TEMPLATE_ID:NAME=VALUE, SET LOCAL for that template (repeatable)"),
        ] = None,
        logged_identity: Annotated[
            bool,
            typer.Option(
                "--logged-identity",
                help="Connect each session as its logged user to its logged database "
                "(with the DSN's password); default: the DSN's user and database",
            ),
        ] = False,
        format: LogFormat = None,
        log_line_prefix: LogLinePrefix = None,
        lenient: Lenient = False,
        top: Top = 10,
    ) -> None:
        """Replay a workload against a server and print throughput, latency and lag.

        Exits non-zero (3) when the server went away or refused every login, and (1) when
        no statement succeeded otherwise."""
        trace, result = replay_source(
            source,
            dsn,
            speed=None if fast else speed,
            concurrency=concurrency,
            statement_timeout=statement_timeout,
            settings=setting,
            format=format,
            log_line_prefix=log_line_prefix,
            lenient=lenient,
            identity="logged" if logged_identity else "dsn",
        )
        error = replay_failure(render(trace, result, top=top))
        if error is not None:
            raise error
