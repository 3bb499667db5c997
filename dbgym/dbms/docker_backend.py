"""The docker backend: one container per instance, the data directory on the host.

The instance's workdir is bind-mounted at the same path inside the container, so every
path the core writes (data directory, socket directory, log) means the same on both
sides. The container's main process (under docker-init) is a tiny shell supervisor
(`SUPERVISOR`) that reads one-line commands from a FIFO in `workdir/run`:

    start N        spawn `postgres -D <datadir> ...` as attempt N; write run/pid.N, and
                   run/exited.N when it has exited
    stop SIG PID   send SIG to the postmaster PID (INT: fast, QUIT: immediate, KILL)

so restarting the server costs a FIFO write instead of a container restart or a
`docker exec` round trip: restore-to-ready is as fast as the local backend's. The host
sees readiness in `data/postmaster.pid` (the core polls it) and the end of a server in
`run/exited.N`.

The server listens inside the container on the instance's own port number, published
on 127.0.0.1:<port> only (so `SHOW port` and the unix socket `run/.s.PGSQL.<port>`, which
the host can use through the bind mount, match the DSN); pg_hba admits TCP only from
the bridge gateway (where the published port's connections come from). Files keep the
image's postgres uid (999) when the caller is root; otherwise the container runs as the
caller's uid (a generated /etc/passwd is mounted so initdb knows the user). Containers
carry labels naming the workdir and the owner process, so `dbgym clean` finds those
whose owner died. No image entrypoint is
ever run, so the official postgres image's temporary init server never exists; the
server that becomes "ready" is ours, and clients log in with a password only it has.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import time
import uuid
from pathlib import Path
from typing import Any

import dbgym.dbms.procs as procs
import dbgym.retry as retry
from dbgym.dbms.backend import (
    Backend,
    BackendOptions,
    DoctorReport,
    PortInUseError,
    StopMode,
    initdb_options,
    server_options,
)
from dbgym.dbms.docker_image import ImageInfo, image_info
from dbgym.dbms.docker_owners import (
    LABEL_INSTANCE,
    LABEL_ROLE,
    LABEL_WORKDIR,
    owner_labels,
    remove_instance_containers,
    remove_orphans,
)
from dbgym.dbms.images import DEFAULT_IMAGE, docker_client
from dbgym.dbms.knobs import memory_limit_bytes, size_text
from dbgym.errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    PostgresStartError,
)

_SIGNALS = {"fast": "INT", "immediate": "QUIT"}
#: The smallest memory limit accepted. Measured with PostgreSQL 15 (dbgym/postgres:15):
#: initdb and an idle server run in 48 MiB; at 32 MiB and 24 MiB initdb thrashes for 326 s
#: and 115 s before the kernel OOM-kills it, at 16 MiB it is killed within 2 s.
MIN_MEMORY = 64 * 2**20


def check_cpus(cpus: object) -> float | None:
    """`cpus` as a float (None: no limit); InvalidArgumentError unless a positive number
    of CPUs no larger than docker accepts (64 per host CPU)."""
    if cpus is None:
        return None
    if (
        isinstance(cpus, bool)
        or not isinstance(cpus, int | float)
        or not 0 < cpus <= (os.cpu_count() or 1) * 64
    ):
        raise InvalidArgumentError(f"cpus={cpus!r}: must be a positive number of CPUs (e.g. 1.5)")
    return float(cpus)


_DEFAULT_SHM = 1 << 30  # PostgreSQL's parallel query uses /dev/shm; docker's default is 64MB

SUPERVISOR = r"""
run="$1"; log="$2"; shift 2
while :; do
  while read -r cmd a b; do
    case "$cmd" in
      start) ( ( "$@" >>"$log" 2>&1 &
                 echo "$!" > "$run/pid.$a.tmp"; mv "$run/pid.$a.tmp" "$run/pid.$a"
                 wait "$!"; echo "$?" > "$run/exited.$a" ) & ) ;;
      stop) kill -"$a" "$b" 2>/dev/null ;;
    esac
  done < "$run/control"
