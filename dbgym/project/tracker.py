"""SimulationTracker: each simulation in a child process of its own, with a queue, cancel,
wait/join, and a monitor that notices dead children.

```python
with SimulationTracker(ProjectManager(), max_concurrent=4) as tracker:
    ids = [tracker.start_sim("train", kwargs={"steps": n}) for n in (10, 20, 30)]
    tracker.cancel(ids[0])             # stopped within ~2 s, even inside PostgreSQL work
    tracker.join()                     # wait for the rest
```

- `start_sim` creates the simulation's row (pending) and returns its id; the child
  (`python -m dbgym.project.child <project_dir> <sim_id>`, a session of its own, stdout and
  stderr to `sims/<id>/child.log`) starts at once or when a slot frees (`max_concurrent`).
  A type registered in this process is recorded in the project first (module + qualname,
  `SimulationExporter`'s record), so the child imports it without an explicit export.
- The child writes its own rows (started, progress, statuses, environment, its end). The
  tracker heartbeats the simulations it queued until their child does.
- The monitor thread (every `poll_interval` s) reaps exited children: one that ended
  without writing its end (SIGKILL, a crash) is marked force_stopped + failed with a
  status row naming its pid and signal, its servers and containers are cleaned through
  the instance registry, and the next queued simulation starts. Every `heartbeat_interval`
  it also reconciles the simulations other processes started (`reconcile`: pid gone on
  this host, heartbeat older than `grace` elsewhere).
- `cancel(sim_id)`: SIGTERM to the child, whose handler raises `SimulationCancelled` in the
  simulation's main thread (teardown runs: its server stops) and whose watcher thread
  writes cancelled + failed + STOPPED at once; if the child has not written that row within
  `cancel_timeout` s (wedged in C code), the tracker SIGKILLs its process group, cleans its
  servers and writes the same row. Works on simulations of other processes on this host.
- `tie_to_parent` (default True): a child notices this process's death (its parent pid
  changes, checked each heartbeat) and stops itself (force_stopped, naming this pid).
  `tie_to_parent=False` (`dbgym sims start --detach`) lets the child outlive its starter.
- `close()` (and leaving the with-block, and the interpreter's exit for a tracker left
  open) cancels what is queued or running and tied to this tracker; `join()` first to let
  simulations finish.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbgym.dbms import procs
from dbgym.errors import DbgymError, InvalidArgumentError
from dbgym.project.api_calls import api_call
from dbgym.project.registry import BUILTIN_SIMULATIONS, SimulationRegistry, loading_script
from dbgym.project.simulation import SimulationStartConfig

if TYPE_CHECKING:
    from types import TracebackType

    from dbgym.project.manager import ProjectManager

__all__ = ["SimulationTracker"]

#: Lines of a child's log quoted when it exits without recording its end.
LOG_TAIL_LINES = 40

_open_trackers: weakref.WeakSet[SimulationTracker] = weakref.WeakSet()
_atexit_lock = threading.Lock()
_atexit_registered = False


def _close_open_trackers() -> None:
    """At interpreter exit: close the trackers left open (their tied children end
    cancelled, not force stopped by their parent's death)."""
    for tracker in list(_open_trackers):
        with contextlib.suppress(Exception):
            tracker.close()


def _register(tracker: SimulationTracker) -> None:
    global _atexit_registered
    with _atexit_lock:
        _open_trackers.add(tracker)
        if not _atexit_registered:
            atexit.register(_close_open_trackers)
            _atexit_registered = True


@dataclass
class _Child:
    sim_id: str
    proc: subprocess.Popen[bytes]
    start_time: int | None
    log_path: Path
    tie_to_parent: bool
    cancel_sent: float | None = None  # monotonic time of the SIGTERM
    killed: bool = False
    reaped: threading.Event = field(default_factory=threading.Event)


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str | None:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else None


def _exited(pid: int) -> bool:
    """Whether our child `pid` has exited, without reaping it (its pid, and so its process
    group id, stay reserved until it is reaped: a group kill cannot hit a stranger)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid == pid


class SimulationTracker:
    """Starts and watches simulations of `project` in child processes (module docstring).

    max_concurrent: children running at once (default: the CPU count); more are queued.
    heartbeat_interval: seconds between heartbeats (children and this tracker's monitor).
    grace: seconds without a heartbeat after which a simulation on another host (or a
        queued one of a dead tracker) counts as gone.
    tie_to_parent: default for `start_sim`: children stop when this process dies.
    cancel_timeout: seconds a cancelled child gets to write its cancelled row before the
        tracker kills it (the row lands within 2 s either way).
    teardown_timeout: seconds a cancelled child gets to finish its teardown (stop its
        servers) before its process group is killed and its servers cleaned.
    poll_interval: seconds between the monitor's checks of its children.
    """

    def __init__(
        self,
        project: ProjectManager,
        *,
        max_concurrent: int | None = None,
        heartbeat_interval: float = 1.0,
        grace: float = 5.0,
        tie_to_parent: bool = True,
        cancel_timeout: float = 1.5,
        teardown_timeout: float = 30.0,
        poll_interval: float = 0.05,
    ) -> None:
        limit = (os.cpu_count() or 1) if max_concurrent is None else max_concurrent
        if limit < 1:
            raise InvalidArgumentError(f"max_concurrent must be at least 1, got {limit}")
        for name, value in (
            ("heartbeat_interval", heartbeat_interval),
            ("grace", grace),
            ("cancel_timeout", cancel_timeout),
            ("teardown_timeout", teardown_timeout),
            ("poll_interval", poll_interval),
        ):
            if not value > 0:
                raise InvalidArgumentError(f"{name} must be positive, got {value}")
        if grace <= heartbeat_interval:
            raise InvalidArgumentError(
                f"grace ({grace:g} s) must be longer than heartbeat_interval "
                f"({heartbeat_interval:g} s)"
            )
        self.project = project
        self.max_concurrent = limit
        self.heartbeat_interval = heartbeat_interval
        self.grace = grace
        self.tie_to_parent = tie_to_parent
        self.cancel_timeout = cancel_timeout
        self.teardown_timeout = teardown_timeout
        self.poll_interval = poll_interval
        self._host = socket.gethostname()
        self._cond = threading.Condition(threading.RLock())
        self._queue: collections.deque[tuple[str, bool]] = collections.deque()
        self._children: dict[str, _Child] = {}
        self._unstarted: set[str] = set()  # queued or starting: this tracker heartbeats them
        self._finished: dict[str, threading.Event] = {}
        self._closed = False
        self._monitor = threading.Thread(target=self._monitor_loop, name="dbgym-sim-monitor")
        self._monitor.daemon = True
        self._monitor.start()
        _register(self)

    # -- context manager --------------------------------------------------------------
    def __enter__(self) -> SimulationTracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        with self._cond:
            return (
                f"SimulationTracker({str(self.project.project_folder())!r}, running="
                f"{len(self._children)}, queued={len(self._queue)})"
            )

    # -- starting ---------------------------------------------------------------------
    def _resolve(
        self,
        key_or_config: str | SimulationStartConfig,
        config: SimulationStartConfig | None,
        kwargs: dict[str, Any] | None,
        name: str | None,
    ) -> SimulationStartConfig:
        if isinstance(key_or_config, SimulationStartConfig):
            if config is not None:
                raise InvalidArgumentError(
                    "start_sim: give a SimulationStartConfig either first or as config, not both"
                )
            cfg = key_or_config
        elif isinstance(key_or_config, str):
            cfg = SimulationRegistry.start_config(key_or_config) if config is None else config
            if cfg.sim_key != key_or_config:
                cfg = SimulationStartConfig(
                    name=cfg.name, sim_key=key_or_config, kwargs=cfg.kwargs_dict()
                )
        else:
            raise InvalidArgumentError(
                "start_sim: the first argument is a simulation key or a SimulationStartConfig, "
                f"got {type(key_or_config).__name__}"
            )
        if kwargs is not None or name is not None:
            cfg = cfg.merged(name=name, kwargs=kwargs)
        return cfg

    @api_call("tracker.start_sim")
    def start_sim(
        self,
        key_or_config: str | SimulationStartConfig,
        config: SimulationStartConfig | None = None,
        *,
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        tie_to_parent: bool | None = None,
    ) -> str:
        """Queue a simulation (a key with an optional config, or a config); returns its id.
        `kwargs` update the config's kwargs, `name` replaces its name. It starts at once if
        fewer than `max_concurrent` run."""
        if self._closed:
            raise DbgymError("start_sim: this SimulationTracker is closed")
        script = loading_script()
        if script is not None:
            raise DbgymError(
                f"{script} starts simulations when it is imported: put that code under "
                "`if __name__ == '__main__':` so a child process can import the script's types"
            )
        cfg = self._resolve(key_or_config, config, kwargs, name)
        key = cfg.sim_key
        location = SimulationRegistry.location(key)  # unknown keys, lambdas: refused here
        if key not in BUILTIN_SIMULATIONS:
            from dbgym.project.exporter import record_type

            record_type(self.project, key, location)
        tied = self.tie_to_parent if tie_to_parent is None else tie_to_parent
        records = self.project.records
        sim_id = records.create_simulation(
            name=cfg.name,
            sim_key=key,
            config=cfg.to_dict(),
            start_kwargs={
                "tie_to_parent": tied,
                "parent_pid": os.getpid(),
                "heartbeat_interval": self.heartbeat_interval,
                "teardown_timeout": self.teardown_timeout,
            },
            sim_type_name=location.qualname,
            sim_module_name=location.module,
        )
        records.heartbeat(sim_id)
        with self._cond:
            self._finished[sim_id] = threading.Event()
            self._unstarted.add(sim_id)
            self._queue.append((sim_id, tied))
            self._dispatch()
        return sim_id

    def _dispatch(self) -> None:
        """Start queued simulations while slots are free (holding the lock)."""
        while self._queue and len(self._children) < self.max_concurrent and not self._closed:
            sim_id, tied = self._queue.popleft()
            if self.project.records.get(sim_id).is_done:  # cancelled by someone else
                self._settle(sim_id)
                continue
            try:
                self._children[sim_id] = self._spawn(sim_id, tied)
            except OSError as exc:
                from dbgym.project.records import StatusCode, StatusSubcode

                self.project.records.finish(
                    sim_id,
                    failed=True,
                    status=(
                        StatusCode.FAIL,
                        StatusSubcode.ERROR,
                        f"could not start its process: {exc}",
                        None,
                    ),
                )
                self._settle(sim_id)

    def _spawn(self, sim_id: str, tied: bool) -> _Child:
        folder = self.project.sim_folder(sim_id, create=True)
        log_path = folder / "child.log"
        project_dir = str(Path(self.project.project_folder()).resolve())
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dbgym.project.child", project_dir, sim_id],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        return _Child(sim_id, proc, procs.start_time(proc.pid), log_path, tied)

    def _settle(self, sim_id: str) -> None:
        """`sim_id` is over for this tracker (holding the lock)."""
        self._unstarted.discard(sim_id)
        self._children.pop(sim_id, None)
        event = self._finished.get(sim_id)
        if event is not None:
            event.set()
        self._cond.notify_all()

    # -- the monitor ------------------------------------------------------------------
    def _monitor_loop(self) -> None:
        next_beat = 0.0
        while True:
            with self._cond:
                if self._closed and not self._children and not self._queue:
                    return
                children = list(self._children.values())
            for child in children:
                try:
                    self._check_child(child)
                except Exception as exc:  # a busy database: the next round retries
                    print(f"dbgym tracker: {child.sim_id}: {exc}", file=sys.stderr)
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.heartbeat_interval
                try:
                    self._beat()
                except Exception as exc:
                    print(f"dbgym tracker: heartbeat: {exc}", file=sys.stderr)
            with self._cond:
                self._cond.wait(self.poll_interval)

    def _beat(self) -> None:
        """Heartbeat the simulations this tracker queued until their child takes over, and
        reconcile the simulations of other processes."""
        from dbgym.project.reconcile import reconcile_quietly

        records = self.project.records
        with self._cond:
            unstarted = list(self._unstarted)
            mine = set(self._finished)
        for sim_id in unstarted:
            row = records.get(sim_id)
            if row.started is not None or row.is_done:
                with self._cond:
                    self._unstarted.discard(sim_id)
                continue
            records.heartbeat(sim_id)
        reconcile_quietly(self.project, grace=self.grace, exclude=mine)

    def _check_child(self, child: _Child) -> None:
        now = time.monotonic()
        if not _exited(child.proc.pid):
            if child.cancel_sent is not None and not child.killed:
                done = self.project.records.get(child.sim_id).is_done
                if (not done and now - child.cancel_sent > self.cancel_timeout) or (
                    now - child.cancel_sent > self.teardown_timeout
                ):
                    self._kill(child)
            return
        # Exited, not reaped: kill what is left of its group while its pid is reserved.
        with contextlib.suppress(OSError):
            procs.kill_group(child.proc.pid)
        returncode = child.proc.wait()
        self._after_exit(child, returncode)

    def _kill(self, child: _Child) -> None:
        child.killed = True
        with contextlib.suppress(OSError):
            procs.kill_group(child.proc.pid)

    def _after_exit(self, child: _Child, returncode: int) -> None:
        from dbgym.project.reconcile import clean_instances
        from dbgym.project.records import StatusCode, StatusSubcode

        records = self.project.records
        pid = child.proc.pid
        where = f"pid {pid} on host {self._host}"
        if returncode < 0:
            try:
                how = f"killed by signal {signal.Signals(-returncode).name}"
            except ValueError:
                how = f"killed by signal {-returncode}"
        else:
            how = f"exited with code {returncode}"
        if child.cancel_sent is not None:
            extra = (
                f"; it did not stop within {self.cancel_timeout:g} s of SIGTERM and was killed"
                if child.killed
                else ""
            )
            records.finish(
                child.sim_id,
                failed=True,
                cancelled=True,
                status=(
                    StatusCode.FAIL,
                    StatusSubcode.STOPPED,
                    f"cancelled ({where} {how}{extra})",
                    None,
                ),
            )
        elif returncode < 0:
            records.finish(
                child.sim_id,
                failed=True,
                force_stopped=True,
                status=(
                    StatusCode.FAIL,
                    StatusSubcode.ERROR,
                    f"force stopped: {where} {how}",
                    None,
                ),
            )
        else:
            records.finish(
                child.sim_id,
                failed=True,
                status=(
                    StatusCode.FAIL,
                    StatusSubcode.ERROR,
                    f"{where} {how} without recording its end (its log: {child.log_path})",
                    _log_tail(child.log_path),
                ),
            )
        for line in clean_instances(pid, child.start_time):
            records.add_status(child.sim_id, StatusCode.INFO, StatusSubcode.NONE, f"cleaned {line}")
        child.reaped.set()
        with self._cond:
            self._settle(child.sim_id)
            self._dispatch()

    # -- cancel -----------------------------------------------------------------------
    @api_call("tracker.cancel")
    def cancel(self, sim_id: str, *, timeout: float | None = None) -> bool:
        """Stop `sim_id` (a queued or running simulation, this tracker's or another process's
        on this host): cancelled + failed + STOPPED. Returns once its process is gone (at
        most `timeout` s, default `teardown_timeout` + `cancel_timeout`); False if it had
        ended already."""
        from dbgym.project.records import StatusCode, StatusSubcode

        records = self.project.records
        sim_id = records.get(sim_id).sim_id  # prefix match, unknown ids refused
        limit = self.teardown_timeout + self.cancel_timeout if timeout is None else timeout
        with self._cond:
            queued = next((item for item in self._queue if item[0] == sim_id), None)
            if queued is not None:
                self._queue.remove(queued)
            child = self._children.get(sim_id)
        if queued is not None or (child is None and records.get(sim_id).pid is None):
            cancelled = records.finish(
                sim_id,
                failed=True,
                cancelled=True,
                status=(
                    StatusCode.FAIL,
                    StatusSubcode.STOPPED,
                    "cancelled before it started",
                    None,
                ),
            )
            with self._cond:
                if sim_id in self._finished:
                    self._settle(sim_id)
            return cancelled
        if child is not None:
            return self._cancel_child(child, limit)
        return self._cancel_foreign(sim_id, limit)

    def _cancel_child(self, child: _Child, timeout: float) -> bool:
        records = self.project.records
        if records.get(child.sim_id).is_done and child.cancel_sent is None:
            child.reaped.wait(timeout)
            return False
        if child.cancel_sent is None:
            child.cancel_sent = time.monotonic()
            with contextlib.suppress(OSError):
                if not _exited(child.proc.pid):
                    os.kill(child.proc.pid, signal.SIGTERM)
        with self._cond:
            self._cond.notify_all()
        child.reaped.wait(timeout)
        if not child.reaped.is_set():
            self._kill(child)
            child.reaped.wait(5.0)
        return records.get(child.sim_id).cancelled

    def _cancel_foreign(self, sim_id: str, timeout: float) -> bool:
        from dbgym.project.reconcile import clean_after, reconcile
        from dbgym.project.records import StatusCode, StatusSubcode

        records = self.project.records
        row = records.get(sim_id)
        if row.is_done:
            return False
        if row.host != self._host:
            raise DbgymError(
                f"simulation {sim_id} runs on host {row.host} (pid {row.pid}): cancel it there"
            )
        assert row.pid is not None
        pid, started = row.pid, row.pid_start_time
        if not procs.is_alive(pid, started):
            reconcile(self.project, grace=self.grace)
            return False
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
        t0 = time.monotonic()
        with contextlib.suppress(Exception):
            from dbgym.retry import poll_until

            poll_until(lambda: records.get(sim_id).is_done, self.cancel_timeout, first=0.005)
        left = max(0.0, timeout - (time.monotonic() - t0))
        stopped = records.get(sim_id).is_done and procs.wait_gone(pid, left, started)
        killed = not stopped and procs.is_alive(pid, started)
        if killed:
            with contextlib.suppress(OSError):
                if os.getpgid(pid) == pid:
                    procs.kill_group(pid)
                else:
                    os.kill(pid, signal.SIGKILL)
            procs.wait_gone(pid, 5.0, started)
        records.finish(
            sim_id,
            failed=True,
            cancelled=True,
            status=(
                StatusCode.FAIL,
                StatusSubcode.STOPPED,
                f"cancelled (SIGTERM to pid {pid} on host {self._host}"
                + ("; it did not stop in time and was killed" if killed else "")
                + ")",
                None,
            ),
        )
        for line in clean_after(pid, started):
            records.add_status(sim_id, StatusCode.INFO, StatusSubcode.NONE, f"cleaned {line}")
        return records.get(sim_id).cancelled

    # -- waiting ----------------------------------------------------------------------
    def wait(self, sim_id: str | None = None, timeout: float | None = None) -> bool:
        """Wait until `sim_id` (None: every simulation of this tracker) has ended and its
        process is gone; True if so within `timeout` s (None: no limit).

        Recorded in api_calls as "tracker.wait" when it returns True or raises: a polling
        loop (`while not tracker.wait(sim_id, timeout=0.25): ...`) writes one row, not one
        per poll."""
        return self._recorded_wait("tracker.wait", sim_id, timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every simulation of this tracker (`wait(None, timeout)`; recorded as
        "tracker.join" the same way)."""
        return self._recorded_wait("tracker.join", None, timeout)

    def _recorded_wait(self, name: str, sim_id: str | None, timeout: float | None) -> bool:
        from dbgym.project.api_calls import ERROR, INTERRUPTED, OK, scrub

        t0 = time.perf_counter()
        code, outcome, done = OK, "ok", False
        try:
            done = self._wait(sim_id, timeout)
        except (KeyboardInterrupt, SystemExit) as exc:
            code, outcome = INTERRUPTED, f"interrupted ({type(exc).__name__})"
            raise
        except BaseException as exc:
            code, outcome = ERROR, f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if code != OK or done:
                details = {
                    "duration_s": round(time.perf_counter() - t0, 6),
                    "outcome": outcome,
                    "arguments": scrub({"sim_id": sim_id, "timeout": timeout}),
                }
                try:
                    self.project.records.add_api_call(name, code, details)
                except Exception as exc:  # never hide the call's own outcome
                    print(f"dbgym: could not record the API call {name}: {exc}", file=sys.stderr)
        return done

    def _wait(self, sim_id: str | None, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        if sim_id is None:
            with self._cond:
                events = list(self._finished.values())
            for event in events:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not event.wait(left):
                    return False
            return True
        records = self.project.records
        sim_id = records.get(sim_id).sim_id
        with self._cond:
            mine = self._finished.get(sim_id)
        if mine is not None:
            return mine.wait(timeout)
        # another process's simulation: its row
        from dbgym.retry import attempts

        return any(records.get(sim_id).is_done for _ in attempts(timeout, first=0.01, cap=0.25))

    def running(self) -> list[str]:
        """Ids of this tracker's simulations whose child runs."""
        with self._cond:
            return list(self._children)

    def queued(self) -> list[str]:
        """Ids of this tracker's simulations waiting for a slot."""
        with self._cond:
            return [sim_id for sim_id, _ in self._queue]

    def close(self, *, timeout: float | None = None) -> None:
        """Cancel this tracker's queued simulations and its running ones tied to it, then
        stop the monitor (idempotent). Detached children (tie_to_parent=False) keep
        running, once they have marked themselves started."""
        with self._cond:
            if self._closed and not self._monitor.is_alive():
                return
            queued = [sim_id for sim_id, _ in self._queue]
            children = list(self._children.values())
        for sim_id in queued:
            self.cancel(sim_id)
        with self._cond:
            self._closed = True
        tied = [c for c in children if c.tie_to_parent]
        threads = [
            threading.Thread(target=self._cancel_child, args=(c, self._limit(timeout)))
            for c in tied
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        detached = [c for c in children if not c.tie_to_parent]
        for c in detached:  # leave them once they heartbeat themselves
            self._wait_started(c)
            with self._cond:
                self._children.pop(c.sim_id, None)
        with self._cond:
            self._cond.notify_all()
        self._monitor.join(timeout=10.0)
        _open_trackers.discard(self)

    def _wait_started(self, child: _Child) -> None:
        from dbgym.retry import poll_until

        def started() -> bool:
            row = self.project.records.get(child.sim_id)
            return row.started is not None or row.is_done or _exited(child.proc.pid)

        poll_until(started, self.grace, first=0.01)

    def _limit(self, timeout: float | None) -> float:
        return self.teardown_timeout + self.cancel_timeout if timeout is None else timeout
