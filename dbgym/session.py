"""DbSession: one live PostgreSQL server and everything bound to it.

A session owns

- the server: a `PostgresInstance` (or an external server given by a DSN, which the
  session can use but not restart or restore);
- the instance's pristine snapshot (taken once, when the session is created, unless a
  snapshot of that name exists), which `restore()` returns to and `recover()` falls back on;
- an `epoch`: a counter that moves whenever the server's processes were replaced, by a
  restart, a restore, a restarting knob change, a recovery, or a crash the session noticed
  (every connection made before is then gone, and the cumulative statistics may have
  jumped back);
- a lazily (re)connecting admin connection (`connection()`);
- observation sources (`add_source`): a `MetricsObserver`, a `KnobStateObserver`, or any
  object with `on_epoch(session)`; when the epoch moved, each is told once, as soon as the
  server accepts connections again, and reconnects and takes a new baseline.

Its lifecycle is public: `alive()`, `recover()`, `restore()`, `apply(knobs=, indexes=,
template_settings=)`, `measure(workload, timeout=, statement_timeout=)`, `close()`.

Errors follow dbgym.errors: a caller mistake (an unknown knob, a bad index, a bad option)
raises an `InvalidArgumentError` (also a `ValueError`) and changes nothing; a server fault
raises an `InstanceError` (`restore`, `apply`, `recover`) or is reported in the status of
`measure`, which never raises for a server that died or crashed. After an InstanceError,
`recover()` brings the server back.

```python
with DbSession.launch() as s:          # or DbSession.launch(InstanceSpec(...), state=...)
    metrics = s.add_source(MetricsObserver(s))
    s.apply(knobs={"work_mem": "64MB"}, indexes=[IndexSpec("orders", ("o_custkey",))])
    result, status = s.measure(workload, timeout=60.0, statement_timeout=5.0)
    if status.outcome is MeasureOutcome.SERVER_CRASHED:
        s.recover()
    s.restore()                        # back to the pristine snapshot
```
"""

from __future__ import annotations

import contextlib
import enum
import math
import select
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

import numpy as np
import psycopg

import dbgym._core as _core
import dbgym.dbms.indexes as indexes_ddl
import dbgym.redact as redact
import dbgym.retry as retry
from dbgym.dbms.indexes import IndexSpec as IndexSpec  # (also dbgym.session.IndexSpec)
from dbgym.dbms.instance import LifecycleEvent, PostgresInstance
from dbgym.dbms.knobs import KnobChange
from dbgym.dbms.knobs import validate as validate_knobs
from dbgym.dbms.snapshot import RestoreStats
from dbgym.dbms.spec import InstanceSpec
from dbgym.errors import (
    CONNECTION_LOST_SQLSTATES,
    DbgymError,
    InstanceClosedError,
    InstanceError,
    InvalidArgumentError,
    PostgresStartError,
    ServerCrashedError,
    SnapshotError,
)
from dbgym.replayer.run import Identity, ReplayResult, replay
from dbgym.state.database_state import DatabaseState
from dbgym.state.spec import StateSpec
from dbgym.types import SettingValue, TemplateSettings, check_seconds
from dbgym.workload.workload import Workload

#: SQLSTATEs meaning the connection (not the statement) is gone: class 08, and the
#: server ending sessions (admin shutdown, crash of another process, still starting).
_CONNECTION_LOST = CONNECTION_LOST_SQLSTATES

#: What `recover()` did: nothing but (re)connect (the server ran and answered, perhaps
#: after recovering from a crashed backend by itself); restart it; bring it back from
#: the pristine snapshot.
RecoveryAction = Literal["healthy", "restarted", "restored"]


class MeasureOutcome(str, enum.Enum):
    """How a `measure` ended."""

    OK = "ok"
    #: the measure's `timeout` passed (the replay was cancelled), or statements were
    #: cancelled by `statement_timeout` (SQLSTATE 57014)
    TIMEOUT = "timeout"
    #: the server died, or restarted its processes after a backend crashed
    SERVER_CRASHED = "server_crashed"
    #: the replay could not run against a healthy server (e.g. refused logins)
    FAILED = "failed"


