"""The project database under concurrent writers: status rows written by 4 processes at
once against the same number written by one process, in the same run.

Each writer is a real process with its own `ProjectManager` and writes its rows through
`Records.add_status` (one `BEGIN IMMEDIATE` transaction per row, as simulations post
them). All writers start at the same instant; the figure is the aggregate rows/s from the
first start to the last finish. The guard: 4 writers keep at least a quarter of one
writer's throughput (SQLite serializes writers; what must not happen is a collapse into
lock waits and retries). No row may be lost.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_benchmark.fixture import BenchmarkFixture

from benches.guard import record
from dbgym.project.manager import ProjectManager

ROWS = 2000
WRITERS = 4
ROUNDS = 3

_WRITER = """
import sys, time
from dbgym.project.manager import ProjectManager
from dbgym.project.records import StatusCode
pm = ProjectManager(sys.argv[1], reconcile=False)
n, start_at = int(sys.argv[2]), float(sys.argv[3])
sid = pm.records.create_simulation(name="writer", sim_key="bench", config=None,
    start_kwargs=None, sim_type_name="Writer", sim_module_name="bench")
while time.time() < start_at:
    time.sleep(0.0005)
t0 = time.time()
for i in range(n):
    pm.records.add_status(sid, StatusCode.INFO, details=f"row {i}")
print(t0, time.time())
"""


def _write(writers: int) -> float:
    """Rows/s of `writers` processes writing ROWS rows in all into a fresh project."""
    folder = Path(tempfile.mkdtemp(prefix="dbgym-bench-project-"))
    ProjectManager(folder, reconcile=False).close()
    start_at = time.time() + 2.5  # every interpreter is up by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(folder), str(ROWS // writers), str(start_at)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(writers)
    ]
    spans = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0
        t0, t1 = map(float, out.split())
        spans.append((t0, t1))
    pm = ProjectManager(folder, reconcile=False)
    assert pm.records.count_statuses() == ROWS  # nothing lost
    pm.close()
    return ROWS / (max(t1 for _, t1 in spans) - min(t0 for t0, _ in spans))


def test_status_rows_with_4_writer_processes(benchmark: BenchmarkFixture) -> None:
    single: list[float] = []
    multi: list[float] = []

    def baseline() -> None:
        single.append(_write(1))

    benchmark.pedantic(  # type: ignore[no-untyped-call]
        lambda: multi.append(_write(WRITERS)), setup=baseline, rounds=ROUNDS, iterations=1
    )
    figure, base = statistics.median(multi), statistics.median(single)
    print(
        f"\nproject database: {WRITERS} writer processes {figure:,.0f} rows/s, one writer "
        f"{base:,.0f} rows/s (ratio {figure / base:.2f})"
    )
    record(
        benchmark,
        label=f"status rows/s, {WRITERS} writer processes vs one",
        figure=figure,
        baseline=base,
        unit="rows/s",
        ratio=figure / base,
        bar=0.25,
        higher_is_better=True,
        detail=f"rounds {[round(x) for x in multi]} vs {[round(x) for x in single]}",
    )
