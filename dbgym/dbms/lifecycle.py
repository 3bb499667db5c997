"""Close every live instance on interpreter exit, SIGTERM and SIGHUP.

Ctrl-C needs nothing special: Python raises KeyboardInterrupt, context managers close
their instances while unwinding, and whatever is still open at exit is closed by the
atexit hook. Servers run in their own session, so a terminal's Ctrl-C never reaches them
directly. SIGTERM/SIGHUP (when the application left their default action in place) are
turned into SystemExit so the same unwinding happens. SIGKILL cannot be caught: that is
what `dbgym clean` is for.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import threading
from types import FrameType
from typing import Protocol


class Closable(Protocol):
    def close(self, keep: bool = False) -> None: ...


_live: dict[int, Closable] = {}
_lock = threading.Lock()
_installed = False


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _close_all() -> None:
    with _lock:
        items = list(_live.values())
    for item in items:
        with contextlib.suppress(Exception):  # keep closing the others at exit
            item.close()


def _install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(_close_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is signal.SIG_DFL:
                signal.signal(sig, _exit_on_signal)


def track(item: Closable) -> None:
    with _lock:
        _install()
        _live[id(item)] = item


def untrack(item: Closable) -> None:
    with _lock:
        _live.pop(id(item), None)
