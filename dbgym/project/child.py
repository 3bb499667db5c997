"""The process a simulation runs in: `python -m dbgym.project.child <project_dir> <sim_id>`.

The tracker (dbgym.project.tracker) creates the simulation's row, then starts this module in
a session of its own. The child writes every one of its rows itself (through `Records`):

1. SIGTERM/SIGINT handling comes first, so a cancel during start-up counts.
2. `mark_started` (pid, pid start time, host) and the status row "started pid N on host H";
   the environment (`dbgym.provenance.host_facts()`).
3. A heartbeat thread writes the heartbeat column every `heartbeat_interval` seconds (the
   row's start_kwargs) and, with `tie_to_parent`, stops the simulation when the tracker
   that started it dies (its parent pid changes): force_stopped, naming the tracker's pid.
4. The simulation type comes from the registry (built-ins, then the project's exported
   types: module + qualname, or a script file), then setup, run and (always) teardown.
5. The terminal row, one transaction (`Records.finish`, the first terminal writer wins):
   normal end -> done, SUCCESS; an exception -> failed, FAIL/ERROR with its traceback;
   SIGTERM -> cancelled + failed, FAIL/STOPPED.

A SIGTERM is seen twice: Python's handler raises `SimulationCancelled` in the main thread
(between two bytecodes: a `pg_sleep` in psycopg, a `time.sleep`), so teardown stops the
simulation's servers; and the signal's wakeup fd wakes a watcher thread at once, even while
the main thread is stuck in C code, which writes the cancelled row right away (well within
the 2 s a cancel is given) and, if the main thread has not finished `teardown_timeout`
seconds later, stops the servers this process registered and exits.

Exit codes: 0 done, 1 failed, 143 cancelled or stopped (128 + SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any

from dbgym.project.simulation import SimulationCancelled

if TYPE_CHECKING:
    from types import FrameType

    from dbgym.project.records import Records

#: Exit codes of the child.
EXIT_DONE, EXIT_FAILED, EXIT_STOPPED = 0, 1, 143

#: Seconds the main thread gets to finish teardown after a SIGTERM before the watcher
#: stops this process's servers itself and exits.
TEARDOWN_TIMEOUT = 30.0

_CANCEL_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Control:
    """Signal handling and the stop reason of this child process."""

    def __init__(self) -> None:
        self.cancel_event = threading.Event()
        self.finished = threading.Event()  # the main thread is done (terminal row written)
        self.raising = False  # the main thread is in setup/run: a SIGTERM raises there
        self.signal_name: str | None = None
        self.on_signal: Any = None  # callable(signal name) from the watcher thread
        self._read_fd = -1

    def install(self) -> None:
        for sig in _CANCEL_SIGNALS:
            signal.signal(sig, self._handler)
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        self._read_fd = read_fd
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, name="dbgym-signal-watcher", daemon=True).start()

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name
        self.cancel_event.set()
        if not self.raising:
            return
        self.raising = False  # raise once; later signals only set the flag
        raise SimulationCancelled(f"cancelled by {self.signal_name}")

    def _watch(self) -> None:
        while True:
            try:
                data = os.read(self._read_fd, 64)
            except InterruptedError:
                continue
            except OSError:
                return
            names = [
                signal.Signals(b).name for b in data if b in {s.value for s in _CANCEL_SIGNALS}
            ]
            if not names:
                continue
            self.cancel_event.set()
            callback = self.on_signal
            if callback is None:  # start-up: the main thread sees the flag and stops
                continue
            with contextlib.suppress(Exception):
                callback(names[0])
            return


def _release_database(records: Records) -> None:
    """Roll back a write transaction of this thread's connection that an exception (the
    cancel's, raised between BEGIN and its guard or just before COMMIT) left open: an open
    one would lock the project database for every other writer."""
    with contextlib.suppress(Exception):
        conn = records.conn
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _status(code: str, subcode: str) -> tuple[Any, Any]:
    from dbgym.project.records import StatusCode, StatusSubcode

    return StatusCode[code], StatusSubcode[subcode]


def _finish_cancelled(records: Records, sim_id: str, how: str) -> bool:
    code, subcode = _status("FAIL", "STOPPED")
    return records.finish(
        sim_id, failed=True, cancelled=True, status=(code, subcode, f"cancelled ({how})", None)
    )


class _Heartbeat(threading.Thread):
    """Writes the heartbeat every `interval` s; with a `parent_pid`, stops the simulation
    when that parent dies (the parent pid of this process changes)."""

    def __init__(
        self,
        records: Records,
        sim_id: str,
        interval: float,
        parent_pid: int | None,
        on_parent_death: Any,
    ) -> None:
        super().__init__(name="dbgym-heartbeat", daemon=True)
        self.records = records
        self.sim_id = sim_id
        self.interval = interval
        self.parent_pid = parent_pid
        self.on_parent_death = on_parent_death
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                with contextlib.suppress(Exception):
                    self.on_parent_death(self.parent_pid)
                return
            try:
                self.records.heartbeat(self.sim_id)
            except Exception as exc:  # a busy database: try again next beat
                print(f"dbgym child: heartbeat failed: {exc}", file=sys.stderr, flush=True)
            self.stop.wait(self.interval)


def _self_clean_and_exit(control: _Control, timeout: float) -> None:
    """After a stop request: give the main thread `timeout` s, then stop this process's
    registered servers and exit (a wedged teardown must not keep a server running)."""
    if control.finished.wait(timeout):
        return
    with contextlib.suppress(Exception):
        _clean_own(None)
    os._exit(EXIT_STOPPED)


def _clean_own(pid_start: int | None) -> list[str]:
    """What the simulation left at its end (teardown done): processes in this process's
    group (a session of its own) and instances it registered and did not close."""
    from dbgym.dbms import procs
    from dbgym.project.reconcile import clean_instances

    done = []
    me = os.getpid()
    if os.getpgrp() == me:
        others = [p for p in procs.group_members(me) if p != me]
        for other in others:
            with contextlib.suppress(OSError):
                os.kill(other, signal.SIGKILL)
        if others:
            done.append(f"killed pids {', '.join(map(str, others))} of its process group")
    try:
        done.extend(clean_instances(me, pid_start, force=True))
    except Exception as exc:
        done.append(f"instance cleanup failed: {exc}")
    return done


def run_child(project_dir: str, sim_id: str) -> int:
    """Run the simulation `sim_id` of the project at `project_dir` in this process."""
    control = _Control()
    control.install()

    from dbgym.dbms import procs
    from dbgym.project.exporter import load_exported
    from dbgym.project.manager import ProjectManager
    from dbgym.project.registry import SimulationRegistry
    from dbgym.project.simulation import SimulationContext, SimulationStartConfig

    project = ProjectManager(project_dir, reconcile=False)
    records = project.records
    row = records.get(sim_id)
    if row.is_done:  # cancelled while queued
        return EXIT_STOPPED
    options: dict[str, Any] = dict(row.start_kwargs or {})
    interval = float(options.get("heartbeat_interval", 1.0))
    teardown_timeout = float(options.get("teardown_timeout", TEARDOWN_TIMEOUT))
    parent_pid = options.get("parent_pid") if options.get("tie_to_parent", False) else None
    pid, pid_start = procs.identity()
    host = socket.gethostname()

    def force_stop_parent_died(tracker_pid: int) -> None:
        code, subcode = _status("FAIL", "ERROR")
        records.finish(
            sim_id,
            failed=True,
            force_stopped=True,
            status=(
                code,
                subcode,
                f"force stopped: its tracker (pid {tracker_pid} on host {host}) died; "
                f"pid {pid} stopped itself",
                None,
            ),
        )

    def on_signal(name: str) -> None:  # the watcher thread
        _finish_cancelled(records, sim_id, f"{name} to pid {pid}")
        _self_clean_and_exit(control, teardown_timeout)

    def on_parent_death(tracker_pid: int) -> None:  # the heartbeat thread
        force_stop_parent_died(tracker_pid)
        control.on_signal = None
        os.kill(os.getpid(), signal.SIGTERM)  # the main thread stops as on a cancel
        _self_clean_and_exit(control, teardown_timeout)

    control.on_signal = on_signal
    if control.cancel_event.is_set():  # a signal came during start-up
        _finish_cancelled(records, sim_id, f"{control.signal_name or 'SIGTERM'} to pid {pid}")
        return EXIT_STOPPED
    if isinstance(parent_pid, int) and os.getppid() != parent_pid:
        force_stop_parent_died(parent_pid)
        return EXIT_STOPPED

    records.mark_started(sim_id, pid=pid, pid_start_time=pid_start, host=host)
    info, none = _status("INFO", "NONE")
    records.add_status(sim_id, info, none, f"started pid {pid} on host {host}")
    beat = _Heartbeat(
        records,
        sim_id,
        interval,
        parent_pid if isinstance(parent_pid, int) else None,
        on_parent_death,
    )
    beat.start()

    ctx = SimulationContext(project, sim_id, cancel_event=control.cancel_event)
    sim = None
    outcome = "done"
    error: tuple[str, str] | None = None
    control.raising = True
    try:
        try:
            if control.cancel_event.is_set():  # a signal between start-up and here
                raise SimulationCancelled(f"cancelled by {control.signal_name or 'SIGTERM'}")
            ctx.record_environment({})
            config = SimulationStartConfig.from_dict(row.config or {})
            if not SimulationRegistry.has(row.sim_key):
                load_exported(project)
            sim = SimulationRegistry.make(row.sim_key, config)
            sim.setup(ctx)
            sim.run(ctx)
        finally:
            control.raising = False
    except SimulationCancelled:
        _release_database(records)
        outcome = "cancelled"
        _finish_cancelled(records, sim_id, f"{control.signal_name or 'SIGTERM'} to pid {pid}")
    except BaseException as exc:
        _release_database(records)
        outcome = "failed"
        error = (f"{type(exc).__name__}: {exc}", traceback.format_exc())
    teardown_error: tuple[str, str] | None = None
    if sim is not None:
        try:
            sim.teardown(ctx)
        except BaseException as exc:
            teardown_error = (
                f"teardown failed: {type(exc).__name__}: {exc}",
                traceback.format_exc(),
            )
    with contextlib.suppress(Exception):
        ctx.flush_progress()
    for line in _clean_own(pid_start):
        code, subcode = _status("INFO", "NONE")
        with contextlib.suppress(Exception):
            records.add_status(sim_id, code, subcode, f"left behind by the simulation: {line}")
    if outcome == "done" and teardown_error is not None:
        outcome, error, teardown_error = "failed", teardown_error, None
    if outcome == "done":
        code, subcode = _status("SUCCESS", "NONE")
        records.finish(sim_id, status=(code, subcode, "done", None))
    elif outcome == "failed":
        assert error is not None
        code, subcode = _status("FAIL", "ERROR")
        records.finish(sim_id, failed=True, status=(code, subcode, error[0], error[1]))
    if teardown_error is not None:
        code, subcode = _status("INFO", "ERROR")
        records.add_status(sim_id, code, subcode, teardown_error[0], teardown_error[1])
    beat.stop.set()
    control.finished.set()
    return {"done": EXIT_DONE, "failed": EXIT_FAILED}.get(outcome, EXIT_STOPPED)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m dbgym.project.child <project_dir> <sim_id>", file=sys.stderr)
        return 2
    try:
        return run_child(args[0], args[1])
    except SimulationCancelled:
        return EXIT_STOPPED


if __name__ == "__main__":
    sys.exit(main())
