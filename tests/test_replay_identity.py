"""Replay with each session's logged user and database (identity="logged").

A logging server runs sessions as two roles in three databases; its csvlog is replayed
into a PostgresInstance that has the roles (with the DSN's password) and one of the
databases but not the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

import dbgym
from dbgym.errors import InvalidArgumentError
from dbgym.replayer.cli import replay_source
from tests.trace_server import LoggingServer

RECORD = [
    "CREATE TABLE IF NOT EXISTS seen (u text, d text)",
    "INSERT INTO seen VALUES (current_user, current_database())",
]


def _setup(conninfo: str, password: str | None, with_ghost: bool) -> None:
    pw = f" PASSWORD '{password}'" if password else ""
    # Startup options are not logged: the setup stays out of the trace.
    quiet = "-c log_statement=none -c log_min_duration_statement=-1"
    with psycopg.connect(conninfo, autocommit=True, options=quiet) as c:
        for role in ("alice", "bob"):
            c.execute(f"CREATE ROLE {role} LOGIN{pw}".encode())
        c.execute(b"GRANT CREATE ON SCHEMA public TO bob")
        c.execute(b"CREATE DATABASE db2 OWNER alice")
        if with_ghost:
            c.execute(b"CREATE DATABASE ghost OWNER alice")


@pytest.fixture(scope="module")
def log() -> Iterator[Path]:
    with LoggingServer() as srv:
        _setup(srv.conninfo, None, with_ghost=True)
        base = srv.conninfo.replace("user=postgres dbname=postgres", "")
        for user, db, stmts in (
            ("bob", "postgres", RECORD),
            ("alice", "db2", RECORD),
            ("alice", "ghost", ["SELECT 1", "SELECT 2", "SELECT 3"]),
        ):
            with psycopg.connect(f"{base} user={user} dbname={db}", autocommit=True) as c:
                for s in stmts:
                    c.execute(s.encode())
        srv.stop()
        yield srv.log("csvlog")


@pytest.fixture()
def target() -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch() as inst:
        _setup(inst.dsn, str(conninfo_to_dict(inst.dsn)["password"]), with_ghost=False)
        yield inst


def _rows(inst: dbgym.PostgresInstance, db: str) -> list[tuple[str, str]]:
    with psycopg.connect(inst.dsn, dbname=db, autocommit=True) as c:
        exists = c.execute("SELECT to_regclass('seen') IS NOT NULL").fetchone()
        if not (exists and exists[0]):
            return []
        return [(str(u), str(d)) for u, d in c.execute("SELECT u, d FROM seen ORDER BY u")]


@pytest.mark.parametrize("speed", [None, 0.05])
def test_sessions_log_in_as_logged(
    log: Path, target: dbgym.PostgresInstance, speed: float | None
) -> None:
    """speed=0.05 stretches the log 20x, so later sessions start (and log in) while the
    replay runs, not before its clock starts."""
    w = dbgym.Workload.from_log(log)
    logins = {(s.user, s.database) for s in w.sessions}
    assert {("bob", "postgres"), ("alice", "db2"), ("alice", "ghost")} <= logins
    r = dbgym.replay(target, w, speed=speed, identity="logged")
    ghost = np.array([w.sessions[int(s)].database == "ghost" for s in w.session_ids()])
    # The target has no database "ghost": each of its session's statements gets the refusal
    # (from one refused login, not one per statement); the rest run.
    assert r.sqlstate[ghost].tolist() == [b"3D000"] * 3
    assert (r.sqlstate[~ghost] == b"").all(), r.sqlstate
    assert _rows(target, "postgres") == [("bob", "postgres")]
    assert _rows(target, "db2") == [("alice", "db2")]


def test_default_identity_is_the_dsn(log: Path, target: dbgym.PostgresInstance) -> None:
    info = conninfo_to_dict(target.dsn)
    with psycopg.connect(target.dsn, autocommit=True) as c:
        # Both sessions now write to this one table; created up front so their concurrent
        # CREATE TABLE IF NOT EXISTS do not race.
        c.execute(RECORD[0])
    r = dbgym.replay(target, dbgym.Workload.from_log(log), speed=None)
    assert r.ok.all(), r.sqlstate
    who = (str(info["user"]), str(info["dbname"]))
    assert _rows(target, who[1]) == [who, who]
    assert _rows(target, "db2") == []


def test_logged_identity_through_the_cli_entry_point(
    log: Path, target: dbgym.PostgresInstance
) -> None:
    _, r = replay_source(log, target.dsn, speed=None, identity="logged")
    assert int((r.sqlstate == b"3D000").sum()) == 3
    assert _rows(target, "db2") == [("alice", "db2")]


def test_logged_identity_needs_a_connection_per_session(
    log: Path, target: dbgym.PostgresInstance
) -> None:
    w = dbgym.Workload.from_log(log)
    with pytest.raises(
        InvalidArgumentError, match=r"logged identity .* needs one connection per session"
    ):
        dbgym.replay(target, w, speed=None, concurrency=2, identity="logged")
    with pytest.raises(InvalidArgumentError, match=r"identity must be 'dsn' or 'logged'"):
        dbgym.replay(target, w, speed=None, identity="nobody")  # type: ignore[arg-type]
