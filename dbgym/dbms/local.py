"""The local backend: PostgreSQL as processes on this machine (the embedded default).

The server runs as an unprivileged OS user when the caller is root (PostgreSQL refuses
root): $DBGYM_PG_USER, else `postgres` if that user exists, else `nobody`. It listens on
127.0.0.1 only, plus a private unix-socket directory (mode 0700, owned by the server
user). The postmaster is started in its own session (so a terminal's Ctrl-C reaches
only the Python process, which then shuts the server down in order) and is our child
process; stop signals go to it and to nothing else. It dies with its owner: a parent-death
signal (SIGQUIT, PostgreSQL's immediate shutdown; set by `setpriv --pdeathsig`) reaches it
when the owning process dies, even by SIGKILL, so no server outlives a killed Python.

The local backend cannot enforce `cpus` and `memory` (that takes a cgroup the caller may
write, which this machine's cgroup v1 hierarchy does not delegate): it refuses them with
InvalidArgumentError instead of silently ignoring them; the docker backend enforces both.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import dbgym.dbms.procs as procs
from dbgym.dbms.backend import (
    Backend,
    BackendOptions,
    DoctorReport,
    StopMode,
    initdb_options,
    server_options,
)
from dbgym.dbms.binaries import PgBinaries, find_binaries
from dbgym.errors import BackendUnavailableError, InvalidArgumentError, PostgresStartError

_STOP_SIGNALS = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT}
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; ".s.PGSQL.65535.lock" must fit too


@dataclass(frozen=True)
class ServerUser:
    """The OS user the server runs as; `switch` is False when it is the caller itself."""

    name: str
    uid: int
    gid: int
    switch: bool


def server_user() -> ServerUser:
    """Whom initdb/postgres run as (see the module docstring)."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=False)
    wanted = os.environ.get("DBGYM_PG_USER")
    candidates = [wanted] if wanted else ["postgres", "nobody"]
    for name in candidates:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid == 0:
            raise BackendUnavailableError(
                f"DBGYM_PG_USER={name} is root; PostgreSQL refuses to run as root"
            )
        return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=True)
    raise BackendUnavailableError(
        f"running as root and no unprivileged user to run PostgreSQL as (tried "
        f"{', '.join(candidates)}); create one or set DBGYM_PG_USER"
    )


def unreachable_ancestor(path: Path, user: ServerUser) -> Path | None:
    """The first ancestor directory of `path` that `user` cannot traverse, if any."""
    if not user.switch:
        return None
    groups = {user.gid} | {g for g in os.getgrouplist(user.name, user.gid)}
    for ancestor in reversed(path.resolve().parents):
        st = ancestor.stat()
        if st.st_uid == user.uid:
            ok = bool(st.st_mode & 0o100)
        elif st.st_gid in groups:
            ok = bool(st.st_mode & 0o010)
        else:
            ok = bool(st.st_mode & 0o001)
        if not ok:
            return ancestor
    return None


def limits_refusal(**limits: object) -> str | None:
    """Why the local backend refuses the resource limits given (cpus=, memory=; None: not
    given), or None when none is given (InstanceSpec checks the same before launch)."""
    given = [f"{name}={value!r}" for name, value in limits.items() if value is not None]
    if not given:
        return None
    return (
        f"the local backend cannot enforce {' and '.join(given)} (it runs the server as "
        "plain processes, without a cgroup of its own); use backend='docker', which does, "
        "or leave them out"
    )


def _server_env() -> dict[str, str]:
    return {"PATH": os.defpath, "LC_ALL": "C", "LANG": "C"}


