"""Many processes on one project database: 16 writer processes x 1,000 status rows while a
reader process and a `dbgym sims list` loop run, a lock held longer than SQLite's busy
timeout, the first terminal writer winning a race of 8 processes, 8 processes migrating
at once. Real SQLite files, real processes; nothing may print "locked"."""

from __future__ import annotations

import json
import os
import queue
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dbgym.errors import ProjectError
from dbgym.project import db as project_db
from dbgym.project.db import connect, read_version, write
from dbgym.project.manager import ProjectManager
from dbgym.project.records import StatusCode
from tests import project_db_procs as procs

FIXTURE_V1 = Path(__file__).parent / "fixtures" / "project" / "schema-v1.db"
DBGYM = str(Path(sys.executable).parent / "dbgym")
WRITERS, ROWS = 16, 1000


def _results(q: Any, n: int, timeout: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while len(out) < n:
        try:
            tag, status, value = q.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"only {len(out)} of {n} processes reported: {out}") from None
        assert status == "ok", f"{tag}: {value}"
        out[tag] = value
    return out


def _quiet_logs(logs: list[Path]) -> None:
    for log in logs:
        text = log.read_text() if log.exists() else ""
        assert "locked" not in text.lower() and "Traceback" not in text, f"{log}:\n{text}"


