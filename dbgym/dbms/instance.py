"""PostgresInstance: one PostgreSQL server for one simulation, on any backend.

Everything here is backend-independent: the data directory lives on the host
(`workdir/data`), the backend (dbgym/dbms/backend.py) only starts and stops the server.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import psycopg

import dbgym.dbms.datadir as dd
import dbgym.dbms.filecopy as filecopy
import dbgym.dbms.instance_registry as instance_registry
import dbgym.dbms.knobs as kn
import dbgym.dbms.lifecycle as lifecycle
import dbgym.dbms.snapshot as snap
import dbgym.redact as redact
import dbgym.retry as retry
from dbgym.dbms.backend import (
    Backend,
    BackendOptions,
    PortInUseError,
    StopMode,
    backend_class,
    port_taken,
)
from dbgym.errors import (
    DbgymError,
    InstanceClosedError,
    InstanceError,
    InvalidArgumentError,
    KnobError,
    PostgresStartError,
    ServerCrashedError,
    SnapshotError,
)

SUPERUSER = "dbgym"
DATABASE = "postgres"
START_TIMEOUT = 60.0
#: How many ports a start tries when the ones it picked turn out taken (see _on_free_port).
PORT_ATTEMPTS = 5
_SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_RELEVANT = re.compile(r"\b(FATAL|PANIC|ERROR|DETAIL|HINT|CONTEXT)\b|could not|invalid", re.I)
_OWNED_PATHS = ["data", "snapshots", "run", "server.log", ".pwfile"]

#: What `PostgresInstance.add_listener` callbacks receive, in this order per restart:
#: "stopping" (the server is about to be stopped), "stopped" (nothing of it runs any
#: more), "starting" (a new server process was spawned; not ready yet), "ready" (it
#: accepts connections: every earlier connection to the instance is gone).
LifecycleEvent = Literal["stopping", "stopped", "starting", "ready"]
LifecycleListener = Callable[[LifecycleEvent], None]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def relevant_log_lines(lines: list[str], limit: int = 30) -> list[str]:
    """The lines that explain a failed start: errors and their details, else the tail."""
    picked = [line for line in lines if _RELEVANT.search(line)]
    return (picked or lines)[-limit:]


def _make_workdir(wd: Path) -> None:
    """Create `wd` (and its parents); InvalidArgumentError naming the path if it, or a
    parent, is something other than a directory, or cannot be created."""
    try:
        wd.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [wd, *wd.parents] if p.exists() and not p.is_dir()), wd)
        raise InvalidArgumentError(
            f"workdir {wd} cannot be a directory: {blocker} exists and is not a directory"
        ) from None
    except PermissionError as exc:
        raise InvalidArgumentError(f"workdir {wd} cannot be created: {exc.strerror}") from None


def default_workdir_base() -> Path:
    """$DBGYM_WORKDIR_BASE, else the system temp dir (never under /root: mode 0700)."""
    return Path(os.environ.get("DBGYM_WORKDIR_BASE") or tempfile.gettempdir())


class PostgresInstance:
    """A PostgreSQL server dbgym started (see `launch`). Close it (or use `with`)."""

    def __init__(self, backend: Backend, workdir: Path, created_workdir: bool) -> None:
        self._backend = backend
        self.workdir = workdir
        self.datadir = workdir / "data"
        self._created_workdir = created_workdir
        self.id = uuid.uuid4().hex[:12]
        self._created_at = time.time()
        self.port = 0
        self._port_fixed = False
        self._user = SUPERUSER
        self._password = ""
        self._admin: psycopg.Connection[Any] | None = None
        self._catalog: dict[str, kn.KnobSpec] | None = None
        self._version_num: int | None = None
        self._snapshots: dict[str, tuple[snap.Manifest, dict[str, bytes]]] = {}
        self._closed = False
        self._listeners: list[LifecycleListener] = []

    # -- construction -----------------------------------------------------------------
    @classmethod
    def launch(
        cls,
        backend: str = "local",
        workdir: str | Path | None = None,
        port: int | None = None,
        knobs: dict[str, Any] | None = None,
        image: str | None = None,
        cpus: float | None = None,
        memory: str | int | None = None,
        init_from: str | Path | None = None,
        bin_dir: str | Path | None = None,
    ) -> PostgresInstance:
        """Start a new server and wait until it accepts connections.

        backend: "local" (processes on this machine) or "docker" (one container).
        workdir: where the data directory, snapshots and log go (default: a new temp dir,
            removed by close()). port: host TCP port (default: a free one).
        knobs: applied after the first start (see apply_knobs).
        image/cpus/memory: docker backend only (the local backend cannot enforce cpus and
            memory and refuses them). bin_dir: local server binaries.
        init_from: a directory written by `export_datadir` to start from instead of initdb;
            the new server gets its own superuser password all the same.

        Each launch first removes what dead dbgym processes left (their servers,
        containers and files; bounded in time, see `instance_registry.reap`).
        """
        options = BackendOptions(
            bin_dir=Path(bin_dir) if bin_dir is not None else None,
            image=image,
            cpus=cpus,
            memory=memory,
        )
        be = backend_class(backend)(options)
        instance_registry.reap(type(be))
        if workdir is None:
            base = default_workdir_base()
            base.mkdir(parents=True, exist_ok=True)
            wd, created = Path(tempfile.mkdtemp(prefix="dbgym-pg-", dir=base)), True
        else:
            wd = Path(workdir).absolute()
            created = not wd.exists()
            _make_workdir(wd)
            busy = [n for n in _OWNED_PATHS if (wd / n).exists()]
            if busy:
                if created:
                    shutil.rmtree(wd, ignore_errors=True)
                raise DbgymError(
                    f"workdir {wd} already holds {', '.join(busy)}: another instance's files? "
                    "choose an empty or new directory"
                )
        inst = cls(be, wd, created)
        lifecycle.track(inst)
        try:
            inst._write_registry()
            be.prepare(wd)
            inst.port = port if port is not None else free_port()
            inst._port_fixed = port is not None
            if init_from is not None:
                inst._init_from(Path(init_from))
                cidrs = []  # no TCP login before this launch's own password is set
            else:
                inst._initdb()
                cidrs = be.hba_client_cidrs()
            dd.configure(inst.datadir, cidrs, be.datadir_owner())
            inst._start()
            if init_from is not None:
                inst._own_password()
            if not any(name.lower() == "shared_buffers" for name in knobs or {}):
                inst._fit_shared_memory()
            if knobs:
                inst.apply_knobs(knobs)
        except BaseException:
            inst.close()
            raise
        return inst

    def _initdb(self) -> None:
        self._password = secrets.token_urlsafe(24)
        pwfile = self.workdir / ".pwfile"
        dd.write_file(pwfile, self._password + "\n", self._backend.datadir_owner())
        try:  # (a container backend publishes the port here: it may be taken)
            self._on_free_port(
                lambda: self._backend.initdb(self.datadir, self._user, pwfile, self.port)
            )
        finally:
            pwfile.unlink(missing_ok=True)
        dd.write_credentials(
            self.datadir, self._user, self._password, self._backend.datadir_owner()
        )

    def _own_password(self, timeout: float = 10.0) -> None:
        """Give a server started from an exported data directory (a cached state, whose
        password every launch from it would share) a password of its own, then admit TCP
        logins: pg_hba admitted none until now. The new password reaches the server as a
        SCRAM verifier computed here (libpq's PQencryptPasswordConn), so no server log
        can show it; returns once a TCP login with it works."""
        password = secrets.token_urlsafe(24)
        conn = self._conn
        verifier = conn.pgconn.encrypt_password(
            password.encode(), self._user.encode(), b"scram-sha-256"
        )
        conn.execute(
            psycopg.sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                psycopg.sql.Identifier(self._user), psycopg.sql.Literal(verifier.decode())
            )
        )
        self._password = password
        owner = self._backend.datadir_owner()
        dd.write_credentials(self.datadir, self._user, password, owner)
        dd.configure(self.datadir, self._backend.hba_client_cidrs(), owner)
        conn.execute("SELECT pg_reload_conf()")

        def tcp_login() -> bool:  # the postmaster re-reads pg_hba.conf on the reload
            try:
                psycopg.connect(self.dsn, connect_timeout=5).close()
            except psycopg.OperationalError:
                return False
            return True

        if not retry.poll_until(tcp_login, timeout, first=0.001, cap=0.05):
            raise PostgresStartError(
                f"the server does not admit TCP logins {timeout:g}s after its pg_hba.conf "
                "was rewritten",
                relevant_log_lines(self._backend.recent_log_lines()),
            )

    def _init_from(self, source: Path) -> None:
        if not (source / "PG_VERSION").is_file():
            raise DbgymError(f"init_from={source} is not a PostgreSQL data directory")
        self._user, self._password = dd.read_credentials(source)
        snap.copy_tree(source, self.datadir, set(dd.RUNTIME_FILES), self._backend.datadir_owner())

    # -- registry ---------------------------------------------------------------------
    def _write_registry(self) -> None:
        entry: dict[str, Any] = {
            "id": self.id,
            "backend": self._backend.name,
            "workdir": str(self.workdir),
            "datadir": str(self.datadir),
            "created_workdir": self._created_workdir,
            "owned_paths": _OWNED_PATHS,
            "port": self.port,
            "created": self._created_at,
            **instance_registry.owner_identity(),
        }
        entry.update(self._backend.registry_fields())
        instance_registry.write_entry(self.id, entry)

    # -- server lifecycle -------------------------------------------------------------
    def _start(self) -> None:
        """Start the server and wait until it is ready; retries a taken auto-picked port."""
        self._on_free_port(self._start_once)

    def _on_free_port(self, step: Callable[[], None]) -> None:
        """Run `step`, which binds `self.port` (initdb of a container backend, a start).
        The one port retry: a port is free when the core picks it, but another process may
        bind it before the server or container does; when `step` raises PortInUseError
        (from the backend, or from the server log: see `_wait_ready`) and the core picked
        the port, it picks another and runs `step` again, `PORT_ATTEMPTS` times in all."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                step()
                return
            except PortInUseError:
                if self._port_fixed or attempt == PORT_ATTEMPTS:
                    raise
                self.port = free_port()

    def _start_once(self) -> None:
        if self._backend.is_running():
            raise PostgresStartError("server is already running")
        # Leftovers of a server that died (children of a killed postmaster still holding
        # its shared memory, a dead container): gone before the new one starts.
        self._backend.stop("immediate")
        (self.datadir / "postmaster.pid").unlink(missing_ok=True)  # stale: we own this dir
        self._backend.start(self.datadir, self.port)
        self._write_registry()
        self._emit("starting")
        self._wait_ready()
        self._emit("ready")

    def _wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Poll until postmaster.pid says the server we started is ready. PortInUseError
        when it exited because its port was taken, PostgresStartError otherwise."""
        last_error = ""
        expected = self._backend.expected_postmaster_pid()
        for _ in retry.attempts(timeout, first=0.0005, cap=0.002):
            if not self._backend.is_running():
                lines = self._backend.recent_log_lines()
                what = f"PostgreSQL ({self._backend.name}) exited during start-up"
                if port_taken(lines):
                    raise PortInUseError(
                        self.port, f"{what}: port {self.port} is taken", relevant_log_lines(lines)
                    )
                raise PostgresStartError(what, relevant_log_lines(lines))
            pid, status = dd.postmaster_status(self.datadir)
            if status == "ready" and (expected is None or pid == expected):
                if not self._backend.ready_needs_connection:
                    return
                try:
                    self._admin = self._connect_admin()
                    self._version_num = self._admin.info.server_version
                    return
                except psycopg.OperationalError as exc:
                    last_error = redact.redact(str(exc).strip(), self._password)
        lines = self._backend.recent_log_lines()
        self._backend.stop("immediate")
        raise PostgresStartError(
            f"PostgreSQL did not become ready within {timeout:.0f}s ({last_error})",
            relevant_log_lines(lines),
        )

    def _connect_admin(self) -> psycopg.Connection[Any]:
        host = self._backend.admin_host()
        if host is None:
            return psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=5, host=host)

    def _stop(self, mode: StopMode) -> None:
        self._catalog = None
        if self._admin is not None:
            with contextlib.suppress(psycopg.Error):
                self._admin.close()
            self._admin = None
        self._emit("stopping")
        self._backend.stop(mode)
        self._emit("stopped")

    def _emit(self, event: LifecycleEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    def restart(self) -> None:
        """Clean shutdown, then start again."""
        self._check_open()
        self._stop("fast")
        self._start()

    def start(self) -> None:
        """Start the server unless it runs, and wait until it accepts connections.

        What a server that died left behind (its stray processes, a dead container) is
        removed first, so this also brings back a killed server on the same data
        directory. Raises PostgresStartError (with the server log's relevant lines).
        """
        self._check_open()
        if self._backend.is_running():
            return
        self._start()

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server: "fast" = clean shutdown (the data directory is consistent),
        "immediate" = discard its state (crash recovery at the next start). Returns once
        nothing of it runs. A server that is not running (stopped, or died) is fine.
        The instance stays open: `start()` brings the server back."""
        self._check_open()
        if mode not in ("fast", "immediate"):
            raise InvalidArgumentError(f"stop mode must be 'fast' or 'immediate', got {mode!r}")
        self._stop(mode)

    def alive(self) -> bool:
        """Whether the server process runs (not closed, not stopped, not died). It may
        still be starting up or recovering from a crashed backend; a connection tells."""
        return not self._closed and self._backend.is_running()

    def add_listener(self, listener: LifecycleListener) -> Callable[[], None]:
        """Call `listener(event)` at every lifecycle step of this instance's server
        (see `LifecycleEvent`), synchronously in the thread that drives it: restarts by
        knob changes, snapshots, restores and recoveries included. For sessions (which
        count restarts), logging, timing and fault injection. An exception raised by a
        listener propagates into the operation. Returns a function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    @property
    def backend_impl(self) -> Backend:
        """The Backend object that runs the server (dbgym.dbms.backend.Backend): its
        public facts, e.g. `registry_fields()` (server pid or container id) and
        `datadir_owner()`."""
        return self._backend

    @property
    def _conn(self) -> psycopg.Connection[Any]:
        self._check_open()
        if self._admin is not None and self._admin.broken:  # the server restarted or died
            with contextlib.suppress(psycopg.Error):
                self._admin.close()
            self._admin = None
        if self._admin is None or self._admin.closed:
            if not self._backend.is_running():
                raise InstanceError(
                    f"the server of instance {self.id} is not running (stopped, a failed "
                    "start or restore, or it died; start() or a session's recover() "
                    "brings it back)"
                )
            self._admin = self._connect_admin()
        return self._admin

    def _check_open(self) -> None:
        if self._closed:
            raise InstanceClosedError(f"instance {self.id} is closed")

    # -- public facts -----------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def dsn(self) -> str:
        """libpq URI (psycopg, tokio-postgres, psql)."""
        return (
            f"postgresql://{self._user}:{self._password}@{self._backend.host}:{self.port}"
            f"/{DATABASE}?sslmode=disable"
        )

    @property
    def bin_dir(self) -> Path | None:
        """Host directory of PostgreSQL binaries (pgbench, psql) matching this server."""
        return self._backend.bin_dir

    @property
    def server_version_num(self) -> int:
        """e.g. 150018 for PostgreSQL 15.18."""
        if self._version_num is None:
            self._version_num = self._conn.info.server_version
        return self._version_num

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A new psycopg connection to the server (closing it is the caller's job).

        `kwargs` go to psycopg.connect (e.g. autocommit=True, dbname=...). Raises
        InstanceClosedError after close(), ServerCrashedError when the server is not
        running (it died, or was stopped), ConnectError when it runs but the connection
        fails (host, port, user, database, SQLSTATE and the server's message; never the
        password): all InstanceErrors.
        """
        self._check_open()
        try:
            return psycopg.connect(self.dsn, **kwargs)
        except psycopg.OperationalError as exc:
            redact.scrub_exception(exc, self._password)
            if not self._backend.is_running():
                raise ServerCrashedError(
                    f"cannot connect to instance {self.id}: its server is not running (it "
                    "died or was stopped; start() brings it back): "
                    + redact.redact(str(exc).strip(), self._password)
                ) from exc
            raise redact.connect_error(
                self.dsn, exc, f"cannot connect to instance {self.id}", **kwargs
            ) from exc

    def settings(self) -> dict[str, str]:
        """Every setting's current value: pg_settings.setting by name (in pg_settings.unit)."""
        rows = self._conn.execute("SELECT name, setting FROM pg_settings").fetchall()
        return {name: setting for name, setting in rows}

    @property
    def knob_catalog(self) -> dict[str, kn.KnobSpec]:
        """What each knob accepts (from pg_settings; refreshed after every restart)."""
        if self._catalog is None:
            self._catalog = kn.catalog_from_rows(self._conn.execute(kn.CATALOG_SQL).fetchall())
        return self._catalog

    # -- knobs ------------------------------------------------------------------------
    def applied_knobs(self) -> dict[str, str]:
        """Knobs dbgym applied so far (as written to the knob file)."""
        return kn.parse_conf(dd.read_knob_file(self.datadir))

    def apply_knobs(self, knobs: dict[str, Any]) -> kn.KnobChange:
        """Validate and apply knobs; reload, or restart only if a postmaster knob changed.

        All or nothing: the batch is checked by dbgym (names, types, units, ranges; names
        are case-insensitive), then by the server itself (pg_file_settings reads the new
        knob file before anything is reloaded: a value only the server can judge, e.g. a
        time zone name, a knob that ALTER SYSTEM overrides). Values are compared as the
        server stores them, never by spelling ('utc' is stored as 'UTC').

        Raises KnobError (nothing applied: every knob is as before) or PostgresStartError
        (the server refused to start with the new values: the previous knob file is put
        back and the server restarted with it). On a docker instance with a memory limit,
        shared_buffers + wal_buffers must leave room for the server's processes
        (KnobError naming the limit).
        """
        catalog = self.knob_catalog
        wanted = kn.validate(catalog, knobs)
        if not wanted:
            return kn.KnobChange()
        old_text = dd.read_knob_file(self.datadir)
        old = kn.parse_conf(old_text)
        merged = {**old, **{n.lower(): v.conf_value for n, v in wanted.items()}}
        if {"shared_buffers", "wal_buffers"} & {n.lower() for n in wanted}:
            self._check_memory(merged)
        self._write_knobs(merged)
        try:
            rows = self._conn.execute(kn.FILE_SETTINGS_SQL).fetchall()
            verdict = kn.file_verdict(rows, dd.KNOB_FILE, wanted, catalog)
            if verdict.refused:
                raise kn.refused_error(verdict.refused)
        except BaseException:
            self._restore_knob_file(old_text)  # nothing was reloaded yet
            raise
        if verdict.restart:
            self._stop("fast")
            try:
                self._start()
            except PostgresStartError:
                self._restore_knob_file(old_text)
                self._start()
                raise
        else:
            try:
                self._reload_knobs(wanted, catalog)
            except BaseException:
                with contextlib.suppress(Exception):
                    self._reload_knobs({}, catalog, self._write_knobs(old))
                raise
        if any(catalog[n].context not in kn.SESSION_RELOAD_CONTEXTS for n in wanted):
            self._drop_admin()  # for-new-sessions knobs: read them in a new session
        applied = self._current_settings(list(wanted))
        return kn.KnobChange(applied=applied, restarted=bool(verdict.restart))

    def _restore_knob_file(self, text: str) -> None:
        dd.write_knob_file(self.datadir, text, self._backend.datadir_owner())

    def _write_knobs(self, knobs: dict[str, str]) -> str:
        """Write the knob file with a new epoch marker; returns the epoch."""
        epoch = uuid.uuid4().hex
        dd.write_knob_file(
            self.datadir, kn.render_conf(knobs, epoch), self._backend.datadir_owner()
        )
        return epoch

    def _reload_knobs(
        self,
        wanted: dict[str, kn.Normalized],
        catalog: dict[str, kn.KnobSpec],
        epoch: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        """Reload; wait until the admin session has read the knob file (its epoch marker),
        then check the server took each of `wanted` from it."""
        epoch = epoch or kn.conf_epoch(dd.read_knob_file(self.datadir))
        conn = self._conn
        conn.execute("SELECT pg_reload_conf()")

        def reloaded() -> bool:
            row = conn.execute(kn.EPOCH_SQL).fetchone()
            return row is not None and row[0] == epoch

        if not retry.poll_until(reloaded, timeout, first=0.0002, cap=0.05):
            raise KnobError(
                f"the server did not reload its configuration within {timeout:g}s; server "
                "log:\n  " + "\n  ".join(relevant_log_lines(self._backend.recent_log_lines(), 10))
            )
        reload_now = [n for n in wanted if catalog[n].context in kn.SESSION_RELOAD_CONTEXTS]
        if not reload_now:
            return
        rows = conn.execute(
            "SELECT name, setting, sourcefile FROM pg_settings WHERE name = ANY(%s)",
            (reload_now,),
        ).fetchall()
        off = {
            name: f"the server kept {setting!r} (from {sourcefile or 'its default'})"
            for name, setting, sourcefile in rows
            if os.path.basename(str(sourcefile or "")) != dd.KNOB_FILE
        }
        if off:
            error = kn.refused_error(off)
            lines = relevant_log_lines(self._backend.recent_log_lines(), 10)
            raise KnobError(f"{error}; server log:\n  " + "\n  ".join(lines), error.knob)

    def _drop_admin(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(psycopg.Error):
                self._admin.close()
            self._admin = None

    def _current_settings(self, names: list[str]) -> dict[str, str]:
        rows = self._conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (names,)
        ).fetchall()
        return {name: setting for name, setting in rows}

    def _fit_shared_memory(self) -> None:
        """Under a memory limit too small for the server's default shared memory (initdb
        writes shared_buffers = 128MB), cap shared_buffers so that it fits: otherwise the
        server starts, and a backend is OOM-killed once the buffers fill."""
        limit = self._backend.memory_limit
        if limit is None:
            return
        current = self._current_settings(["shared_buffers", "wal_buffers"])
        capped = kn.fitting_shared_buffers(current, kn.memory_limit_bytes(limit))
        if capped is not None:
            self.apply_knobs({"shared_buffers": capped})

    def _check_memory(self, knobs: dict[str, str]) -> None:
        """KnobError if shared memory with `knobs` (lower-case names, pg_settings units)
        would not fit the backend's memory limit (see knobs.check_memory)."""
        limit = self._backend.memory_limit
        if limit is None:
            return
        current = self._current_settings(["shared_buffers", "wal_buffers"])
        values = {n: knobs.get(n, current[n]) for n in ("shared_buffers", "wal_buffers")}
        kn.check_memory(values, kn.memory_limit_bytes(limit), str(limit))

    # -- snapshots --------------------------------------------------------------------
    def _snapshot_dir(self, name: str) -> Path:
        if not isinstance(name, str) or not _SNAPSHOT_NAME.match(name):
            raise SnapshotError(
                f"snapshot name {name!r} must be 1-100 characters of letters, digits, '_', '.', "
                "'-' and start with a letter or digit"
            )
        return self.workdir / "snapshots" / name

    def snapshot(self, name: str) -> None:
        """Save the server's current state (schema, data, settings) under `name`.

        Taken at a consistent point: checkpoint, clean shutdown, copy, start again.
        An existing snapshot of the same name is replaced.
        """
        self._check_open()
        target = self._snapshot_dir(name)
        self._refuse_tablespaces("snapshot")
        self._conn.execute("CHECKPOINT")  # makes the shutdown checkpoint short
        self._stop("fast")
        try:
            target.parent.mkdir(mode=0o700, exist_ok=True)
            tmp = target.with_name(f".tmp-{name}")
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                tmp.mkdir(mode=0o700)
                manifest = snap.copy_tree(self.datadir, tmp / "data", self._snapshot_skip())
                reflinks = filecopy.reflink_supported(str(tmp)) is True
                hashes = {} if reflinks else snap.compute_hashes(tmp / "data", manifest)
                snap.save_hashes(hashes, tmp)
                snap.save_manifest(manifest, tmp / "manifest.json")
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self._snapshots[name] = (manifest, hashes)
        finally:
            self._start()

    def _refuse_tablespaces(self, what: str) -> None:
        """Snapshots and exports copy the data directory only; a tablespace's files live
        elsewhere (pg_tblspc holds symlinks), so they would be silently left out."""
        links = sorted(p.name for p in (self.datadir / "pg_tblspc").iterdir())
        if links:
            raise SnapshotError(
                f"cannot {what} instance {self.id}: it has tablespaces outside the data "
                f"directory (pg_tblspc: {', '.join(links)}); drop them first"
            )

    def _snapshot_skip(self) -> set[str]:
        """Paths a snapshot leaves out: runtime files and WAL segments a cleanly shut-down
        cluster does not need (old and pre-allocated recycled ones). Restore deletes
        them from the live directory, which is cheaper than copying 16 MB files back."""
        keep = dd.redo_wal_segments(self.datadir)
        skip = set(dd.RUNTIME_FILES)
        for entry in os.scandir(self.datadir / "pg_wal"):
            if len(entry.name) == 24 and entry.name.isalnum() and entry.name not in keep:
                skip.add(f"pg_wal/{entry.name}")
        return skip

    def snapshots(self) -> list[str]:
        root = self.workdir / "snapshots"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / "manifest.json").is_file())

    def restore(self, name: str) -> snap.RestoreStats:
        """Return the data directory to snapshot `name` exactly and the server to ready.

        Open connections are terminated (the server restarts). Only files that changed
        since the snapshot are copied back.
        """
        self._check_open()
        target = self._snapshot_dir(name)
        cached = self._snapshots.get(name)
        if cached is None:
            path = target / "manifest.json"
            if not path.is_file():
                have = ", ".join(self.snapshots()) or "none"
                raise SnapshotError(f"no snapshot named {name!r} (snapshots: {have})")
            cached = self._snapshots[name] = (snap.load_manifest(path), snap.load_hashes(target))
        manifest, hashes = cached
        self._stop("immediate")  # its state is being discarded anyway
        stats = snap.restore_tree(target / "data", manifest, self.datadir, hashes)
        self._start()
        return stats

    def export_datadir(self, dest: str | Path) -> Path:
        """Copy the cleanly shut-down data directory to `dest` (must not exist); usable
        later as `launch(init_from=dest)`. The server is back up when this returns."""
        self._check_open()
        target = Path(dest).absolute()
        if target.exists():
            raise DbgymError(f"export destination {target} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        self._refuse_tablespaces("export")
        self._conn.execute("CHECKPOINT")
        self._stop("fast")
        try:
            try:
                snap.copy_tree(self.datadir, target, set(dd.RUNTIME_FILES))
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)
                raise
        finally:
            self._start()
        return target

    # -- closing ----------------------------------------------------------------------
    def close(self, keep: bool = False) -> None:
        """Stop the server, release the backend's resources and (unless keep) the files.

        Idempotent; a server that died (killed, container gone) is no error."""
        if self._closed:
            return
        self._closed = True
        self._listeners.clear()
        try:
            try:
                self._stop("fast" if keep else "immediate")
            except Exception:
                if self._backend.is_running():
                    raise  # still running: the caller must hear that the stop failed
        finally:
            try:
                self._backend.remove()
            finally:
                if not keep:
                    instance_registry.remove_instance_files(
                        {
                            "workdir": str(self.workdir),
                            "created_workdir": self._created_workdir,
                            "owned_paths": _OWNED_PATHS,
                        }
                    )
                instance_registry.remove_entry(self.id)
                lifecycle.untrack(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> PostgresInstance:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"port {self.port}"
        return f"<PostgresInstance {self.id} {self._backend.name} {state} {self.workdir}>"
