"""Faults injected into a working session (real servers, both backends): the server
killed (postmaster SIGKILL; `docker kill` of the container) during a replay, a restore
and a knob restart, and a backend SIGKILLed mid-query as the OOM killer does. Each time
the session reports an InstanceError (raised, or as measure's status), and recovers so
that the next measure succeeds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import dbgym
from dbgym import _core
from dbgym.dbms.spec import InstanceSpec
from dbgym.errors import InstanceError, ServerCrashedError
from dbgym.observe import MetricsObserver
from dbgym.session import DbSession, MeasureOutcome
from tests.conftest import Faults, docker_unavailable_reason
from tests.instance_checks import instance_fields, leftovers

SLEEP = "SELECT pg_sleep(0.02)"


@pytest.fixture
def session(backend: str) -> Iterator[DbSession]:
    with DbSession.launch(InstanceSpec(backend=backend)) as s:
        yield s


def sleeps(n: int, sessions: int) -> _core.Trace:
    return _core.trace_from_statements(
        [f"s{i % sessions}" for i in range(n)], list(range(n)), [SLEEP] * n
    )


def running_sleep(conn: psycopg.Connection[Any]) -> int | None:
    """The pid of a backend running the replay's statement right now, if any."""
    row = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query = %s LIMIT 1",
        (SLEEP,),
    ).fetchone()
    return int(row[0]) if row is not None else None


def measures_fine(session: DbSession) -> None:
    result, status = session.measure(sleeps(8, 2), speed=None)
    assert status.ok, status
    assert result is not None and result.summary().statements == 8
    assert result.summary().errors == 0


def test_server_killed_during_measure(session: DbSession, faults: Faults) -> None:
    inst = session.instance
    assert inst is not None
    metrics = session.add_source(MetricsObserver(session))
    watch = inst.connect(autocommit=True)
    try:
        killer = faults.when(
            lambda: running_sleep(watch) is not None,
            lambda: faults.kill_server(inst),
            f"kill of the {inst.backend} server once the replay runs",
        )
        epoch = session.epoch
        result, status = session.measure(sleeps(400, 4), speed=None)  # ~2 s unharmed
        killer.join()
    finally:
        with contextlib.suppress(psycopg.Error):
            watch.close()
    assert status.outcome is MeasureOutcome.SERVER_CRASHED, status
    assert isinstance(status.error, ServerCrashedError) and "died during measure" in str(
        status.error
    )
    assert result is not None and not result.ok.all()  # what ran after the kill failed
    assert session.epoch > epoch and not session.alive()
    with pytest.raises(InstanceError):  # raised, not a psycopg error
        session.apply(knobs={"work_mem": "8MB"})
    assert session.recover() == "restarted"
    measures_fine(session)
    assert (metrics.observe() >= 0).all()  # re-based at the recovery


def test_server_killed_during_restore(session: DbSession, faults: Faults) -> None:
    inst = session.instance
    assert inst is not None
    session.connection().execute("CREATE TABLE scratch AS SELECT 1 AS x")
    killed = faults.kill_server_on(inst, "starting")  # the restored server, not ready yet
    with pytest.raises(InstanceError):
        session.restore()
    assert killed.is_set() and not session.alive()
    assert session.recover() == "restarted"
    # the files were restored before the kill: the restarted server is the pristine one
    row = session.connection().execute("SELECT to_regclass('scratch')").fetchone()
    assert row == (None,)
    measures_fine(session)


def test_server_killed_during_knob_restart(session: DbSession, faults: Faults) -> None:
    inst = session.instance
    assert inst is not None
    killed = faults.kill_server_on(inst, "starting")  # the server with the new knobs
    with pytest.raises(InstanceError):
        session.apply(knobs={"shared_buffers": "64MB"})
    assert killed.is_set()
    assert session.recover() in ("healthy", "restarted")
    # a batch that failed is not applied
    shown = session.connection().execute("SHOW shared_buffers").fetchone()
    assert shown == ("128MB",)
    measures_fine(session)
    change = session.apply(knobs={"shared_buffers": "64MB"})  # and it works now
    assert change.knobs is not None and change.knobs.restarted
    measures_fine(session)


def test_backend_killed_mid_query(session: DbSession, faults: Faults) -> None:
    """A backend SIGKILLed (the OOM killer's way): the postmaster survives but ends every
    session and restarts its processes. The session notices (its admin connection is
    gone), moves the epoch, and recover() waits for the server to accept connections."""
    inst = session.instance
    assert inst is not None
    metrics = session.add_source(MetricsObserver(session))
    watch = inst.connect(autocommit=True)
    victim: list[int] = []

    def found() -> bool:
        pid = running_sleep(watch)
        if pid is not None:
            victim.append(pid)
        return pid is not None

    try:
        killer = faults.when(
            found,
            lambda: faults.kill_backend(inst, victim[0]),
            "SIGKILL of a backend running a replayed statement",
        )
        epoch = session.epoch
        result, status = session.measure(sleeps(400, 4), speed=None)
        killer.join()
    finally:
        with contextlib.suppress(psycopg.Error):
            watch.close()
    assert status.outcome is MeasureOutcome.SERVER_CRASHED, status
    assert isinstance(status.error, ServerCrashedError)
    assert "a backend crashed or was killed" in str(status.error)
    assert inst.alive()  # the postmaster lives on
    assert result is not None and not result.ok.all()
    assert session.epoch > epoch
    assert session.recover() == "healthy"
    assert (metrics.observe() >= 0).all()  # crash recovery zeroed the counters: re-based
    measures_fine(session)


def test_killed_server_restore_restart_start_close(backend: str, faults: Faults) -> None:
    """The instance itself after its server was killed: restore, restart and start bring
    it back (on docker: a new container on the same data directory), close never raises."""
    inst = dbgym.PostgresInstance.launch(backend=backend)
    try:
        with inst.connect(autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
        inst.snapshot("p")
        for bring_back in (lambda: inst.restore("p"), inst.restart, inst.start):
            faults.kill_server(inst)
            assert not inst.alive()
            bring_back()
            assert inst.alive()
            with inst.connect() as conn:
                assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)
        fields = instance_fields(inst)
        faults.kill_server(inst)
    finally:
        inst.close()
    inst.close()
    assert leftovers(fields) == []


def test_postmaster_killed_in_its_container(faults: Faults) -> None:
    """Docker, the postmaster SIGKILLed while its container lives on (the supervisor
    sees it exit): reported during measure, recovered in the same container."""
    reason = docker_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with DbSession.launch(InstanceSpec(backend="docker")) as session:
        inst = session.instance
        assert inst is not None
        container = inst.backend_impl.registry_fields()["container_id"]
        watch = inst.connect(autocommit=True)
        try:
            killer = faults.when(
                lambda: running_sleep(watch) is not None,
                lambda: faults.kill_postmaster(inst),
                "SIGKILL of the postmaster in its container once the replay runs",
            )
            result, status = session.measure(sleeps(400, 4), speed=None)
            killer.join()
        finally:
            with contextlib.suppress(psycopg.Error):
                watch.close()
        assert status.outcome is MeasureOutcome.SERVER_CRASHED, status
        assert isinstance(status.error, ServerCrashedError)
        assert result is not None and not result.ok.all()
        assert session.recover() == "restarted"
        assert inst.backend_impl.registry_fields()["container_id"] == container
        measures_fine(session)
