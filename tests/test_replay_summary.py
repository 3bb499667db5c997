"""What a replay summary counts: successful statements are the work (throughput, latency,
lag); failures are counted apart, and a server that went away or refused the logins is
named. Real servers: one killed mid-replay, one that refuses every login."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

import dbgym
from dbgym import _core
from tests.conftest import Faults

TESTDATA = Path(__file__).resolve().parent.parent / "rust" / "trace" / "testdata"


@pytest.fixture(scope="module")
def server() -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch() as inst:
        yield inst


def trace(rows: list[tuple[str, str]]) -> _core.Trace:
    """(session, sql) rows, 1 ms apart."""
    return _core.trace_from_statements(
        [s for s, _ in rows], [1000 * i for i in range(len(rows))], [q for _, q in rows]
    )


def rows_in(dsn: str, table: str) -> int:
    with psycopg.connect(dsn, connect_timeout=5) as c:
        row = c.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0


def test_throughput_and_latency_count_successful_statements_only(
    server: dbgym.PostgresInstance,
) -> None:
    # Six slow failures (statement timeout after 50 ms) and ten fast successes: the
    # failures' time must not count as latency, nor the failures as throughput.
    rows = [("a", "SELECT pg_sleep(1)")] * 6 + [("b", "SELECT 1")] * 10
    r = dbgym.replay(server, trace(rows), speed=None, statement_timeout=0.05)
    assert r.sqlstate.tolist() == [b"57014"] * 6 + [b""] * 10
    s = r.summary()
    assert (s.statements, s.succeeded, s.errors) == (16, 10, 6)
    assert s.errors_by_sqlstate == {"57014": 6}
    assert s.throughput == pytest.approx(10 / s.elapsed_s)
    ok_ms = (r.end_ns - r.start_ns)[r.ok] / 1e6
    assert s.latency.count == 10
    assert s.latency.p50_ms == pytest.approx(float(np.percentile(ok_ms, 50)))
    assert s.latency.max_ms == pytest.approx(float(ok_ms.max()))
    assert s.latency.max_ms < 45, "a timed-out statement (>= 50 ms) counted as latency"
    slow, fast = int(r.template_id[0]), int(r.template_id[6])
    assert fast in s.latency_by_template and slow not in s.latency_by_template
    assert not s.server_gone and not s.logins_failed
    text = str(s)
    assert "16 statements" in text and "10 succeeded" in text and "6 failed" in text, text
    assert "went away" not in text and "logins failed" not in text


def test_summary_prints_percentiles_of_the_top_templates(server: dbgym.PostgresInstance) -> None:
    rows = [("a", "SELECT 1")] * 7 + [("b", "SELECT 'x'")] * 5 + [("c", "SELECT now()")] * 3
    r = dbgym.replay(server, trace(rows), speed=None)
    s = r.summary(top_templates=2)
    lines = str(s).splitlines()
    listed = [line for line in lines if line.strip().startswith("template ")]
    assert len(listed) == 2, lines
    by_count = sorted(s.latency_by_template.items(), key=lambda kv: -kv[1].count)
    for line, (tid, st) in zip(listed, by_count, strict=False):
        assert line.split(":")[0].strip() == f"template {tid}"
        assert f"{st.count} ok" in line
        for name, value in (("p50", st.p50_ms), ("p95", st.p95_ms), ("p99", st.p99_ms)):
            assert f"{name} {value:.3f}" in line, line
    assert f"p95 {s.latency.p95_ms:.3f}" in str(s)


def test_old_argument_order_still_works_with_a_deprecation_warning(
    server: dbgym.PostgresInstance,
) -> None:
    t = trace([("a", "SELECT 1"), ("a", "SELECT 2")])
    with pytest.warns(DeprecationWarning, match=r"replay\(target, workload"):
        r = dbgym.replay(t, server.dsn, speed=None)  # type: ignore[arg-type]
    assert r.ok.all() and len(r) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new order warns nothing
        assert dbgym.replay(server.dsn, t, speed=None).ok.all()
        assert dbgym.replay(server, dbgym.Workload(t), speed=None).ok.all()


def test_server_killed_mid_replay_counts_only_what_succeeded(faults: Faults) -> None:
    n = 600
    with dbgym.PostgresInstance.launch() as inst:
        with inst.connect(autocommit=True) as c:
            c.execute("CREATE TABLE done (x int)")
        rows = [(f"s{i % 2}", "INSERT INTO done SELECT 1 FROM pg_sleep(0.005)") for i in range(n)]
        kill = faults.when(
            lambda: rows_in(inst.dsn, "done") >= 50,
            lambda: faults.kill_server(inst),
            "50 statements replayed",
        )
        r = dbgym.replay(inst, trace(rows), speed=None, progress=False)
        kill.join()
    s = r.summary()
    ok = int(r.ok.sum())
    assert 50 <= ok < n and s.succeeded == ok
    assert s.statements == n and s.errors == n - ok
    assert s.throughput == pytest.approx(ok / s.elapsed_s)
    assert s.latency.count == ok
    # every failure is the server going away: a broken or refused connection, or the
    # server ending the session
    assert s.server_gone and s.connection_lost == s.errors, s.errors_by_sqlstate
    assert set(s.errors_by_sqlstate) <= {"08006", "08001", "57P01", "57P02", "57P03"}
    assert not s.logins_failed
    assert f"the server went away: {s.errors} statements failed" in str(s)


def test_every_login_refused_is_no_work(server: dbgym.PostgresInstance) -> None:
    # The log's sessions ran as role "postgres", which this server does not have (the
    # server answers 28P01, as for a wrong password, so as not to tell roles apart).
    w = dbgym.Workload.from_log(TESTDATA / "pg15.csv")
    r = dbgym.replay(server, w, speed=None, identity="logged")
    s = r.summary()
    assert s.statements == len(w) > 0
    assert (s.succeeded, s.throughput, s.latency.count) == (0, 0.0, 0)
    assert s.latency_by_template == {}
    assert s.errors_by_sqlstate == {"28P01": len(w)}  # no such role: "password failed"
    assert s.logins_failed and s.login_refused == len(w) and not s.server_gone
    text = str(s)
    assert "0 succeeded (0.0/s)" in text and "logins failed" in text
    assert "no statement succeeded" in text
