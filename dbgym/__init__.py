"""dbgym: a database gym. Gymnasium environments on a real PostgreSQL, with a Rust core.

The public API is what this module re-exports; everything else may change.
"""

from __future__ import annotations

from dbgym import errors
from dbgym._core import __version__ as core_version
from dbgym.dbms import KnobChange, PostgresInstance
from dbgym.plans import CollectedPlan, PlanBatch, PlanCatalog, collect_plans, featurize
from dbgym.spaces import (
    GraphPlanObservation,
    KnobStateObserver,
    MetricsObserver,
    PaddedPlanObservation,
)
from dbgym.workload.replay import ReplayResult, ReplaySummary, replay
from dbgym.workload.state import DatabaseState
from dbgym.workload.workload import Workload

__version__ = "0.1.0"

__all__ = [
    "CollectedPlan",
    "DatabaseState",
    "GraphPlanObservation",
    "KnobChange",
    "KnobStateObserver",
    "MetricsObserver",
    "PaddedPlanObservation",
    "PlanBatch",
    "PlanCatalog",
    "PostgresInstance",
    "ReplayResult",
    "ReplaySummary",
    "Workload",
    "__version__",
    "collect_plans",
    "core_version",
    "errors",
    "featurize",
    "replay",
]
