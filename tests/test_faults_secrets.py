"""No error, log or progress line carries a password (dbgym/redact.py).

A set of calls that fail (a load into a DSN with a wrong port, malformed URIs, a restore
into a dead server, a replay to a bad DSN, observers and sessions on a bad DSN, ...) is
run with a distinctive password; every error message, its __cause__/__context__ chain
(args, notes, attributes) and everything written to stdout/stderr (progress bars and
child programs included) is searched for it. A session's `measure` reports instead of
raising: its status (text and error) is searched the same way.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import dbgym
from dbgym import redact
from dbgym.benchmarks import pgbench, tpch
from dbgym.errors import InvalidArgumentError
from dbgym.observe import KnobStateObserver, MetricsObserver
from dbgym.plans.catalog import PlanCatalog
from dbgym.state.dump import copy_database, restore_dump

PW = "Zq9-Pw-SECRET-7x"
FORMS = (PW, quote(PW, safe=""), "SECRET-7x")  # the last: a tail leaking on its own

BAD_DSNS = {
    "wrong port (URI)": f"postgresql://dbgym:{PW}@127.0.0.1:1/postgres?connect_timeout=3",
    "wrong port (key=value)": f"host=127.0.0.1 port=1 user=dbgym password={PW} connect_timeout=3",
    "bad percent-encoding": f"postgresql://dbgym:{PW}%zz@127.0.0.1:1/postgres",
    "unterminated IPv6 host": f"postgresql://dbgym:{PW}@[::1/postgres",
    "bad query parameter": f"postgresql://dbgym:{PW}@127.0.0.1:1/postgres?bogus=1",
    "quoted password, bad port": f"host=127.0.0.1 port=x user=dbgym password='{PW} x'",
}


class MeasureFailed(Exception):
    """What `measure` reported (its status as text), raised from the status's error."""


def texts_of(exc: BaseException) -> Iterator[str]:
    """Everything an error shows: str/repr/args/notes/attributes of its whole chain."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield str(e)
        yield repr(e)
        yield from (repr(a) for a in e.args)
        yield from (str(n) for n in getattr(e, "__notes__", []))
        yield from (repr(v) for v in vars(e).values())
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)


def assert_no_secret(exc: BaseException, captured: str) -> None:
    for text in [*texts_of(exc), captured]:
        for form in FORMS:
            assert form not in text, f"{form!r} leaked in: {text[:500]}"


@pytest.fixture(scope="module")
def live() -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch() as inst:
        yield inst


@pytest.fixture(scope="module")
def dead_dsn() -> str:
    """The DSN of a server that ran and was closed, with our password in it."""
    with dbgym.PostgresInstance.launch() as inst:
        port = inst.port
    return f"postgresql://dbgym:{PW}@127.0.0.1:{port}/postgres?connect_timeout=3"


@pytest.fixture(scope="module")
def dumps(live: dbgym.PostgresInstance, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A plain SQL dump and a custom-format one (pg_dump of a live server)."""
    root = tmp_path_factory.mktemp("dumps")
    plain = root / "plain.sql"
    plain.write_text("CREATE TABLE t (a int);\n")
    with live.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS dumped (a int)")
    custom = root / "db.dump"
    assert live.bin_dir is not None
    subprocess.run(
        [str(live.bin_dir / "pg_dump"), "-Fc", "-f", str(custom), "-d", live.dsn],
        check=True,
        capture_output=True,
    )
    return [plain, custom]


