"""Process facts from /proc (Linux), without psutil: liveness robust to pid reuse."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from pathlib import Path


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
    """True if `pid` runs (and, when given, is the same process: same start time)."""
    now = start_time(pid)
    if now is None:
        return False
    return expected_start_time is None or now == expected_start_time


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
    deadline = time.monotonic() + timeout
    delay = 0.001
    while is_alive(pid, expected_start_time):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


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
