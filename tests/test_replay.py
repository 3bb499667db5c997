"""Replay engine against a real server: counts, order, errors, timing, concurrency."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import psycopg
import pytest

import dbgym
from dbgym import _core
from dbgym.errors import ConnectError, InvalidArgumentError

Row = tuple[str, int, str, Sequence[str | None] | None]


def make_trace(rows: Sequence[Row]) -> _core.Trace:
    return _core.trace_from_statements(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [list(r[3]) if r[3] is not None else [] for r in rows],
    )


@pytest.fixture(scope="module")
def server() -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch() as inst:
        yield inst


def sql(server: dbgym.PostgresInstance, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(server.dsn, autocommit=True) as c:
        cur = c.execute(query)
        return cur.fetchall() if cur.description else []


def interleaved_inserts(table: str, sessions: int, per_session: int) -> list[Row]:
    """Sessions' statements interleaved in log order; odd sessions use the extended protocol."""
    rows: list[Row] = []
    for i in range(per_session):
        for s in range(sessions):
            ts = (i * sessions + s) * 10
            if s % 2:
                rows.append(
                    (
                        f"s{s}",
                        ts,
                        f"INSERT INTO {table}(sess, seq) VALUES ($1, $2)",
                        [str(s), str(i)],
                    )
                )
            else:
                rows.append(
                    (f"s{s}", ts, f"INSERT INTO {table}(sess, seq) VALUES ({s}, {i})", None)
                )
    return rows


@pytest.mark.parametrize("concurrency", [None, 2])
def test_counts_and_per_session_order(
    server: dbgym.PostgresInstance, concurrency: int | None
) -> None:
    table = f"ord_{concurrency or 0}"
    sql(server, f"CREATE TABLE {table} (id bigserial, sess int, seq int)")
    rows = interleaved_inserts(table, sessions=6, per_session=40)
    r = dbgym.replay(server.dsn, make_trace(rows), speed=None, concurrency=concurrency)
    assert len(r) == len(rows) == r.executed
    assert r.ok.all(), r.summary().errors_by_sqlstate
    got = sql(server, f"SELECT sess, seq FROM {table} ORDER BY id")
    assert len(got) == len(rows)
    for s in range(6):
        seqs = [seq for sess, seq in got if sess == s]
        assert seqs == list(range(40)), f"session {s} ran out of order: {seqs}"
    # The recorded times agree: within a session each statement starts after the previous ended.
    for s in range(6):
        idx = np.flatnonzero(r.session == s)
        assert (r.start_ns[idx[1:]] >= r.end_ns[idx[:-1]]).all()
    if concurrency is None:
        assert len(np.unique(r.connection)) == 6
    else:
        assert set(np.unique(r.connection).tolist()) <= {0, 1}
    summary = r.summary()
    assert summary.statements == len(rows) and summary.errors == 0
    assert summary.lag is None
    assert set(summary.latency_by_template) == set(np.unique(r.template_id).tolist())


def test_errors_are_recorded_and_replay_goes_on(server: dbgym.PostgresInstance) -> None:
    rows: list[Row] = [
        ("a", 0, "SELECT 1", None),
        ("a", 1, "SELECT 1/0", None),
        ("a", 2, "SELECT * FROM no_such_table", None),
        ("a", 3, "SELECT $1::int", ["not a number"]),
        ("a", 4, "BEGIN", None),
        ("a", 5, "SELECT 1/0", None),
        ("a", 6, "SELECT 2", None),
        ("a", 7, "SELECT $1::int + 1", ["41"]),
        ("a", 8, "ROLLBACK", None),
        ("a", 9, "SELECT $1::int + 1", ["41"]),
        ("b", 0, "SELECT 3", None),
        ("b", 1, "SELEC 4", None),
        ("b", 2, "SELECT 5", None),
    ]
    for conc in (None, 1):
        r = dbgym.replay(server.dsn, make_trace(rows), speed=None, concurrency=conc)
        codes = [c.decode() for c in r.sqlstate]
        assert codes == [
            "", "22012", "42P01", "22P02", "", "22012", "25P02", "25P02", "", "",
            "", "42601", "",
        ], (conc, codes)  # fmt: skip
        s = r.summary()
        assert s.errors == 7
        assert s.errors_by_sqlstate == {"22012": 2, "42P01": 1, "22P02": 1, "25P02": 2, "42601": 1}


