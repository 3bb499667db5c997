"""DbSession on real servers: epoch, admin connection, observers across restore and
restart, apply (knobs, indexes, template settings), measure, DSN sessions, recovery
fallbacks and the error taxonomy. Faults injected while it works: test_session_faults.py.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import numpy as np
import pytest

import dbgym
from dbgym import _core
from dbgym.dbms.spec import InstanceSpec
from dbgym.errors import (
    InstanceClosedError,
    InstanceError,
    InvalidArgumentError,
    KnobError,
    PostgresStartError,
    SnapshotError,
)
from dbgym.observe import KnobStateObserver, MetricsObserver
from dbgym.session import DbSession, IndexSpec, MeasureOutcome


@pytest.fixture
def session(backend: str) -> Iterator[DbSession]:
    with DbSession.launch(InstanceSpec(backend=backend)) as s:
        yield s


def sleeps(n: int, seconds: float, sessions: int = 1) -> _core.Trace:
    """`n` statements `SELECT pg_sleep(seconds)` dealt over `sessions` sessions."""
    return _core.trace_from_statements(
        [f"s{i % sessions}" for i in range(n)],
        list(range(n)),
        [f"SELECT pg_sleep({seconds})"] * n,
    )


def inserts(table: str, n: int) -> _core.Trace:
    return _core.trace_from_statements(
        ["a"] * n, list(range(n)), [f"INSERT INTO {table} VALUES ({i})" for i in range(n)]
    )


def observe_until(metrics: MetricsObserver, name: str, at_least: float) -> dict[str, float]:
    """Sum deltas until counter `name` grew by `at_least` (statistics are flushed lazily,
    up to a second after a transaction); every delta must be >= 0 (cumulative counters)."""
    total = dict.fromkeys(metrics.names, 0.0)
    deadline = time.monotonic() + 15
    while True:
        obs = metrics.observe()
        assert (obs >= 0).all(), {k: v for k, v in metrics.as_dict(obs).items() if v < 0}
        for k, v in metrics.as_dict(obs).items():
            total[k] += v
        if total[name] >= at_least or time.monotonic() > deadline:
            return total
        time.sleep(0.1)


def test_epoch_connection_and_close(session: DbSession) -> None:
    inst = session.instance
    assert inst is not None
    assert session.pristine == "pristine" and "pristine" in inst.snapshots()
    assert session.dsn == inst.dsn and session.epoch == 0
    conn = session.connection()
    assert session.connection() is conn  # nothing happened: the same connection
    assert session.alive()
    session.apply(knobs={"work_mem": "8MB"})  # a reload, not a restart
    assert session.epoch == 0 and session.connection() is conn
    session.apply(knobs={"shared_buffers": "64MB"})  # a postmaster knob: restart
    assert session.epoch == 1
    conn2 = session.connection()
    assert conn2 is not conn and conn.closed
    assert conn2.execute("SHOW shared_buffers").fetchone() == ("64MB",)
    session.restore()
    assert session.epoch == 2
    assert session.connection().execute("SHOW shared_buffers").fetchone() == ("128MB",)
    inst.restart()  # behind the session's back: the listener still counts it
    assert session.epoch == 3
    session.close()
    session.close()  # idempotent
    assert session.closed and inst.closed and not session.alive()
    with pytest.raises(InstanceClosedError):
        session.connection()
    with pytest.raises(InstanceClosedError):
        session.measure(sleeps(1, 0))


def test_observers_across_restore(session: DbSession) -> None:
    """The snapshot's pg_stat counters come back with a restore: registered observers
    take a new baseline, so no delta is negative or spans the restore; the knob state
    shows the snapshot's values."""
    session.connection().execute("CREATE TABLE t (x int)")
    session.apply(knobs={"work_mem": "64MB"})
    metrics = session.add_source(MetricsObserver(session))
    knobs = session.add_source(KnobStateObserver(session, ["work_mem"]))
    loose = MetricsObserver(session)  # not registered: must notice the restore itself
    try:
        busy_before = knobs.observe()
        result, status = session.measure(inserts("t", 2000), speed=None)
        assert status.ok and result is not None and result.summary().errors == 0
        total = observe_until(metrics, "pg_stat_database.tup_inserted", 2000)
        assert total["pg_stat_database.tup_inserted"] >= 2000
        loose.observe()
        session.restore()  # to pristine: no table t, work_mem back to 4MB
        after = metrics.observe()
        got = metrics.as_dict(after)
        assert (after >= 0).all(), {k: v for k, v in got.items() if v < 0}
        assert got["pg_stat_database.tup_inserted"] < 2000  # not across the restore
        assert knobs.observe()[0] < busy_before[0]  # 4MB < 64MB
        assert knobs.normalize({"work_mem": "4096"})[0] == pytest.approx(knobs.observe()[0])
        assert not loose.observe().any() and loose.reconnects == 1  # new baseline: zeros
        # counting goes on from the restore
        session.connection().execute("CREATE TABLE u (x int)")
        result, status = session.measure(inserts("u", 500), speed=None)
        assert status.ok
        total = observe_until(metrics, "pg_stat_database.tup_inserted", 500)
        assert 500 <= total["pg_stat_database.tup_inserted"] < 2000
    finally:
        loose.close()


