"""Built-in benchmarks: TPC-H and pgbench, as workloads (traces) and database states.

Each benchmark is one registry entry (`BENCHMARKS`, a lazy `dbgym.registry.Registry`; see
dbgym/benchmarks/base.py) that holds its parameters once, and yields a matching state and
workload from one set of them:

```python
state, workload = dbgym.benchmarks.get("tpch").specs(scale=0.1, seed=15721, streams=2)
```

- "tpch": scale, seed (state and workload); keys, indexes (state); streams, queries
  (numbers 1..22), shuffle (workload) -> one session per stream, template id = query
  number - 1 (see dbgym.benchmarks.tpch).
- "pgbench": scale (state and workload); script ("tpcb-like" | "select-only"), clients,
  transactions, protocol ("simple" | "extended"), rate, seed (workload) (see
  dbgym.benchmarks.pgbench).

`trace(name, **kw)` builds a benchmark's workload trace in Rust.
"""

from __future__ import annotations

from typing import Any

import dbgym._core as _core
from dbgym.benchmarks.base import (
    BENCHMARKS,
    Benchmark,
    BenchmarkState,
    BenchmarkWorkload,
    Param,
    get,
)


def trace(name: str, **kw: Any) -> _core.Trace:
    """The workload trace of benchmark `name` with its workload parameters `kw`
    (InvalidArgumentError for an unknown name, SpecError naming a bad parameter)."""
    return get(name).trace(**kw)


__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkState",
    "BenchmarkWorkload",
    "Param",
    "get",
    "trace",
]
