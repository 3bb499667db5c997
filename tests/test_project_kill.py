"""Hard kills: kill -9 of a simulation's child and of the tracker process that started it,
then reconcile. Nothing may be left (no process, no instance-registry entry, no workdir)
and the rows must say what happened. Real processes: the tracker under test runs in a
process of its own (tests/project_sims_parent.py) or in this one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dbgym.dbms import instance_registry, procs
from dbgym.project.manager import ProjectManager
from dbgym.project.reconcile import reconcile
from dbgym.project.records import StatusCode, StatusSubcode
from dbgym.project.registry import SimulationRegistry
from dbgym.project.tracker import SimulationTracker
from tests import project_sims_fixture as fx
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DBGYM_RUNTIME_DIR", str(tmp_path / "runtime"))
    for key, cls in (("t-sleeper", fx.Sleeper), ("t-leaver", fx.Leaver)):
        SimulationRegistry.register(key, cls)
    yield
    for key in ("t-sleeper", "t-leaver"):
        SimulationRegistry.unregister(key)


@pytest.fixture
def project(tmp_path: Path) -> ProjectManager:
    return ProjectManager(tmp_path / "proj")


class Parent:
    """A tracker in a process of its own (killed by the test)."""

    def __init__(self, project: ProjectManager, *specs: str) -> None:
        self.project = project
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.project_sims_parent",
                str(project.project_folder()),
                *specs,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            _, err = self.proc.communicate(timeout=30)
            pytest.fail(f"the tracker process failed: {err[-3000:]}")
        info: dict[str, Any] = json.loads(line)
        self.pid: int = info["pid"]
        self.sims: list[str] = info["sims"]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def ready(project: ProjectManager, sim_id: str) -> tuple[int, int | None, int, Path, str]:
    """Wait for a Leaver's ready.txt: (child pid, its start time, the sleep's pid, the
    entry's workdir, the entry id)."""
    path = project.sim_folder(sim_id) / "ready.txt"

    def done() -> bool:
        row = project.records.get(sim_id)
        assert not row.is_done, project.records.statuses(sim_id)
        return path.exists() and len(path.read_text().splitlines()) == 3

    wait_until(done, 60.0, f"{sim_id} to be ready")
    sleep_pid, workdir, entry_id = path.read_text().splitlines()
    row = project.records.get(sim_id)
    assert row.pid is not None
    return row.pid, row.pid_start_time, int(sleep_pid), Path(workdir), entry_id


def nothing_left(
    pid: int, started: int | None, sleep_pid: int, workdir: Path, entry_id: str
) -> list[str]:
    left = []
    if procs.is_alive(pid, started):
        left.append(f"child {pid}")
    if procs.is_alive(sleep_pid):
        left.append(f"sleep {sleep_pid}")
    if workdir.exists():
        left.append(f"workdir {workdir}")
    if any(e.get("id") == entry_id for _, e in instance_registry.read_entries()):
        left.append(f"registry entry {entry_id}")
    return left


def terminal(project: ProjectManager, sim_id: str) -> tuple[int, int, str]:
    rows = [s for s in project.records.statuses(sim_id) if s.code != StatusCode.INFO]
    assert len(rows) == 1, rows
    return int(rows[0].code), int(rows[0].subcode), rows[0].details


def test_kill_9_of_the_child_its_live_tracker_process_cleans_up(
    project: ProjectManager,
) -> None:
    parent = Parent(project, "t-leaver")
    try:
        (sim_id,) = parent.sims
        pid, started, sleep_pid, workdir, entry_id = ready(project, sim_id)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: project.records.get(sim_id).is_done, 6.0, "the kill to be noticed")
        wait_until(
            lambda: not nothing_left(pid, started, sleep_pid, workdir, entry_id),
            10.0,
            "the tracker to clean up",
        )
    finally:
        parent.kill()
    row = project.records.get(sim_id)
    assert (row.force_stopped, row.failed, row.cancelled) == (True, True, False)
    code, subcode, details = terminal(project, sim_id)
    assert (code, subcode) == (StatusCode.FAIL, StatusSubcode.ERROR)
    assert f"pid {pid}" in details and "SIGKILL" in details
    assert not reconcile(project).stopped


