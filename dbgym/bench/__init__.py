"""`dbgym bench`: runtime comparisons of configurations with statistics (`compare`), and
the project's own benches in one table (`selfbench`, `dbgym bench --self`).

The names are imported lazily: `import dbgym.bench.selfbench` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbgym.bench.comparison import compare
    from dbgym.bench.config import BenchConfig, IndexEntry, ReplayMode, load_config
    from dbgym.bench.report import BenchReport, ConfigResult
    from dbgym.bench.spec import BenchSpec

__all__ = [
    "BenchConfig",
    "BenchReport",
    "BenchSpec",
    "ConfigResult",
    "IndexEntry",
    "ReplayMode",
    "compare",
    "load_config",
]

_WHERE = {
    "compare": "dbgym.bench.comparison",
    "BenchConfig": "dbgym.bench.config",
    "IndexEntry": "dbgym.bench.config",
    "ReplayMode": "dbgym.bench.config",
    "load_config": "dbgym.bench.config",
    "BenchReport": "dbgym.bench.report",
    "ConfigResult": "dbgym.bench.report",
    "BenchSpec": "dbgym.bench.spec",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'dbgym.bench' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
