"""`dbgym.bench.compare(spec)`: run a comparison and build its report (typed spec in,
report object out).

```python
from dbgym.bench import BenchConfig, BenchSpec, compare
report = compare(BenchSpec(state=..., workload=..., configs=(BenchConfig.default(), ...)))
report.config("with-index").speedup, report.config("with-index").significant
report.write_json("out.json"); report.write_html("out.html")
```
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dbgym.bench.report import BenchReport, build
from dbgym.bench.runner import OnProgress, measure
from dbgym.bench.spec import BenchSpec
from dbgym.errors import InvalidArgumentError

if TYPE_CHECKING:
    from dbgym.project.manager import ProjectManager


@contextmanager
def _progress_bar(enabled: bool | None, chained: OnProgress | None) -> Iterator[OnProgress | None]:
    """A rich bar over the runs on stderr (enabled None: when stderr is a terminal)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield chained
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]dbgym bench"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[next]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    task = bar.add_task("runs", total=None, next="starting the servers")

    def update(done: int, total: int, nxt: str) -> None:
        bar.update(task, completed=done, total=total, next=nxt[:50])
        if chained is not None:
            chained(done, total, nxt)

    with bar:
        yield update


def compare(
    spec: BenchSpec,
    *,
    progress: bool | None = None,
    on_progress: OnProgress | None = None,
    project: ProjectManager | None = None,
) -> BenchReport:
    """Run the comparison `spec` and return its report (see dbgym.bench.runner for how it
    runs and dbgym.bench.report for what the report holds).

    progress: a progress bar over the runs on stderr (None: when stderr is a terminal).
    on_progress(done, total, next): called after every run.
    project: a `dbgym.project.ProjectManager`; the report is added to its bench_runs.

    Ctrl-C ends the runs, stops every server and returns the report of what was measured
    with `report.interrupted` set (nothing measured yet: KeyboardInterrupt propagates).
    """
    if not isinstance(spec, BenchSpec):
        raise InvalidArgumentError(f"compare needs a BenchSpec, got {type(spec).__name__}")
    t0 = time.perf_counter()
    with _progress_bar(progress, on_progress) as update:
        measured = measure(spec, progress=progress, on_progress=update)
    if measured.interrupted and not measured.runs:
        raise KeyboardInterrupt
    ts = time.perf_counter()
    report = build(measured)
    timing = report.timing
    timing["stats_s"] = round(time.perf_counter() - ts, 6)
    total = time.perf_counter() - t0
    replay = measured.timing.get("replay_s", 0.0)
    timing["total_s"] = round(total, 6)
    timing["overhead_s"] = round(total - replay, 6)
    timing["overhead_pct"] = round(100 * (total - replay) / replay, 3) if replay > 0 else 0.0
    report.duration_s = round(total, 6)
    if project is not None:
        report.metadata["project"] = {"folder": str(project.project_folder())}
        row = project.records.add_bench_run(report.name, report.to_dict())
        report.metadata["project"]["bench_run_id"] = row
    return report