def test_kill_9_of_the_parent_tied_children_stop_detached_ones_run(
    project: ProjectManager,
) -> None:
    parent = Parent(project, "t-leaver", "t-leaver:detached")
    tied_id, detached_id = parent.sims
    tied = ready(project, tied_id)
    detached = ready(project, detached_id)
    start = time.monotonic()
    parent.kill()
    wait_until(lambda: project.records.get(tied_id).is_done, 6.0, "the tied child to stop")
    noticed = time.monotonic() - start
    wait_until(lambda: not nothing_left(*tied), 10.0, "the tied child to clean up")
    print(f"kill -9 of the tracker: its tied child stopped itself after {noticed * 1000:.0f} ms")
    row = project.records.get(tied_id)
    assert (row.force_stopped, row.failed, row.cancelled) == (True, True, False)
    code, subcode, details = terminal(project, tied_id)
    assert (code, subcode) == (StatusCode.FAIL, StatusSubcode.ERROR)
    assert f"tracker (pid {parent.pid}" in details
    # the detached child keeps running (and heartbeating) without its starter
    time.sleep(1.5)
    row = project.records.get(detached_id)
    assert not row.is_done and procs.is_alive(detached[0], detached[1])
    assert not reconcile(project).stopped
    # ... until it is killed too; nobody watches it now: reconcile finds it
    os.kill(detached[0], signal.SIGKILL)
    wait_until(lambda: not procs.is_alive(detached[0], detached[1]), 10.0, "the kill")
    report = reconcile(project)
    assert list(report.stopped) == [detached_id]
    assert nothing_left(*detached) == []
    row = project.records.get(detached_id)
    assert (row.force_stopped, row.failed) == (True, True)
    code, subcode, details = terminal(project, detached_id)
    assert (code, subcode) == (StatusCode.FAIL, StatusSubcode.ERROR)
    assert f"pid {detached[0]}" in details and "gone" in details
    # and opening the project again finds nothing more to do
    assert not reconcile(ProjectManager(project.project_folder(), reconcile=False)).stopped


def test_a_live_tracker_notices_another_process_s_killed_child(
    project: ProjectManager,
) -> None:
    parent = Parent(project, "t-sleeper:detached")
    (sim_id,) = parent.sims
    parent.kill()  # the detached child runs on, watched by nobody but us
    with SimulationTracker(project) as watcher:
        row = project.records.get(sim_id)
        wait_until(lambda: project.records.get(sim_id).pid is not None, 60.0, "its start")
        row = project.records.get(sim_id)
        assert row.pid is not None
        start = time.monotonic()
        os.kill(row.pid, signal.SIGKILL)
        wait_until(lambda: project.records.get(sim_id).is_done, 6.0, "the watcher to notice")
        print(
            "kill -9 of another process's child noticed by a live tracker after "
            f"{(time.monotonic() - start) * 1000:.0f} ms"
        )
        assert watcher.running() == []
    row = project.records.get(sim_id)
    assert (row.force_stopped, row.failed) == (True, True)
    assert f"pid {row.pid}" in terminal(project, sim_id)[2]


def test_a_queued_simulation_of_a_killed_tracker_is_reconciled(
    project: ProjectManager,
) -> None:
    # two slots on this machine's 2 cores: the third simulation waits in the queue
    parent = Parent(project, *["t-sleeper"] * (os.cpu_count() or 1), "t-sleeper")
    queued = parent.sims[-1]
    assert project.records.get(queued).pid is None
    parent.kill()
    assert reconcile(project, grace=60.0).stopped == {}  # its heartbeat is fresh
    wait_until(
        lambda: bool(reconcile(project, grace=2.0).stopped) or project.records.get(queued).is_done,
        10.0,
        "the queued simulation to be reconciled",
    )
    row = project.records.get(queued)
    assert (row.force_stopped, row.failed) == (True, True) and row.pid is None
    assert "queued" in terminal(project, queued)[2]
    running = parent.sims[:-1]  # the running ones stopped themselves
    wait_until(lambda: all(project.records.get(s).is_done for s in running), 10.0, "tied children")


def test_a_loop_of_20_kills_leaves_nothing_behind(project: ProjectManager) -> None:
    leftovers: list[tuple[int, int | None, int, Path, str]] = []
    start = time.monotonic()
    with SimulationTracker(project, max_concurrent=4) as tracker:
        ids = [tracker.start_sim("t-leaver") for _ in range(20)]
        for sim_id in ids:
            found = ready(project, sim_id)
            leftovers.append(found)
            os.kill(found[0], signal.SIGKILL)
        assert tracker.join(timeout=120)
    reconcile(project)
    took = time.monotonic() - start
    print(f"20 kill -9 loop: {took:.1f} s")
    for sim_id, found in zip(ids, leftovers, strict=True):
        assert nothing_left(*found) == [], sim_id
        row = project.records.get(sim_id)
        assert (row.force_stopped, row.failed, row.cancelled) == (True, True, False)
        code, subcode, details = terminal(project, sim_id)
        assert (code, subcode) == (StatusCode.FAIL, StatusSubcode.ERROR)
        assert "SIGKILL" in details
    assert [e for _, e in instance_registry.read_entries()] == []
    assert project.records.unfinished() == []