def test_killed_connection_is_recorded_and_the_session_reconnects(
    server: dbgym.PostgresInstance,
) -> None:
    rows: list[Row] = [
        ("a", 0, "SELECT 1", None),
        ("a", 1, "SELECT pg_terminate_backend(pg_backend_pid())", None),
        ("a", 2, "SELECT 2", None),
    ]
    r = dbgym.replay(server.dsn, make_trace(rows), speed=None)
    codes = [c.decode() for c in r.sqlstate]
    assert codes[0] == "" and codes[2] == ""
    assert codes[1] in ("57P01", "08006"), codes


def test_speed_one_keeps_the_logged_timing_and_speed_two_halves_it(
    server: dbgym.PostgresInstance,
) -> None:
    gap_us = 100_000
    rows: list[Row] = [("a", i * gap_us, "SELECT 1", None) for i in range(6)]
    rows += [("b", 50_000 + i * gap_us, "SELECT $1::int", [str(i)]) for i in range(5)]
    trace = make_trace(rows)
    for speed, span_ms in ((1.0, 500.0), (2.0, 250.0)):
        r = dbgym.replay(server.dsn, trace, speed=speed)
        assert r.ok.all()
        a = np.flatnonzero(r.session == 0)
        sched_ms = r.scheduled_ns / 1e6
        assert sched_ms[a[-1]] == pytest.approx(span_ms, abs=0.01)
        # Absolute deadlines: every start sits at its scheduled offset (a late statement does
        # not push the later ones back). Tolerances leave room for a loaded 2-core machine;
        # the tight p99 bound is the replay bench's.
        starts_ms = r.start_ns[a] / 1e6
        offsets = starts_ms - starts_ms[0]
        assert np.allclose(offsets, sched_ms[a] - sched_ms[a[0]], atol=40), offsets
        s = r.summary()
        assert s.lag is not None and s.lag.p50_ms < 5, s
        assert r.elapsed_ns / 1e6 == pytest.approx(span_ms, abs=60)


def test_concurrency_limit_is_respected_on_the_server(server: dbgym.PostgresInstance) -> None:
    sql(server, "CREATE TABLE conc (n int)")
    probe = (
        "INSERT INTO conc SELECT count(*) FROM pg_stat_activity "
        "WHERE application_name = 'dbgym-replay-test'"
    )
    rows: list[Row] = []
    for s in range(8):
        for i in range(3):
            rows.append((f"s{s}", i, "SELECT pg_sleep(0.03)", None))
            rows.append((f"s{s}", i, probe, None))
    dsn = server.dsn + "&application_name=dbgym-replay-test"
    r = dbgym.replay(dsn, make_trace(rows), speed=None, concurrency=2)
    assert r.ok.all()
    counts = [int(str(n)) for (n,) in sql(server, "SELECT n FROM conc")]
    assert len(counts) == 24
    assert max(counts) <= 2, counts  # connections open on the server while replaying
    # Overlap of the recorded intervals never exceeds 2 either.
    events = sorted([(int(t), 1) for t in r.start_ns] + [(int(t), -1) for t in r.end_ns])
    live = peak = 0
    for _, d in events:
        live += d
        peak = max(peak, live)
    assert peak <= 2
    # 24 sleeps of 30 ms on 2 connections take at least 12 * 30 ms.
    assert r.elapsed_ns >= 12 * 30e6


