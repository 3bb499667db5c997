"""`dbgym workload replay` end to end: a SQL source replayed against a real server; the exit
code when the server goes away, refuses the logins, or every statement fails."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import dbgym
from dbgym.errors import (
    EXIT_CODES,
    ConnectError,
    InvalidArgumentError,
    ServerCrashedError,
    WorkloadError,
)
from dbgym.replayer.cli import parse_settings, replay_source
from tests.conftest import Faults

TESTDATA = Path(__file__).resolve().parent.parent / "rust" / "trace" / "testdata"

DBGYM = [sys.executable, "-m", "dbgym"]


@pytest.fixture(scope="module")
def server() -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch() as inst:
        yield inst


def test_replay_source_runs_a_sql_file(server: dbgym.PostgresInstance, tmp_path: Path) -> None:
    src = tmp_path / "w.sql"
    src.write_text("SELECT 1;\nSELECT 2;\nSELECT 1/0;\nSELECT current_setting('work_mem');\n")
    trace, r = replay_source(src, server.dsn, speed=None, progress=False)
    assert len(trace) == len(r) == 4
    assert [c.decode() for c in r.sqlstate] == ["", "", "22012", ""]


def test_cli_prints_the_summary(server: dbgym.PostgresInstance, tmp_path: Path) -> None:
    src = tmp_path / "w.sql"
    src.write_text("SELECT 1;\nSELECT 2;\nSELECT 1/0;\n")
    args = [*DBGYM, "workload", "replay", str(src), "--dsn", server.dsn, "--fast"]
    args += ["--setting", "0:enable_hashjoin=off"]
    out = subprocess.run(
        args,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "3 statements" in out and "2 succeeded" in out and "1 failed" in out, out
    assert "22012: 1" in out
    assert "select $1" in out


def test_cli_bad_input_exits_with_a_message(tmp_path: Path) -> None:
    run = subprocess.run(
        [*DBGYM, "workload", "replay", str(tmp_path / "missing.log"), "--dsn", "postgresql://x@/x"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "missing.log: no such file or directory" in run.stderr


def test_parse_settings() -> None:
    assert parse_settings(["3:enable_hashjoin=off", "3:work_mem=64MB", "1:a.b= x "]) == {
        3: {"enable_hashjoin": "off", "work_mem": "64MB"},
        1: {"a.b": "x"},
    }
    with pytest.raises(InvalidArgumentError, match="TEMPLATE_ID:NAME=VALUE"):
        parse_settings(["enable_hashjoin=off"])


def code_of(cls: type[BaseException]) -> int:
    return next(code for c, code in EXIT_CODES if issubclass(cls, c))


def test_cli_fails_when_every_statement_fails(
    server: dbgym.PostgresInstance, tmp_path: Path
) -> None:
    src = tmp_path / "w.sql"
    src.write_text("SELECT 1/0;\nSELECT * FROM no_such_table;\n")
    run = subprocess.run(
        [*DBGYM, "workload", "replay", str(src), "--dsn", server.dsn, "--fast"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == code_of(WorkloadError) == 1, run.stderr
    assert "2 statements" in run.stdout and "0 succeeded (0.0/s)" in run.stdout
    assert run.stderr.strip() == "error: no statement succeeded: 0 of 2 statements succeeded"


def test_cli_fails_when_the_server_refuses_every_login(
    server: dbgym.PostgresInstance,
) -> None:
    # The log's sessions ran as role "postgres", which this server does not have.
    log = TESTDATA / "pg15.csv"
    args = [*DBGYM, "workload", "replay", str(log), "--dsn", server.dsn, "--fast"]
    run = subprocess.run([*args, "--logged-identity"], capture_output=True, text=True)
    assert run.returncode == code_of(ConnectError) == 3, run.stderr
    assert "0 succeeded (0.0/s)" in run.stdout and "logins failed" in run.stdout
    assert run.stderr.startswith("error: the server refused the logins: 66 statements"), run.stderr


def test_cli_fails_when_the_server_is_killed_mid_replay(faults: Faults, tmp_path: Path) -> None:
    n = 600
    src = tmp_path / "w.sql"
    src.write_text("INSERT INTO done SELECT 1 FROM pg_sleep(0.005);\n" * n)
    with dbgym.PostgresInstance.launch() as inst:
        with inst.connect(autocommit=True) as c:
            c.execute("CREATE TABLE done (x int)")

        def done() -> int:
            with psycopg.connect(inst.dsn, connect_timeout=5) as c:
                row = c.execute("SELECT count(*) FROM done").fetchone()
                return int(row[0]) if row else 0

        kill = faults.when(lambda: done() >= 50, lambda: faults.kill_server(inst), "50 rows")
        run = subprocess.run(
            [*DBGYM, "workload", "replay", str(src), "--dsn", inst.dsn, "--fast"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        kill.join()
    assert run.returncode == code_of(ServerCrashedError) == 3, run.stderr
    m = re.search(r"(\d+) statements in ([\d.]+) s: (\d+) succeeded \(([\d.]+)/s\)", run.stdout)
    assert m is not None, run.stdout
    ran, seconds, ok, rate = int(m[1]), float(m[2]), int(m[3]), float(m[4])
    assert ran == n and 50 <= ok < n
    assert rate == pytest.approx(ok / seconds, rel=0.01, abs=0.1)  # successes only
    assert "the server went away" in run.stdout
    assert run.stderr.startswith("error: the server went away during the replay"), run.stderr