def test_16_writers_a_reader_and_a_cli_list_loop_lose_nothing(tmp_path: Path) -> None:
    """16 writer processes write at least 1,000 status rows each, and go on writing until
    two `dbgym sims list` runs have read the project while they wrote (whatever the CPU
    contention), with a reader process taking snapshots all along."""
    folder = tmp_path / "p"
    pm = ProjectManager(folder)
    ctx = procs.forkserver()
    barrier = ctx.Barrier(WRITERS + 1)
    stop, until = ctx.Event(), ctx.Event()
    results = ctx.Queue()
    logs = [tmp_path / f"writer-{i}.log" for i in range(WRITERS)] + [tmp_path / "reader.log"]
    children = [
        ctx.Process(
            target=procs.writer,
            args=(str(folder), i, ROWS, str(logs[i]), barrier, until, results),
        )
        for i in range(WRITERS)
    ]
    children.append(
        ctx.Process(target=procs.reader, args=(str(folder), str(logs[-1]), stop, results))
    )
    cli_runs: list[tuple[float, subprocess.CompletedProcess[str]]] = []  # (end, run)
    cli_stop = threading.Event()

    def cli_loop() -> None:
        while not cli_stop.is_set():
            run = subprocess.run(
                [DBGYM, "sims", "list", "--json", "--project-dir", str(folder)],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            cli_runs.append((time.perf_counter(), run))

    clis = [threading.Thread(target=cli_loop) for _ in range(2)]
    try:
        for c in children:
            c.start()
        barrier.wait(timeout=120)  # every writer has opened the project and its simulation
        t0 = time.perf_counter()
        for t in clis:
            t.start()
        deadline = time.monotonic() + 180
        while len(cli_runs) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        until.set()  # the writers may stop once they have written ROWS rows
        written = _results(results, WRITERS, 240)
        t_end = time.perf_counter()
        took = t_end - t0
        stop.set()
        (reads, problems) = _results(results, 1, 60)["reader"]
    finally:
        until.set()
        stop.set()
        cli_stop.set()
        for t in clis:
            if t.ident is not None:
                t.join(timeout=120)
        for c in children:
            c.join(timeout=30)
            if c.is_alive():
                c.kill()
                c.join()
    assert [c.exitcode for c in children] == [0] * (WRITERS + 1)
    _quiet_logs(logs)
    total = sum(n for _, n, _ in written.values())
    n_during = len([e for e, _ in cli_runs if t0 < e < t_end])
    print(
        f"{WRITERS} writer processes, {total} status rows (>= {ROWS} each; + progress and "
        f"heartbeat every 100): {took:.1f} s, {total / took:.0f} status rows/s; {reads} reader "
        f"snapshots, {len(cli_runs)} `dbgym sims list` runs ({n_during} done while the "
        "writers wrote)"
    )
    # nothing lost, nothing out of order
    assert problems == [] and reads > 0
    for sid, n, _ in written.values():
        assert n >= ROWS
        row = pm.records.get(sid)
        assert row.state == "done" and row.progress_done == n
        details = [s.details for s in pm.records.statuses(sid)]
        assert details == [f"row {i}" for i in range(n)] + ["done"]
    assert pm.records.count_statuses() == total + WRITERS
    # the CLI read while they wrote, never failed and never said "locked"
    assert n_during >= 2
    ids = {sid for sid, _, _ in written.values()}
    for _, run in cli_runs:
        assert run.returncode == 0, run.stderr
        assert "locked" not in (run.stdout + run.stderr).lower()
        assert {r["sim_id"] for r in json.loads(run.stdout)} == ids
    calls = pm.records.api_calls("cli.sims.list")
    assert len(calls) == len(cli_runs) and all(c["code"] == 0 for c in calls)


_HOLD = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
c.execute("INSERT INTO api_calls (name, time, code) VALUES ('holder', 't', 0)")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("COMMIT")
"""


def _hold(db: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(db), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_lock_held_past_the_busy_timeout_is_waited_out_then_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pm = ProjectManager(tmp_path)
    db = pm.db_path()
    conn = connect(db, timeout=0.1)  # SQLite itself gives up after 0.1 s
    insert = "INSERT INTO api_calls (name, time, code) VALUES ('waiter', 't', 0)"

    holder = _hold(db, 1.0)
    t0 = time.perf_counter()
    assert pm.records.list() == []  # readers are not blocked (WAL)
    read_took = time.perf_counter() - t0
    write(conn, lambda c: c.execute(insert))  # retried past the busy timeout
    waited = time.perf_counter() - t0
    assert holder.wait(timeout=30) == 0
    assert read_took < 0.5 and waited >= 0.7, (read_took, waited)
    assert [c["name"] for c in pm.records.api_calls()] == ["holder", "waiter"]
    print(f"a 1 s write lock: read in {read_took * 1000:.0f} ms, write waited {waited:.2f} s")

    # past the retry budget: a ProjectError that says what, never a bare OperationalError
    monkeypatch.setattr(project_db, "LOCK_BUDGET", 0.3)
    holder = _hold(db, 1.5)
    try:
        with pytest.raises(ProjectError, match=r"stayed locked for 0.3 s") as err:
            write(conn, lambda c: c.execute(insert))
        assert not isinstance(err.value, sqlite3.OperationalError)
        assert not conn.in_transaction  # the connection is usable afterwards
    finally:
        holder.wait(timeout=30)
    monkeypatch.undo()
    write(conn, lambda c: c.execute(insert))
    conn.close()
    assert [c["name"] for c in pm.records.api_calls()].count("waiter") == 2


def test_the_first_of_8_racing_terminal_writers_wins(tmp_path: Path) -> None:
    pm = ProjectManager(tmp_path)
    sid = pm.records.create_simulation(
        name="raced", sim_key="k", config=None, start_kwargs=None, sim_type_name="T",
        sim_module_name="m",
    )  # fmt: skip
    ctx = procs.forkserver()
    barrier, results = ctx.Barrier(8), ctx.Queue()
    logs = [tmp_path / f"racer-{i}.log" for i in range(8)]
    racers = [
        ctx.Process(
            target=procs.finisher, args=(str(tmp_path), sid, i, str(logs[i]), barrier, results)
        )
        for i in range(8)
    ]
    for r in racers:
        r.start()
    try:
        won = _results(results, 8, 120)
    finally:
        for r in racers:
            r.join(timeout=30)
    _quiet_logs(logs)
    winners = [int(i) for i, w in won.items() if w]
    assert len(winners) == 1, won
    (terminal,) = [s for s in pm.records.statuses(sid) if s.code != StatusCode.INFO]
    row = pm.records.get(sid)
    if winners[0] % 2 == 0:
        assert row.state == "force_stopped" and row.failed
        assert terminal.details == f"force stop by racer {winners[0]}"
    else:
        assert row.state == "done" and not row.failed
        assert terminal.details == f"done by racer {winners[0]}"


def test_8_processes_migrating_at_once_apply_each_migration_once(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    db = tmp_path / "db" / "simulations.db"
    shutil.copy(FIXTURE_V1, db)
    ctx = procs.forkserver()
    barrier, results = ctx.Barrier(8), ctx.Queue()
    logs = [tmp_path / f"migrator-{i}.log" for i in range(8)]
    migrators = [
        ctx.Process(target=procs.migrator, args=(str(db), str(logs[i]), barrier, results))
        for i in range(8)
    ]
    for m in migrators:
        m.start()
    try:
        found = _results(results, 8, 120)
    finally:
        for m in migrators:
            m.join(timeout=30)
    _quiet_logs(logs)
    # one process migrated (it found version 1); the others found version 2 done
    assert sorted(found.values()) == [1] + [2] * 7, found
    assert read_version(db) == 2
    with sqlite3.connect(db) as c:
        assert [r[0] for r in c.execute("SELECT version FROM schema_version ORDER BY 1")] == [1, 2]
        assert "tag" in [r[1] for r in c.execute("PRAGMA table_info(simulations)")]


def test_a_forked_child_writes_through_its_own_connection(tmp_path: Path) -> None:
    pm = ProjectManager(tmp_path)
    sid = pm.records.create_simulation(
        name="forked", sim_key="k", config=None, start_kwargs=None, sim_type_name="T",
        sim_module_name="m",
    )  # fmt: skip
    parent_conn = pm.records.conn
    pid = os.fork()
    if pid == 0:  # the child: the parent's connection must not be used here
        code = 1
        try:
            if pm.records.conn is not parent_conn:
                for i in range(200):
                    pm.records.add_status(sid, StatusCode.INFO, details=f"child {i}")
                code = 0
        finally:
            os._exit(code)
    for i in range(200):
        pm.records.add_status(sid, StatusCode.INFO, details=f"parent {i}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pm.records.conn is parent_conn
    details = [s.details for s in pm.records.statuses(sid)]
    assert sorted(details) == sorted(
        [f"child {i}" for i in range(200)] + [f"parent {i}" for i in range(200)]
    )
