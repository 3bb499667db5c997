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


def setting_text(value: SettingValue, where: str = "setting") -> str:
    """A setting value as PostgreSQL reads it (booleans as on/off); `where` names the
    setting in the InvalidArgumentError raised for a value of another type."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float | str):
        return str(value)
    from dbgym.errors import InvalidArgumentError

    raise InvalidArgumentError(
        f"{where}: value must be str, int, float or bool, got {type(value).__name__}"
    )


def template_settings_text(
    settings: TemplateSettings | None, name: str = "template_settings"
) -> dict[int, dict[str, str]]:
    """`settings` checked (template ids are non-negative ints, values SettingValues) and
    spelled as PostgreSQL reads them; InvalidArgumentError names the bad key (`name[id]`)."""
    out: dict[int, dict[str, str]] = {}
    for tid, kv in (settings or {}).items():
        if isinstance(tid, bool) or not isinstance(tid, int) or tid < 0:
            from dbgym.errors import InvalidArgumentError

            raise InvalidArgumentError(f"{name}: key {tid!r} is not a template id")
        out[tid] = {str(k): setting_text(v, f"{name}[{tid}][{k!r}]") for k, v in kv.items()}
    return out


def check_seconds(name: str, value: Seconds | None) -> Seconds | None:
    """`value` as float seconds: None (no limit), or a positive finite number (not a
    bool); an InvalidArgumentError naming `name` otherwise."""
    import math

    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        from dbgym.errors import InvalidArgumentError

        raise InvalidArgumentError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)
