"""The Backend interface: what a way of running a PostgreSQL server must provide.

A backend only knows how to run *one* server process tree (local processes, a Docker
container, ...). Everything else is implemented once, in backend-independent code
(`dbgym/dbms/instance.py`, `knobs.py`, `snapshot.py`, `datadir.py`), because the data
directory always lives ON THE HOST for every backend:

- the instance's `workdir` is a host directory; the data directory is `workdir/data`;
  a container backend bind-mounts it (its path inside the container is the backend's
  business);
- the core writes `postgresql.conf` includes, `pg_hba.conf` and the knob file
  (`dbgym_knobs.conf`) directly into the data directory, copies it for snapshots,
  restores and exports, and reads `postmaster.pid` (its 8th line, "ready") to see
  readiness;
- the core picks the host TCP port; clients always connect to `host:port` on the host
  (`Backend.host`, 127.0.0.1) with the superuser name and password the core chose.

Lifecycle as the core drives it::

    backend.prepare(workdir)                    # checks, permissions (BackendUnavailableError)
    backend.initdb(datadir, superuser, pwfile, port)  # skipped when launching from an
                                                # exported datadir
    backend.start(datadir, port)                # spawn, return at once
    ... core polls backend.is_running() and datadir/postmaster.pid, then connects ...
    backend.stop("fast" | "immediate")          # blocks until every server process is gone
    backend.start(datadir, port)                # again, any number of times
    backend.remove()                            # close(): drop container / process handles

Contract details a backend must honour:

- `start` must not block on readiness; if the server dies during start-up,
  `is_running()` must turn False and `recent_log_lines()` must return the log of that
  start attempt (the core turns it into `PostgresStartError`). The server log is
  `server_log` (the server's stderr); `start` marks where the attempt's lines begin
  (`_mark_log_start`), and the base class reads them from there.
- The core picks the host port (a free one unless the caller fixed it). A backend that
  finds it taken when it binds it (a container publishing it, in `initdb` or `start`)
  raises `PortInUseError` having done nothing else; a server that exits because its port
  is taken is recognised by the core from the server log (`port_taken`). Either way the
  core's one retry loop picks another port, unless the caller fixed it.
- The server's files must stay readable and writable by the calling process (root, or
  the same uid as the caller), because the core copies them; files it creates get the
  owner `datadir_owner()` says.
- `stop("immediate")` discards the server's state (used before a restore overwrites the
  data directory); `stop("fast")` leaves a cleanly shut-down data directory (snapshot,
  export, restart for a postmaster knob). Both return only once nothing of the server
  is left running and the data directory is no longer being written.
- `registry_fields()` is stored in the instance's registry file
  (`dbgym/dbms/registry.py`); `cleanup_leftover(fields)` receives it back in another
  process when the owner died, and must remove only what that entry names (never a
  server or container it cannot prove belongs to the entry).

Backends are looked up by name in `BACKENDS` (a lazy `dbgym.registry.Registry`: the module
of a backend is imported when it is first used, so `local` never needs the docker SDK), or
through `backend_class()`; the docker backend lives in `dbgym.dbms.docker_backend.DockerBackend`.
`server_major(name, options)` says which PostgreSQL major version a backend would run, before
anything is started (the state cache keys on it).
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from dbgym.errors import BackendUnavailableError, PostgresStartError
from dbgym.registry import Registry

StopMode = Literal["fast", "immediate"]


class PortInUseError(PostgresStartError):
    """The server's host port is taken (another process bound it after the core picked
    it, or the caller's fixed port is busy). The core retries a port it picked itself."""

    def __init__(self, port: int, message: str, log_lines: list[str] | None = None) -> None:
        super().__init__(message, log_lines)
        self.port = port


#: PostgreSQL's start-up error when it cannot bind its port ("could not bind IPv4
#: address "127.0.0.1": Address already in use"), as the server log shows it.
_PORT_TAKEN = re.compile(r"could not bind .*: Address already in use")


