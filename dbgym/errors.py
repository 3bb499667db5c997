"""Errors users see. Every exception dbgym raises on purpose derives from DbgymError.

Rust code raises these classes too (rust/python/errors.rs imports them by name), so
adding a class here is how a new error kind becomes catchable from Python.
"""

from __future__ import annotations


class DbgymError(Exception):
    """Base class of every error dbgym raises on purpose."""


class BackendUnavailableError(DbgymError):
    """A PostgreSQL backend (local binaries, Docker engine, image) cannot be used here."""


class ImageBuildError(DbgymError):
    """`dbgym docker build-image` failed; the message holds the failing step and its log tail."""


class PostgresStartError(DbgymError):
    """A PostgreSQL server did not start; `log_lines` holds the relevant server-log lines."""

    def __init__(self, message: str, log_lines: list[str] | None = None) -> None:
        self.log_lines: list[str] = list(log_lines or [])
        if self.log_lines:
            message = message + "\nserver log:\n  " + "\n  ".join(self.log_lines)
        super().__init__(message)


class KnobError(DbgymError):
    """A knob name or value is not valid for this server."""


class SnapshotError(DbgymError):
    """A snapshot is missing or cannot be restored."""


class TraceParseError(DbgymError):
    """A workload source (log, SQL file) is malformed: the message names file, line, byte offset."""


class WorkloadError(DbgymError):
    """A workload or database state cannot be built, loaded or replayed."""


class PlanFormatError(DbgymError):
    """An EXPLAIN plan is malformed: the message names the plan index and the JSON path.

    `plan_index` (position in the batch) and `path` (JSON path, e.g.
    `$[0].Plan.Plans[1]["Total Cost"]`) are also attributes when known.
    """

    def __init__(
        self, message: str, plan_index: int | None = None, path: str | None = None
    ) -> None:
        self.plan_index = plan_index
        self.path = path
        super().__init__(message)


class PlanCatalogError(DbgymError):
    """A plan catalog is invalid (duplicate names) or its serialized form is unreadable."""


class ObservationError(DbgymError):
    """An observation cannot be built or does not fit its space (e.g. a plan with more nodes
    than a padded plan space holds, a knob without a numeric range, a stats view missing)."""
