"""dbgym.retry: the one backoff loop, on the real clock.

Lower bounds are exact (a sleep never ends early); upper bounds are loose, because the
machine may be loaded.
"""

from __future__ import annotations

import itertools
import math
import threading
import time

from dbgym.retry import attempts, poll_until

SLACK = 1.0  # seconds a loaded machine may add


def stamps(
    timeout: float | None = None, *, first: float, cap: float = math.inf, tries: int | None = None
) -> list[float]:
    """When each attempt of `attempts(...)` ran, relative to the call."""
    t0 = time.monotonic()
    return [time.monotonic() - t0 for _ in attempts(timeout, first=first, cap=cap, tries=tries)]


def test_tries_are_counted_and_the_delay_doubles_up_to_the_cap() -> None:
    at = stamps(tries=5, first=0.01, cap=0.04)
    assert len(at) == 5
    gaps = [b - a for a, b in itertools.pairwise(at)]
    for gap, least in zip(gaps, (0.01, 0.02, 0.04, 0.04), strict=True):
        assert gap >= least, gaps
    assert at[-1] < 0.11 + SLACK


def test_the_first_attempt_is_immediate_and_nothing_sleeps_after_the_last() -> None:
    t0 = time.monotonic()
    assert list(attempts(tries=1, first=30.0)) == [0]
    assert list(attempts(timeout=0.0, first=30.0)) == [0]
    assert time.monotonic() - t0 < SLACK


def test_a_timeout_ends_with_an_attempt_on_the_deadline_never_past_it() -> None:
    at = stamps(timeout=0.05, first=10.0)  # the second sleep is cut to the deadline
    assert len(at) == 2
    assert 0.05 <= at[1] < 0.05 + SLACK
    at = stamps(timeout=0.1, first=0.001, cap=0.004)
    assert at[-1] >= 0.1 and at[-2] < 0.1
    assert len(at) >= 5  # (at most 1+2+4 ms, then 4 ms apart)


def test_poll_until_returns_once_the_condition_holds() -> None:
    event = threading.Event()
    calls = 0

    def done() -> bool:
        nonlocal calls
        calls += 1
        if calls == 3:  # another thread makes it true meanwhile
            threading.Thread(target=event.set).start()
        return event.is_set()

    t0 = time.monotonic()
    assert poll_until(done, 30.0, first=0.001, cap=0.01)
    assert time.monotonic() - t0 < SLACK
    seen = calls
    assert seen >= 3  # (not true before the third call)
    assert poll_until(done, 30.0) and calls == seen + 1, "a true condition is asked once"


def test_poll_until_gives_up_after_the_timeout() -> None:
    calls = 0

    def never() -> bool:
        nonlocal calls
        calls += 1
        return False

    t0 = time.monotonic()
    assert not poll_until(never, 0.05, first=0.001, cap=0.01)
    elapsed = time.monotonic() - t0
    assert 0.05 <= elapsed < 0.05 + SLACK
    assert calls >= 3
