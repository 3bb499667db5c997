"""Nothing outlives a killed owner for long: a local server dies with its owner
(parent-death signal), and the next launch reaps a dead owner's container and files.
Real child processes killed with SIGKILL, real servers and containers.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

import dbgym
from dbgym import retry
from dbgym.dbms import instance_registry, procs
from dbgym.state.cache import StateCache
from tests.conftest import docker_unavailable_reason
from tests.instance_checks import container_exists, processes_using
from tests.test_instance_cleanup import launched, spawn


def test_local_server_dies_with_its_killed_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a registry of its own: no other process's launch may reap this owner's server
    monkeypatch.setenv("DBGYM_RUNTIME_DIR", str(tmp_path / "runtime"))
    child = spawn("local", "sleep", env={"DBGYM_RUNTIME_DIR": str(tmp_path / "runtime")})
    fields = launched(child)
    datadir = Path(fields["datadir"])
    assert procs.is_alive(fields["server_pid"], fields["server_start_time"])
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    # no `dbgym clean`, no launch: the postmaster got SIGQUIT when its owner died
    gone = retry.poll_until(lambda: not processes_using(datadir), 5.0, first=0.01)
    assert gone, f"still running: {processes_using(datadir)}"
    # its files wait for the next launch (or dbgym clean)
    with dbgym.PostgresInstance.launch():
        assert not Path(fields["workdir"]).exists()
        ids = [e.get("id") for _, e in instance_registry.read_entries()]
        assert fields["id"] not in ids


def test_docker_container_of_a_killed_owner_is_removed_by_the_next_launch() -> None:
    reason = docker_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    child = spawn("docker", "sleep")
    fields = launched(child)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert container_exists(fields["container_id"])  # nothing removed it yet
    with dbgym.PostgresInstance.launch(backend="docker"):
        assert not container_exists(fields["container_id"])
        assert not Path(fields["workdir"]).exists()


def test_server_launched_from_a_finished_thread_keeps_running() -> None:
    """The parent-death signal is tied to the spawning thread: servers are spawned from
    a thread that lives as long as the process, not from the caller's worker thread."""
    box: list[dbgym.PostgresInstance] = []
    worker = threading.Thread(target=lambda: box.append(dbgym.PostgresInstance.launch()))
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive() and box
    with box[0] as inst:
        pid = inst.backend_impl.registry_fields()["server_pid"]
        # the thread is gone; the server must not have received its parent-death signal
        with inst.connect() as conn:
            conn.execute("SELECT pg_sleep(0.2)")
        assert procs.is_alive(pid)
        inst.restart()  # spawned again (from the main thread this time)
        with inst.connect() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_pid_liveness_takes_the_start_time(tmp_path: Path) -> None:
    pid, started = procs.identity()
    assert started is not None
    assert procs.is_alive(pid, started)
    assert not procs.is_alive(pid, started + 1)  # same pid, another process: dead
    # the state cache's temp dirs carry their writer's start time: a reused pid does not
    # keep a dead writer's directory
    cache = StateCache(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    dead_writer = tmp_path / f".tpch-x-pg1.tmp-{pid}-{started + 1}-abcd"
    live_writer = tmp_path / f".tpch-x-pg1.tmp-{pid}-{started}-abcd"
    old_style_live = tmp_path / f".tpch-x-pg1.tmp-{os.getpid()}-abcd"
    for d in (dead_writer, live_writer, old_style_live):
        d.mkdir()
    assert cache.clean_stale() == [dead_writer]
    assert live_writer.exists() and old_style_live.exists()