class LocalBackend(Backend):
    name = "local"
    ready_needs_connection = False  # the postmaster is our child: its pid file is proof

    def __init__(self, options: BackendOptions) -> None:
        refusal = limits_refusal(cpus=options.cpus, memory=options.memory)
        if refusal is not None:
            raise InvalidArgumentError(refusal)
        self.binaries: PgBinaries = find_binaries(options.bin_dir)
        self.user = server_user()
        self._workdir: Path | None = None
        self._socket_dir: Path | None = None
        self._own_socket_dir = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped: subprocess.Popen[bytes] | None = None  # _proc, once nothing of it runs
        self._log_file: IO[bytes] | None = None

    # -- set-up -----------------------------------------------------------------------
    @property
    def bin_dir(self) -> Path:
        return self.binaries.bin_dir

    @property
    def socket_dir(self) -> Path | None:
        return self._socket_dir

    def _popen_user_kwargs(self) -> dict[str, Any]:
        if not self.user.switch:
            return {}
        return {"user": self.user.uid, "group": self.user.gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if self.user.switch:
            os.chown(path, self.user.uid, self.user.gid)

    def prepare(self, workdir: Path) -> None:
        blocked = unreachable_ancestor(workdir, self.user)
        if blocked is not None:
            raise BackendUnavailableError(
                f"workdir {workdir} is not reachable by the server user {self.user.name!r}: "
                f"{blocked} (mode {blocked.stat().st_mode & 0o777:o}) cannot be traversed; "
                f"choose a workdir outside it (e.g. under /tmp)"
            )
        self._workdir = workdir
        self._chown(workdir)
        os.chmod(workdir, 0o700)
        socket_dir = workdir / "run"
        if len(str(socket_dir / ".s.PGSQL.65535.lock")) > _SOCKET_PATH_MAX:
            socket_dir = Path(tempfile.mkdtemp(prefix="dbgym-sock-"))
            self._own_socket_dir = True
        else:
            socket_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(socket_dir, 0o700)
        self._chown(socket_dir)
        self._socket_dir = socket_dir
        self.server_log = workdir / "server.log"

    def datadir_owner(self) -> tuple[int, int] | None:
        return (self.user.uid, self.user.gid) if self.user.switch else None

    def initdb(self, datadir: Path, superuser: str, pwfile: Path, port: int) -> None:
        assert self._workdir is not None, "prepare() first"
        cmd = [
            *procs.pdeathsig_argv(signal.SIGKILL),
            str(self.binaries.tool("initdb")),
            *initdb_options(datadir, superuser, pwfile),
        ]
        proc = procs.in_lasting_thread(
            lambda: subprocess.Popen(
                cmd,
                cwd=self._workdir,
                env=_server_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
                **self._popen_user_kwargs(),
            )
        )
        try:
            output, _ = proc.communicate()
        except BaseException:
            # Interrupted (Ctrl-C): initdb and the bootstrap postgres it runs share its
            # process group; kill them all before the caller removes the workdir.
            procs.kill_group(proc.pid)
            proc.wait()
            for pid in procs.group_members(proc.pid):
                procs.wait_gone(pid, 5.0)
            raise
        if proc.returncode != 0:
            lines = output.strip().splitlines()
            raise PostgresStartError(f"initdb failed (exit {proc.returncode})", lines[-30:])

    # -- running ----------------------------------------------------------------------
    def start(self, datadir: Path, port: int) -> None:
        assert self._workdir is not None and self._socket_dir is not None, "prepare() first"
        assert self.server_log is not None
        if self.is_running():
            raise PostgresStartError("server already running")
        if self._log_file is None:
            self._log_file = open(self.server_log, "ab")  # noqa: SIM115 (kept for the instance)
        self._mark_log_start()
        cmd = [
            *procs.pdeathsig_argv(signal.SIGQUIT),  # dies with its owner (module docstring)
            str(self.binaries.tool("postgres")),
            *server_options(datadir, port, self._socket_dir, listen="127.0.0.1"),
        ]
        log_file = self._log_file
        self._proc = procs.in_lasting_thread(
            lambda: subprocess.Popen(
                cmd,
                cwd=self._workdir,
                env=_server_env(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._popen_user_kwargs(),
            )
        )

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def server_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def expected_postmaster_pid(self) -> int | None:
        return self.server_pid

    def admin_host(self) -> str | None:
        return str(self._socket_dir) if self._socket_dir is not None else None

    def stop(self, mode: StopMode, timeout: float = 60.0) -> None:
        """Stop the server and whatever of it is left (a killed postmaster's children);
        idempotent, and no error when it died."""
        proc = self._proc
        if proc is None or proc is self._stopped:
            return  # (its process group, once gone, is never signalled again: pid reuse)
        if proc.poll() is None:
            proc.send_signal(_STOP_SIGNALS[mode])
            if not procs.wait_child(proc, timeout):
                procs.kill_group(proc.pid)
                proc.wait()
        # The postmaster waits for its children before exiting; anything still in its
        # process group (it leads its own session) is a stray child: kill it.
        if procs.group_alive(proc.pid):
            procs.kill_group(proc.pid)
            for pid in procs.group_members(proc.pid):
                procs.wait_gone(pid, 5.0)
        if not procs.group_alive(proc.pid):
            self._stopped = proc

    def remove(self) -> None:
        if self.is_running():
            self.stop("fast")
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._own_socket_dir and self._socket_dir is not None:
            for child in self._socket_dir.iterdir():
                child.unlink(missing_ok=True)
            self._socket_dir.rmdir()
            self._own_socket_dir = False

    # -- registry / cleanup -----------------------------------------------------------
    def registry_fields(self) -> dict[str, Any]:
        pid = self.server_pid
        return {
            "server_pid": pid,
            "server_start_time": procs.start_time(pid) if pid is not None else None,
            "socket_dir": str(self._socket_dir) if self._own_socket_dir else None,
        }

    @classmethod
    def cleanup_leftover(cls, fields: dict[str, Any]) -> list[str]:
        done: list[str] = []
        pid = fields.get("server_pid")
        datadir = fields.get("datadir")
        # Prove it is the postmaster we started: same start time and our data dir.
        if (
            isinstance(pid, int)
            and procs.is_alive(pid, fields.get("server_start_time"))
            and datadir
            and datadir in procs.cmdline(pid)
        ):
            os.kill(pid, signal.SIGQUIT)
            if not procs.wait_gone(pid, 10.0):
                procs.kill_group(pid)
                procs.wait_gone(pid, 5.0)
            if procs.group_members(pid):
                procs.kill_group(pid)
            done.append(f"stopped postgres pid {pid}")
        sock = fields.get("socket_dir")
        if isinstance(sock, str) and os.path.isdir(sock):
            for child in Path(sock).iterdir():
                child.unlink(missing_ok=True)
            os.rmdir(sock)
        return done

    @classmethod
    def server_major(cls, options: BackendOptions) -> int | None:
        return find_binaries(options.bin_dir).major

    @classmethod
    def doctor(cls) -> DoctorReport:
        report = DoctorReport(backend=cls.name, usable=False)
        try:
            binaries = find_binaries()
        except BackendUnavailableError as exc:
            report.problems.append(str(exc))
            return report
        report.details.append(
            f"binaries: {binaries.bin_dir} (PostgreSQL {binaries.version}, via {binaries.source})"
        )
        try:
            user = server_user()
        except BackendUnavailableError as exc:
            report.problems.append(str(exc))
            return report
        who = f"{user.name} (uid {user.uid})"
        report.details.append(
            f"server user: {who}" + (" -- caller is root, server runs unprivileged" * user.switch)
        )
        base = Path(tempfile.gettempdir())
        blocked = unreachable_ancestor(base / "x", user)
        if blocked is not None:
            report.problems.append(
                f"default workdir base {base} is not reachable by {user.name}: {blocked} "
                "cannot be traversed; set TMPDIR to a directory it can reach"
            )
            return report
        switch: dict[str, Any] = (
            {"user": user.uid, "group": user.gid, "extra_groups": []} if user.switch else {}
        )
        out = subprocess.run(
            [str(binaries.tool("postgres")), "--version"],
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
            env=_server_env(),
            **switch,
        )
        if out.returncode != 0:
            report.problems.append(
                f"postgres --version as {user.name} failed: {out.stderr.strip()}"
            )
            return report
        report.details.append(f"workdir base: {base}")
        report.details.append(
            "servers die with their owner (setpriv --pdeathsig)"
            if procs.pdeathsig_argv(signal.SIGQUIT)
            else "servers outlive a killed owner until the next launch or `dbgym clean` "
            "(no setpriv with --pdeathsig: install util-linux >= 2.33)"
        )
        report.usable = True
        return report