@dataclass(frozen=True)
class MeasureStatus:
    """The outcome of a `measure`; `error` is a ServerCrashedError (an InstanceError) for
    SERVER_CRASHED, the error that stopped the replay for FAILED, None otherwise."""

    outcome: MeasureOutcome
    error: DbgymError | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is MeasureOutcome.OK

    def __str__(self) -> str:
        text = self.outcome.value
        if self.detail:
            text += f": {self.detail}"
        if self.error is not None:
            text += f" ({type(self.error).__name__}: {self.error})"
        return text


class Measurement(NamedTuple):
    """What `measure` returns: `result, status = session.measure(...)`. `result` is None
    when the replay could not start (the server was down, or FAILED)."""

    result: ReplayResult | None
    status: MeasureStatus


@dataclass(frozen=True)
class AppliedChange:
    """What `apply` changed: the knob change (None: no knobs given), and the names of
    the session's indexes it created and dropped."""

    knobs: KnobChange | None = None
    created: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()


@runtime_checkable
class ObservationSource(Protocol):
    """What a session keeps in step with its server (see `DbSession.add_source`).

    `on_epoch(session)` is called once after each epoch change, when the server accepts
    connections again: reconnect (e.g. `session.connect()`) and re-take baselines there.
    A `close()` method, if present, is called when the session closes.
    """

    def on_epoch(self, session: DbSession) -> None: ...


SourceT = TypeVar("SourceT", bound=ObservationSource)


@dataclass
class _Registered:
    source: ObservationSource
    epoch: int


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _connection_lost(exc: psycopg.Error) -> bool:
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith(_CONNECTION_LOST)


def _translate(exc: psycopg.Error, what: str) -> DbgymError:
    """A psycopg error as the taxonomy says: the connection lost -> ServerCrashedError;
    a statement the server refused as invalid (SQLSTATE class 22, 23, 42, 0A) ->
    InvalidArgumentError; anything else -> InstanceError."""
    message = f"{what}: {_first_line(exc)}"
    if _connection_lost(exc):
        return ServerCrashedError(f"{what}: the connection to the server was lost ({exc})")
    state = exc.sqlstate or ""
    if state[:2] in ("22", "23", "42", "0A"):
        return InvalidArgumentError(message)
    return InstanceError(message)


