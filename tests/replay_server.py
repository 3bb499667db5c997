"""A throwaway local PostgreSQL server for the replay tests and benches.

Runs initdb/pg_ctl from the system's PostgreSQL 15 as the unprivileged `postgres` OS user
when we are root (the server refuses root). Listens on 127.0.0.1 and a private socket dir.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN_DIR = Path(os.environ.get("DBGYM_PG_BIN", "/usr/lib/postgresql/15/bin"))


@dataclass(frozen=True)
class Server:
    dsn: str
    port: int
    host: str
    bin_dir: Path
    datadir: Path

    def run(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """Runs a server binary (pgbench, psql) as the server's OS user."""
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            text=True,
            **_as_postgres(),
            **kw,
        )


def _as_postgres() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def throwaway_server(**settings: str) -> Iterator[Server]:
    root = Path(tempfile.mkdtemp(prefix="dbgym-replay-"))
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data = root / "data"
    port = _free_port()
    started = False
    try:
        initdb = [str(BIN_DIR / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
        subprocess.run(
            [*initdb, "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
            **_as_postgres(),
        )
        opts = {
            "port": str(port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(root),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            **settings,
        }
        o = " ".join(f"-c {k}={v}" for k, v in opts.items())
        pg_ctl = [str(BIN_DIR / "pg_ctl"), "-D", str(data), "-o", o, "-l", str(root / "log")]
        subprocess.run(
            [*pg_ctl, "-w", "-t", "60", "start"],
            check=True,
            capture_output=True,
            **_as_postgres(),
        )
        started = True
        yield Server(
            dsn=f"postgresql://postgres@127.0.0.1:{port}/postgres",
            port=port,
            host="127.0.0.1",
            bin_dir=BIN_DIR,
            datadir=data,
        )
    finally:
        if started:
            subprocess.run(
                [str(BIN_DIR / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                **_as_postgres(),
            )
        shutil.rmtree(root, ignore_errors=True)
