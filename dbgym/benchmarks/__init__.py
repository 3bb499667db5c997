"""Built-in benchmarks: TPC-H and pgbench, as workloads (traces) and database states.

`trace(name, **kw)` builds the benchmark's workload trace in Rust:
- "tpch": scale, seed, streams (sessions), queries (numbers 1..22), shuffle -> one session per
  stream, template id = query number - 1 (see dbgym.benchmarks.tpch.trace).
- "pgbench": script ("tpcb-like" | "select-only"), scale, clients, transactions, protocol
  ("simple" | "extended"), rate, seed (see dbgym.benchmarks.pgbench.trace).
"""

from __future__ import annotations

from typing import Any

import dbgym._core as _core
from dbgym.benchmarks import pgbench, tpch
from dbgym.errors import WorkloadError

BENCHMARKS: tuple[str, ...] = ("tpch", "pgbench")


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