def _lost(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection is gone, without a round trip when it is fine: a
    server that ended the session (crash, restart, death) has made its socket readable."""
    if conn.closed or conn.broken:
        return True
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    if not readable:
        return False
    try:  # a notice or the end of the session: reading it tells which
        conn.execute("SELECT 1")
    except psycopg.Error:
        return True
    return bool(conn.broken)


def _validated_template_settings(
    settings: TemplateSettings,
) -> dict[int, dict[str, SettingValue]]:
    if not isinstance(settings, Mapping):
        raise InvalidArgumentError(
            "template_settings must map template ids to {setting: value} mappings, got "
            f"{type(settings).__name__}"
        )
    out: dict[int, dict[str, SettingValue]] = {}
    for tid, kv in settings.items():
        if isinstance(tid, bool) or not isinstance(tid, int) or tid < 0:
            raise InvalidArgumentError(f"template_settings: key {tid!r} is not a template id")
        if not isinstance(kv, Mapping):
            raise InvalidArgumentError(
                f"template_settings[{tid}] must be a {{setting: value}} mapping, got "
                f"{type(kv).__name__}"
            )
        entry: dict[str, SettingValue] = {}
        for name, value in kv.items():
            if not isinstance(name, str) or not name:
                raise InvalidArgumentError(
                    f"template_settings[{tid}]: setting name {name!r} is not a string"
                )
            if not isinstance(value, str | int | float | bool):
                raise InvalidArgumentError(
                    f"template_settings[{tid}][{name!r}]: value must be str, int, float or "
                    f"bool, got {type(value).__name__}"
                )
            entry[name] = value
        out[tid] = entry
    return out


def _positive_seconds(name: str, value: float | None) -> None:
    check_seconds(name, value)


class DbSession:
    """A live server and everything bound to it (see the module docstring).

    target: a PostgresInstance, or a DSN (libpq URI or key=value string) of a server the
        session does not run: then restore() and recover() are refused, and knobs too.
    pristine: the snapshot restore() returns to; taken now unless the instance has it.
    own: close the instance when the session closes (default).
    connect_timeout: seconds for each connection the session opens.
    """

    def __init__(
        self,
        target: PostgresInstance | str,
        *,
        pristine: str = "pristine",
        own: bool = True,
        connect_timeout: float = 5.0,
    ) -> None:
        _positive_seconds("connect_timeout", connect_timeout)
        self._instance: PostgresInstance | None = None
        self._dsn = ""
        if isinstance(target, PostgresInstance):
            if target.closed:
                raise InstanceClosedError(f"cannot open a session on closed instance {target.id}")
            self._instance = target
        elif isinstance(target, str):
            if not target.strip():
                raise InvalidArgumentError("DbSession: the DSN is empty")
            with redact.guard(target):  # libpq's parse errors quote the string
                try:
                    psycopg.conninfo.conninfo_to_dict(target)
                except psycopg.ProgrammingError as exc:
                    raise InvalidArgumentError(
                        f"DbSession: invalid connection string {redact.redact_dsn(target)!r}: "
                        + _first_line(exc)
                    ) from exc
            self._dsn = target
        else:
            raise InvalidArgumentError(
                f"DbSession needs a PostgresInstance or a DSN string, got {type(target).__name__}"
            )
        self._own = own and self._instance is not None
        self._connect_timeout = connect_timeout
        self._epoch = 0
        self._conn: psycopg.Connection[Any] | None = None
        self._conn_epoch = -1
        self._sources: list[_Registered] = []
        self._template_settings: dict[int, dict[str, SettingValue]] = {}
        self._closed = False
        self._remove_listener: Any = None
        self.pristine: str | None = None
        if self._instance is not None:
            inst = self._instance
            try:
                if pristine not in inst.snapshots():
                    inst.snapshot(pristine)  # (checks the name)
            except BaseException:
                if own:
                    inst.close()
                raise
            self.pristine = pristine
            self._remove_listener = inst.add_listener(self._on_lifecycle)

    @classmethod
    def launch(
        cls,
        instance: InstanceSpec | None = None,
        *,
        state: StateSpec | None = None,
        pristine: str = "pristine",
        progress: bool | None = None,
    ) -> DbSession:
        """A session on a new server of `instance` (default: `InstanceSpec()`, a local
        server), which the session owns. With `state`, the server starts holding that
        database state (from the state cache after the first build); its pristine snapshot
        is that state."""
        spec = instance if instance is not None else InstanceSpec()
        if state is None:
            inst = spec.launch()
        else:
            inst = DatabaseState.from_spec(state).launch(spec, progress=progress)
        try:
            return cls(inst, pristine=pristine, own=True)
        except BaseException:
            inst.close()
            raise

    # -- facts --------------------------------------------------------------------------
    @property
    def instance(self) -> PostgresInstance | None:
        """The PostgresInstance (None for a DSN session)."""
        return self._instance

    @property
    def dsn(self) -> str:
        """libpq URI of the server (a session is a `Target`: replay, collect_plans, ...)."""
        return self._instance.dsn if self._instance is not None else self._dsn

    @property
    def epoch(self) -> int:
        """Moves whenever the server's processes were replaced (see the module docstring)."""
        return self._epoch

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def template_settings(self) -> dict[int, dict[str, SettingValue]]:
        """Per-template planner settings `measure` applies (a copy; set them by apply())."""
        return {tid: dict(kv) for tid, kv in self._template_settings.items()}

    @property
    def sources(self) -> tuple[ObservationSource, ...]:
        return tuple(r.source for r in self._sources)

    # -- connections --------------------------------------------------------------------
    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A new psycopg connection to the server (closing it is the caller's job).
        ConnectError (an InstanceError naming host, port, user and database, never the
        password) when it fails; ServerCrashedError when the session's instance is down."""
        self._check_open()
        kwargs.setdefault("connect_timeout", max(1, round(self._connect_timeout)))
        if self._instance is not None:
            return self._instance.connect(**kwargs)
        return redact.safe_connect(self._dsn, "cannot connect to the session's server", **kwargs)

    def connection(self) -> psycopg.Connection[Any]:
        """The session's admin connection (autocommit), reconnected when the epoch moved
        or the server ended it. A connection the server ended although the session did
        not restart it means the server restarted its processes (a backend crashed) or
        died: the epoch moves. Also brings the observation sources up to the epoch.
        Raises ServerCrashedError (or ConnectError) when the server cannot be reached."""
        self._check_open()
        conn = self._conn
        if conn is not None and self._conn_epoch == self._epoch and not _lost(conn):
            if any(r.epoch != self._epoch for r in self._sources):
                self._sync_sources()
            return conn
        if conn is not None and self._conn_epoch == self._epoch:
            self._epoch += 1  # not our restart: a crash (or death) we notice only now
        self._close_conn()
        self._conn = self._open_admin()
        self._conn_epoch = self._epoch
        self._sync_sources()
        return self._conn

    def _open_admin(self) -> psycopg.Connection[Any]:
        inst = self._instance
        if inst is not None and inst.closed:
            raise InstanceClosedError(f"the session's instance {inst.id} was closed")
        if inst is not None and not inst.alive():
            raise ServerCrashedError(
                f"the server of instance {inst.id} ({inst.backend}) is not running; "
                "recover() brings it back"
            )
        kwargs: dict[str, Any] = {"autocommit": True}
        if inst is not None:
            host = inst.backend_impl.admin_host()  # unix socket: no proxy hop
            if host is not None:
                kwargs["host"] = host
        return self.connect(**kwargs)  # (ConnectError: names the server, not the password)

    def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _on_lifecycle(self, event: LifecycleEvent) -> None:
        if event == "ready":  # a new server process: every earlier connection is gone
            self._epoch += 1

    # -- observation sources ------------------------------------------------------------
    def add_source(self, source: SourceT) -> SourceT:
        """Keep `source` in step with the server: `source.on_epoch(self)` after every epoch
        change (and `source.close()` when the session closes). Returns it."""
        self._check_open()
        if not callable(getattr(source, "on_epoch", None)):
            raise InvalidArgumentError(
                f"an observation source needs an on_epoch(session) method; "
                f"{type(source).__name__} has none"
            )
        if all(r.source is not source for r in self._sources):
            self._sources.append(_Registered(source, self._epoch))
        return source

    def remove_source(self, source: ObservationSource) -> None:
        """Forget `source` (it is not closed)."""
        self._sources = [r for r in self._sources if r.source is not source]

    def _sync_sources(self) -> None:
        for reg in self._sources:
            if reg.epoch == self._epoch:
                continue
            try:
                reg.source.on_epoch(self)
            except psycopg.Error as exc:
                raise _translate(exc, f"reconnecting {type(reg.source).__name__}") from exc
            reg.epoch = self._epoch

    # -- lifecycle ----------------------------------------------------------------------
    def alive(self) -> bool:
        """Whether the server runs and answers a query now (False while it recovers
        from a crashed backend, or when it died)."""
        if self._closed:
            return False
        if self._instance is not None and not self._instance.alive():
            return False
        try:
            self.connection().execute("SELECT 1")
        except (InstanceError, psycopg.Error):
            return False
        return True

    def restore(self, name: str | None = None) -> RestoreStats:
        """Return the server to snapshot `name` (default: the pristine one) and to ready.
        Raises SnapshotError for an unknown name, an InstanceError when the server failed
        (then recover())."""
        self._check_open()
        inst = self._require_instance("restore")
        with self._faults("restore"):
            stats = inst.restore(name if name is not None else str(self.pristine))
            self.connection()
        return stats

    def recover(
        self, *, attempts: int = 3, backoff: float = 0.5, ready_timeout: float = 30.0
    ) -> RecoveryAction:
        """Bring the server back to accepting connections.

        A server that still runs gets `ready_timeout` seconds to accept connections (after
        a crashed backend it restarts its processes and recovers by itself). Otherwise,
        up to `attempts` times, `backoff` seconds doubling in between: restart it on its
        data directory; if that fails, restore the pristine snapshot and start it. On
        Docker a container that died is replaced by a new one on the same data directory.
        Returns what was done; raises PostgresStartError naming every step tried if
        nothing worked.
        """
        self._check_open()
        inst = self._require_instance("recover")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise InvalidArgumentError(f"attempts must be a positive integer, got {attempts!r}")
        if not (isinstance(backoff, int | float) and math.isfinite(backoff) and backoff >= 0):
            raise InvalidArgumentError(f"backoff must be >= 0 seconds, got {backoff!r}")
        _positive_seconds("ready_timeout", ready_timeout)
        tried: list[str] = []
        if inst.alive():
            error = self._await_connection(ready_timeout)
            if error is None:
                return "healthy"
            tried.append(
                f"waiting {ready_timeout:g}s for the running server to accept connections ({error})"
            )
        log: list[str] = []
        for n in retry.attempts(tries=attempts, first=backoff):
            attempt = n + 1
            try:
                inst.stop("immediate")
                inst.start()
                self.connection()
                return "restarted"
            except (InstanceError, psycopg.Error, OSError) as exc:
                tried.append(f"restart (attempt {attempt}): {_first_line(exc)}")
                log = getattr(exc, "log_lines", log)
            try:
                inst.restore(str(self.pristine))
                self.connection()
                return "restored"
            except (InstanceError, SnapshotError, psycopg.Error, OSError) as exc:
                tried.append(
                    f"restore of snapshot {self.pristine!r} and start (attempt {attempt}): "
                    f"{_first_line(exc)}"
                )
                log = getattr(exc, "log_lines", log)
        raise PostgresStartError(
            f"could not recover instance {inst.id} ({inst.backend}); tried: " + "; ".join(tried),
            log,
        )

    def _await_connection(self, timeout: float) -> str | None:
        """Poll until the running server answers on the admin connection; None when it
        does, else the last error (also when the server process died meanwhile)."""
        last = ""
        for _ in retry.attempts(timeout, first=0.01, cap=0.2):
            if self._instance is not None and not self._instance.alive():
                return f"the server died ({last})" if last else "the server died"
            try:
                self.connection().execute("SELECT 1")
                return None
            except (InstanceError, psycopg.Error) as exc:
                last = _first_line(exc)
        return last

    def apply(
        self,
        *,
        knobs: Mapping[str, Any] | None = None,
        indexes: Sequence[IndexSpec] | None = None,
        template_settings: TemplateSettings | None = None,
        index_timeout: float | None = None,
    ) -> AppliedChange:
        """Change the configuration; None leaves that part as it is.

        knobs: through PostgresInstance.apply_knobs (reload, or restart for postmaster
            knobs: the epoch moves). Not for a DSN session.
        indexes: dbgym's indexes, as a whole (dbgym.dbms.indexes.apply, one transaction):
            those in the list that the database lacks are created, dbgym's ones not in it
            dropped; [] drops them all. Indexes of the database's own are never touched.
        template_settings: per-template planner settings every later measure applies
            ({} clears them).
        index_timeout: seconds each index DDL statement may take (lock waits included);
            a timeout rolls the index change back and raises an InstanceError.

        Everything is checked before anything changes (unknown knobs, tables, columns,
        access methods raise InvalidArgumentError); a server fault raises an
        InstanceError (then recover()).
        """
        self._check_open()
        _positive_seconds("index_timeout", index_timeout)
        settings = (
            _validated_template_settings(template_settings)
            if template_settings is not None
            else None
        )
        specs = indexes_ddl.validated(indexes) if indexes is not None else None
        if knobs is not None:
            if not isinstance(knobs, Mapping):
                raise InvalidArgumentError(
                    f"knobs must be a mapping of knob names to values, got {type(knobs).__name__}"
                )
            if knobs and self._instance is None:
                raise InvalidArgumentError(
                    "a DSN session cannot change knobs: it does not run the server (open the "
                    "session on a PostgresInstance)"
                )
        change: KnobChange | None = None
        created: tuple[str, ...] = ()
        dropped: tuple[str, ...] = ()
        inst = self._instance
        with self._faults("apply"):
            if knobs and inst is not None:
                validate_knobs(inst.knob_catalog, dict(knobs))  # KnobError: nothing changed
            if settings:
                self._check_settings(settings)
            if specs is not None:
                indexes_ddl.check_targets(self.connection(), specs)
                created, dropped = indexes_ddl.apply(
                    self.connection(), specs, timeout=index_timeout
                )
            if knobs is not None:
                change = inst.apply_knobs(dict(knobs)) if inst is not None else KnobChange()
            self.connection()  # back in step after a restart
        if settings is not None:
            self._template_settings = settings
        return AppliedChange(knobs=change, created=created, dropped=dropped)

    def _check_settings(self, settings: dict[int, dict[str, SettingValue]]) -> None:
        """Every template setting as the server takes it (SET LOCAL, rolled back): an
        unknown name or a bad value is the caller's mistake, found before the measure."""
        conn = self.connection()
        for tid, kv in settings.items():
            for name, value in kv.items():
                text = ("on" if value else "off") if isinstance(value, bool) else str(value)
                try:
                    with conn.transaction(force_rollback=True):
                        conn.execute("SELECT set_config(%s, %s, true)", (name, text))
                except psycopg.Error as exc:
                    if _connection_lost(exc):
                        raise
                    raise InvalidArgumentError(
                        f"template_settings[{tid}][{name!r}] = {text!r}: the server refuses it "
                        f"({_first_line(exc)})"
                    ) from None

    def measure(
        self,
        workload: Workload | _core.Trace,
        *,
        timeout: float | None = None,
        statement_timeout: float | None = None,
        speed: float | None = 1.0,
        concurrency: int | None = None,
        threads: int | None = None,
        identity: Identity = "dsn",
        progress: bool | None = False,
    ) -> Measurement:
        """Replay `workload` with the session's template settings; returns
        `Measurement(result, status)`.

        timeout: seconds for the whole replay (then it is cancelled: TIMEOUT with the
            statements that ran); statement_timeout: seconds per statement (57014 ->
            TIMEOUT). speed, concurrency, threads, identity, progress: as for replay().

        A server that dies or crashes during the replay (or the session's server was down
        before it) is reported as SERVER_CRASHED with a ServerCrashedError, never raised;
        the epoch has then moved, and recover() brings the server back. An external (DSN)
        server that cannot be reached or refuses the login is FAILED with the ConnectError.
        Invalid arguments raise InvalidArgumentError.
        """
        self._check_open()
        if not isinstance(workload, Workload | _core.Trace):
            raise InvalidArgumentError(
                f"measure needs a dbgym.Workload or a dbgym._core.Trace, got "
                f"{type(workload).__name__}"
            )
        _positive_seconds("timeout", timeout)
        _positive_seconds("statement_timeout", statement_timeout)
        if speed is not None and not (
            isinstance(speed, int | float) and math.isfinite(speed) and speed > 0
        ):
            raise InvalidArgumentError(f"speed must be a positive number or None, got {speed!r}")
        if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
            raise InvalidArgumentError(
                f"concurrency must be a positive integer or None, got {concurrency!r}"
            )
        try:
            self.connection()  # opened before the replay: a crash during it ends it
        except InstanceError as exc:
            state = getattr(exc, "sqlstate", None)
            refused = state is not None and not state.startswith(_CONNECTION_LOST)
            if self._instance is None or refused:
                # an external server that cannot be reached or refused the login (wrong
                # password or database): nothing says it crashed
                return Measurement(
                    None, MeasureStatus(MeasureOutcome.FAILED, exc, _first_line(exc))
                )
            crashed = ServerCrashedError(
                f"the server cannot be reached, nothing was measured: {exc}"
            )
            return Measurement(None, MeasureStatus(MeasureOutcome.SERVER_CRASHED, crashed))
        try:
            result = replay(
                self.dsn,
                workload,
                speed=speed,
                concurrency=concurrency,
                statement_timeout=statement_timeout,
                template_settings=self._template_settings or None,
                progress=progress,
                threads=threads,
                identity=identity,
                timeout=timeout,
            )
        except InvalidArgumentError:
            raise
        except DbgymError as exc:
            fault = self._server_fault()
            if fault is not None:
                fault.__cause__ = exc
                return Measurement(None, MeasureStatus(MeasureOutcome.SERVER_CRASHED, fault))
            return Measurement(None, MeasureStatus(MeasureOutcome.FAILED, exc, _first_line(exc)))
        # A crash ends every connection: a statement that ran into it failed with a
        # connection-lost SQLSTATE. Without one, every statement's result stands, and a
        # crash after the last one is noticed by the next connection() anyway.
        states = {bytes(x).decode(errors="replace") for x in np.unique(result.sqlstate)}
        lost = any(x.startswith(_CONNECTION_LOST) for x in states if x)
        fault = self._server_fault(probe=lost or result.cancelled)
        if fault is not None:
            return Measurement(result, MeasureStatus(MeasureOutcome.SERVER_CRASHED, fault))
        if result.cancelled:
            detail = f"the measure's timeout of {timeout:g} s passed; the replay was cancelled"
            return Measurement(result, MeasureStatus(MeasureOutcome.TIMEOUT, detail=detail))
        timed_out = int((result.sqlstate == b"57014").sum())
        if timed_out:
            detail = f"{timed_out} statement(s) cancelled by statement_timeout"
            return Measurement(result, MeasureStatus(MeasureOutcome.TIMEOUT, detail=detail))
        return Measurement(result, MeasureStatus(MeasureOutcome.OK))

    def _server_fault(self, probe: bool = True) -> ServerCrashedError | None:
        """After a replay: did the server die, or end every connection (a crashed
        backend makes PostgreSQL restart all of them)? Moves the epoch if so. `probe`:
        ask the admin connection (a round trip); else only check the process."""
        inst = self._instance
        if inst is not None and not inst.alive():
            self._epoch += 1
            return ServerCrashedError(
                f"the server of instance {inst.id} ({inst.backend}) died during measure; "
                "recover() brings it back"
            )
        conn = self._conn
        if conn is None or self._conn_epoch != self._epoch or not probe:
            return None  # restarted on purpose meanwhile: not a crash
        try:
            conn.execute("SELECT 1")
        except psycopg.Error as exc:
            self._epoch += 1
            self._close_conn()
            return ServerCrashedError(
                "the server ended every connection during measure: a backend crashed or "
                "was killed (e.g. by the OOM killer) and PostgreSQL restarted its processes "
                f"({_first_line(exc)}); recover() waits until it accepts connections"
            )
        return None

    # -- closing ------------------------------------------------------------------------
    def close(self) -> None:
        """Close the observation sources, the admin connection and (if the session owns
        it) the instance. Idempotent; a dead server is no error."""
        if self._closed:
            return
        self._closed = True
        if self._remove_listener is not None:
            self._remove_listener()
        for reg in self._sources:
            close = getattr(reg.source, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
        self._sources = []
        self._close_conn()
        if self._own and self._instance is not None:
            self._instance.close()

    def __enter__(self) -> DbSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        what = repr(self._instance) if self._instance is not None else "external DSN"
        state = "closed" if self._closed else f"epoch {self._epoch}"
        return f"<DbSession {state} on {what}>"

    # -- helpers ------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise InstanceClosedError("the session is closed")

    def _require_instance(self, operation: str) -> PostgresInstance:
        if self._instance is None:
            raise InvalidArgumentError(
                f"{operation}: a DSN session cannot be restored or recovered, it does not run "
                "the server (open the session on a PostgresInstance for that)"
            )
        return self._instance

    @contextlib.contextmanager
    def _faults(self, what: str) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise _translate(exc, what) from exc