def test_observers_across_restart(session: DbSession) -> None:
    metrics = session.add_source(MetricsObserver(session))
    knobs = session.add_source(KnobStateObserver(session, ["shared_buffers", "work_mem"]))
    before = knobs.observe()
    epoch = session.epoch
    change = session.apply(knobs={"shared_buffers": "32MB", "work_mem": "16MB"})
    assert change.knobs is not None and change.knobs.restarted
    assert session.epoch == epoch + 1
    after = knobs.observe()
    assert after[0] < before[0] and after[1] > before[1]  # 32MB < 128MB; 16MB > 4MB
    expected = knobs.normalize({"shared_buffers": "4096", "work_mem": "16384"})
    np.testing.assert_allclose(after, expected)
    delta = metrics.observe()  # from the new baseline: small and not negative
    assert (delta >= 0).all()
    assert metrics.as_dict(delta)["pg_stat_database.xact_commit"] < 50
    result, status = session.measure(sleeps(30, 0), speed=None)
    assert status.ok and result is not None
    total = observe_until(metrics, "pg_stat_database.xact_commit", 30)
    assert total["pg_stat_database.xact_commit"] >= 30


def test_apply_indexes(backend: str) -> None:
    with DbSession.launch(InstanceSpec(backend=backend), pristine="base") as s:
        s.connection().execute("CREATE TABLE orders (id int, customer int, note text)")
        s.connection().execute("CREATE INDEX orders_own ON orders (id)")  # not the session's
        by_customer = IndexSpec("orders", ("customer",))
        pair = IndexSpec("public.orders", ("customer", "id"), using="btree")
        assert by_customer.name == IndexSpec("orders", ("customer",)).name  # deterministic
        assert by_customer.name != pair.name and len(pair.name) <= 63

        def names() -> set[str]:
            rows = s.connection().execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'orders'"
            )
            return {r[0] for r in rows}

        change = s.apply(indexes=[by_customer, pair])
        assert set(change.created) == {by_customer.name, pair.name} and change.dropped == ()
        assert names() == {"orders_own", by_customer.name, pair.name}
        assert s.apply(indexes=[pair, by_customer]).created == ()  # already there
        change = s.apply(indexes=[pair])
        assert change.dropped == (by_customer.name,) and change.created == ()
        # a bad entry: nothing changes
        with pytest.raises(InvalidArgumentError, match="has no column"):
            s.apply(indexes=[by_customer, IndexSpec("orders", ("nope",))])
        with pytest.raises(InvalidArgumentError, match="no table 'missing'"):
            s.apply(indexes=[IndexSpec("missing", ("x",))])
        with pytest.raises(InvalidArgumentError, match="unknown access method 'nosuch'"):
            s.apply(indexes=[IndexSpec("orders", ("id",), using="nosuch")])
        with pytest.raises(InvalidArgumentError, match="no default operator class"):
            s.apply(indexes=[IndexSpec("orders", ("id",), using="gin")])
        with pytest.raises(InvalidArgumentError, match="list of IndexSpec"):
            s.apply(indexes=by_customer)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="column names"):
            IndexSpec("orders", ("a b",))
        assert names() == {"orders_own", pair.name}
        assert s.apply(indexes=[]).dropped == (pair.name,)
        assert names() == {"orders_own"}
        s.apply(indexes=[by_customer])
        s.restore()  # to "base": the table did not exist then
        assert names() == set()


