"""The `dbgym` command's one error handler: real commands, real failures, and the exit code
of dbgym.errors.EXIT_CODES (2 = invalid argument, 3 = a server or backend failed, 1 = any
other dbgym error, 130 = interrupted), with one `error: ...` line and no traceback."""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import dbgym
from dbgym import _core
from dbgym.cli import error_line
from dbgym.errors import ConnectError, DbgymError, exit_code
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
DBGYM = [sys.executable, "-m", "dbgym"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DBGYM, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def assert_error(out: subprocess.CompletedProcess[str], code: int, starts: str) -> None:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert out.stderr.startswith(f"error: {starts}"), out.stderr
    assert "Traceback" not in out.stderr, out.stderr


@pytest.fixture(scope="module")
def server() -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch() as inst:
        yield inst


@pytest.fixture
def sql_file(tmp_path: Path) -> Path:
    src = tmp_path / "w.sql"
    src.write_text("SELECT 1;\n")
    return src


# -- 2: the caller's mistake --------------------------------------------------------------


def test_an_option_value_typer_refuses_exits_2(sql_file: Path) -> None:
    out = run("workload", "replay", str(sql_file), "--dsn", "x", "--speed", "fast")
    assert out.returncode == 2, out.stderr
    assert "Invalid value for '--speed'" in out.stderr  # typer's own usage message


def test_an_option_value_dbgym_refuses_exits_2(sql_file: Path) -> None:
    out = run("workload", "replay", str(sql_file), "--dsn", "x", "--speed", "0")
    assert_error(out, 2, "speed must be a positive number or None, got 0.0")
    out = run("workload", "replay", str(sql_file), "--dsn", "x", "--setting", "hashjoin=off")
    assert_error(out, 2, "--setting 'hashjoin=off': expected TEMPLATE_ID:NAME=VALUE")


def test_a_missing_or_malformed_source_exits_2(tmp_path: Path) -> None:
    out = run("workload", "replay", str(tmp_path / "missing.log"), "--dsn", "x")
    assert_error(out, 2, f"{tmp_path / 'missing.log'}: no such file or directory")
    out = run("workload", "inspect", str(tmp_path / "missing.csv"))
    assert_error(out, 2, "")
    assert "missing.csv" in out.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("this is not a jsonlog\n")
    out = run("workload", "inspect", str(bad), "--format", "jsonlog")
    assert_error(out, 2, "")
    assert re.search(r"bad\.json(:1:| line 1)", out.stderr), out.stderr  # path and line


def test_unknown_names_exit_2(tmp_path: Path) -> None:
    assert_error(run("instance", "smoke", "--backend", "foo"), 2, "unknown backend 'foo'")
    cache = ["--cache-dir", str(tmp_path)]
    out = run("workload", "state", "build", "tpcc", *cache)
    assert_error(out, 2, "unknown benchmark 'tpcc'")
    assert_error(run("workload", "state", "clear", "nope", *cache), 2, "no such cached state: nope")
    assert_error(run("workload", "state", "clear", *cache), 2, "nothing to remove")


# -- 3: a server or its backend failed ----------------------------------------------------


def test_an_unreachable_docker_engine_exits_3() -> None:
    out = run(
        "instance", "smoke", "--backend", "docker",
        env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )  # fmt: skip
    assert_error(out, 3, "the Docker engine is not reachable")


def test_an_unreachable_server_exits_with_the_code_of_its_error(sql_file: Path) -> None:
    """What `dbgym.replay` raises for a server nobody listens on is what the command reports,
    with the code of its class in the one table (the password never shows)."""
    dsn = "postgresql://dbgym:s3cret-pw@127.0.0.1:1/postgres"
    with pytest.raises(DbgymError) as raised:
        dbgym.replay(dsn, _core.trace_from_statements(["a"], [0], ["SELECT 1"]), speed=None)
    assert isinstance(raised.value, ConnectError)  # an instance error: exit code 3
    out = run("workload", "replay", str(sql_file), "--dsn", dsn, "--fast")
    assert out.returncode == exit_code(raised.value) == 3, out.stderr
    assert out.stderr.strip() == error_line(raised.value)
    assert "s3cret-pw" not in out.stderr + out.stdout


def test_a_replay_whose_logins_are_refused_exits_3(server: dbgym.PostgresInstance) -> None:
    log = ROOT / "rust" / "trace" / "testdata" / "pg15.csv"  # sessions of role "postgres"
    out = run("workload", "replay", str(log), "--dsn", server.dsn, "--fast", "--logged-identity")
    assert_error(out, 3, "the server refused the logins")


# -- 1 and 130 ----------------------------------------------------------------------------


def test_a_replay_where_every_statement_fails_exits_1(
    server: dbgym.PostgresInstance, tmp_path: Path
) -> None:
    src = tmp_path / "bad.sql"
    src.write_text("SELECT 1/0;\n")
    out = run("workload", "replay", str(src), "--dsn", server.dsn, "--fast")
    assert_error(out, 1, "no statement succeeded")


def test_ctrl_c_exits_130(server: dbgym.PostgresInstance, tmp_path: Path) -> None:
    src = tmp_path / "slow.sql"
    src.write_text("SELECT pg_sleep(60);\n")
    app = "dbgym-cli-ctrl-c"
    dsn = server.dsn + "&application_name=" + app
    child = subprocess.Popen(
        [*DBGYM, "workload", "replay", str(src), "--dsn", dsn, "--fast"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def sleeping() -> bool:
        with psycopg.connect(server.dsn, autocommit=True) as c:
            row = c.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND query LIKE 'SELECT pg_sleep%%'",
                (app,),
            ).fetchone()
            return bool(row and row[0])

    try:
        wait_until(sleeping, 60, "the replay's statement to run")
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted", err
    assert "Traceback" not in err
    wait_until(lambda: not sleeping(), 30, "the cancelled statement to end")


# -- one handler --------------------------------------------------------------------------


def test_no_command_picks_its_own_exit_code() -> None:
    """Only dbgym/cli.py maps errors to exit codes: no other module catches DbgymError
    to echo it, or raises typer.Exit with a code."""
    offenders = []
    for path in sorted((ROOT / "dbgym").rglob("*.py")):
        if path == ROOT / "dbgym" / "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("typer.Exit", "Exit"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                caught = ast.unparse(node.type)
                in_cli = path.name.endswith("cli.py")
                if in_cli and "Error" in caught:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} except {caught}")
    assert offenders == []
