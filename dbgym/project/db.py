"""The project database: connections, migrations, and writes that never see "locked".

- `connect(path)`: WAL journal, foreign keys on, `synchronous=NORMAL` (durable at each
  checkpoint; a crash loses no committed transaction of a WAL database but the last
  ones on power loss), a busy timeout, rows as `sqlite3.Row`, autocommit mode (each write
  is its own `BEGIN IMMEDIATE` transaction through `write`).
- `migrate(path)`: brings the database to `schema.SCHEMA_VERSION` under a cross-process
  lock (`fcntl.flock` on `db/.migrate.lock`), each migration in one transaction. The
  version is read first through a read-only connection: a database from a newer dbgym is
  refused with `ProjectVersionError` and never written to.
- `write(conn, fn)` / `retry(fn)`: SQLite's busy timeout covers most contention; what is
  left ("database is locked" at BEGIN, SQLITE_BUSY on a WAL snapshot upgrade) is retried
  with backoff for up to `LOCK_BUDGET` seconds, then raised as a ProjectError that says
  which database and for how long, never as a bare sqlite3.OperationalError.

Times are timezone-aware ISO 8601 UTC strings (`utc_now()`), not the deprecated sqlite3
datetime adapters.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from dbgym.errors import ProjectError, ProjectVersionError
from dbgym.project.schema import MIGRATIONS

T = TypeVar("T")

#: Seconds SQLite itself waits on a lock (per statement).
BUSY_TIMEOUT = 10.0
#: Seconds `retry` keeps retrying a locked database before giving up.
LOCK_BUDGET = 120.0


def utc_now() -> str:
    """Now, as a timezone-aware ISO 8601 UTC string."""
    return datetime.now(timezone.utc).isoformat()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def retry(fn: Callable[[], T], *, what: str = "the project database") -> T:
    """`fn()`, retried with jittered backoff while SQLite says the database is locked or
    busy, for up to LOCK_BUDGET seconds (then a ProjectError)."""
    deadline = time.monotonic() + LOCK_BUDGET
    delay = 0.005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise ProjectError(f"{what}: {exc}") from exc
            if time.monotonic() >= deadline:
                raise ProjectError(
                    f"{what} stayed locked for {LOCK_BUDGET:g} s ({exc}); another process "
                    "holds a write transaction open"
                ) from exc
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.2)


def connect(path: str | os.PathLike[str], *, timeout: float = BUSY_TIMEOUT) -> sqlite3.Connection:
    """A configured connection to the project database at `path` (see the module docstring).
    The database must exist and be migrated (`migrate`)."""

    def open_() -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    return retry(open_, what=f"the project database {path}")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (`BEGIN IMMEDIATE` ... COMMIT, rolled back on any error,
    a failed COMMIT included, so the connection is never left inside a transaction)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def write(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """`fn(conn)` in one write transaction, retried as a whole while the database is locked."""

    def attempt() -> T:
        with transaction(conn):
            return fn(conn)

    return retry(attempt)


def read_version(path: Path) -> int:
    """The schema version of the database at `path` (0: missing or empty), read through a
    read-only connection (nothing is written)."""
    if not path.exists() or path.stat().st_size == 0:
        return 0

    def read() -> int:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
        try:
            has = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()
            if has is None:
                tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if tables:
                    raise ProjectError(
                        f"{path} is an SQLite database but not a dbgym project database (no "
                        "schema_version table)"
                    )
                return 0
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            return int(row[0] or 0)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                raise
            raise ProjectError(f"{path} is not a readable project database: {exc}") from exc
        finally:
            conn.close()

    return retry(read, what=f"the project database {path}")


def _journal_mode(path: Path) -> str:
    conn = connect(path)
    try:
        row = retry(lambda: conn.execute("PRAGMA journal_mode").fetchone())
        return str(row[0]).lower()
    finally:
        conn.close()


def _refuse_newer(path: Path, version: int, known: int) -> None:
    if version > known:
        raise ProjectVersionError(
            f"the project database {path} has schema version {version}, written by a newer "
            f"dbgym; this dbgym knows versions up to {known}. Upgrade dbgym to open it (the "
            "database was not changed)"
        )


@contextlib.contextmanager
def migration_lock(db_folder: Path) -> Iterator[None]:
    """The cross-process lock every migration runs under (flock on db/.migrate.lock)."""
    lock_path = db_folder / ".migrate.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def migrate(path: Path, migrations: Sequence[Sequence[str]] = MIGRATIONS) -> int:
    """Bring the database at `path` to version len(migrations) (see the module docstring);
    returns the version it had before."""
    known = len(migrations)
    version = read_version(path)
    _refuse_newer(path, version, known)
    if version == known and _journal_mode(path) == "wal":
        return version
    with migration_lock(path.parent):
        version = read_version(path)  # another process may have migrated meanwhile
        _refuse_newer(path, version, known)
        conn = connect(path)
        if version == known:
            try:  # a copied or restored database may come in another journal mode
                retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            finally:
                conn.close()
            return version
        try:
            retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            for target in range(version + 1, known + 1):
                statements = migrations[target - 1]

                def apply(
                    c: sqlite3.Connection,
                    statements: Sequence[str] = statements,
                    target: int = target,
                ) -> None:
                    if target == 1:
                        c.execute(
                            "CREATE TABLE IF NOT EXISTS schema_version ("
                            "version INTEGER PRIMARY KEY, applied TEXT NOT NULL)"
                        )
                    for sql in statements:
                        c.execute(sql)
                    c.execute(
                        "INSERT INTO schema_version (version, applied) VALUES (?, ?)",
                        (target, utc_now()),
                    )

                write(conn, apply)
        finally:
            conn.close()
    return version
