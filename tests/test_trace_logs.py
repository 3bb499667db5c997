"""Workload.from_log on logs written by a real PostgreSQL server in all three formats.

The server (tests/trace_server.py) logs with log_statement = 'all' and
log_min_duration_statement = 0; the test runs known statements over the simple protocol,
the extended protocol (named and unnamed prepared statements, NULL and quoted parameters),
client-side binding, and pgbench -M extended, then checks that every format yields exactly
those statements, sessions, parameters and templates. A second phase switches to
log_statement = 'none' (statements then come from `duration: .. statement/execute` lines).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import psycopg
import pytest

from dbgym import Workload
from tests.trace_server import PREFIX, LoggingServer

PGBENCH_CLIENTS = 2
PGBENCH_TX = 15


@dataclass
class Ran:
    """What each test session ran: pid -> [(sql as logged, params)]."""

    by_pid: dict[int, list[tuple[str, tuple[str | None, ...]]]] = field(default_factory=dict)
    durations_only_pid: int = 0


def _run_workload(srv: LoggingServer) -> Ran:
    ran = Ran()
    # A: simple protocol with literals, a multi-line statement.
    with psycopg.connect(srv.conninfo, autocommit=True) as a:
        stmts = ["CREATE TABLE items (id int PRIMARY KEY, name text, price float8)"]
        stmts += [
            f"INSERT INTO items VALUES ({i}, 'item ''{i}''', {i * 1.5})" for i in range(1, 21)
        ]
        stmts += [f"SELECT name FROM items WHERE id = {i}" for i in (3, -4, 7)]
        stmts.append(
            "SELECT id,\n       name\n  FROM items\n WHERE price > 2.5\n   AND name <> 'x'"
        )
        for s in stmts:
            a.execute(s.encode())
        ran.by_pid[a.info.backend_pid] = [(s, ()) for s in stmts]
    # B: extended protocol: named (prepare=True) and unnamed statements, NULL, quotes.
    with psycopg.connect(srv.conninfo, autocommit=True) as b:
        got: list[tuple[str, tuple[str | None, ...]]] = []
        for i in (1, 2, 3):
            b.execute("SELECT name FROM items WHERE id = %s", (i,), prepare=True)
            got.append(("SELECT name FROM items WHERE id = $1", (str(i),)))
        b.execute("UPDATE items SET name = %s WHERE id = %s", ("it's", 5))
        got.append(("UPDATE items SET name = $1 WHERE id = $2", ("it's", "5")))
        b.execute("UPDATE items SET name = %s WHERE id = %s", (None, 6))
        got.append(("UPDATE items SET name = $1 WHERE id = $2", (None, "6")))
        b.execute("SELECT id,\n  name FROM items\n WHERE price > %s", (2.5,))
        got.append(("SELECT id,\n  name FROM items\n WHERE price > $1", ("2.5",)))
        ran.by_pid[b.info.backend_pid] = got
    # C: the same statements bound client-side (simple protocol, literals).
    with psycopg.connect(srv.conninfo, autocommit=True, cursor_factory=psycopg.ClientCursor) as c:
        c.execute("SELECT name FROM items WHERE id = %s", (9,))
        c.execute("UPDATE items SET name = %s WHERE id = %s", ("o'k", 7))
        c.execute("UPDATE items SET name = %s WHERE id = %s", (None, 8))
        ran.by_pid[c.info.backend_pid] = [
            ("SELECT name FROM items WHERE id = 9", ()),
            ("UPDATE items SET name = 'o''k' WHERE id = 7", ()),
            ("UPDATE items SET name = NULL WHERE id = 8", ()),
        ]
    pgbench = str(srv.bins.tool("pgbench"))
    common = ["-h", str(srv.dir), "-p", str(srv.port), "-U", "postgres"]
    subprocess.run(
        [pgbench, "-i", "-s", "1", "-q", *common, "postgres"], check=True, capture_output=True
    )
    subprocess.run(
        [
            pgbench,
            "-n",
            "-S",
            "-M",
            "extended",
            "-c",
            str(PGBENCH_CLIENTS),
            "-t",
            str(PGBENCH_TX),
            *common,
            "postgres",
        ],
        check=True,
        capture_output=True,
    )
    # D: log_statement = 'none': only `duration: .. statement:/execute` lines remain.
    with psycopg.connect(srv.conninfo, autocommit=True) as admin:
        admin.execute("ALTER SYSTEM SET log_statement = 'none'")
        admin.execute("SELECT pg_reload_conf()")
        ran.by_pid[admin.info.backend_pid] = [
            ("ALTER SYSTEM SET log_statement = 'none'", ()),
            ("SELECT pg_reload_conf()", ()),
        ]
    with psycopg.connect(srv.conninfo, autocommit=True) as d:
        d.execute("SELECT name FROM items WHERE id = 11")
        d.execute("SELECT name FROM items WHERE id = %s", (12,))
        ran.by_pid[d.info.backend_pid] = [
            ("SELECT name FROM items WHERE id = 11", ()),
            ("SELECT name FROM items WHERE id = $1", ("12",)),
        ]
        ran.durations_only_pid = d.info.backend_pid
    return ran


@pytest.fixture(scope="module")
def logged() -> Iterator[tuple[LoggingServer, Ran]]:
    with LoggingServer() as srv:
        ran = _run_workload(srv)
        srv.stop()
        yield srv, ran


def _session_of_pid(w: Workload, pid: int) -> int:
    (idx,) = [s.index for s in w.sessions if s.id.endswith(f".{pid:x}")]
    return idx


def _statements(w: Workload, session: int) -> list[tuple[str, tuple[str | None, ...]]]:
    rows = np.flatnonzero(w.session_ids() == session)
    return [(w.statement(int(i)).sql, w.statement(int(i)).params) for i in rows]


@pytest.mark.parametrize("fmt", ["stderr", "csvlog", "jsonlog"])
def test_statements_sessions_and_parameters_match_what_ran(
    logged: tuple[LoggingServer, Ran], fmt: str
) -> None:
    srv, ran = logged
    w = Workload.from_log(srv.log(fmt))
    assert w.stats is not None and w.stats.format == fmt
    assert w.skipped_lines == 0
    for pid, expected in ran.by_pid.items():
        assert _statements(w, _session_of_pid(w, pid)) == expected, f"session of pid {pid}"
    # pgbench -S -M extended: one SELECT per transaction, one session per client.
    (sel,) = [
        t for t in w.templates() if t.text == "select abalance from pgbench_accounts where aid = $1"
    ]
    assert sel.count == PGBENCH_CLIENTS * PGBENCH_TX
    tids = w.template_ids()
    bench_sessions = np.unique(w.session_ids()[tids == sel.id])
    assert bench_sessions.size == PGBENCH_CLIENTS
    for s in bench_sessions:
        rows = np.flatnonzero((w.session_ids() == s) & (tids == sel.id))
        assert rows.size == PGBENCH_TX
        assert all(w.statement(int(i)).params[0] is not None for i in rows)
    # Users/databases come with the sessions.
    assert {(s.user, s.database) for s in w.sessions} == {("postgres", "postgres")}


@pytest.mark.parametrize("fmt", ["stderr", "csvlog", "jsonlog"])
def test_templates_unify_constants_across_protocols(
    logged: tuple[LoggingServer, Ran], fmt: str
) -> None:
    srv, ran = logged
    w = Workload.from_log(srv.log(fmt))
    pids = list(ran.by_pid)
    a, b, c = (_session_of_pid(w, p) for p in pids[:3])
    tids = w.template_ids()
    sid = w.session_ids()
    a_rows, b_rows, c_rows = (np.flatnonzero(sid == s) for s in (a, b, c))
    # A: 20 INSERTs with other constants share one template, 3 SELECTs (one negative) another.
    assert len(set(tids[a_rows[1:21]].tolist())) == 1
    select_a = set(tids[a_rows[21:24]].tolist())
    assert len(select_a) == 1
    # The same SELECT sent with literals (A, C) or with $1 (B, extended) is one template.
    assert set(tids[b_rows[:3]].tolist()) == select_a
    assert {int(tids[c_rows[0]])} == select_a
    # The UPDATEs: extended (B, including a NULL parameter) and client-side (C, NULL literal).
    assert len(set(tids[b_rows[3:5]].tolist()) | set(tids[c_rows[1:3]].tolist())) == 1
    # The multi-line statements of A (literal) and B ($1) differ in structure.
    assert tids[a_rows[24]] != tids[b_rows[5]]
    by_id = {t.id: t for t in w.templates()}
    assert by_id[int(tids[a_rows[21]])].text == "select name from items where id = $1"
    # Template ids are numbered in order of first appearance.
    first = [int(t) for t in dict.fromkeys(tids.tolist())]
    assert first == sorted(first) == list(range(len(first)))


def _per_session(w: Workload) -> dict[str, list[tuple[int, str, str, tuple[str | None, ...]]]]:
    """Each session's statements in order, keyed by the logged session id, with template texts.

    The log destinations are separate files, written as the collector receives each backend's
    messages; across sessions the files may interleave differently, so only per-session
    order (and the totals) is the same in every format.
    """
    texts = {t.id: t.text for t in w.templates()}
    sessions = w.sessions
    out: dict[str, list[tuple[int, str, str, tuple[str | None, ...]]]] = {}
    for i in range(len(w)):
        st = w.statement(i)
        out.setdefault(sessions[st.session].id, []).append(
            (st.timestamp_us, texts[st.template_id], st.sql, st.params)
        )
    return out


def test_all_formats_give_the_same_trace(logged: tuple[LoggingServer, Ran]) -> None:
    srv, _ = logged
    ws = [
        Workload.from_log(srv.log("csvlog")),
        Workload.from_log(srv.log("jsonlog")),
        Workload.from_log(srv.log("stderr")),
        Workload.from_log(srv.log("stderr"), format="stderr", log_line_prefix=PREFIX, threads=2),
    ]
    ref = ws[0]
    ref_sessions = _per_session(ref)
    ref_templates = sorted((t.text, t.count) for t in ref.templates())
    for w in ws[1:]:
        assert len(w) == len(ref)
        assert sorted((t.text, t.count) for t in w.templates()) == ref_templates
        assert sorted((s.id, s.user, s.database) for s in w.sessions) == sorted(
            (s.id, s.user, s.database) for s in ref.sessions
        )
        assert _per_session(w) == ref_sessions
        np.testing.assert_array_equal(np.sort(w.durations_us()), np.sort(ref.durations_us()))


def test_durations_and_combined_duration_lines(logged: tuple[LoggingServer, Ran]) -> None:
    srv, ran = logged
    w = Workload.from_log(srv.log("csvlog"))
    durations = w.durations_us()
    # log_min_duration_statement = 0: every statement that finished has its duration.
    assert (durations >= 0).all()
    d = _session_of_pid(w, ran.durations_only_pid)
    rows = np.flatnonzero(w.session_ids() == d)
    assert len(rows) == 2
    ts = w.timestamps_us()
    # Start = logged end - duration, so starts stay ordered within the session.
    assert ts[rows[0]] <= ts[rows[1]]
    assert (np.diff(ts[np.flatnonzero(w.session_ids() == 0)]) >= -1000).all()


def test_sample_keeps_session_order_and_ids(logged: tuple[LoggingServer, Ran]) -> None:
    srv, _ = logged
    w = Workload.from_log(srv.log("csvlog"))
    s1 = w.sample(20, seed=7)
    s2 = w.sample(20, seed=7)
    assert len(s1) == 20
    np.testing.assert_array_equal(s1.template_ids(), s2.template_ids())
    np.testing.assert_array_equal(s1.timestamps_us(), s2.timestamps_us())
    assert not np.array_equal(w.sample(20, seed=8).timestamps_us(), s1.timestamps_us())
    # Statements come from the original in trace order; ids are the original ones.
    originals = {(st.sql, st.timestamp_us, st.session) for st in map(w.statement, range(len(w)))}
    picked = [s1.statement(i) for i in range(len(s1))]
    assert all((p.sql, p.timestamp_us, p.session) in originals for p in picked)
    for sess in np.unique(s1.session_ids()):
        assert (np.diff(s1.timestamps_us()[s1.session_ids() == sess]) >= 0).all()
    assert sum(t.count for t in s1.templates()) == 20
    assert s1.sessions == w.sessions
    assert len(w.sample(10**6)) == len(w)


def test_detects_debian_prefix_and_keys_sessions_by_pid() -> None:
    debian = "%m [%p] %q%u@%d "
    with LoggingServer(
        {"log_line_prefix": f"'{debian}'", "log_min_duration_statement": "-1"}
    ) as srv:
        pids = []
        for i in range(3):
            with psycopg.connect(srv.conninfo, autocommit=True) as conn:
                conn.execute(f"SELECT {i} AS x,\n  'multi\nline' AS y".encode())
                conn.execute("SELECT %s::int", (i,))
                pids.append(conn.info.backend_pid)
        srv.stop()
        w = Workload.from_log(srv.log("stderr"))
    assert w.stats is not None and w.stats.log_line_prefix == debian
    assert [s.id for s in w.sessions] == [str(p) for p in pids]
    assert len(w) == 6
    assert w.statement(0).sql == "SELECT 0 AS x,\n  'multi\nline' AS y"
    assert (w.durations_us() == -1).all()
    assert [t.count for t in w.templates()] == [3, 3]


def test_stderr_log_of_a_postgres_instance() -> None:
    """The stderr format as a dbgym PostgresInstance writes it (no logging collector)."""
    from dbgym import PostgresInstance

    knobs = {"log_statement": "all", "log_line_prefix": PREFIX, "log_min_duration_statement": 0}
    ran: dict[int, list[tuple[str, tuple[str | None, ...]]]] = {}
    with PostgresInstance.launch(knobs=knobs) as inst:
        for i in range(3):
            with inst.connect(autocommit=True) as conn:
                conn.execute(f"SELECT {i} AS a,\n  'x''{i}' AS b".encode())
                conn.execute("SELECT %s::int + 1", (i,))
                ran[conn.info.backend_pid] = [
                    (f"SELECT {i} AS a,\n  'x''{i}' AS b", ()),
                    ("SELECT $1::int + 1", (str(i),)),
                ]
        log = inst.workdir / "server.log"
        w = Workload.from_log(log)
    assert w.stats is not None and w.stats.log_line_prefix == PREFIX
    for pid, expected in ran.items():
        assert _statements(w, _session_of_pid(w, pid)) == expected
    ids = {w.statement(i).template_id for i in range(len(w)) if "AS b" in w.statement(i).sql}
    assert len(ids) == 1