def port_taken(log_lines: list[str]) -> bool:
    """Whether a server's log says it exited because its TCP port was taken."""
    return any(_PORT_TAKEN.search(line) for line in log_lines)


@dataclass
class BackendOptions:
    """What `PostgresInstance.launch` passes through to the backend's constructor."""

    bin_dir: Path | None = None  # local: explicit server binary directory
    image: str | None = None  # docker: image name (default dbgym.dbms.images.DEFAULT_IMAGE)
    cpus: float | None = None  # docker: CPU limit
    memory: str | int | None = None  # docker: memory limit ("2g" or bytes)


@dataclass
class DoctorReport:
    """What `dbgym doctor` says about one backend."""

    backend: str
    usable: bool
    details: list[str] = field(default_factory=list)  # facts found (versions, paths, users)
    problems: list[str] = field(default_factory=list)  # why it is not usable, and what to do


class Backend(abc.ABC):
    """One way of running a PostgreSQL server for one instance (see the module docstring)."""

    name: ClassVar[str]
    #: TCP host clients connect to (the server's port is published/listening there).
    host: str = "127.0.0.1"
    #: Whether, once postmaster.pid says "ready", the core must also connect before
    #: calling the server ready (True: e.g. behind a port proxy). A backend may set it
    #: False only if `expected_postmaster_pid()` proves the pid file is its own server's.
    ready_needs_connection: ClassVar[bool] = True
    #: The memory limit the server runs under, as the caller gave it (docker: "512m" or
    #: bytes); the core refuses knobs whose shared memory would not fit. None: no limit.
    memory_limit: str | int | None = None
    #: The server log (its stderr; `workdir/server.log`), set by `prepare`.
    server_log: Path | None = None
    #: Where the current start attempt's lines begin in `server_log` (`_mark_log_start`).
    _log_offset: int = 0

    def expected_postmaster_pid(self) -> int | None:
        """The pid line 1 of postmaster.pid must hold (host pid namespace), if known."""
        return None

    def admin_host(self) -> str | None:
        """A faster way for the core's own admin connection (e.g. a unix-socket directory
        with trust auth); None: use the TCP DSN."""
        return None

    @abc.abstractmethod
    def __init__(self, options: BackendOptions) -> None: ...

    @property
    @abc.abstractmethod
    def bin_dir(self) -> Path | None:
        """Host directory of PostgreSQL binaries matching this server (pgbench, psql), if any."""

    @abc.abstractmethod
    def prepare(self, workdir: Path) -> None:
        """Check the backend is usable and make `workdir` usable by the server.

        Raises BackendUnavailableError saying what is missing. Called once per instance,
        after the workdir exists and before anything else.
        """

    def datadir_owner(self) -> tuple[int, int] | None:
        """(uid, gid) files in the data directory must have; None: leave the caller's."""
        return None

    def hba_client_cidrs(self) -> list[str]:
        """Client addresses (as the server sees them) that may connect over TCP."""
        return ["127.0.0.1/32"]

    @abc.abstractmethod
    def initdb(self, datadir: Path, superuser: str, pwfile: Path, port: int) -> None:
        """Create a new cluster in `datadir` (UTF8, C locale) with that superuser/password.

        `pwfile` (inside the workdir, readable by the server user) holds the password.
        `port` is the host port the server will use; a backend that sets up its network
        here (e.g. a container publishing the port) raises PortInUseError if it is taken.
        """

    @abc.abstractmethod
    def start(self, datadir: Path, port: int) -> None:
        """Spawn the server on host port `port`; return without waiting for readiness."""

    @abc.abstractmethod
    def is_running(self) -> bool:
        """True while any process of the server started by `start` is alive."""

    @abc.abstractmethod
    def stop(self, mode: StopMode, timeout: float = 60.0) -> None:
        """Stop the server ("fast": clean shutdown, "immediate": discard); idempotent."""

    def _mark_log_start(self) -> None:
        """Note the end of `server_log` as the start of the next attempt's lines (in `start`,
        before the server is spawned)."""
        try:
            self._log_offset = self.server_log.stat().st_size if self.server_log else 0
        except FileNotFoundError:
            self._log_offset = 0

    def recent_log_lines(self, limit: int = 200) -> list[str]:
        """Server-log lines of the most recent start attempt (newest last)."""
        if self.server_log is None:
            return []
        try:
            with open(self.server_log, "rb") as f:
                f.seek(self._log_offset)
                data = f.read()
        except FileNotFoundError:
            return []
        return data.decode(errors="replace").splitlines()[-limit:]

    @abc.abstractmethod
    def remove(self) -> None:
        """Release everything the backend created besides the workdir (e.g. a container)."""

    @abc.abstractmethod
    def registry_fields(self) -> dict[str, Any]:
        """JSON-able identification of what runs (server pid, container id, ...)."""

    @classmethod
    @abc.abstractmethod
    def cleanup_leftover(cls, fields: dict[str, Any]) -> list[str]:
        """Remove what a dead owner left (from `registry_fields`); returns what was done."""

    @classmethod
    def find_unregistered_leftovers(cls) -> list[str]:
        """Remove leftovers not in the registry (e.g. labelled containers) whose owner
        process is dead (same pid + start-time test as `registry.owner_alive`); returns what."""
        return []

    @classmethod
    @abc.abstractmethod
    def doctor(cls) -> DoctorReport:
        """Say whether this backend is usable on this machine, and why not."""

    @classmethod
    def server_major(cls, options: BackendOptions) -> int | None:
        """The PostgreSQL major version (e.g. 15) a server launched with `options` would
        run, known before anything starts (local: the binaries; docker: the image's label);
        None when the backend cannot tell. Raises BackendUnavailableError like the
        constructor would (binaries or image missing)."""
        return None