done
"""


def _client(timeout: int = 60) -> Any:
    return docker_client(timeout)


class _Watched:
    """A process (not our child) whose end is polled cheaply: through a pidfd (one poll
    syscall, immune to pid reuse), else by its pid and start time in /proc."""

    def __init__(self, pid: int, started: int) -> None:
        self.pid, self.started = pid, started
        self._poll: select.poll | None = None
        self._fd: int | None = None
        try:
            self._fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            return
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        if procs.start_time(pid) != started:  # the pid was reused before we opened it
            self.close()
            self.started = -1

    def alive(self) -> bool:
        if self._poll is not None:
            return not self._poll.poll(0)  # readable once the process has exited
        return self.started >= 0 and procs.is_alive(self.pid, self.started)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd, self._poll = None, None


class DockerBackend(Backend):
    name = "docker"
    #: readiness = postmaster.pid says "ready" and holds the pid our supervisor spawned
    #: (`expected_postmaster_pid`): no temporary or stale server can pass that test
    ready_needs_connection = False

    def __init__(self, options: BackendOptions) -> None:
        self.cpus = check_cpus(options.cpus)
        self.memory = options.memory
        if self.memory is not None:
            limit = memory_limit_bytes(self.memory)  # InvalidArgumentError if malformed
            if limit < MIN_MEMORY:
                raise InvalidArgumentError(
                    f"memory={self.memory!r} ({size_text(limit)}) is below the "
                    f"{size_text(MIN_MEMORY)} a PostgreSQL server needs in a container: "
                    "initdb would be OOM-killed, or thrash for minutes first"
                )
        self.memory_limit = self.memory
        self.client = _client()
        self.image: ImageInfo = image_info(self.client, options.image or DEFAULT_IMAGE)
        self._bin_dir: Path | bool | None = False  # False: not looked up yet
        self._tag = uuid.uuid4().hex[:12]
        self._workdir: Path | None = None
        self._run: Path | None = None
        self._container: Any = None
        self._init: _Watched | None = None  # the container's init, seen from this host
        self._port: int | None = None
        self._attempt = 0
        self._next_state_check = 0.0
        is_root = os.geteuid() == 0
        self.uid = self.image.uid if is_root else os.geteuid()
        self.gid = self.image.gid if is_root else os.getegid()
        self._passwd: Path | None = None  # mounted as /etc/passwd when not root

    # -- set-up -----------------------------------------------------------------------
    @property
    def bin_dir(self) -> Path | None:
        """Host binaries of the image's major version (pgbench/psql), if installed here."""
        from dbgym.dbms.binaries import find_binaries

        if self._bin_dir is False:
            try:
                found = find_binaries()
                self._bin_dir = found.bin_dir if found.major == self.image.pg_major else None
            except BackendUnavailableError:
                self._bin_dir = None
        return self._bin_dir if isinstance(self._bin_dir, Path) else None

    @property
    def container(self) -> Any:
        return self._container

    def prepare(self, workdir: Path) -> None:
        self._workdir = workdir
        self._run = workdir / "run"
        self.server_log = workdir / "server.log"
        self._run.mkdir(mode=0o700, exist_ok=True)
        fifo = self._run / "control"
        if not fifo.exists():
            os.mkfifo(fifo, 0o600)
        if os.geteuid() != 0:
            self._passwd = self._run / "passwd"
            self._passwd.write_text(
                f"root:x:0:0:root:/root:/bin/sh\n"
                f"postgres:x:{self.uid}:{self.gid}:dbgym:/tmp:/bin/sh\n"
            )
            self._passwd.chmod(0o644)
        for path in (workdir, self._run, fifo):
            if os.geteuid() == 0:
                os.chown(path, self.uid, self.gid)
        os.chmod(workdir, 0o700)

    def datadir_owner(self) -> tuple[int, int] | None:
        return (self.uid, self.gid) if os.geteuid() == 0 else None

    def hba_client_cidrs(self) -> list[str]:
        """Connections to the published port reach the server from the bridge's gateway
        (docker-proxy, or the NAT of the published port), and only that address may log
        in over TCP: never the bridge's subnet, where any other container could try the
        password. The gateway is the one docker gave the instance's container, else the
        one the bridge network's IPAM config names."""
        gateways = self._container_gateways()
        if not gateways:
            try:
                ipam = self.client.networks.get("bridge").attrs["IPAM"]["Config"] or []
            except Exception as exc:
                raise BackendUnavailableError(
                    f"cannot read docker's bridge network: {exc}"
                ) from exc
            gateways = [str(cfg["Gateway"]) for cfg in ipam if cfg.get("Gateway")]
        if not gateways:
            raise BackendUnavailableError(
                "cannot tell the gateway of docker's bridge network (the instance's container "
                "names none, nor does the network's IPAM config), so pg_hba cannot admit it"
            )
        return [f"{gw}/128" if ":" in gw else f"{gw}/32" for gw in gateways]

    def _container_gateways(self) -> list[str]:
        """The gateways of the instance's container's networks (bridge: the host side)."""
        import docker.errors

        if self._container is None:
            return []
        try:
            self._container.reload()
        except docker.errors.APIError:
            return []
        settings = self._container.attrs.get("NetworkSettings") or {}
        found = []
        for net in (settings.get("Networks") or {}).values():
            for key in ("Gateway", "IPv6Gateway"):
                if net.get(key):
                    found.append(str(net[key]))
        return sorted(set(found))

    def _volumes(self) -> dict[str, dict[str, str]]:
        assert self._workdir is not None, "prepare() first"
        volumes = {str(self._workdir): {"bind": str(self._workdir), "mode": "rw"}}
        if self._passwd is not None:
            volumes[str(self._passwd)] = {"bind": "/etc/passwd", "mode": "ro"}
        return volumes

    def _labels(self, role: str) -> dict[str, str]:
        assert self._workdir is not None
        return {
            LABEL_INSTANCE: self._tag,
            LABEL_WORKDIR: str(self._workdir),
            LABEL_ROLE: role,
            **owner_labels(),
        }

    def initdb(self, datadir: Path, superuser: str, pwfile: Path, port: int) -> None:
        """Create the instance's container, publishing `port` (PortInUseError if it is
        taken), and run initdb in it."""
        self._ensure_container(datadir, port)
        cmd = ["initdb", *initdb_options(datadir, superuser, pwfile)]
        result = self._container.exec_run(
            cmd,
            user=f"{self.uid}:{self.gid}",
            workdir=str(self._workdir),
            environment={"LC_ALL": "C", "LANG": "C"},
        )
        if result.exit_code != 0:
            out = result.output.decode(errors="replace").strip().splitlines()
            what = f"initdb in {self.image.name} failed (exit {result.exit_code})"
            if self.oom_killed():
                what = (
                    f"initdb in {self.image.name} was killed by the kernel's OOM killer: the "
                    f"container's memory limit {self.memory!r} is too small for PostgreSQL"
                    + (f" ({size_text(memory_limit_bytes(self.memory))})" if self.memory else "")
                    + "; launch with more memory"
                )
            raise PostgresStartError(what, out[-30:])

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed any process of the container (its cgroup's
        oom_kill counter, cgroup v1 or v2), or the container itself (State.OOMKilled)."""
        import docker.errors

        if self._container is None:
            return False
        try:
            self._container.reload()
            if self._container.attrs.get("State", {}).get("OOMKilled"):
                return True
            if self._container.status != "running":
                return False
            result = self._container.exec_run(
                [
                    "sh",
                    "-c",
                    "cat /sys/fs/cgroup/memory.events "
                    "/sys/fs/cgroup/memory/memory.oom_control 2>/dev/null",
                ],
            )
        except docker.errors.APIError:
            return False
        found = re.search(rb"^oom_kill (\d+)$", result.output or b"", re.MULTILINE)
        return found is not None and int(found.group(1)) > 0

    # -- the container ----------------------------------------------------------------
    def _ensure_container(self, datadir: Path, port: int) -> None:
        """A running container publishing `port` (PortInUseError if it is taken)."""
        if self._container is not None and self._port != port:
            self._remove_container()  # the published port is fixed per container
        if self._container is not None and not self._container_running():
            self._remove_container()
        if self._container is None:
            self._create_container(datadir, port)

    def _create_container(self, datadir: Path, port: int) -> None:
        import docker.errors

        assert self._workdir is not None and self._run is not None
        server = ["postgres", *server_options(datadir, port, self._run, listen="*")]
        kwargs: dict[str, Any] = {}
        if self.cpus is not None:
            kwargs["nano_cpus"] = int(self.cpus * 1e9)
        if self.memory is not None:
            kwargs["mem_limit"] = self.memory
        try:
            self._container = self.client.containers.create(
                self.image.image_id,
                entrypoint=["/bin/sh", "-c", SUPERVISOR, "dbgym-supervisor"],
                command=[str(self._run), str(self._workdir / "server.log"), *server],
                user=f"{self.uid}:{self.gid}",
                working_dir=str(self._workdir),
                init=True,
                volumes=self._volumes(),
                ports={f"{port}/tcp": ("127.0.0.1", port)},
                labels=self._labels("server"),
                name=f"dbgym-{self._tag}",
                environment={"LC_ALL": "C", "LANG": "C"},
                shm_size=_DEFAULT_SHM,
                **kwargs,
            )
        except docker.errors.APIError as exc:
            raise PostgresStartError(f"cannot create the container: {exc}") from exc
        self._port = port
        try:
            self._container.start()
        except docker.errors.APIError as exc:
            self._remove_container()
            msg = str(exc)
            if "allocated" in msg or "address already in use" in msg:  # the engine's words
                raise PortInUseError(
                    port, f"cannot start the container: host port {port} is taken: {msg}", [msg]
                ) from exc
            raise PostgresStartError(f"cannot start the container: {msg}", [msg]) from exc
        self._init = self._init_process()

    def _init_process(self) -> _Watched | None:
        """The container's init process as this host sees it, when the engine runs on this
        host: its death is the container's, seen without an API call."""
        import docker.errors

        try:
            self._container.reload()
            pid = int(self._container.attrs["State"]["Pid"])
        except (docker.errors.APIError, KeyError, TypeError, ValueError):
            return None
        started = procs.start_time(pid) if pid > 0 else None
        # The engine may see another pid namespace (a remote or sidecar daemon): trust the
        # pid only if it is our supervisor (its command line names our run directory).
        if started is None or str(self._run) not in procs.cmdline(pid):
            return None
        return _Watched(pid, started)

    def _remove_container(self) -> None:
        import docker.errors

        container, self._container, self._port = self._container, None, None
        if self._init is not None:
            self._init.close()
            self._init = None
        if container is not None:
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: its removal is already under way
                    raise

    def _container_running(self) -> bool:
        import docker.errors

        if self._container is None:
            return False
        if self._init is not None and not self._init.alive():
            return False  # killed (docker kill, OOM), stopped or removed
        try:
            self._container.reload()
        except docker.errors.NotFound:
            return False
        return bool(self._container.status == "running")

    def _send(self, line: str, timeout: float = 30.0) -> None:
        """Write one command line to the supervisor's FIFO (waits until it listens)."""
        assert self._run is not None
        fd: int | None = None
        for _ in retry.attempts(timeout, first=0.0005, cap=0.02):
            try:
                fd = os.open(self._run / "control", os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet (container starting)
                    raise
            if not self._container_running():
                break
        if fd is None:
            logs = ""
            if self._container is not None:
                with contextlib.suppress(Exception):
                    logs = self._container.logs(tail=20).decode(errors="replace")
            raise PostgresStartError(
                f"the container's supervisor does not listen ({line.split()[0]})",
                logs.splitlines(),
            )
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    # -- running ----------------------------------------------------------------------
    def start(self, datadir: Path, port: int) -> None:
        assert self._run is not None, "prepare() first"
        if self.is_running():
            raise PostgresStartError("server already running")
        self._ensure_container(datadir, port)
        self._mark_log_start()
        self._attempt += 1
        for pattern in ("exited.*", "pid.*"):
            for stale in self._run.glob(pattern):
                stale.unlink(missing_ok=True)
        self._send(f"start {self._attempt}")
        self._next_state_check = time.monotonic() + 1.0

    def _exited(self) -> bool:
        assert self._run is not None
        return (self._run / f"exited.{self._attempt}").exists()

    def is_running(self) -> bool:
        if self._attempt == 0 or self._container is None or self._run is None:
            return False
        if self._exited():
            return False
        if self._init is not None:  # the container's death, seen without an API call
            return self._init.alive()
        now = time.monotonic()
        if now >= self._next_state_check:  # the container itself may have died (OOM kill)
            self._next_state_check = now + 1.0
            if not self._container_running():
                return False
        return True

    def _server_pid(self, timeout: float) -> int | None:
        """The postmaster's pid inside the container, once the supervisor wrote it."""
        assert self._run is not None
        path = self._run / f"pid.{self._attempt}"
        for _ in retry.attempts(timeout, first=0.001, cap=0.001):
            if self._exited():
                return None
            with contextlib.suppress(OSError, ValueError):
                return int(path.read_text())
            if not self.is_running():
                return None  # (the container died before the supervisor spawned it)
        return None

    def expected_postmaster_pid(self) -> int | None:
        """The pid postmaster.pid must hold: the one the supervisor spawned for this start
        (in the container's pid namespace, which is what the server writes there)."""
        return self._server_pid(timeout=10.0)

    def admin_host(self) -> str | None:
        """The core's own connection uses the server's unix socket, which lives in the
        bind-mounted `workdir/run` (trust auth there, no docker-proxy hop)."""
        return str(self._run) if self._run is not None else None

    def stop(self, mode: StopMode, timeout: float = 60.0) -> None:
        """Stop the server; a dead container (docker kill, OOM) is left for `start` to
        replace and never raises here."""
        if not self.is_running():
            return
        pid = self._server_pid(timeout=10.0)
        sent = False
        if pid is not None:
            try:
                self._send(f"stop {_SIGNALS[mode]} {pid}")
                sent = True
            except PostgresStartError:
                pass  # the supervisor is gone (the container died meanwhile): remove it
        if sent:
            # (is_running: the container died; its API state is checked once a second)
            retry.poll_until(
                lambda: self._exited() or not self.is_running(), timeout, first=0.0005, cap=0.005
            )
            if self._exited():
                return
        # The server did not stop in time (or never wrote its pid): kill the container
        # (ports and mounts survive: start() recreates it).
        self._remove_container()

    def remove(self) -> None:
        try:
            if self.is_running():
                self.stop("fast")
        finally:
            self._remove_container()
            # a container whose creation was interrupted (Ctrl-C mid-request) has no
            # handle here: find it by this instance's label
            with contextlib.suppress(Exception):
                for c in self.client.containers.list(
                    all=True, filters={"label": f"{LABEL_INSTANCE}={self._tag}"}
                ):
                    c.remove(force=True, v=True)

    # -- registry / cleanup -----------------------------------------------------------
    def registry_fields(self) -> dict[str, Any]:
        return {
            "container_id": self._container.id if self._container is not None else None,
            "container_tag": self._tag,
            "image": self.image.name,
        }

    @classmethod
    def cleanup_leftover(cls, fields: dict[str, Any]) -> list[str]:
        """Remove the containers of a dead owner's registry entry (matched by label)."""
        tag, workdir = fields.get("container_tag"), fields.get("workdir")
        if not isinstance(tag, str) or not isinstance(workdir, str):
            return []
        return remove_instance_containers(_client(), tag, workdir)

    @classmethod
    def find_unregistered_leftovers(cls) -> list[str]:
        """Remove dbgym containers whose owner process (per their labels) is dead."""
        try:
            client = _client(timeout=10)
        except BackendUnavailableError:
            return []
        return remove_orphans(client)

    @classmethod
    def server_major(cls, options: BackendOptions) -> int | None:
        """The image's major version (dbgym image: its pg_major label; official: PG_MAJOR)."""
        return image_info(_client(), options.image or DEFAULT_IMAGE).pg_major

    @classmethod
    def doctor(cls) -> DoctorReport:
        report = DoctorReport(backend=cls.name, usable=False)
        try:
            client = _client(timeout=10)
            version = client.version()
        except BackendUnavailableError as exc:
            report.problems.append(str(exc))
            return report
        report.details.append(
            f"docker engine {version.get('Version', '?')} reachable "
            f"(API {version.get('ApiVersion', '?')})"
        )
        try:
            info = image_info(client, DEFAULT_IMAGE)
        except BackendUnavailableError as exc:
            report.problems.append(str(exc))
            return report
        report.details.append(
            f"image {DEFAULT_IMAGE} present ({info.kind}, PostgreSQL {info.pg_major}, "
            f"server uid {info.uid})"
        )
        report.usable = True
        return report