def test_template_settings_and_timeouts(session: DbSession) -> None:
    slow = sleeps(4, 0.2)  # one template (id 0)
    session.apply(template_settings={0: {"statement_timeout": "50ms"}})
    assert session.template_settings == {0: {"statement_timeout": "50ms"}}
    result, status = session.measure(slow, speed=None)
    assert status.outcome is MeasureOutcome.TIMEOUT and "statement_timeout" in status.detail
    assert result is not None and (result.sqlstate == b"57014").all()
    session.apply(template_settings={})  # cleared
    result, status = session.measure(slow, speed=None, statement_timeout=0.05)
    assert status.outcome is MeasureOutcome.TIMEOUT and result is not None
    # the measure's own timeout cancels the replay and returns what ran
    t0 = time.monotonic()
    result, status = session.measure(sleeps(100, 0.1), speed=None, timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert status.outcome is MeasureOutcome.TIMEOUT and "timeout of 0.5 s" in status.detail
    assert result is not None and result.cancelled and 0 < result.summary().statements < 100
    result, status = session.measure(sleeps(3, 0), speed=None, timeout=30)
    assert status.ok and result is not None and result.summary().errors == 0


def test_error_taxonomy(session: DbSession) -> None:
    """Caller mistakes are InvalidArgumentError (so ValueError) and change nothing; a
    killed server is an InstanceError (raised by apply, a status from measure)."""
    epoch = session.epoch
    with pytest.raises(ValueError) as caught:
        session.apply(knobs={"no_such_knob": 1})
    assert isinstance(caught.value, KnobError) and isinstance(caught.value, InvalidArgumentError)
    with pytest.raises(InvalidArgumentError, match=r"template_settings\[0\]\['x'\]"):
        session.apply(template_settings={0: {"x": [1]}})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgumentError, match="unrecognized configuration parameter"):
        session.apply(template_settings={3: {"enable_hashjion": "off"}})
    with pytest.raises(InvalidArgumentError, match=r"template_settings\[1\]\['work_mem'\]"):
        session.apply(template_settings={1: {"work_mem": "lots"}})
    assert session.template_settings == {}  # nothing stored
    with pytest.raises(InvalidArgumentError, match="positive number of seconds"):
        session.measure(sleeps(1, 0), timeout=-1)
    with pytest.raises(InvalidArgumentError, match=r"needs a dbgym\.Workload"):
        session.measure("SELECT 1")  # type: ignore[arg-type]
    with pytest.raises(SnapshotError, match="no snapshot named 'nope'"):
        session.restore("nope")
    assert session.epoch == epoch and session.alive()
    inst = session.instance
    assert inst is not None
    inst.stop("immediate")  # the server is gone (the fault tests kill it for real)
    assert not session.alive()
    with pytest.raises(InstanceError):
        session.apply(knobs={"work_mem": "8MB"})
    result, status = session.measure(sleeps(1, 0))
    assert result is None and status.outcome is MeasureOutcome.SERVER_CRASHED
    assert isinstance(status.error, InstanceError)
    assert session.recover() == "restarted"
    assert session.measure(sleeps(1, 0)).status.ok


