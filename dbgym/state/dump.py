"""Restoring pg_dump output (custom, directory, tar or plain SQL) and copying live databases.

Custom/directory/tar dumps go through `pg_restore --no-owner --no-privileges --exit-on-error`
(parallel for custom and directory), plain SQL through `psql -v ON_ERROR_STOP=1`; ANALYZE
follows. A live database is copied by `pg_dump -Fc` into a temp file, then restored.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

import psycopg

import dbgym.redact as redact
from dbgym.dbms.client_tools import conninfo_and_env, find_client, run_streaming
from dbgym.errors import WorkloadError
from dbgym.progress import ProgressFn
from dbgym.state.report import LoadReport
from dbgym.types import Target, target_dsn

_RESTORE_ITEM = re.compile(r"^pg_restore: (creating|processing data|processing item|executing)")


def dump_format(path: Path) -> str:
    """ "directory", "custom", "tar" or "plain" (WorkloadError if `path` is not a dump)."""
    if path.is_dir():
        if not (path / "toc.dat").is_file():
            raise WorkloadError(f"{path} is a directory but not a pg_dump directory (no toc.dat)")
        return "directory"
    if not path.is_file():
        raise WorkloadError(f"dump {path} does not exist")
    with path.open("rb") as f:
        head = f.read(512)
    if head.startswith(b"PGDMP"):
        return "custom"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head[:2] == b"\x1f\x8b":
        raise WorkloadError(f"{path} is gzip-compressed: decompress it first (gunzip)")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at byte 512 is fine; anything else is not SQL text.
        if b"\x00" in head:
            raise WorkloadError(f"{path} is neither a pg_dump archive nor SQL text") from None
    return "plain"


@redact.scrubs("target")
def restore_dump(
    target: Target,
    path: Path | str,
    *,
    bin_dir: Path | str | None = None,
    jobs: int = 2,
    on_progress: ProgressFn | None = None,
) -> LoadReport:
    """Restores the dump at `path` into the database of `target` (a DSN, or anything with a
    `.dsn`), then runs ANALYZE; `on_progress(done, totals)` is called as it goes."""
    dsn = target_dsn(target)
    path = Path(path)
    fmt = dump_format(path)
    conninfo, env = conninfo_and_env(dsn)
    report = LoadReport()
    t0 = time.perf_counter()
    if fmt == "plain":
        psql = find_client("psql", bin_dir)
        if on_progress is not None:
            on_progress({"restore": 0}, {"restore": 1})
        run_streaming(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-f", path],
            what=f"psql -f {path}",
            env=env,
        )
        if on_progress is not None:
            on_progress({"restore": 1}, {"restore": 1})
    else:
        pg_restore = find_client("pg_restore", bin_dir)
        listing = run_streaming([pg_restore, "-l", path], what=f"pg_restore -l {path}", keep=None)
        total = sum(1 for line in listing if line and not line.startswith(";"))
        done = 0

        def on_line(line: str) -> None:
            nonlocal done
            if _RESTORE_ITEM.match(line):
                done += 1
                if on_progress is not None:
                    on_progress({"restore": done}, {"restore": max(total, done)})

        argv: list[str | Path] = [
            pg_restore,
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--verbose",
            "-d",
            conninfo,
        ]
        if fmt in ("custom", "directory") and jobs > 1:
            argv += ["-j", str(jobs)]
        run_streaming([*argv, path], what=f"pg_restore {path}", on_line=on_line, env=env)
        if on_progress is not None:
            on_progress({"restore": max(total, done)}, {"restore": max(total, done)})
    report.seconds["restore"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")
    report.seconds["analyze"] = time.perf_counter() - t0
    return report


@redact.scrubs("source_dsn", "target_dsn")
def copy_database(
    source_dsn: str,
    target_dsn: str,
    *,
    bin_dir: Path | str | None = None,
    on_progress: ProgressFn | None = None,
) -> LoadReport:
    """Copies the database of `source_dsn` into that of `target_dsn` (pg_dump + pg_restore)."""
    pg_dump = find_client("pg_dump", bin_dir)
    conninfo, env = conninfo_and_env(source_dsn)
    tmp = Path(tempfile.mkdtemp(prefix="dbgym-dump-"))
    try:
        dump = tmp / "db.dump"
        t0 = time.perf_counter()
        if on_progress is not None:
            on_progress({"dump": 0}, {"dump": 1})
        run_streaming(
            [pg_dump, "-Fc", "--no-owner", "--no-privileges", "-f", dump, "-d", conninfo],
            what="pg_dump of the source database",
            env=env,
        )
        if on_progress is not None:
            on_progress({"dump": 1}, {"dump": 1})
        dumped = time.perf_counter() - t0
        report = restore_dump(target_dsn, dump, bin_dir=bin_dir, on_progress=on_progress)
        report.seconds["dump"] = dumped
        return report
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
