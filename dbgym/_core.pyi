# Type stubs for the Rust extension (rust/python/). Keep in step with it.

__version__: str

class Trace:
    """An immutable workload trace held by Rust (wrapped by dbgym.Workload)."""

    def __len__(self) -> int: ...
