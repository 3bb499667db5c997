"""Built-in benchmarks: TPC-H and pgbench, as workloads (traces) and database states.

`trace(name, **kw)` builds the benchmark's workload trace in Rust:
- "tpch": scale, seed, streams (sessions), queries (numbers 1..22), shuffle -> one session per
  stream, template id = query number - 1 (see dbgym.workload.benchmarks.tpch.trace).
- "pgbench": script ("tpcb-like" | "select-only"), scale, clients, transactions, protocol
  ("simple" | "extended"), rate, seed (see dbgym.workload.benchmarks.pgbench.trace).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbgym import _core
from dbgym.errors import WorkloadError
from dbgym.workload.benchmarks import pgbench, tpch

if TYPE_CHECKING:
    from dbgym.workload.workload import Workload

BENCHMARKS: tuple[str, ...] = ("tpch", "pgbench")


def workload(name: str, **kw: Any) -> Workload:
    """The benchmark's workload as a `dbgym.Workload` (same as `Workload.benchmark`)."""
    from dbgym.workload.workload import Workload

    return Workload.benchmark(name, **kw)


def trace(name: str, **kw: Any) -> _core.Trace:
    """The workload trace of benchmark `name` with its options `kw`."""
    try:
        if name == "tpch":
            return tpch.trace(**kw)
        if name == "pgbench":
            return pgbench.trace(**kw)
    except TypeError as e:
        raise WorkloadError(f"bad options for benchmark {name!r}: {e}") from None
    raise WorkloadError(f"unknown benchmark {name!r} (benchmarks: {', '.join(BENCHMARKS)})")
