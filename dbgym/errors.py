"""Errors users see. Every exception dbgym raises on purpose derives from DbgymError.

The taxonomy has two families an environment (or any caller) can act on:

- `InvalidArgumentError` (also a `ValueError`): the caller's mistake. A bad option, a knob
  the server does not know, a malformed log or plan. Retrying the same call cannot help;
  an environment lets it propagate out of `step`.
- `InstanceError`: the server (or the machinery that runs it) failed. It did not start,
  crashed, is closed, or its backend is unavailable, or a connection to it failed. An
  environment turns it into a penalty, `info["error"]` and a recovery.

Everything else (`WorkloadError`, `SnapshotError`, `ObservationError`, ...) is a domain
error that is neither. Domain errors keep structured attributes: `TraceParseError.path /
.line / .offset`, `PlanFormatError.plan_index / .path`, `KnobError.knob`.

Rust code raises these classes too (rust/python/errors.rs imports each one once, through
PyO3's `import_exception!`), so adding a class here is how a new error kind becomes
catchable from Python. The CLI maps each family to one exit code (`exit_code`).
"""

from __future__ import annotations


class DbgymError(Exception):
    """Base class of every error dbgym raises on purpose."""


# --- caller mistakes -------------------------------------------------------------------


class InvalidArgumentError(DbgymError, ValueError):
    """The caller passed something invalid (an option, a value, a file's contents).

    Also a `ValueError`, so code that already catches `ValueError` keeps working.
    """


class KnobError(InvalidArgumentError):
    """A knob name or value is not valid for this server; `knob` names it when known."""

    def __init__(self, message: str, knob: str | None = None) -> None:
        self.knob = knob
        super().__init__(message)


class TraceParseError(InvalidArgumentError):
    """A workload source (log, SQL file) is malformed: the message names file, line, byte offset.

    `path`, `line` (1-based) and `offset` (byte offset in the file) are also attributes when
    known.
    """

    def __init__(
        self,
        message: str,
        path: str | None = None,
        line: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.offset = offset
        super().__init__(message)


class PlanFormatError(InvalidArgumentError):
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


class PlanCatalogError(InvalidArgumentError):
    """A plan catalog is invalid (duplicate names) or its serialized form is unreadable."""


class SpecError(InvalidArgumentError):
    """A spec (instance, state, workload, replay options) is invalid; `key` names the field."""

    def __init__(self, message: str, key: str | None = None) -> None:
        self.key = key
        super().__init__(message)


# --- server faults ---------------------------------------------------------------------


class InstanceError(DbgymError):
    """The PostgreSQL server, or the backend that runs it, failed (not the caller's fault)."""


class BackendUnavailableError(InstanceError):
    """A PostgreSQL backend (local binaries, Docker engine, image) cannot be used here."""


class PostgresStartError(InstanceError):
    """A PostgreSQL server did not start; `log_lines` holds the relevant server-log lines."""

    def __init__(self, message: str, log_lines: list[str] | None = None) -> None:
        self.log_lines: list[str] = list(log_lines or [])
        if self.log_lines:
            message = message + "\nserver log:\n  " + "\n  ".join(self.log_lines)
        super().__init__(message)


class ServerCrashedError(InstanceError):
    """The server went away (killed, crashed, container died) while it was in use."""


class InstanceClosedError(InstanceError):
    """The instance (or session) was closed; it cannot be used any more."""


class ConnectError(InstanceError):
    """A connection to a server failed. The message names host, port, user and database
    (never the password), the SQLSTATE and the server's message when there is one; they are
    also attributes."""

    def __init__(
        self,
        message: str,
        host: str | None = None,
        port: int | None = None,
        user: str | None = None,
        database: str | None = None,
        sqlstate: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.database = database
        self.sqlstate = sqlstate
        super().__init__(message)


# --- domain errors ---------------------------------------------------------------------


class ImageBuildError(DbgymError):
    """`dbgym docker build-image` failed; the message holds the failing step and its log tail."""


class SnapshotError(DbgymError):
    """A snapshot is missing or cannot be restored."""


class WorkloadError(DbgymError):
    """A workload or database state cannot be built, loaded or replayed."""


class ObservationError(DbgymError):
    """An observation cannot be built or does not fit its space (e.g. a plan with more nodes
    than a padded plan space holds, a knob without a numeric range, a stats view missing)."""


class ProjectError(DbgymError):
    """The project folder or its database cannot be used (unwritable, corrupt, busy for
    longer than the retry budget)."""


class ProjectVersionError(ProjectError):
    """The project database was written by a newer dbgym (a schema version this one does not
    know); it is refused and left untouched."""


# --- SQLSTATEs that say what happened to a connection ----------------------------------

#: SQLSTATE prefixes of a connection lost because the server went away: class 08
#: (connection exception: broken, or could not be made) and the server ending sessions
#: (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now).
CONNECTION_LOST_SQLSTATES: tuple[str, ...] = ("08", "57P01", "57P02", "57P03")
#: SQLSTATE prefixes of a login the server refused: class 28 (invalid authorization:
#: password, pg_hba) and 3D000 (no such database).
LOGIN_REFUSED_SQLSTATES: tuple[str, ...] = ("28", "3D000")


class RegressionError(DbgymError):
    """A measurement ran and found a slowdown beyond its bar: `dbgym bench --fail-if-slower`
    (a configuration significantly slower than the first by more than the threshold) or a
    failed bench of `dbgym bench --self`. Not "could not run": its exit code is 4."""


# --- the CLI's one exit-code table -----------------------------------------------------

#: Exit codes of the `dbgym` command, most specific class first (see `exit_code`).
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (KeyboardInterrupt, 130),
    (InvalidArgumentError, 2),
    (InstanceError, 3),
    (RegressionError, 4),
    (DbgymError, 1),
)


def exit_code(error: BaseException) -> int:
    """The `dbgym` command's exit code for `error` (1 for anything not in EXIT_CODES)."""
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    return 1
