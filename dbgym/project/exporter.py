"""SimulationExporter: user-defined simulation types made importable by child processes and
by `dbgym` commands (GymDash's exporter, without its files).

```python
SimulationExporter.prepare_for_export("train", TrainSimulation)   # also registers it here
SimulationExporter.export_sims(project)                           # rows in sim_types
```

What is recorded, in the project's `sim_types` table: the key, the type's module and
qualified name, and the file that defines it. Never a pickled class, never a file written
into site-packages. A child (or `dbgym sims start`) registers every recorded type lazily
(`load_exported`) and imports one when it is first made, through
`dbgym.project.registry.load_object`: by module name; if that module is not on the child's
path, from the recorded file's sys.path root; and for a class defined in a user's script
(module "__main__"), from the script file under a module name of its own, so the script's
`if __name__ == "__main__":` part does not run in the child.

The tracker records every non-built-in key it starts the same way, so a type registered in
the starting process works in its children without an explicit export.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from dbgym.errors import InvalidArgumentError
from dbgym.project.api_calls import api_call
from dbgym.project.registry import (
    BUILTIN_SIMULATIONS,
    Creator,
    SimulationRegistry,
    TypeLocation,
    location_of,
)
from dbgym.project.simulation import Simulation, SimulationStartConfig

if TYPE_CHECKING:
    from dbgym.project.manager import ProjectManager

__all__ = ["SimulationExporter", "load_exported", "record_type"]


def record_type(project: ProjectManager, key: str, location: TypeLocation) -> None:
    """Record `key` -> `location` in the project (replacing an earlier record of `key`)."""
    project.records.register_sim_type(key, location.module, location.qualname, location.path)


def load_exported(project: ProjectManager) -> list[str]:
    """Register the project's exported types in this process (keys already registered here
    are left alone); returns the keys registered."""
    added = []
    for row in project.records.sim_types():
        key = str(row["key"])
        if SimulationRegistry.has(key):
            continue
        path = row.get("path")
        SimulationRegistry.register(
            key, f"{row['module']}:{row['qualname']}", path=str(path) if path else None
        )
        added.append(key)
    return added


class SimulationExporter:
    """Static methods, as in GymDash: `prepare_for_export` for each type, then
    `export_sims` once."""

    _pending: dict[str, TypeLocation] = {}  # noqa: RUF012 - per-process pending exports
    _lock = threading.Lock()

    @staticmethod
    def prepare_for_export(
        key: str,
        sim_type: type[Simulation] | Creator,
        start_config: SimulationStartConfig | None = None,
    ) -> TypeLocation:
        """Register `sim_type` under `key` in this process and queue it for `export_sims`;
        returns where a child will import it from. InvalidArgumentError for a type a child
        cannot import (a lambda, a class defined inside a function, an interactive
        session's class) or for a built-in key."""
        if key in BUILTIN_SIMULATIONS:
            raise InvalidArgumentError(f"simulation key {key!r} is built in: choose another key")
        location = location_of(sim_type)
        SimulationRegistry.register(key, sim_type, start_config)
        with SimulationExporter._lock:
            SimulationExporter._pending[key] = location
        return location

    @staticmethod
    def pending() -> dict[str, TypeLocation]:
        """The types queued by `prepare_for_export` and not exported yet."""
        with SimulationExporter._lock:
            return dict(SimulationExporter._pending)

    @staticmethod
    def export_sims(project: ProjectManager | None = None) -> list[str]:
        """Record every prepared type in `project` (default: `ProjectManager()`, the
        default project folder); returns the keys recorded."""
        if project is None:
            from dbgym.project.manager import ProjectManager

            project = ProjectManager()
        return _export(project)


@api_call("exporter.export_sims")
def _export(project: ProjectManager) -> list[str]:
    with SimulationExporter._lock:
        pending = dict(SimulationExporter._pending)
    for key, location in pending.items():
        record_type(project, key, location)
    with SimulationExporter._lock:
        for key, location in pending.items():
            if SimulationExporter._pending.get(key) == location:
                del SimulationExporter._pending[key]
    return sorted(pending)


def exported_types(project: ProjectManager) -> dict[str, dict[str, Any]]:
    """The project's recorded types: key -> {"module", "qualname", "path"}."""
    return {
        str(row["key"]): {k: row.get(k) for k in ("module", "qualname", "path")}
        for row in project.records.sim_types()
    }
