"""Cancelling a replay (handle.cancel, Ctrl-C) stops it promptly and leaves nothing running."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import psycopg
import pytest

import dbgym
from dbgym import _core
from tests.conftest import Faults


@pytest.fixture(scope="module")
def server() -> Iterator[dbgym.PostgresInstance]:
    with dbgym.PostgresInstance.launch() as inst:
        yield inst


APP = "dbgym-replay-cancel-test"


def target(server: dbgym.PostgresInstance) -> str:
    return server.dsn + "&application_name=" + APP


def sleeping_trace(sessions: int, per_session: int) -> _core.Trace:
    n = sessions * per_session
    return _core.trace_from_statements(
        [f"s{i % sessions}" for i in range(n)],
        [0] * n,
        ["SELECT pg_sleep(30)"] * n,
    )


def replay_backends(server: dbgym.PostgresInstance) -> int:
    with psycopg.connect(server.dsn, autocommit=True) as c:
        row = c.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APP,)
        ).fetchone()
        assert row is not None
        return int(row[0])


def wait_for_backends(server: dbgym.PostgresInstance, expected: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    n = replay_backends(server)
    while n != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        n = replay_backends(server)
    return n


def test_cancel_stops_in_flight_statements_and_closes_connections(
    server: dbgym.PostgresInstance,
) -> None:
    h = _core.replay_start(sleeping_trace(3, 2), target(server), speed=None)
    assert wait_for_backends(server, 3) == 3
    t0 = time.monotonic()
    h.cancel()
    assert h.wait(10.0)
    assert time.monotonic() - t0 < 5.0
    r = h.result()
    assert r.cancelled is True
    assert r.executed == 0  # the cancelled statements are not recorded as run
    assert wait_for_backends(server, 0) == 0


def test_ctrl_c_interrupts_replay_and_cleans_up(
    server: dbgym.PostgresInstance, faults: Faults
) -> None:
    # Ctrl-C once both sessions' statements run on the server (not after a fixed delay).
    interrupt = faults.when(
        lambda: replay_backends(server) == 2,
        lambda: os.kill(os.getpid(), signal.SIGINT),
        "both replay sessions to run",
    )
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        dbgym.replay(target(server), sleeping_trace(2, 3), speed=None, progress=False)
    interrupt.join()
    assert time.monotonic() - t0 < 6.0
    assert wait_for_backends(server, 0) == 0


def test_progress_counter_advances(server: dbgym.PostgresInstance) -> None:
    n = 40
    trace = _core.trace_from_statements(["a"] * n, [i * 5_000 for i in range(n)], ["SELECT 1"] * n)
    h = _core.replay_start(trace, server.dsn, speed=1.0)
    assert h.total == n
    seen = []
    while not h.wait(0.03):
        seen.append(h.done())
    assert h.done() == n
    assert any(0 < s < n for s in seen), seen
    assert h.result().executed == n


@pytest.mark.parametrize("concurrency", [None, 1])
def test_progress_counts_statements_before_a_gap(
    server: dbgym.PostgresInstance, concurrency: int | None
) -> None:
    """Statements that ran are counted while the replay waits for a later deadline, with one
    connection per session and with a worker pool (which waits inside the pool)."""
    ts = [0, 1_000, 2_000, 3_000, 4_000, 1_500_000]
    trace = _core.trace_from_statements(["a", "b", "a", "b", "a", "b"], ts, ["SELECT 1"] * len(ts))
    h = _core.replay_start(trace, server.dsn, speed=1.0, concurrency=concurrency)
    assert not h.wait(0.7)  # well inside the 1.5 s gap
    assert h.done() == 5
    assert h.wait(10.0)
    assert h.done() == 6