def test_multiplexed_sessions_keep_their_transactions_on_one_connection(
    server: dbgym.PostgresInstance,
) -> None:
    sql(server, "CREATE TABLE tx (sess int, v int)")
    rows: list[Row] = []
    for s in range(5):
        rows += [
            (f"s{s}", 0, "BEGIN", None),
            (f"s{s}", 1, f"INSERT INTO tx VALUES ({s}, 1)", None),
            (f"s{s}", 2, "SELECT pg_sleep(0.01)", None),
            (f"s{s}", 3, f"INSERT INTO tx VALUES ({s}, 2)", None),
            (f"s{s}", 4, "COMMIT", None),
            (f"s{s}", 5, "BEGIN", None),
            (f"s{s}", 6, f"INSERT INTO tx VALUES ({s}, 3)", None),  # never committed
        ]
    r = dbgym.replay(server.dsn, make_trace(rows), speed=None, concurrency=2)
    assert r.ok.all()
    for s in range(5):
        idx = np.flatnonzero(r.session == s)
        conns = r.connection[idx]
        assert len(set(conns[0:5].tolist())) == 1, conns
        # Nothing else ran on that connection inside the transaction.
        c = conns[0]
        inside = (
            (r.connection == c)
            & (r.start_ns > r.start_ns[idx[0]])
            & (r.start_ns < r.start_ns[idx[4]])
        )
        assert set(np.flatnonzero(inside).tolist()) <= set(idx[1:4].tolist())
    got = sql(server, "SELECT sess, v FROM tx ORDER BY sess, v")
    assert got == [(s, v) for s in range(5) for v in (1, 2)]


def test_template_settings_apply_to_their_template_only(server: dbgym.PostgresInstance) -> None:
    sql(server, "CREATE TABLE seen (tag text, hj text)")
    a = "INSERT INTO seen VALUES ('a', current_setting('enable_hashjoin'))"
    b = "INSERT INTO seen VALUES ('b', current_setting('enable_hashjoin'))"
    ta = "INSERT INTO seen VALUES ('ta', current_setting('enable_hashjoin'))"
    tb = "INSERT INTO seen VALUES ('tb', current_setting('enable_hashjoin'))"
    ext = "INSERT INTO seen VALUES ($1, current_setting('enable_hashjoin'))"
    rows: list[Row] = [
        ("x", 0, a, None),
        ("x", 1, b, None),
        ("x", 2, "BEGIN", None),
        ("x", 3, ta, None),
        ("x", 4, tb, None),
        ("x", 5, "COMMIT", None),
        ("x", 6, ext, ["e"]),
        ("x", 7, b, None),
    ]
    trace = _core.trace_from_statements(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [list(r[3] or []) for r in rows],
        [0, 1, 2, 0, 1, 2, 0, 1],
    )
    r = dbgym.replay(
        server.dsn, trace, speed=None, template_settings={0: {"enable_hashjoin": False}}
    )
    assert r.ok.all(), r.sqlstate
    got = sql(server, "SELECT tag, hj FROM seen")
    assert got == [
        ("a", "off"),
        ("b", "on"),
        ("ta", "off"),
        ("tb", "on"),
        ("e", "off"),
        ("b", "on"),
    ]


def test_template_settings_change_the_plan(server: dbgym.PostgresInstance) -> None:
    sql(server, "CREATE TABLE j1 AS SELECT g AS k FROM generate_series(1, 2000) g")
    sql(server, "CREATE TABLE j2 AS SELECT g AS k FROM generate_series(1, 2000) g")
    sql(server, "ANALYZE j1; ANALYZE j2")
    sql(server, "CREATE TABLE plans (p text)")
    # The plan's top node, stored by the replayed statement itself.
    q = (
        "DO $$ DECLARE p json; BEGIN "
        "EXECUTE 'EXPLAIN (FORMAT JSON) SELECT * FROM j1 JOIN j2 USING (k)' INTO p; "
        "INSERT INTO plans VALUES (p->0->'Plan'->>'Node Type'); END $$"
    )
    trace = _core.trace_from_statements(["x", "x"], [0, 1], [q, q], None, [0, 1])
    settings = {0: {"enable_hashjoin": "off", "enable_mergejoin": "off"}}
    r = dbgym.replay(server.dsn, trace, speed=None, template_settings=settings)
    assert r.ok.all(), r.sqlstate
    assert sql(server, "SELECT p FROM plans") == [("Nested Loop",), ("Hash Join",)]