def test_a_starter_that_exits_without_closing_cancels_its_tied_simulations(
    project: ProjectManager,
) -> None:
    parent = Parent(project, "--exit", "t-sleeper")
    (sim_id,) = parent.sims
    assert parent.proc.wait(timeout=60) == 0  # its atexit closed the tracker
    parent.kill()
    row = project.records.get(sim_id)
    assert (row.is_done, row.cancelled, row.failed, row.force_stopped) == (True, True, True, False)
    assert terminal(project, sim_id)[:2] == (StatusCode.FAIL, StatusSubcode.STOPPED)
    assert (project.sim_folder(sim_id) / "teardown.txt").exists()
    assert row.pid is not None and not procs.is_alive(row.pid, row.pid_start_time)


def test_cancel_from_another_process_running_and_queued(project: ProjectManager) -> None:
    # a live tracker process runs two sleepers (its two slots) and queues a third; a
    # tracker here (as `dbgym sims cancel` does) cancels one running and the queued one
    slots = os.cpu_count() or 1
    parent = Parent(project, *["t-sleeper"] * (slots + 1))
    try:
        running, queued = parent.sims[0], parent.sims[-1]
        wait_until(lambda: project.records.get(running).pid is not None, 60.0, "its start")
        wait_until(lambda: len(project.records.statuses(running)) >= 2, 30.0, "it to sleep")
        row = project.records.get(running)
        assert row.pid is not None
        with SimulationTracker(project) as other:
            start = time.monotonic()
            assert other.cancel(running)
            took = time.monotonic() - start
            assert other.cancel(queued)
        print(f"cancel from another process: process gone after {took:.2f} s")
        row = project.records.get(running)
        assert (row.cancelled, row.failed, row.force_stopped) == (True, True, False)
        assert terminal(project, running)[:2] == (StatusCode.FAIL, StatusSubcode.STOPPED)
        assert (project.sim_folder(running) / "teardown.txt").exists()
        assert row.pid is not None and not procs.is_alive(row.pid, row.pid_start_time)
        row = project.records.get(queued)
        assert (row.cancelled, row.pid) == (True, None)
        assert terminal(project, queued)[2] == "cancelled before it started"
        # the starter's slot went to nobody: the cancelled queued one never starts
        time.sleep(1.0)
        assert project.records.get(queued).pid is None
    finally:
        parent.kill()


def test_reconcile_other_hosts_by_heartbeat_and_reused_pids(project: ProjectManager) -> None:
    records = project.records

    def started(host: str, pid: int, start_time: int | None, beat_age: float) -> str:
        sim_id = records.create_simulation(
            name="n", sim_key="t-sleeper", config=None, start_kwargs=None,
            sim_type_name="Sleeper", sim_module_name="tests.project_sims_fixture",
        )  # fmt: skip
        records.mark_started(sim_id, pid=pid, pid_start_time=start_time, host=host)
        then = datetime.now(timezone.utc) - timedelta(seconds=beat_age)
        records.conn.execute(
            "UPDATE simulations SET heartbeat = ? WHERE sim_id = ?", (then.isoformat(), sim_id)
        )
        return sim_id

    me, my_start = procs.identity()
    here = socket.gethostname()
    lost = started("some-other-host", 4242, 1, beat_age=30.0)
    fresh = started("some-other-host", 4242, 1, beat_age=0.5)
    assert my_start is not None
    reused = started(here, me, my_start + 1, beat_age=0.5)  # this pid, another process
    alive = started(here, me, my_start, beat_age=30.0)  # alive: its heartbeat age is moot
    report = reconcile(project, grace=5.0)
    assert set(report.stopped) == {lost, reused}
    assert "some-other-host sent no heartbeat for 30" in report.stopped[lost]
    assert (
        f"pid {me} on host {here} is gone (pid {me} now runs another process)"
        in (report.stopped[reused])
    )
    for sim_id in (lost, reused):
        row = records.get(sim_id)
        assert (row.force_stopped, row.failed, row.cancelled) == (True, True, False)
    assert not records.get(fresh).is_done and not records.get(alive).is_done