def failing_calls(
    live: dbgym.PostgresInstance, dead_dsn: str, dumps: list[Path]
) -> dict[str, Callable[[], Any]]:
    def load_into(name: str, scale: float, dsn: str) -> Any:
        return dbgym.DatabaseState.benchmark(name, scale=scale).load_into(dsn, progress=True)

    def replay(dsn: str) -> Any:
        return dbgym.replay(dsn, tpch.trace(0.01, streams=1, queries=[6]), speed=None)

    def session_connect(dsn: str) -> Any:
        with dbgym.DbSession(dsn) as session:
            session.connect().close()

    def session_connection(dsn: str) -> Any:
        with dbgym.DbSession(dsn) as session:
            return session.connection()

    def session_measure(dsn: str) -> Any:
        """measure reports a failed server instead of raising: raise what it reported."""
        with dbgym.DbSession(dsn) as session:
            result, status = session.measure(tpch.trace(0.01, streams=1, queries=[6]))
        if status.ok:
            return result
        raise MeasureFailed(str(status)) from status.error

    calls: dict[str, Callable[[], Any]] = {}
    for label, dsn in BAD_DSNS.items():
        calls[f"tpch load_into, {label}"] = partial(load_into, "tpch", 0.01, dsn)
        calls[f"pgbench load_into, {label}"] = partial(load_into, "pgbench", 1, dsn)
        calls[f"plan catalog, {label}"] = partial(PlanCatalog.from_connection, dsn)
        calls[f"replay, {label}"] = partial(replay, dsn)
        calls[f"MetricsObserver, {label}"] = partial(MetricsObserver, dsn)
        calls[f"KnobStateObserver, {label}"] = partial(KnobStateObserver, dsn, ["work_mem"])
        calls[f"DbSession.connect, {label}"] = partial(session_connect, dsn)
        calls[f"DbSession.connection, {label}"] = partial(session_connection, dsn)
        calls[f"DbSession.measure, {label}"] = partial(session_measure, dsn)
    calls["tpch.load, dead target"] = partial(tpch.load, dead_dsn, 0.01)
    calls["pgbench.load, dead target"] = partial(pgbench.load, dead_dsn, 1, bin_dir=live.bin_dir)
    for dump in dumps:
        calls[f"restore_dump {dump.name}, dead target"] = partial(
            restore_dump, dead_dsn, dump, bin_dir=live.bin_dir
        )
    calls["copy_database from a dead source"] = partial(
        copy_database, dead_dsn, live.dsn, bin_dir=live.bin_dir
    )
    calls["DatabaseState.from_dsn(dead).load_into"] = partial(
        dbgym.DatabaseState.from_dsn(dead_dsn).load_into, live, progress=True
    )
    calls["instance connect, wrong password"] = partial(live.connect, password=PW)
    calls["instance connect, wrong port"] = partial(live.connect, port=1)
    calls["redact.safe_connect, dead target"] = partial(
        redact.safe_connect, dead_dsn, "cannot connect"
    )
    return calls


def test_no_failing_call_shows_the_password(
    live: dbgym.PostgresInstance,
    dead_dsn: str,
    dumps: list[Path],
    capfd: pytest.CaptureFixture[str],
) -> None:
    failures: list[str] = []
    outcomes: dict[str, str] = {}
    for label, call in failing_calls(live, dead_dsn, dumps).items():
        capfd.readouterr()
        try:
            call()
        except Exception as exc:
            out, err = capfd.readouterr()
            outcomes[label] = type(exc).__name__
            try:
                assert_no_secret(exc, out + err)
            except AssertionError as leak:
                failures.append(f"{label} ({type(exc).__name__}): {leak}")
        else:
            failures.append(f"{label}: did not fail")
    assert not failures, "\n".join(failures)
    # the calls fail the way the taxonomy says: malformed DSNs are the caller's mistake
    assert outcomes["plan catalog, bad percent-encoding"] == "InvalidArgumentError"
    assert outcomes["plan catalog, wrong port (URI)"] == "ConnectError"
    assert outcomes["instance connect, wrong password"] == "ConnectError"
    for who in ("MetricsObserver", "KnobStateObserver", "DbSession.connect"):
        assert outcomes[f"{who}, bad percent-encoding"] == "InvalidArgumentError", who
        assert outcomes[f"{who}, wrong port (key=value)"] == "ConnectError", who
    assert outcomes["DbSession.measure, wrong port (URI)"] == "MeasureFailed"  # reported


def test_redact_dsn_forms() -> None:
    cases = {
        f"postgresql://u:{PW}@h:5432/db": "postgresql://u:***@h:5432/db",
        f"postgres://:{PW}@h": "postgres://:***@h",
        f"postgresql://u:{quote(PW, safe='')}%40x@h/db": "postgresql://u:***@h/db",
        f"postgresql://h/db?sslmode=disable&password={PW}": (
            "postgresql://h/db?sslmode=disable&password=***"
        ),
        f"host=h password={PW} user=u": "host=h password=*** user=u",
        f"host=h password = '{PW} \\' x' user=u": "host=h password = *** user=u",
        "postgresql://h:5432/db": "postgresql://h:5432/db",
    }
    for dsn, shown in cases.items():
        assert redact.redact_dsn(dsn) == shown
    assert redact.password_of(f"postgresql://u:{PW}%zz@h/db") == f"{PW}%zz"  # unparsable
    assert redact.password_of(f"host=h password='{PW} x'") == f"{PW} x"
    text = f'invalid percent-encoded token: "{PW}%zz"'
    assert redact.redact(text, f"{PW}%zz") == 'invalid percent-encoded token: "***"'


def test_a_dsn_without_a_password_is_shown_not_masked() -> None:
    """Redaction masks passwords only: a malformed DSN that holds none is quoted as it is,
    so the user sees what is wrong with it."""
    w = dbgym.Workload.benchmark("pgbench", transactions=1)
    with pytest.raises(InvalidArgumentError) as caught:
        dbgym.replay("postgresql://[nope", w)
    assert '"postgresql://[nope"' in str(caught.value)
