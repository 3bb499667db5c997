"""Child-process bodies for the project database tests (tests/test_project_db.py,
tests/test_project_concurrency.py).

They run in real separate processes started from a forkserver that has imported the
project modules once (`forkserver()`), so 32 processes can be started and released through
a barrier within a second instead of paying an interpreter start-up each on a 2-core box.
Each child sends its own stdout/stderr to a log file (`_log_to`) so the test can assert
nothing (no "database is locked", no traceback) was printed.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
import time
import traceback
from multiprocessing.context import ForkServerContext
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

from dbgym.dbms import procs
from dbgym.project.db import migrate, retry
from dbgym.project.manager import ProjectManager
from dbgym.project.records import StatusCode, StatusSubcode
from dbgym.project.schema import MIGRATIONS

#: A test-only version 2 (this dbgym releases version 1 only).
TEST_V2: list[list[str]] = [*MIGRATIONS, ["ALTER TABLE simulations ADD COLUMN tag TEXT"]]

_PRELOAD = ["dbgym.project.manager", "dbgym.project.reconcile", __name__]


def forkserver() -> ForkServerContext:
    """The forkserver context, its server preloading the project modules and this one."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _log_to(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def _report(results: Queue[Any], tag: str, fn: Any) -> None:
    try:
        results.put((tag, "ok", fn()))
    except BaseException as exc:
        traceback.print_exc()
        results.put((tag, "error", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None


def opener(folder: str, log: str, barrier: Barrier, results: Queue[Any]) -> None:
    """Open the project at `folder` when every opener is ready; report (seconds, #sims)."""
    _log_to(log)

    def body() -> tuple[float, int]:
        barrier.wait(timeout=120)
        t0 = time.perf_counter()
        pm = ProjectManager(folder)
        pm.records.add_api_call("opener", 0, {"pid": os.getpid()})
        took = time.perf_counter() - t0
        return took, len(pm.records.list())

    _report(results, str(os.getpid()), body)


def writer(
    folder: str,
    index: int,
    rows: int,
    log: str,
    barrier: Barrier,
    until: Event,
    results: Queue[Any],
) -> None:
    """A simulation of its own, then status rows "row 0", "row 1", ... (one transaction
    each, with a progress and a heartbeat write every 100): at least `rows`, and on until
    `until` is set; then its end. Reports (sim_id, rows written, seconds writing)."""
    _log_to(log)

    def body() -> tuple[str, int, float]:
        pm = ProjectManager(folder)
        r = pm.records
        sid = r.create_simulation(
            name=f"writer {index}", sim_key="concurrency", config={"index": index},
            start_kwargs=None, sim_type_name="writer", sim_module_name=__name__,
        )  # fmt: skip
        pid = os.getpid()
        r.mark_started(
            sid, pid=pid, pid_start_time=procs.start_time(pid), host=socket.gethostname()
        )
        barrier.wait(timeout=120)
        t0 = time.perf_counter()
        i = 0
        while i < rows or not until.is_set():
            r.add_status(sid, StatusCode.INFO, details=f"row {i}")
            i += 1
            if i % 100 == 0:
                r.set_progress(sid, i, None)
                r.heartbeat(sid)
        r.set_progress(sid, i, i)
        assert r.finish(sid, status=(StatusCode.SUCCESS, StatusSubcode.NONE, "done", None))
        return sid, i, time.perf_counter() - t0

    _report(results, f"writer {index}", body)


def reader(folder: str, log: str, stop: Event, results: Queue[Any]) -> None:
    """Until `stop`: read every status row in one statement (one snapshot) and check each
    simulation's rows are exactly row 0..k-1 (then "done"), totals never go down. Reports
    (reads, problems)."""
    _log_to(log)

    def body() -> tuple[int, list[str]]:
        pm = ProjectManager(folder, reconcile=False)
        conn = pm.records.conn
        reads, last_total, problems = 0, 0, []
        while not stop.is_set():
            rows = retry(
                lambda: conn.execute(
                    "SELECT sim_id, details FROM sim_status ORDER BY id"
                ).fetchall()
            )
            pm.records.list(key="concurrency")
            seen: dict[str, list[str]] = {}
            for sim_id, details in rows:
                seen.setdefault(sim_id, []).append(details)
            for sim_id, details in seen.items():
                prefix = details[:-1] if details[-1] == "done" else details
                if prefix != [f"row {i}" for i in range(len(prefix))]:
                    problems.append(f"{sim_id}: rows out of order or missing at read {reads}")
            if len(rows) < last_total:
                problems.append(f"read {reads}: {len(rows)} rows after {last_total}")
            last_total = len(rows)
            reads += 1
            time.sleep(0.05)
        return reads, problems[:10]

    _report(results, "reader", body)


def finisher(
    folder: str, sim_id: str, index: int, log: str, barrier: Barrier, results: Queue[Any]
) -> None:
    """Race to write `sim_id`'s terminal state: even indexes force stop it, odd ones end it
    normally. Reports whether this process's end was the one written."""
    _log_to(log)

    def body() -> bool:
        r = ProjectManager(folder, reconcile=False).records
        status = (
            (StatusCode.FAIL, StatusSubcode.ERROR, f"force stop by racer {index}", None)
            if index % 2 == 0
            else (StatusCode.SUCCESS, StatusSubcode.NONE, f"done by racer {index}", None)
        )
        barrier.wait(timeout=120)
        return r.finish(sim_id, failed=index % 2 == 0, force_stopped=index % 2 == 0, status=status)

    _report(results, str(index), body)


def migrator(db: str, log: str, barrier: Barrier, results: Queue[Any]) -> None:
    """Migrate `db` to TEST_V2 when every migrator is ready; reports the version it found."""
    _log_to(log)

    def body() -> int:
        barrier.wait(timeout=120)
        return migrate(Path(db), TEST_V2)

    _report(results, str(os.getpid()), body)
