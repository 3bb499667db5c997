"""SQL-file sources, benchmark delegation, templatizer rules, and `dbgym workload inspect`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dbgym import Workload, _core
from dbgym.errors import TraceParseError

DATA = Path(__file__).resolve().parent.parent / "rust" / "trace" / "testdata"


def test_sql_directory_in_natural_order(tmp_path: Path) -> None:
    (tmp_path / "2.sql").write_text("select * from t where a = 1;\nselect * from t where a = -2;\n")
    (tmp_path / "10.sql").write_text(
        "-- q10\ncreate function f() returns int as $$ select 1; $$ language sql"
    )
    (tmp_path / "1.sql").write_text("SELECT * FROM t WHERE a = 'x;y'")
    (tmp_path / "README.txt").write_text("not sql")
    w = Workload.from_sql(tmp_path)
    assert [w.statement(i).sql for i in range(len(w))] == [
        "SELECT * FROM t WHERE a = 'x;y'",
        "select * from t where a = 1",
        "select * from t where a = -2",
        "-- q10\ncreate function f() returns int as $$ select 1; $$ language sql",
    ]
    assert [(t.text, t.count) for t in w.templates()] == [
        ("select * from t where a = $1", 3),
        ("create function f() returns int as $1 language sql", 1),
    ]
    assert len(w.sessions) == 1
    assert w.constants(2) == ["-2"]


def test_sql_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "q.sql").write_text("select 1;\nselect 'open\n")
    with pytest.raises(TraceParseError, match=r"q.sql:2: byte offset 17: unterminated ' quote"):
        Workload.from_sql(tmp_path / "q.sql")
    (tmp_path / "q.sql").write_text("select 1;\n\\timing on\n")
    with pytest.raises(TraceParseError, match="psql meta-commands"):
        Workload.from_sql(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TraceParseError, match=r"no \*.sql files"):
        Workload.from_sql(empty)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SELECT * FROM t1 WHERE x = 5", "select *\n  from T1\n where x=-5.5e3"),
        ("select * from t where s = 'it''s'", "select * from t where s = E'it\\'s'"),
        ("select * from t where a = $1 and b = $2", "select * from t where a = 1 and b = NULL"),
        ("select a - 1 from t", "select a-1 from t"),
        ("begin;", "BEGIN"),
        ("select 1 /* hint */ from t -- c", "select 2 from t"),
    ],
)
def test_same_template(a: str, b: str) -> None:
    assert _core.templatize(a)[0] == _core.templatize(b)[0]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("select a from t1", "select a from t2"),
        ("select a from t where x = 1", "select a from t where x < 1"),
        ("select a from t where x is null", "select a from t where x = 1"),
        ('select "A" from t', 'select "a" from t'),
        ("select a - 1 from t", "select a, -1 from t"),
    ],
)
def test_different_template(a: str, b: str) -> None:
    assert _core.templatize(a)[0] != _core.templatize(b)[0]


def test_benchmark_delegates_to_the_benchmarks_package() -> None:
    w = Workload.benchmark("pgbench", script="select-only", scale=1, clients=2, transactions=5)
    assert len(w) == 10
    assert w.source == "benchmark:pgbench"
    assert w.spec is not None and w.spec.to_dict()["params"]["clients"] == 2
    assert len(w.templates()) >= 1


def test_inspect_cli(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dbgym",
            "workload",
            "inspect",
            str(DATA / "pg15.csv"),
            "--top",
            "3",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "csvlog" in out.stdout
    assert "66" in out.stdout
    assert "top 3 templates" in out.stdout
    assert "insert into pgbench_tellers" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "dbgym", "workload", "inspect", str(tmp_path / "missing.csv")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "file not found" in bad.stderr


def test_inspect_functions() -> None:
    from dbgym.workload.describe import load_source, summarize

    s = summarize(load_source(DATA / "pg15.log"), top=2)
    assert (s.format, s.statements, s.sessions, s.templates) == ("stderr", 66, 8, 39)
    assert s.top[0].count == 10
    assert s.with_duration == 65
