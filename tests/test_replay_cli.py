"""`dbgym workload replay` end to end: a SQL source replayed against a real server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import dbgym
from dbgym.errors import WorkloadError
from dbgym.replayer.cli import parse_settings, replay_source

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
    assert "3 statements" in out and "1 errors" in out and "22012: 1" in out, out
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
    with pytest.raises(WorkloadError, match="TEMPLATE_ID:NAME=VALUE"):
        parse_settings(["enable_hashjoin=off"])
