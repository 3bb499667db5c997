"""Driving long-running Rust work: one loop for every job of the extension.

Reading a log (`_core.parse_log_start`), loading TPC-H (`TpchGenerator.load_start`) and
replaying (`_core.replay_start`) each return a handle that works on a Rust thread and answers
the same calls (`JobHandle`): `progress()` as (item, done, total) rows, `wait(timeout)` with
the GIL released, `cancel()`, and `result()` once. `run_job` waits for one: it draws a
progress bar per item (or calls `on_progress`), stops at an optional deadline, and on Ctrl-C
(or any exception) cancels the job, waits until it has stopped (so no COPY, connection or
thread outlives the call) and re-raises.

```python
job = _core.parse_log_start("postgresql.csv")
trace, stats = run_job(job, title="reading", progress=None).result()
```
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TypeVar

from dbgym.progress import ProgressFn, progress_bars

#: How often a waiting job's progress is read (seconds).
POLL = 0.1
#: How long a cancelled job may take to stop before run_job gives up waiting (seconds).
CANCEL_GRACE = 30.0


class JobHandle(Protocol):
    """What every long-running handle of the extension answers (`_core.Job`,
    `_core.ReplayHandle`)."""

    def progress(self) -> list[tuple[str, int, int]]: ...
    def cancel(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...


J = TypeVar("J", bound=JobHandle)


def run_job(
    job: J,
    *,
    title: str,
    progress: bool | None = None,
    on_progress: ProgressFn | None = None,
    deadline: float | None = None,
) -> J:
    """Waits until `job` finishes or `deadline` (time.monotonic()) passes, and returns it
    (take its `result()`; check `job.wait(0)` when a deadline was given). `progress`: draw
    bars (None: when stderr is a terminal); `on_progress(done, totals)`: called with the
    job's items as it goes."""
    show = sys.stderr.isatty() if progress is None else progress
    with progress_bars(title, enabled=show) as bars:
        sinks = [sink for sink in (bars, on_progress) if sink is not None]

        def report() -> None:
            if sinks:
                rows = job.progress()
                done = {item: d for item, d, _ in rows}
                totals = {item: t for item, _, t in rows}
                for sink in sinks:
                    sink(done, totals)

        try:
            while not job.wait(_step(deadline)):
                report()
                if deadline is not None and time.monotonic() >= deadline:
                    return job
            report()
        except BaseException:
            stop(job)
            raise
    return job


def stop(job: JobHandle, grace: float = CANCEL_GRACE) -> bool:
    """Cancels `job` and waits up to `grace` seconds for it to stop; True if it did."""
    job.cancel()
    return job.wait(grace)


def _step(deadline: float | None) -> float:
    if deadline is None:
        return POLL
    return max(0.0, min(POLL, deadline - time.monotonic()))
