"""dbgym: a database gym. PostgreSQL servers, workloads, replay and plan features for
autonomous-DBMS research, with a Rust core (`dbgym._core`).

The public API is what this module exports (`__all__`); everything else may change.
Names are imported lazily on first use (PEP 562), so `import dbgym` is cheap and no
submodule imports the package root back: extension users import `dbgym._core`, and the
pipeline's packages (dbms, state, workload, replay, observe, plans, spaces) import each
other only downstream.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__: str = version("dbgym")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "AppliedChange": "dbgym.session",
    "CollectedPlan": "dbgym.observe.plans",
    "DatabaseState": "dbgym.state.database_state",
    "DbSession": "dbgym.session",
    "EnvSpec": "dbgym.envs.spec",
    "GraphPlanObservation": "dbgym.spaces.plan",
    "GymSpec": "dbgym.envs.spec",
    "InstanceSpec": "dbgym.dbms.spec",
    "IndexSpec": "dbgym.dbms.indexes",
    "KnobChange": "dbgym.dbms.knobs",
    "KnobRange": "dbgym.envs.spec",
    "KnobStateObserver": "dbgym.observe.knobs",
    "MeasureOutcome": "dbgym.session",
    "MeasureStatus": "dbgym.session",
    "Measurement": "dbgym.session",
    "MetricsObserver": "dbgym.observe.metrics",
    "Model": "dbgym.models.protocol",
    "ObservationSource": "dbgym.session",
    "PaddedPlanObservation": "dbgym.spaces.plan",
    "PlanBatch": "dbgym.plans.featurize",
    "PlanCatalog": "dbgym.plans.catalog",
    "PostgresInstance": "dbgym.dbms.instance",
    "ReplayOptions": "dbgym.replayer.options",
    "ReplayResult": "dbgym.replayer.run",
    "ReplaySummary": "dbgym.replayer.run",
    "StateSpec": "dbgym.state.spec",
    "Workload": "dbgym.workload.workload",
    "WorkloadSpec": "dbgym.workload.spec",
    "collect_plans": "dbgym.observe.plans",
    "featurize": "dbgym.plans.featurize",
    "load_model": "dbgym.models.registry",
    "replay": "dbgym.replayer.run",
}

#: Subpackages reachable as attributes without importing them first (`dbgym.benchmarks.get`).
_SUBPACKAGES = frozenset({"benchmarks", "errors", "types"})

if TYPE_CHECKING:
    from dbgym import benchmarks as benchmarks
    from dbgym import errors as errors
    from dbgym import types as types
    from dbgym.dbms.indexes import IndexSpec as IndexSpec
    from dbgym.dbms.instance import PostgresInstance as PostgresInstance
    from dbgym.dbms.knobs import KnobChange as KnobChange
    from dbgym.dbms.spec import InstanceSpec as InstanceSpec
    from dbgym.envs.spec import EnvSpec as EnvSpec
    from dbgym.envs.spec import GymSpec as GymSpec
    from dbgym.envs.spec import KnobRange as KnobRange
    from dbgym.models.protocol import Model as Model
    from dbgym.models.registry import load_model as load_model
    from dbgym.observe.knobs import KnobStateObserver as KnobStateObserver
    from dbgym.observe.metrics import MetricsObserver as MetricsObserver
    from dbgym.observe.plans import CollectedPlan as CollectedPlan
    from dbgym.observe.plans import collect_plans as collect_plans
    from dbgym.plans.catalog import PlanCatalog as PlanCatalog
    from dbgym.plans.featurize import PlanBatch as PlanBatch
    from dbgym.plans.featurize import featurize as featurize
    from dbgym.replayer.options import ReplayOptions as ReplayOptions
    from dbgym.replayer.run import ReplayResult as ReplayResult
    from dbgym.replayer.run import ReplaySummary as ReplaySummary
    from dbgym.replayer.run import replay as replay
    from dbgym.session import AppliedChange as AppliedChange
    from dbgym.session import DbSession as DbSession
    from dbgym.session import Measurement as Measurement
    from dbgym.session import MeasureOutcome as MeasureOutcome
    from dbgym.session import MeasureStatus as MeasureStatus
    from dbgym.session import ObservationSource as ObservationSource
    from dbgym.spaces.plan import GraphPlanObservation as GraphPlanObservation
    from dbgym.spaces.plan import PaddedPlanObservation as PaddedPlanObservation
    from dbgym.state.database_state import DatabaseState as DatabaseState
    from dbgym.state.spec import StateSpec as StateSpec
    from dbgym.workload.spec import WorkloadSpec as WorkloadSpec
    from dbgym.workload.workload import Workload as Workload

    core_version: str

# The environment ids (dbgym/DbGym-v0, ...) with string entry points: this imports
# gymnasium, not the environment module.
from dbgym.envs.registration import register_envs as _register_envs  # noqa: E402

_register_envs()


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name == "core_version":
        value = importlib.import_module("dbgym._core").__version__
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"dbgym.{name}")
    else:
        raise AttributeError(f"module 'dbgym' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [*sorted(_EXPORTS), *sorted(_SUBPACKAGES), "__version__", "core_version"]