def test_dsn_session(backend: str) -> None:
    with dbgym.PostgresInstance.launch(backend=backend) as inst:
        with DbSession(inst.dsn) as s:
            assert s.instance is None and s.pristine is None and s.alive()
            result, status = s.measure(sleeps(3, 0), speed=None)
            assert status.ok and result is not None and result.summary().statements == 3
            for call in (s.restore, s.recover):
                with pytest.raises(InvalidArgumentError, match="DSN session cannot be restored"):
                    call()
            with pytest.raises(InvalidArgumentError, match="cannot change knobs"):
                s.apply(knobs={"work_mem": "8MB"})
            s.connection().execute("CREATE TABLE t (x int)")
            assert s.apply(indexes=[IndexSpec("t", ("x",))]).created
        with inst.connect() as conn:  # the session did not own the server
            assert conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 't'").fetchone()
        with DbSession(inst.dsn.replace(f":{inst.port}/", f":{inst.port}/no_such_db")) as bad:
            assert not bad.alive()
            result, status = bad.measure(sleeps(1, 0))
            assert status.outcome is MeasureOutcome.FAILED and result is None
            assert isinstance(status.error, InstanceError)  # ConnectError, 3D000
    with pytest.raises(InvalidArgumentError, match="PostgresInstance or a DSN"):
        DbSession(42)  # type: ignore[arg-type]


def test_recover_falls_back_to_the_pristine_snapshot(backend: str) -> None:
    with DbSession.launch(InstanceSpec(backend=backend)) as s:
        inst = s.instance
        assert inst is not None
        s.connection().execute("CREATE TABLE later (x int)")
        inst.stop("fast")
        # the live data directory cannot start any more; the pristine snapshot can
        (inst.datadir / "dbgym_knobs.conf").write_text("shared_buffers = 'lots'\n")
        assert s.recover(backoff=0) == "restored"
        assert s.alive()
        row = s.connection().execute("SELECT to_regclass('later')").fetchone()
        assert row == (None,)  # the pristine state
        # nothing can start (the data directory is broken, the snapshot lost): a clear
        # error naming every step tried
        inst.stop("fast")
        (inst.datadir / "dbgym_knobs.conf").write_text("shared_buffers = 'lots'\n")
        shutil.rmtree(inst.workdir / "snapshots" / "pristine")
        with pytest.raises(PostgresStartError) as caught:
            s.recover(attempts=2, backoff=0.01)
        message = str(caught.value)
        assert "restart (attempt 1)" in message and "restart (attempt 2)" in message
        assert "restore of snapshot 'pristine' and start (attempt 2)" in message
        assert "shared_buffers" in message  # the server's own words, from its log
    assert s.closed  # close did not raise on the server that could not start


def test_launch_from_specs_holds_the_state_and_measures_its_workload() -> None:
    """One benchmark entry gives a matching state and workload; a session launched from the
    specs holds that state as its pristine snapshot, and measures the workload on it."""
    state, workload = dbgym.benchmarks.get("tpch").specs(scale=0.01, seed=15721)
    instance = InstanceSpec(knobs={"work_mem": "16MB"})
    with DbSession.launch(instance, state=state, progress=False) as s:
        assert s.pristine == "pristine"
        conn = s.connection()
        assert conn.execute("SELECT count(*) FROM region").fetchone() == (5,)
        assert conn.execute("SHOW work_mem").fetchone() == ("16MB",)
        w = dbgym.Workload.from_spec(workload.sampled(4, seed=1))
        result, status = s.measure(w, speed=None, statement_timeout=60.0)
        assert status.ok and result is not None
        assert result.ok.all() and len(result.ok) == 4
        conn.execute("DROP TABLE region CASCADE")
        s.restore()
        assert s.connection().execute("SELECT count(*) FROM region").fetchone() == (5,)
