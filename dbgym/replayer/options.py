"""ReplayOptions: how to replay a workload, as a typed, serializable value.

```python
opts = ReplayOptions(speed=None, concurrency=8, statement_timeout=30.0)
result = dbgym.replay(inst, workload, **opts.replay_kwargs())
ReplayOptions.from_json(opts.to_json()) == opts
```

Per-template planner settings are not an option of the replay but an action (they change
what is measured); they are passed to `replay` on their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from dbgym.errors import SpecError
from dbgym.replayer.run import Identity
from dbgym.spec import Spec


@dataclass(frozen=True)
class ReplayOptions(Spec):
    """Options of `dbgym.replay` (see its docstring for each one).

    speed: 1.0 = the logged timing, 2.0 = twice as fast, None = as fast as possible.
    concurrency: None = one connection per logged session; k = at most k connections.
    statement_timeout: float seconds per statement (None = no limit).
    identity: "dsn" (every session as the DSN's user) or "logged" (each session as its
        logged user and database; needs concurrency=None).
    threads: connection threads (None = one per connection, at most max(8, cores)).
    """

    kind: ClassVar[str] = "replay"

    speed: float | None = 1.0
    concurrency: int | None = None
    statement_timeout: float | None = None
    identity: Identity = "dsn"
    threads: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.speed is not None and not (math.isfinite(self.speed) and self.speed > 0):
            raise SpecError(
                f"speed: must be a positive number or None, got {self.speed}", key="speed"
            )
        if self.concurrency is not None and self.concurrency < 1:
            raise SpecError(
                f"concurrency: must be at least 1 or None, got {self.concurrency}",
                key="concurrency",
            )
        if self.statement_timeout is not None and not self.statement_timeout > 0:
            raise SpecError(
                f"statement_timeout: must be positive seconds or None, got "
                f"{self.statement_timeout}",
                key="statement_timeout",
            )
        if self.threads is not None and self.threads < 1:
            raise SpecError(
                f"threads: must be at least 1 or None, got {self.threads}", key="threads"
            )
        if self.identity == "logged" and self.concurrency is not None:
            raise SpecError(
                "concurrency: identity='logged' connects each session as its logged user, "
                "so sessions cannot share connections; use concurrency=None",
                key="concurrency",
            )

    def replay_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `dbgym.replay` these options stand for."""
        return {
            "speed": self.speed,
            "concurrency": self.concurrency,
            "statement_timeout": self.statement_timeout,
            "identity": self.identity,
            "threads": self.threads,
        }
