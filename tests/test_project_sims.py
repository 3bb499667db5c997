"""Simulations in child processes: the registry, terminal states (one test each), cancel
(also of a simulation stuck in PostgreSQL work), the queue, environment recording, and 16
concurrent writers. Real child processes, real SQLite; one test starts a real server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from dbgym.dbms import procs
from dbgym.errors import InvalidArgumentError
from dbgym.project.manager import ProjectManager
from dbgym.project.records import SimulationRow, StatusCode, StatusSubcode
from dbgym.project.registry import SimulationRegistry
from dbgym.project.simulation import Simulation, SimulationStartConfig
from dbgym.project.tracker import SimulationTracker
from tests import project_sims_fixture as fx
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent

KEYS: dict[str, type[Simulation]] = {
    "t-quick": fx.Quick,
    "t-fails": fx.Fails,
    "t-sleeper": fx.Sleeper,
    "t-stubborn": fx.Stubborn,
    "t-poster": fx.Poster,
    "t-pgsleep": fx.PgSleep,
    "t-pgstubborn": fx.PgStubborn,
}


@pytest.fixture(autouse=True)
def registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # a registry of instances of our own (children inherit it): nobody else's launch reaps
    # our entries, and "nothing left" is checked on what these tests made
    monkeypatch.setenv("DBGYM_RUNTIME_DIR", str(tmp_path / "runtime"))
    for key, cls in KEYS.items():
        SimulationRegistry.register(key, cls)
    yield
    for key in KEYS:
        SimulationRegistry.unregister(key)


@pytest.fixture
def project(tmp_path: Path) -> ProjectManager:
    return ProjectManager(tmp_path / "proj")


@pytest.fixture
def tracker(project: ProjectManager) -> Iterator[SimulationTracker]:
    with SimulationTracker(project, max_concurrent=4) as t:
        yield t


def row_of(project: ProjectManager, sim_id: str) -> SimulationRow:
    return project.records.get(sim_id)


def wait_started(project: ProjectManager, sim_id: str, post: str | None = None) -> SimulationRow:
    """Wait until the child marked itself started (and posted `post`, when given)."""

    def ready() -> bool:
        row = row_of(project, sim_id)
        if row.is_done:
            raise AssertionError(f"{sim_id} ended early: {project.records.statuses(sim_id)}")
        if row.pid is None:
            return False
        return post is None or any(post in s.details for s in project.records.statuses(sim_id))

    wait_until(ready, 60.0, f"simulation {sim_id} to start")
    return row_of(project, sim_id)


def seconds_since(iso: str | None, t0: datetime) -> float:
    assert iso is not None
    return (datetime.fromisoformat(iso) - t0).total_seconds()


def last_status(project: ProjectManager, sim_id: str) -> tuple[int, int, str, str | None]:
    rows = [s for s in project.records.statuses(sim_id) if s.code != StatusCode.INFO]
    assert rows, f"no terminal status row for {sim_id}"
    s = rows[-1]
    return int(s.code), int(s.subcode), s.details, s.error_trace


# -- the registry ---------------------------------------------------------------------


def test_registry_register_make_list() -> None:
    default = SimulationStartConfig(name="dflt", sim_key="t-reg", kwargs={"posts": 5})
    SimulationRegistry.register("t-reg", fx.Quick, default)
    try:
        sim = SimulationRegistry.make("t-reg")
        assert isinstance(sim, fx.Quick) and sim.config == default
        other = SimulationStartConfig(name="x", sim_key="t-reg", kwargs={"posts": 1})
        assert SimulationRegistry.make("t-reg", other).config.kwargs_dict() == {"posts": 1}
        assert {"t-reg", "dbgym-run"} <= set(SimulationRegistry.list())
        SimulationRegistry.register("t-fn", fx.make_quick)
        assert isinstance(SimulationRegistry.make("t-fn"), fx.Quick)
        SimulationRegistry.register("t-str", "tests.project_sims_fixture:Fails")
        assert isinstance(SimulationRegistry.make("t-str"), fx.Fails)
    finally:
        for key in ("t-reg", "t-fn", "t-str"):
            SimulationRegistry.unregister(key)
    with pytest.raises(InvalidArgumentError, match="did you mean 't-quick'"):
        SimulationRegistry.make("t-quik")
    with pytest.raises(InvalidArgumentError, match="module:qualname"):
        SimulationRegistry.register("t-bad", "no_colon")
    assert SimulationStartConfig.from_dict(default.to_dict()) == default


def test_builtin_dbgym_run_is_a_lazy_string() -> None:
    code = (
        "import sys\n"
        "from dbgym.project.registry import SimulationRegistry\n"
        "import dbgym.project.tracker, dbgym.project.child, dbgym.project.exporter\n"
        "import dbgym.project.reconcile\n"
        "print(SimulationRegistry.location('dbgym-run').target)\n"
        "heavy = ('dbgym.runner', 'dbgym.envs.env')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["dbgym.runner.simulation:RunSimulation", "[]"]


def test_start_refuses_what_a_child_cannot_import(tracker: SimulationTracker) -> None:
    SimulationRegistry.register("t-lambda", lambda cfg: fx.Quick(cfg))
    try:
        with pytest.raises(InvalidArgumentError, match="cannot be imported by a child"):
            tracker.start_sim("t-lambda")
    finally:
        SimulationRegistry.unregister("t-lambda")
    with pytest.raises(InvalidArgumentError, match="unknown simulation key"):
        tracker.start_sim("t-nope")
    assert tracker.project.records.list() == []


# -- terminal states ------------------------------------------------------------------


def test_normal_end_is_done_with_rows_progress_result_and_environment(
    project: ProjectManager, tracker: SimulationTracker
) -> None:
    sim_id = tracker.start_sim("t-quick", kwargs={"posts": 3}, name="three posts")
    assert tracker.wait(sim_id, timeout=60)
    row = row_of(project, sim_id)
    assert (row.is_done, row.failed, row.cancelled, row.force_stopped) == (
        True,
        False,
        False,
        False,
    )
    assert row.state == "done" and row.name == "three posts" and row.sim_key == "t-quick"
    assert (row.sim_type_name, row.sim_module_name) == ("Quick", "tests.project_sims_fixture")
    assert row.config == {
        "kind": "simulation",
        "name": "three posts",
        "sim_key": "t-quick",
        "kwargs": {"posts": 3},
    }
    statuses = project.records.statuses(sim_id)
    assert statuses[0].details == f"started pid {row.pid} on host {row.host}"
    assert [s.details for s in statuses[1:4]] == ["post 0", "post 1", "post 2"]
    assert (statuses[-1].code, statuses[-1].subcode) == (StatusCode.SUCCESS, StatusSubcode.NONE)
    assert (row.progress_done, row.progress_total) == (3, 3)
    assert row.result == {"posts": 3, "pid": row.pid}
    env = row.environment or {}
    for key in (
        "dbgym_version",
        "dbgym_commit",
        "python",
        "dependencies",
        "cpu_model",
        "cpu_count",
        "memory_bytes",
        "kernel",
    ):
        assert key in env, key
    assert env["seed"] == 7 and "numpy" in env["dependencies"]
    assert row.started and row.ended and row.started <= row.ended
    assert not procs.is_alive(row.pid or 0, row.pid_start_time)


def test_uncaught_exception_is_failed_with_its_trace(
    project: ProjectManager, tracker: SimulationTracker
) -> None:
    sim_id = tracker.start_sim("t-fails")
    assert tracker.wait(sim_id, timeout=60)
    row = row_of(project, sim_id)
    assert (row.is_done, row.failed, row.cancelled, row.force_stopped) == (
        True,
        True,
        False,
        False,
    )
    code, subcode, details, trace = last_status(project, sim_id)
    assert (code, subcode) == (StatusCode.FAIL, StatusSubcode.ERROR)
    assert details == "ValueError: boom from the simulation"
    assert trace is not None and "Traceback" in trace and "boom from the simulation" in trace
    assert row.state == "failed"


def test_cancel_stops_a_simulation_that_never_checks_within_2s(
    project: ProjectManager, tracker: SimulationTracker
) -> None:
    sim_id = tracker.start_sim("t-sleeper")
    row = wait_started(project, sim_id, "sleeping")
    t0 = datetime.now(timezone.utc)
    start = time.monotonic()
    assert tracker.cancel(sim_id)
    took = time.monotonic() - start
    row = row_of(project, sim_id)
    latency = seconds_since(row.ended, t0)
    print(f"cancel: terminal row after {latency * 1000:.0f} ms, process gone after {took:.2f} s")
    assert latency < 2.0
    assert (row.is_done, row.failed, row.cancelled, row.force_stopped) == (
        True,
        True,
        True,
        False,
    )
    assert last_status(project, sim_id)[:2] == (StatusCode.FAIL, StatusSubcode.STOPPED)
    assert row.state == "cancelled"
    assert (project.sim_folder(sim_id) / "teardown.txt").exists()  # teardown ran
    assert not procs.is_alive(row.pid or 0, row.pid_start_time)
    assert not tracker.cancel(sim_id)  # over already


def test_sigterm_from_someone_else_is_a_cancel(
    project: ProjectManager, tracker: SimulationTracker
) -> None:
    sim_id = tracker.start_sim("t-sleeper")
    row = wait_started(project, sim_id, "sleeping")
    assert row.pid is not None
    t0 = datetime.now(timezone.utc)
    os.kill(row.pid, signal.SIGTERM)
    assert tracker.wait(sim_id, timeout=30)
    row = row_of(project, sim_id)
    assert seconds_since(row.ended, t0) < 2.0
    assert (row.cancelled, row.failed, row.force_stopped) == (True, True, False)
    code, subcode, details, _ = last_status(project, sim_id)
    assert (code, subcode) == (StatusCode.FAIL, StatusSubcode.STOPPED)
    assert f"SIGTERM to pid {row.pid}" in details
    assert (project.sim_folder(sim_id) / "teardown.txt").exists()


def test_sigkill_is_force_stopped_naming_pid_and_signal(
    project: ProjectManager, tracker: SimulationTracker
) -> None:
    sim_id = tracker.start_sim("t-sleeper")
    row = wait_started(project, sim_id, "sleeping")
    assert row.pid is not None
    start = time.monotonic()
    os.kill(row.pid, signal.SIGKILL)
    wait_until(lambda: row_of(project, sim_id).is_done, 6.0, "the kill to be noticed")
    detected = time.monotonic() - start
    print(f"kill -9 of a tracker's own child noticed after {detected * 1000:.0f} ms")
    row = row_of(project, sim_id)
    assert (row.is_done, row.failed, row.cancelled, row.force_stopped) == (
        True,
        True,
        False,
        True,
    )
    code, subcode, details, _ = last_status(project, sim_id)
    assert (code, subcode) == (StatusCode.FAIL, StatusSubcode.ERROR)
    assert f"pid {row.pid}" in details and "SIGKILL" in details
    assert row.state == "force_stopped"


def test_first_terminal_writer_wins(project: ProjectManager, tracker: SimulationTracker) -> None:
    sim_id = tracker.start_sim("t-quick", kwargs={"posts": 1})
    assert tracker.wait(sim_id, timeout=60)
    assert not tracker.cancel(sim_id)
    from dbgym.project.reconcile import force_stop

    assert not force_stop(project, sim_id, "late")
    row = row_of(project, sim_id)
    assert row.state == "done" and not row.failed
    assert [s.details for s in project.records.statuses(sim_id)].count("late") == 0


def test_cancel_at_any_moment_of_the_child_s_start_up(
    project: ProjectManager, tracker: SimulationTracker
) -> None:
    # before its signal handler exists, while it opens the project, right after it marked
    # itself started, in setup: every moment ends cancelled, and quickly
    for delay in (0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9):
        sim_id = tracker.start_sim("t-sleeper")
        time.sleep(delay)
        start = time.monotonic()
        assert tracker.cancel(sim_id)
        took = time.monotonic() - start
        row = row_of(project, sim_id)
        assert row.state == "cancelled", (delay, project.records.statuses(sim_id))
        assert last_status(project, sim_id)[:2] == (StatusCode.FAIL, StatusSubcode.STOPPED)
        assert took < 3.0, (delay, took)
        if row.pid is not None:
            assert not procs.is_alive(row.pid, row.pid_start_time)


def test_a_stubborn_simulation_is_killed_still_cancelled(project: ProjectManager) -> None:
    with SimulationTracker(project, teardown_timeout=1.0, cancel_timeout=0.5) as tracker:
        sim_id = tracker.start_sim("t-stubborn")
        row = wait_started(project, sim_id, "stubborn")
        start = time.monotonic()
        assert tracker.cancel(sim_id)
        took = time.monotonic() - start
        row = row_of(project, sim_id)
        assert (row.cancelled, row.failed) == (True, True)
        assert last_status(project, sim_id)[:2] == (StatusCode.FAIL, StatusSubcode.STOPPED)
        assert not procs.is_alive(row.pid or 0, row.pid_start_time)
        assert took < 5.0


def test_cancel_of_a_queued_simulation_and_the_concurrency_limit(
    project: ProjectManager,
) -> None:
    with SimulationTracker(project, max_concurrent=2) as tracker:
        ids = [tracker.start_sim("t-quick", kwargs={"posts": 2, "seconds": 0.3}) for _ in range(5)]
        assert len(tracker.running()) == 2 and len(tracker.queued()) == 3
        assert tracker.cancel(ids[-1])
        assert tracker.join(timeout=120)
    rows = [row_of(project, i) for i in ids]
    assert [r.state for r in rows] == ["done"] * 4 + ["cancelled"]
    assert rows[-1].pid is None
    assert last_status(project, ids[-1])[2] == "cancelled before it started"
    # never more than two ran at once
    events = sorted(
        [(r.started, 1) for r in rows[:4]] + [(r.ended, -1) for r in rows[:4]],
        key=lambda e: (e[0] or "", e[1]),
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak <= 2


def test_cancel_inside_postgresql_work_stops_its_server(
    project: ProjectManager, tracker: SimulationTracker
) -> None:
    from tests.instance_checks import leftovers

    sim_id = tracker.start_sim("t-pgsleep")
    wait_started(project, sim_id, "sleeping in PostgreSQL")
    fields = json.loads((project.sim_folder(sim_id) / "server.json").read_text())
    assert leftovers(fields), "the server should run now"
    time.sleep(0.3)  # inside pg_sleep(60)
    t0 = datetime.now(timezone.utc)
    start = time.monotonic()
    assert tracker.cancel(sim_id)
    took = time.monotonic() - start
    row = row_of(project, sim_id)
    latency = seconds_since(row.ended, t0)
    print(
        f"cancel inside pg_sleep: terminal row after {latency * 1000:.0f} ms, "
        f"process and server gone after {took:.2f} s"
    )
    assert latency < 2.0 and took < 15.0
    assert (row.cancelled, row.failed, row.force_stopped) == (True, True, False)
    assert last_status(project, sim_id)[:2] == (StatusCode.FAIL, StatusSubcode.STOPPED)
    assert (project.sim_folder(sim_id) / "teardown.txt").read_text() == "closed\n"
    assert leftovers(fields) == []


def test_a_stubborn_simulation_s_server_is_cleaned_after_the_kill(
    project: ProjectManager,
) -> None:
    from tests.instance_checks import leftovers

    with SimulationTracker(project, teardown_timeout=1.0, cancel_timeout=0.5) as tracker:
        sim_id = tracker.start_sim("t-pgstubborn")
        wait_started(project, sim_id, "stubborn in PostgreSQL")
        fields = json.loads((project.sim_folder(sim_id) / "server.json").read_text())
        assert leftovers(fields)
        assert tracker.cancel(sim_id)
    row = row_of(project, sim_id)
    assert (row.cancelled, row.failed) == (True, True)
    assert not (project.sim_folder(sim_id) / "teardown.txt").exists()  # it never tore down
    # killed after teardown_timeout: its server, files and registry entry are cleaned
    wait_until(lambda: not leftovers(fields), 10.0, "its server and files to go")


def test_cancel_in_the_middle_of_database_writes(project: ProjectManager) -> None:
    """Most of a Poster's time is inside a write transaction: the cancel waits for the
    write to end (never leaving a transaction open) and still lands within 2 s."""
    with SimulationTracker(project, max_concurrent=3) as tracker:
        ids = [tracker.start_sim("t-poster", kwargs={"posts": 10**6}) for _ in range(3)]
        wait_until(
            lambda: all(project.records.count_statuses(s) > 50 for s in ids), 60.0, "posting"
        )
        for sim_id in ids:
            t0 = datetime.now(timezone.utc)
            start = time.monotonic()
            assert tracker.cancel(sim_id)
            print(f"cancel during writes: {time.monotonic() - start:.2f} s")
            row = row_of(project, sim_id)
            assert row.state == "cancelled" and seconds_since(row.ended, t0) < 2.0
            assert row.pid is not None and not procs.is_alive(row.pid, row.pid_start_time)
            log = (project.sim_folder(sim_id) / "child.log").read_text()
            assert "Traceback" not in log, log[-3000:]
            code, subcode, details, _ = last_status(project, sim_id)
            assert (code, subcode) == (StatusCode.FAIL, StatusSubcode.STOPPED)
            assert "was killed" not in details  # it stopped on its own


def test_api_calls_rows_for_the_entry_points(project: ProjectManager) -> None:
    from dbgym.project.reconcile import reconcile

    with SimulationTracker(project) as tracker:
        done = tracker.start_sim("t-quick", kwargs={"posts": 1, "seconds": 0.5})
        polls = 0
        while not tracker.wait(done, timeout=0.05):  # a polling loop: one row
            polls += 1
        sleeper = tracker.start_sim("t-sleeper")
        wait_started(project, sleeper)
        tracker.cancel(sleeper)
        with pytest.raises(InvalidArgumentError):
            tracker.start_sim("t-nope")
        assert tracker.join(timeout=30)
    reconcile(project)
    calls = project.records.api_calls()
    names = [c["name"] for c in calls]
    assert polls > 0 and names.count("tracker.wait") == 1
    assert names.count("tracker.start_sim") == 3 and names.count("tracker.join") == 1
    assert "tracker.cancel" in names and "project.reconcile" in names
    failed = [c for c in calls if c["name"] == "tracker.start_sim" and c["code"] != 0]
    assert len(failed) == 1 and "unknown simulation key" in failed[0]["details"]["outcome"]
    wait_row = next(c for c in calls if c["name"] == "tracker.wait")
    assert wait_row["details"]["arguments"] == {"sim_id": done, "timeout": 0.05}


# -- many writers ---------------------------------------------------------------------


def test_16_processes_x_1000_status_rows_with_readers(
    project: ProjectManager, tmp_path: Path
) -> None:
    stop = threading.Event()
    reads = {"n": 0}
    errors: list[str] = []
    cli_outputs: list[str] = []

    def reader() -> None:
        reader_project = ProjectManager(project.project_folder(), reconcile=False)
        while not stop.is_set():
            try:
                reader_project.records.list()
                reads["n"] += 1
            except Exception as exc:
                errors.append(repr(exc))
            time.sleep(0.02)

    def cli_loop() -> None:
        while not stop.is_set():
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "dbgym",
                    "sims",
                    "list",
                    "--project-dir",
                    str(project.project_folder()),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            cli_outputs.append(f"{done.returncode}\n{done.stdout}\n{done.stderr}")

    threads = [threading.Thread(target=reader)]
    has_cli = importlib.util.find_spec("dbgym.project.cli") is not None
    if has_cli:
        threads.append(threading.Thread(target=cli_loop))
    for t in threads:
        t.start()
    start = time.monotonic()
    try:
        with SimulationTracker(project, max_concurrent=16) as tracker:
            ids = [tracker.start_sim("t-poster", kwargs={"posts": 1000}) for _ in range(16)]
            assert len(tracker.running()) == 16  # all at once
            assert tracker.join(timeout=300)
        took = time.monotonic() - start
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    print(
        f"16 processes x 1000 status rows: {took:.1f} s, {reads['n']} reads, "
        f"{len(cli_outputs)} `dbgym sims list` runs"
    )
    assert errors == []
    for sim_id in ids:
        row = row_of(project, sim_id)
        assert row.state == "done", project.records.statuses(sim_id)[-1]
        details = [s.details for s in project.records.statuses(sim_id)]
        assert details[1:1001] == [f"row {i}" for i in range(1000)]
        log = (project.sim_folder(sim_id) / "child.log").read_text()
        assert "locked" not in log
    assert not has_cli or cli_outputs
    assert all(out.startswith("0\n") for out in cli_outputs), cli_outputs[:1]
    assert not any("locked" in out for out in cli_outputs)