def initdb_options(datadir: Path, superuser: str, pwfile: Path) -> list[str]:
    """initdb's arguments after the program name, the same for every backend."""
    return [
        "-D",
        str(datadir),
        "-U",
        superuser,
        f"--pwfile={pwfile}",
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
        "--no-instructions",
    ]


def server_options(datadir: Path, port: int, socket_dir: Path, listen: str) -> list[str]:
    """The postgres server's arguments after the program name, the same for every backend:
    the data directory, the port, the TCP address(es) to listen on, a private unix-socket
    directory, and the log on stderr (the backend sends it to workdir/server.log)."""
    return [
        "-D",
        str(datadir),
        "-c",
        f"port={port}",
        "-c",
        f"listen_addresses={listen}",
        "-c",
        f"unix_socket_directories={socket_dir}",
        "-c",
        "unix_socket_permissions=0700",
        "-c",
        "logging_collector=off",
        "-c",
        "log_destination=stderr",
    ]


def _is_backend_class(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, Backend)


#: backend name -> "module:Class", imported on first use (`local` never needs the docker SDK).
BACKENDS: Registry[type[Backend]] = Registry(
    "backend",
    {
        "local": "dbgym.dbms.local:LocalBackend",
        "docker": "dbgym.dbms.docker_backend:DockerBackend",
    },
    accepts=_is_backend_class,
    unavailable=BackendUnavailableError,
)


def backend_class(name: str) -> type[Backend]:
    """The Backend class registered under `name`: InvalidArgumentError for an unknown name
    (with the closest one), BackendUnavailableError if its module cannot be imported."""
    return BACKENDS.get(name)


def server_major(name: str, options: BackendOptions | None = None) -> int | None:
    """The PostgreSQL major version backend `name` would run with `options` (see
    `Backend.server_major`); None when it cannot tell."""
    return backend_class(name).server_major(options or BackendOptions())
