"""Errors raised by the Rust extension (dbgym._core): the dbgym.errors classes with their
structured attributes, and connection errors that name the target but never the password.

Connection cases run against a real PostgreSQL server (a wrong password, database and port).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import dbgym
from dbgym import _core
from dbgym.errors import (
    ConnectError,
    InstanceError,
    InvalidArgumentError,
    PlanCatalogError,
    PlanFormatError,
    TraceParseError,
)

DATA = Path(__file__).resolve().parent.parent / "rust" / "trace" / "testdata"


@pytest.fixture(scope="module")
def server() -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch() as inst:
        yield inst


def _trace() -> _core.Trace:
    return _core.trace_from_statements(["s"], [0], ["SELECT 1"])


def _with(dsn: str, **changes: Any) -> str:
    params = {k: v for k, v in conninfo_to_dict(dsn).items() if v is not None}
    params.update(changes)
    return make_conninfo("", **params)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _replay_error(dsn: str) -> ConnectError:
    handle = _core.replay_start(_trace(), dsn, speed=None)
    with pytest.raises(ConnectError) as caught:
        handle.result()
    return caught.value


def _everything_said(e: BaseException) -> str:
    """Every text an error carries: its message, args and attributes."""
    return " | ".join([str(e), repr(e.args), *(repr(v) for v in vars(e).values())])


def _assert_secret_free(e: BaseException, *secrets: str) -> None:
    said = _everything_said(e)
    for secret in secrets:
        assert secret not in said, said


def test_wrong_password_names_the_target_and_sqlstate(server: dbgym.PostgresInstance) -> None:
    real = conninfo_to_dict(server.dsn)
    wrong = "Wr0ng-Passw0rd-xyz"
    e = _replay_error(_with(server.dsn, password=wrong))
    assert isinstance(e, InstanceError)
    assert (e.host, e.port, e.user, e.database) == (
        real["host"],
        int(str(real["port"])),
        real["user"],
        real["dbname"],
    )
    assert e.sqlstate == "28P01"
    text = str(e)
    assert text.startswith("cannot connect to the replay target (host "), text
    assert f"port {real['port']}, user {real['user']}, database {real['dbname']}" in text
    assert "SQLSTATE 28P01" in text
    assert f'password authentication failed for user "{real["user"]}"' in text
    assert "db error" not in text
    _assert_secret_free(e, wrong, str(real["password"]))


def test_wrong_database_names_it(server: dbgym.PostgresInstance) -> None:
    real = conninfo_to_dict(server.dsn)
    e = _replay_error(_with(server.dsn, dbname="no_such_db_42"))
    assert e.database == "no_such_db_42"
    assert e.sqlstate == "3D000"
    assert 'database "no_such_db_42" does not exist' in str(e)
    _assert_secret_free(e, str(real["password"]))


def test_wrong_port_says_the_connection_was_refused(server: dbgym.PostgresInstance) -> None:
    real = conninfo_to_dict(server.dsn)
    port = _free_port()
    e = _replay_error(_with(server.dsn, port=str(port)))
    assert e.port == port
    assert e.host == real["host"]
    assert e.sqlstate is None
    text = str(e)
    assert f"port {port}" in text
    assert "error connecting to server" in text and "refused" in text.lower(), text
    _assert_secret_free(e, str(real["password"]))


def test_tpch_loader_connect_error_is_named_and_secret_free(
    server: dbgym.PostgresInstance,
) -> None:
    wrong = "An0ther-Wr0ng-pw"
    gen = _core.TpchGenerator(0.001, 1)
    with pytest.raises(ConnectError) as caught:
        gen.load_start(_with(server.dsn, password=wrong), tables=["region"]).result()
    assert caught.value.sqlstate == "28P01"
    assert str(caught.value).startswith("cannot connect for loading (host ")
    _assert_secret_free(caught.value, wrong, str(conninfo_to_dict(server.dsn)["password"]))


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:T0pSecret%zz@h:notaport/db",
        "postgresql://u:T0pSecret@h:notaport/db",
        "postgresql://h/db?password=T0pSecret&port=notaport",
        "host=h port=notaport password=T0pSecret",
        "host=h port=notaport password='T0p Secret'",
    ],
)
def test_unparsable_dsn_is_a_caller_mistake_without_its_password(dsn: str) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid DSN") as caught:
        _core.replay_start(_trace(), dsn)
    assert "***" in str(caught.value)
    _assert_secret_free(caught.value, "T0pSecret", "T0p Secret")
    with pytest.raises(InvalidArgumentError, match="invalid DSN") as caught:
        _core.TpchGenerator(0.001, 1).load_start(dsn).result()
    _assert_secret_free(caught.value, "T0pSecret", "T0p Secret")


def test_trace_parse_error_carries_path_line_and_offset(tmp_path: Path) -> None:
    log = tmp_path / "bad.csv"
    good = (DATA / "pg15.csv").read_bytes()
    first_line_end = good.index(b"\n") + 1
    log.write_bytes(good[:first_line_end] + b'2026-11-22 02:19:39.684 UTC,"u\n')
    with pytest.raises(TraceParseError) as caught:
        _core.parse_log_start(log).result()
    e = caught.value
    assert e.path == str(log)
    assert e.line == 2
    assert e.offset is not None and e.offset >= first_line_end
    assert str(e).startswith(f"{log}:2: byte offset {e.offset}: ")
    # a csvlog forced as jsonlog says what it expected
    with pytest.raises(TraceParseError) as caught:
        _core.parse_log_start(DATA / "pg15.csv", format="jsonlog").result()
    assert (caught.value.line, caught.value.offset) == (1, 0)
    assert "not a jsonlog record" in str(caught.value)
    assert "csvlog" in str(caught.value)
    assert "struct" not in str(caught.value)
    with pytest.raises(TraceParseError, match="file not found") as caught:
        _core.parse_log_start(tmp_path / "missing.csv").result()
    assert caught.value.path == str(tmp_path / "missing.csv")
    assert caught.value.line is None


def test_bad_options_are_invalid_argument_errors() -> None:
    catalog = _core.PlanCatalog()
    cases: list[tuple[Any, str]] = [
        (lambda: _core.parse_log_start(DATA / "pg15.csv", format="xml"), "unknown log format"),  # type: ignore[arg-type]
        (lambda: _core.featurize_plans("[]", catalog, "bao"), "encoding must be"),  # type: ignore[arg-type]
        (lambda: _core.feature_layout(catalog, "bao"), "encoding must be"),  # type: ignore[arg-type]
        (lambda: _core.replay_start(_trace(), "host=h", identity="nobody"), "identity must"),  # type: ignore[arg-type]
        (lambda: _core.replay_start(_trace(), "host=h", speed=-1.0), "speed"),
        (lambda: _core.pgbench_trace("tpcb-like", 1, 1, 1, protocol="udp"), "protocol"),  # type: ignore[arg-type]
        (lambda: _core.pgbench_trace("nope", 1, 1, 1), "pgbench script"),  # type: ignore[arg-type]
        (lambda: _core.tpch_query(0), "1..=22"),
        (lambda: _core.TpchGenerator(-1.0, 0), "scale factor"),
        (lambda: _core.trace_from_statements(["a"], [0, 1], ["SELECT 1"]), "timestamps_us"),
    ]
    for call, words in cases:
        with pytest.raises(InvalidArgumentError) as caught:
            call()
        assert words in str(caught.value), str(caught.value)
        assert isinstance(caught.value, ValueError)
        assert type(caught.value).__module__ == "dbgym.errors"


def test_plan_errors_carry_index_and_path() -> None:
    catalog = _core.PlanCatalog()
    node = {"Node Type": "Result", "Startup Cost": 0.0, "Total Cost": 0.01}
    good = json.dumps([{"Plan": {**node, "Plan Rows": 1, "Plan Width": 4}}])
    bad = good.replace('"Total Cost": 0.01', '"Total Cost": "x"')
    with pytest.raises(PlanFormatError) as caught:
        _core.featurize_plans([good, bad], catalog, "qppnet")
    assert caught.value.plan_index == 1
    assert caught.value.path == '$[0].Plan["Total Cost"]'
    # not text, not decoded JSON: a PlanFormatError naming the item (no TypeError)
    with pytest.raises(PlanFormatError, match="plan 1: expected str or bytes") as caught:
        _core.featurize_plans([good, 3.5], catalog, "qppnet")
    assert caught.value.plan_index == 1
    # decoded JSON with a key JSON cannot hold
    with pytest.raises(PlanFormatError, match="dict key is a int") as caught:
        _core.featurize_plans([json.loads(good), {1: 2}], catalog, "qppnet")
    assert caught.value.plan_index == 1
    # decoded JSON featurizes like its text
    as_text = _core.featurize_plans([good], catalog, "qppnet")
    as_data = _core.featurize_plans([json.loads(good)], catalog, "qppnet")
    assert as_text.features.tolist() == as_data.features.tolist()
    with pytest.raises(PlanCatalogError):
        _core.PlanCatalog(["a", "a"])
