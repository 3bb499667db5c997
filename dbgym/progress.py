"""Progress display of long workload/state operations (rich), decoupled from the work.

Workers take an `on_progress(done, totals)` callback (a `ProgressFn`): two dicts keyed by
item (a table name, "keys", "vacuum/analyze", ...), so one bar per item shows up in the
order items are first reported. The functions users call take `progress: bool | None`
(None: bars when stderr is a terminal) and pass `progress_bars(title, progress)` on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

#: on_progress(done per item, total per item)
ProgressFn = Callable[[dict[str, int], dict[str, int]], None]


@contextmanager
def progress_bars(title: str, enabled: bool | None = None) -> Iterator[ProgressFn | None]:
    """Yields a ProgressFn drawing one rich bar per item on stderr, or None when disabled
    (`enabled` None: enabled when stderr is a terminal)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield None
        return
    bars = Progress(
        TextColumn("[bold]{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def update(done: dict[str, int], totals: dict[str, int]) -> None:
        for item, total in totals.items():
            if item not in tasks:
                tasks[item] = bars.add_task(f"{title} {item}", total=max(total, 1))
            bars.update(tasks[item], completed=min(done.get(item, 0), total), total=max(total, 1))

    with bars:
        yield update
