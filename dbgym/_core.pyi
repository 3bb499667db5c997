# Type stubs for the Rust extension (rust/python/). Keep in step with it.

from collections.abc import Callable
from typing import Any

__version__: str

class Trace:
    """An immutable workload trace held by Rust (wrapped by dbgym.Workload)."""

    def __len__(self) -> int: ...

# --- replay (rust/python/replay.rs) ---

class ReplayHandle:
    """A replay running on its own thread (see dbgym/workload/replay.py)."""

    @property
    def total(self) -> int: ...
    def done(self) -> int: ...
    def cancel(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...
    def result(self) -> dict[str, Any]: ...

def replay_start(
    trace: Trace,
    dsn: str,
    *,
    speed: float | None = None,
    concurrency: int | None = None,
    statement_timeout_ms: int | None = None,
    template_settings: dict[int, dict[str, str]] | None = None,
    threads: int | None = None,
) -> ReplayHandle: ...
def trace_from_statements(
    session_ids: list[str],
    timestamps_us: list[int],
    sql: list[str],
    params: list[list[str | None]] | None = None,
    template_ids: list[int] | None = None,
) -> Trace: ...

# --- built-in benchmarks (rust/python/tpch.rs) ---

class TpchGenerator:
    """A deterministic TPC-H data generator at one scale factor and seed."""

    def __init__(self, scale: float, seed: int) -> None: ...
    @property
    def scale(self) -> float: ...
    @property
    def seed(self) -> int: ...
    def rows(self) -> dict[str, int]: ...
    def table(self, table: str, start: int | None = None, end: int | None = None) -> bytes: ...
    def load(
        self,
        dsn: str,
        tables: list[str] | None = None,
        workers: int = 2,
        chunk_bytes: int = 1048576,
        schema: str | None = None,
        progress: Callable[[dict[str, int]], object] | None = None,
    ) -> dict[str, int]: ...

def tpch_query(number: int, scale: float = 1.0, seed: int = 0, stream: int = 0) -> str: ...
def tpch_template(number: int) -> str: ...
def tpch_trace(
    scale: float,
    seed: int,
    streams: int = 1,
    queries: list[int] | None = None,
    shuffle: bool = True,
) -> Trace: ...
def pgbench_trace(
    script: str,
    scale: int,
    clients: int,
    transactions: int,
    protocol: str = "simple",
    rate: float | None = None,
    seed: int = 0,
) -> Trace: ...
