"""Finding and running PostgreSQL client programs (pgbench, pg_dump, pg_restore, psql)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import dbgym.redact as redact
from dbgym.dbms.binaries import search_dirs
from dbgym.errors import BackendUnavailableError, InvalidArgumentError, WorkloadError


def find_client(name: str, bin_dir: Path | str | None = None) -> Path:
    """Path of client program `name`: in the directories server binaries are looked for
    (`bin_dir`, `DBGYM_PG_BIN`, `pg_config --bindir`, the newest /usr/lib/postgresql/*/bin;
    see dbgym.dbms.binaries.search_dirs), else on PATH. BackendUnavailableError if none."""
    candidates = [d / name for d, _ in search_dirs(bin_dir)]
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise BackendUnavailableError(
        f"PostgreSQL client program {name!r} not found (looked in: "
        + ", ".join(str(c) for c in candidates)
        + "); install postgresql-client or set DBGYM_PG_BIN"
    )


def run_streaming(
    argv: Sequence[str | Path],
    *,
    what: str,
    on_line: Callable[[str], None] | None = None,
    stdin: int | None = None,
    env: dict[str, str] | None = None,
    keep: int | None = 20,
) -> list[str]:
    """Runs `argv`, feeding each stderr/stdout line to `on_line`; returns the last `keep`
    lines (all with `keep=None`).

    Raises WorkloadError naming `what` with the tail of the output when the program fails;
    on Ctrl-C (or any exception) the program is terminated before the exception propagates.
    """
    proc = subprocess.Popen(
        [str(a) for a in argv],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=env,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            if keep is not None and len(lines) > 2 * keep:
                del lines[:-keep]
            if on_line is not None:
                on_line(line)
        code = proc.wait()
    except BaseException:
        terminate(proc)
        raise
    if code != 0:
        raise WorkloadError(f"{what} failed (exit code {code}):\n  " + "\n  ".join(lines[-20:]))
    return lines if keep is None else lines[-keep:]


def terminate(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """Stops `proc` (SIGTERM, then SIGKILL after 5 s) and reaps it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def conninfo_and_env(dsn: str) -> tuple[str, dict[str, str]]:
    """`dsn` without its password (for a command line others can read in /proc) and an
    environment passing the password as PGPASSWORD instead. InvalidArgumentError (never
    quoting the password) if libpq cannot parse `dsn`."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        secret = redact.password_of(dsn)
        redact.scrub_exception(exc, secret)
        raise InvalidArgumentError(
            f"invalid connection string {redact.redact_dsn(dsn)!r}: "
            + redact.redact(str(exc).strip(), secret)
        ) from exc
    password = params.pop("password", None)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env
