"""Process facts from /proc (Linux), without psutil: liveness robust to pid reuse.

The one place that decides whether a process still runs (`is_alive`: pid AND start time,
so a reused pid is never taken for the process it replaced). Waiting polls through
`dbgym.retry`, the one loop with exponential backoff.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import queue
import select
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dbgym.retry import poll_until

T = TypeVar("T")


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/<pid>/stat field 22), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    rest = raw[raw.rfind(")") + 2 :].split()
    try:
        state, ticks = rest[0], int(rest[19])
    except (IndexError, ValueError):
        return None
    if state == "Z":  # a zombie is dead for our purposes
        return None
    return ticks


def is_alive(pid: int, expected_start_time: int | None = None) -> bool:
    """True if `pid` runs (and, when given, is the same process: same start time).

    Without a start time a live pid counts as alive, whoever runs it now: record
    `identity(pid)` while the process is known to be the right one, and pass both."""
    now = start_time(pid)
    if now is None:
        return False
    return expected_start_time is None or now == expected_start_time


def identity(pid: int | None = None) -> tuple[int, int | None]:
    """(pid, start time) of `pid` (default: this process), for a later `is_alive(*ident)`."""
    pid = os.getpid() if pid is None else pid
    return pid, start_time(pid)


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def group_members(pgid: int) -> list[int]:
    """Live pids whose process group is `pgid`."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        rest = raw[raw.rfind(")") + 2 :].split()
        if len(rest) > 2 and rest[0] != "Z" and rest[2] == str(pgid):
            members.append(int(entry.name))
    return members


def group_alive(pgid: int) -> bool:
    """Whether any process is left in process group `pgid` (one syscall, no /proc scan)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_gone(pid: int, timeout: float, expected_start_time: int | None = None) -> bool:
    """Poll until `pid` is gone (not our child: cannot waitpid); True if it went."""
    return poll_until(lambda: not is_alive(pid, expected_start_time), timeout, first=0.001)


def kill_group(pgid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def wait_child(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for our child to exit, waking the moment it does (pidfd), unlike
    Popen.wait(timeout=...), which polls with sleeps of up to 50 ms. True if it exited."""
    if proc.poll() is not None:
        return True
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll(max(0, int(timeout * 1000)))
    finally:
        os.close(pidfd)
    return proc.poll() is not None


# -- children that die with their owner ---------------------------------------------------


@functools.cache
def _setpriv() -> str | None:
    """util-linux's setpriv if it knows --pdeathsig (util-linux >= 2.33), else None."""
    path = shutil.which("setpriv") or next(
        (p for p in ("/usr/bin/setpriv", "/bin/setpriv") if os.access(p, os.X_OK)), None
    )
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "--pdeathsig" in out.stdout else None


def pdeathsig_argv(sig: signal.Signals) -> list[str]:
    """An argv prefix that makes the program receive `sig` when the thread that spawned it
    dies (Linux's PR_SET_PDEATHSIG, set by setpriv, which then execs the program: the pid
    stays the program's). [] when setpriv cannot (the program then outlives a killed
    owner until `dbgym clean` or the next launch reaps it)."""
    path = _setpriv()
    return [path, "--pdeathsig", sig.name.removeprefix("SIG"), "--"] if path else []


_spawn_queue: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]
_spawn_queue = queue.SimpleQueue()
_spawner_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _spawn_loop() -> None:
    while True:
        fn, future = _spawn_queue.get()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)


def in_lasting_thread(fn: Callable[[], T]) -> T:
    """`fn()` run in a thread that lives as long as this process: the main thread (when
    called from it), else one daemon thread kept for the purpose. A parent-death signal
    fires when the spawning *thread* exits, so children meant to die with this process
    must not be spawned by a worker thread that may end before it."""
    if threading.current_thread() is threading.main_thread():
        return fn()
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_spawn_loop, name="dbgym-spawner", daemon=True)
            _spawner.start()
    future: concurrent.futures.Future[T] = concurrent.futures.Future()
    _spawn_queue.put((fn, future))
    return future.result()
