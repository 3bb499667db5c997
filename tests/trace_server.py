"""A throwaway PostgreSQL server that logs every statement in all three log formats.

PostgresInstance keeps `logging_collector` and `log_destination` to itself (it reads the
server's stderr), so the log-format tests start their own server: initdb + pg_ctl as the
unprivileged server user (dbgym.dbms.local.server_user), logging_collector = on,
log_destination = 'stderr,csvlog,jsonlog', log_statement = 'all'. Stopping it flushes the logs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from dbgym.dbms.binaries import find_binaries
from dbgym.dbms.local import server_user

PREFIX = "%m [%p] %q%u@%d/%c "


class LoggingServer:
    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.bins = find_binaries()
        self.user = server_user()
        self.dir = Path(tempfile.mkdtemp(prefix="dbgym-trace-pg-"))
        self.data = self.dir / "data"
        self.logs = self.dir / "log"
        self.port = _free_port()
        self.settings = {
            "port": str(self.port),
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.dir}'",
            "logging_collector": "on",
            "log_destination": "'stderr,csvlog,jsonlog'",
            "log_directory": f"'{self.logs}'",
            "log_filename": "'pg'",
            "log_rotation_age": "0",
            "log_rotation_size": "0",
            "log_statement": "'all'",
            "log_min_duration_statement": "0",
            "log_line_prefix": f"'{PREFIX}'",
            "log_timezone": "'UTC'",
            "fsync": "off",
            "shared_buffers": "'32MB'",
        }
        self.settings.update(settings or {})
        self._started = False

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        kw: dict[str, Any] = {}
        if self.user.switch:
            kw = {"user": self.user.uid, "group": self.user.gid, "extra_groups": []}
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=False,
            env={"PATH": os.defpath, "LC_ALL": "C", "LANG": "C"},
            **kw,
        )

    def start(self) -> LoggingServer:
        if self.user.switch:
            os.chown(self.dir, self.user.uid, self.user.gid)
        out = self._run(
            [str(self.bins.tool("initdb")), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
        )
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed: {out.stderr}")
        with (self.data / "postgresql.conf").open("a") as f:
            for k, v in self.settings.items():
                f.write(f"{k} = {v}\n")
        out = self._run(
            [
                str(self.bins.tool("pg_ctl")),
                "-D",
                str(self.data),
                "-w",
                "-l",
                str(self.dir / "startup.log"),
                "start",
            ]
        )
        if out.returncode != 0:
            startup = (self.dir / "startup.log").read_text(errors="replace")
            raise RuntimeError(f"pg_ctl start failed: {out.stderr}\n{startup}")
        self._started = True
        return self

    @property
    def conninfo(self) -> str:
        return f"host={self.dir} port={self.port} user=postgres dbname=postgres"

    def stop(self) -> None:
        if self._started:
            self._run([str(self.bins.tool("pg_ctl")), "-D", str(self.data), "-m", "fast", "stop"])
            self._started = False

    def log(self, fmt: str) -> Path:
        """The log file of a format ("stderr", "csvlog", "jsonlog"), once stopped."""
        return self.logs / {"stderr": "pg", "csvlog": "pg.csv", "jsonlog": "pg.json"}[fmt]

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LoggingServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
