"""dbgym.project: the project folder, its SQLite database, tracked simulations and the
standard training-data format (docs/project.md).

```python
from dbgym.project import ProjectManager, SimulationTracker, load_dataset

project = ProjectManager()                        # ./.dbgym-projects or $DBGYM_PROJECT_DIR
with SimulationTracker(project) as tracker:
    sim_id = tracker.start_sim("dbgym-run", kwargs={"spec": run_spec.to_dict()})
    tracker.wait(sim_id)
data = load_dataset(project, [sim_id])
```

Names are imported on first use, so `import dbgym.project` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "Dataset": "dbgym.project.dataset",
    "ProjectManager": "dbgym.project.manager",
    "RecordEpisodes": "dbgym.project.recording",
    "Records": "dbgym.project.records",
    "Simulation": "dbgym.project.simulation",
    "SimulationCancelled": "dbgym.project.simulation",
    "SimulationContext": "dbgym.project.simulation",
    "SimulationExporter": "dbgym.project.exporter",
    "SimulationRegistry": "dbgym.project.registry",
    "SimulationRow": "dbgym.project.records",
    "SimulationStartConfig": "dbgym.project.simulation",
    "SimulationTracker": "dbgym.project.tracker",
    "StatusCode": "dbgym.project.records",
    "StatusRow": "dbgym.project.records",
    "StatusSubcode": "dbgym.project.records",
    "load_dataset": "dbgym.project.dataset",
}

if TYPE_CHECKING:
    from dbgym.project.dataset import Dataset as Dataset
    from dbgym.project.dataset import load_dataset as load_dataset
    from dbgym.project.exporter import SimulationExporter as SimulationExporter
    from dbgym.project.manager import ProjectManager as ProjectManager
    from dbgym.project.recording import RecordEpisodes as RecordEpisodes
    from dbgym.project.records import Records as Records
    from dbgym.project.records import SimulationRow as SimulationRow
    from dbgym.project.records import StatusCode as StatusCode
    from dbgym.project.records import StatusRow as StatusRow
    from dbgym.project.records import StatusSubcode as StatusSubcode
    from dbgym.project.registry import SimulationRegistry as SimulationRegistry
    from dbgym.project.simulation import Simulation as Simulation
    from dbgym.project.simulation import SimulationCancelled as SimulationCancelled
    from dbgym.project.simulation import SimulationContext as SimulationContext
    from dbgym.project.simulation import SimulationStartConfig as SimulationStartConfig
    from dbgym.project.tracker import SimulationTracker as SimulationTracker


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dbgym.project' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = sorted(_EXPORTS)
