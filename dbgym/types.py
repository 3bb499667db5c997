"""The protocols and aliases every dbgym function shares (one place, one spelling).

Calling convention, used by every function that talks to a database:

    fn(target, workload, *, timeout=..., progress=..., ...)

- `target` comes first: a `Target` (anything with a `.dsn`, e.g. `PostgresInstance`,
  `DbSession`, or a libpq connection string / URI). Functions that need a psycopg
  connection rather than a DSN accept a `SupportsConnect`.
- every timeout is `Seconds` (float seconds; None = no limit);
- `progress: bool | None` shows a progress bar (None: when stderr is a terminal); a
  callback, where one is accepted, is spelled `on_progress`;
- per-template planner settings are `TemplateSettings` (template id -> GUC -> value), used
  alike by replay and plan collection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import psycopg


@runtime_checkable
class SupportsDsn(Protocol):
    """Anything with a libpq connection string: PostgresInstance, DbSession."""

    @property
    def dsn(self) -> str: ...


@runtime_checkable
class SupportsConnect(Protocol):
    """Anything with `.connect()` returning a psycopg connection (e.g. PostgresInstance)."""

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]: ...


#: A database to talk to: an object with a `.dsn`, or a DSN string.
Target = SupportsDsn | str

#: Float seconds (timeouts, durations).
Seconds = float

#: A PostgreSQL setting value as Python spells it (knobs, planner settings).
SettingValue = str | int | float | bool

#: Planner settings (GUC -> value) applied with SET LOCAL around one statement.
PlannerSettings = Mapping[str, SettingValue]

#: Per-template planner settings: template id -> settings; replay and plan collection
#: take the same type (the hints action of the environment produces it).
TemplateSettings = Mapping[int, PlannerSettings]


def target_dsn(target: Target) -> str:
    """The DSN of `target` (a DSN string, or an object with `.dsn`)."""
    if isinstance(target, str):
        return target
    dsn = getattr(target, "dsn", None)
    if not isinstance(dsn, str):
        from dbgym.errors import InvalidArgumentError

        raise InvalidArgumentError(
            f"target must be a DSN string or have a .dsn (a PostgresInstance, a DbSession); "
            f"got {type(target).__name__}"
        )
    return dsn
