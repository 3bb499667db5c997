"""What a tracked simulation is: its start configuration, its base class, and what it sees.

GymDash's lifecycle, in a child process of its own (dbgym.project.tracker starts it,
dbgym.project.child runs it):

```python
class Train(Simulation):
    def setup(self, ctx: SimulationContext) -> None:        # optional
        self.env = make_env(**self.config.kwargs)
    def run(self, ctx: SimulationContext) -> None:          # required
        for i in range(self.config.kwargs["steps"]):
            ...
            ctx.progress(i + 1, self.config.kwargs["steps"])
        ctx.post("trained")                                 # a status row (INFO)
        ctx.record_result({"reward": 1.0})
    def teardown(self, ctx: SimulationContext) -> None:     # always runs (finally)
        self.env.close()
```

Cancellation needs nothing from the simulation: `SimulationTracker.cancel` (or any SIGTERM)
raises `SimulationCancelled` in the child's main thread wherever it is (a `pg_sleep`, a
numpy call's return, a `time.sleep`), so `teardown` runs and stops the servers it started.
`SimulationCancelled` derives from `KeyboardInterrupt`, not from `DbgymError`, on purpose:
code that catches `Exception` does not swallow it, and psycopg cancels a running query on a
`KeyboardInterrupt` (as it does for Ctrl-C). `ctx.cancelled` is there for simulations that
prefer to stop at a step boundary.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dbgym.errors import InvalidArgumentError, SpecError
from dbgym.spec import Spec, thaw_json

if TYPE_CHECKING:
    from dbgym.project.manager import ProjectManager
    from dbgym.project.records import StatusCode, StatusSubcode

__all__ = [
    "Simulation",
    "SimulationCancelled",
    "SimulationContext",
    "SimulationStartConfig",
]


@dataclass(frozen=True)
class SimulationStartConfig(Spec):
    """How to start a simulation: a display `name`, the registry key `sim_key`, and the
    simulation's keyword arguments `kwargs` (JSON values; stored in the project as the
    `config` column, so a simulation can be re-created from its row)."""

    kind: ClassVar[str] = "simulation"

    name: str
    sim_key: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.sim_key:
            raise SpecError("sim_key: must not be empty", key="sim_key")

    def kwargs_dict(self) -> dict[str, Any]:
        """`kwargs` as plain, mutable JSON values (lists, dicts)."""
        out: dict[str, Any] = thaw_json(self.kwargs)
        return out

    def merged(
        self, *, name: str | None = None, kwargs: Mapping[str, Any] | None = None
    ) -> SimulationStartConfig:
        """A copy with `name` replaced and `kwargs` updated (key by key) when given."""
        merged = self.kwargs_dict()
        merged.update(kwargs or {})
        return SimulationStartConfig(
            name=self.name if name is None else name, sim_key=self.sim_key, kwargs=merged
        )


def parse_kwargs(text: str, *, where: str = "kwargs") -> dict[str, Any]:
    """A simulation's kwargs from JSON text (`dbgym sims start --kwargs`): a JSON object, or
    an InvalidArgumentError naming `where` and the position of the mistake."""
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(
            f"{where}: not JSON ({exc.msg} at character {exc.pos})"
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidArgumentError(f"{where}: give a JSON object, e.g. '{{\"steps\": 10}}'")
    return parsed


class SimulationCancelled(KeyboardInterrupt):
    """Raised in a simulation's main thread when it is cancelled (SIGTERM): see the module
    docstring for why it is a KeyboardInterrupt."""


class SimulationContext:
    """What a running simulation sees (in its child process): its id, the project, its
    folder `sims/<sim_id>/`, and calls that write its rows."""

    #: Seconds between two progress writes (the last value is always written at the end).
    PROGRESS_INTERVAL = 0.2

    def __init__(
        self,
        project: ProjectManager,
        sim_id: str,
        *,
        cancel_event: threading.Event | None = None,
    ) -> None:
        self.project = project
        self.sim_id = sim_id
        self.folder: Path = project.sim_folder(sim_id, create=True)
        self._cancel_event = cancel_event or threading.Event()
        self._environment: dict[str, Any] = {}
        self._progress: tuple[int, int | None] | None = None
        self._progress_written: tuple[int, int | None] | None = None
        self._progress_time = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SimulationContext(sim_id={self.sim_id!r}, folder={str(self.folder)!r})"

    @property
    def cancelled(self) -> bool:
        """True once the simulation was asked to stop (cooperative check; optional)."""
        return self._cancel_event.is_set()

    def progress(self, done: int, total: int | None = None) -> None:
        """Report progress: `done` of `total` (None: unknown). Written at most every
        PROGRESS_INTERVAL seconds, and always when done == total and at the end."""
        if done < 0 or (total is not None and total < 0):
            raise SpecError(f"progress: negative value ({done}, {total})", key="progress")
        now = time.monotonic()
        with self._lock:
            self._progress = (int(done), None if total is None else int(total))
            due = now - self._progress_time >= self.PROGRESS_INTERVAL or done == total
            if not due:
                return
            self._progress_time = now
        self.flush_progress()

    def flush_progress(self) -> None:
        """Write the last reported progress if it was not written yet."""
        with self._lock:
            value = self._progress
            if value is None or value == self._progress_written:
                return
            self._progress_written = value
        self.project.records.set_progress(self.sim_id, value[0], value[1])

    def post(
        self,
        details: str,
        code: StatusCode | None = None,
        subcode: StatusSubcode | None = None,
        error_trace: str | None = None,
    ) -> int:
        """Append a status row (default code INFO, subcode NONE); returns its id."""
        from dbgym.project.records import StatusCode, StatusSubcode

        return self.project.records.add_status(
            self.sim_id,
            StatusCode.INFO if code is None else code,
            StatusSubcode.NONE if subcode is None else subcode,
            details,
            error_trace,
        )

    def record_environment(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Record what the simulation runs on: `dbgym.provenance.host_facts()` merged with
        everything recorded before and `extra` (server facts, seeds, file hashes: JSON
        values; later keys win). Returns the whole recorded environment."""
        from dbgym.provenance import host_facts

        with self._lock:
            if not self._environment:
                self._environment = host_facts()
            self._environment.update(dict(extra or {}))
            environment = dict(self._environment)
        self.project.records.set_environment(self.sim_id, environment)
        return environment

    def record_result(self, result: Mapping[str, Any]) -> None:
        """Record the simulation's result (a JSON object, e.g. a run summary)."""
        self.project.records.set_result(self.sim_id, dict(result))


class Simulation:
    """Base of every simulation type: `run` is required, `setup` and `teardown` optional.

    The tracker makes one with its `SimulationStartConfig` (through the registry's creator:
    the class itself, or any callable taking the config) in the child process, then calls
    `setup(ctx)`, `run(ctx)` and, whatever happened, `teardown(ctx)`. Normal return:
    done (SUCCESS); an exception: failed (FAIL/ERROR with its traceback); cancellation:
    cancelled (FAIL/STOPPED)."""

    def __init__(self, config: SimulationStartConfig) -> None:
        self.config = config

    def setup(self, ctx: SimulationContext) -> None:
        """Prepare (make environments, load data); optional."""

    def run(self, ctx: SimulationContext) -> None:
        """The simulation's work."""
        raise NotImplementedError(f"{type(self).__qualname__}.run is not implemented")

    def teardown(self, ctx: SimulationContext) -> None:
        """Release what setup/run acquired (close environments: their servers stop); always
        called, also after an error or a cancellation."""
