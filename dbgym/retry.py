"""Waiting with exponential backoff: the one loop every poll and retry in dbgym uses.

```python
for _ in attempts(timeout=10.0, first=0.001, cap=0.05):  # try now, then after 1, 2, 4 ... ms
    if ready():
        break
else:
    raise TimeoutError("not ready after 10 s")            # (the last try was at the deadline)

poll_until(ready, 10.0, first=0.001, cap=0.05)            # the same loop as a bool

for attempt in attempts(tries=3, first=0.5):              # 3 tries, 0.5 s then 1 s apart
    ...
```

A poll that must give up early (the process it waits for died) breaks out of the loop
itself; nothing here sleeps a fixed time, and no sleep runs past the deadline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator


def attempts(
    timeout: float | None = None,
    *,
    first: float,
    cap: float = math.inf,
    tries: int | None = None,
) -> Iterator[int]:
    """Yield 0, 1, 2, ... (the attempt number): the first at once, each later one after a
    sleep of `first` seconds, doubling up to `cap`. Stops after `tries` attempts, or once
    `timeout` seconds have passed since the call (the last sleep is cut short so that one
    attempt falls on the deadline); with neither, never stops. Nothing sleeps after the
    last attempt."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = first
    attempt = 0
    while True:
        yield attempt
        attempt += 1
        if tries is not None and attempt >= tries:
            return
        pause = delay
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            pause = min(pause, remaining)
        time.sleep(pause)
        delay = min(delay * 2, cap)


def poll_until(
    done: Callable[[], bool], timeout: float, first: float = 0.0005, cap: float = 0.05
) -> bool:
    """Call `done()` until it returns True or `timeout` seconds pass, sleeping `first`
    seconds after the first miss and doubling up to `cap` (see `attempts`); returns
    whether it did."""
    return any(done() for _ in attempts(timeout, first=first, cap=cap))