def test_statement_timeout_yields_57014(server: dbgym.PostgresInstance) -> None:
    rows: list[Row] = [
        ("a", 0, "SELECT pg_sleep(2)", None),
        ("a", 1, "SELECT 1", None),
    ]
    r = dbgym.replay(server.dsn, make_trace(rows), speed=None, statement_timeout=0.1)
    assert [c.decode() for c in r.sqlstate] == ["57014", ""]
    assert 0.09 <= r.latency_ns[0] / 1e9 < 1.0


def test_bad_input_is_a_clear_error(server: dbgym.PostgresInstance) -> None:
    trace = make_trace([("a", 0, "SELECT 1", None)])
    with pytest.raises(InvalidArgumentError, match="speed"):
        dbgym.replay(server.dsn, trace, speed=0)
    with pytest.raises(InvalidArgumentError, match="concurrency"):
        dbgym.replay(server.dsn, trace, concurrency=0)
    with pytest.raises(InvalidArgumentError, match="invalid DSN"):
        dbgym.replay("postgresql://[nope", trace, speed=None)
    with pytest.raises(ConnectError, match="cannot connect"):
        dbgym.replay("postgresql://postgres@127.0.0.1:1/postgres", trace, speed=None)
    with pytest.raises(InvalidArgumentError, match=r"template_settings\[5\]"):
        dbgym.replay(server.dsn, trace, template_settings={5: {"enable_hashjoin": "off"}})
    with pytest.raises(InvalidArgumentError, match=r"template_settings\[0\].*no_such_knob"):
        dbgym.replay(server.dsn, trace, template_settings={0: {"no_such_knob": "1"}})
    with pytest.raises(InvalidArgumentError, match=r"template_settings\[0\].*enable_hashjoin"):
        dbgym.replay(server.dsn, trace, template_settings={0: {"enable_hashjoin": "maybe"}})
    with pytest.raises(InvalidArgumentError, match="statement_timeout"):
        dbgym.replay(server.dsn, trace, statement_timeout=-1)
    with pytest.raises(InvalidArgumentError, match=r"DSN string or have a \.dsn"):
        dbgym.replay(5432, trace)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="sql has 1"):
        _core.trace_from_statements(["a", "b"], [0], ["SELECT 1"])


def test_replays_a_workload_on_an_instance_with_progress(
    server: dbgym.PostgresInstance, tmp_path: Path
) -> None:
    (tmp_path / "q.sql").write_text("SELECT 1; SELECT 2; SELECT 3;")
    w = dbgym.Workload.from_sql(tmp_path / "q.sql")
    r = dbgym.replay(server, w, speed=None, progress=True)
    assert len(r) == len(w) == 3 and r.ok.all()


def test_timed_replay_through_a_limited_pool(server: dbgym.PostgresInstance) -> None:
    rows: list[Row] = [
        (f"s{s}", 20_000 * s + 100_000 * i, "SELECT $1::int", [str(i)])
        for i in range(4)
        for s in range(4)
    ]
    r = dbgym.replay(server.dsn, make_trace(rows), speed=1.0, concurrency=2)
    assert r.ok.all()
    assert set(np.unique(r.connection).tolist()) <= {0, 1}
    s = r.summary()
    assert s.lag is not None and s.lag.max_ms < 20, s
    starts_ms = np.sort(r.start_ns) / 1e6
    assert starts_ms[-1] - starts_ms[0] == pytest.approx(360, abs=20)


def test_empty_trace(server: dbgym.PostgresInstance) -> None:
    r = dbgym.replay(server.dsn, _core.trace_from_statements([], [], []), speed=None)
    assert len(r) == 0 and r.executed == 0
    s = r.summary()
    assert s.statements == 0 and s.errors == 0 and s.latency_by_template == {}
