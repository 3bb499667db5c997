# Type stubs for the Rust extension (rust/python/). Keep in step with it.

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
