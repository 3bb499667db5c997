"""A throwaway local PostgreSQL server for the featurizer tests and bench.

Stand-in until dbgym.PostgresInstance is on main: initdb + pg_ctl in a temp dir,
run as the unprivileged `postgres` OS user when we are root, Unix socket only.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

BIN_DIR = Path(os.environ.get("DBGYM_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _demote() -> Callable[[], None] | None:
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam("postgres")

    def run_as_postgres() -> None:
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)

    return run_as_postgres


class ThrowawayServer:
    """A PostgreSQL server in a fresh temp dir; `stop()` removes everything."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dbgym-featurize-pg-", dir="/tmp"))
        self.datadir = self.dir / "data"
        self.port = _free_port()
        self._started = False
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        demote = _demote()
        try:
            subprocess.run(
                [str(BIN_DIR / "initdb"), "-D", str(self.datadir), "-U", "postgres", "-A", "trust"],
                check=True,
                capture_output=True,
                preexec_fn=demote,
            )
            conf = {
                "listen_addresses": "''",
                "unix_socket_directories": f"'{self.dir}'",
                "port": str(self.port),
                "shared_buffers": "'64MB'",
                "fsync": "off",
                "max_parallel_workers_per_gather": "2",
                "shared_preload_libraries": "'pg_stat_statements'",
                **(settings or {}),
            }
            with (self.datadir / "postgresql.auto.conf").open("a") as f:
                for k, v in conf.items():
                    f.write(f"{k} = {v}\n")
            subprocess.run(
                [
                    str(BIN_DIR / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.dir / "server.log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                check=True,
                capture_output=True,
                preexec_fn=demote,
            )
            self._started = True
        except BaseException:
            self.stop()
            raise

    @property
    def dsn(self) -> str:
        return f"host={self.dir} port={self.port} user=postgres dbname=postgres"

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, **kwargs)

    def stop(self) -> None:
        if self._started:
            subprocess.run(
                [str(BIN_DIR / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"],
                check=False,
                capture_output=True,
                preexec_fn=_demote(),
            )
            self._started = False
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.dir)

    def __enter__(self) -> ThrowawayServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
