"""Typed access to the project database's rows (one `Records` per ProjectManager).

Each thread gets its own SQLite connection; every write is one `BEGIN IMMEDIATE`
transaction retried while the database is locked (dbgym.project.db), so several
simulation processes, a tracker and the CLI can write and read at once.

Status codes are GymDash's: `StatusCode` SUCCESS=0, FAIL=1, INFO=2 and `StatusSubcode`
NONE=0, ERROR=1, STOPPED=2. A simulation's terminal state is written once (`finish`): the
first terminal writer wins, later ones (a tracker noticing a child that already wrote its
own end) change nothing.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from dbgym.errors import InvalidArgumentError
from dbgym.project.db import connect, retry, utc_now, write

__all__ = [
    "STATES",
    "Records",
    "SimulationRow",
    "StatusCode",
    "StatusRow",
    "StatusSubcode",
]


class StatusCode(IntEnum):
    SUCCESS = 0
    FAIL = 1
    INFO = 2


class StatusSubcode(IntEnum):
    NONE = 0
    ERROR = 1
    STOPPED = 2


#: The states `SimulationRow.state` takes (and `Records.list(state=)` filters on).
STATES = ("pending", "running", "done", "failed", "cancelled", "force_stopped")

_STATE_SQL = {
    "pending": "is_done = 0 AND started IS NULL",
    "running": "is_done = 0 AND started IS NOT NULL",
    "done": "is_done = 1 AND failed = 0",
    "failed": "is_done = 1 AND failed = 1 AND cancelled = 0 AND force_stopped = 0",
    "cancelled": "cancelled = 1",
    "force_stopped": "force_stopped = 1",
}

_JSON_COLUMNS = ("config", "start_kwargs", "result", "environment")


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class SimulationRow:
    """One row of `simulations` (GymDash's columns first, then dbgym's)."""

    sim_id: str
    name: str
    created: str
    started: str | None
    ended: str | None
    is_done: bool
    cancelled: bool
    failed: bool
    force_stopped: bool
    config: Any
    start_kwargs: Any
    sim_type_name: str | None
    sim_module_name: str | None
    sim_key: str
    pid: int | None
    pid_start_time: int | None
    host: str | None
    heartbeat: str | None
    progress_done: int | None
    progress_total: int | None
    result: Any
    environment: Any

    @property
    def state(self) -> str:
        """pending, running, done, failed, cancelled or force_stopped."""
        if not self.is_done:
            return "pending" if self.started is None else "running"
        if self.force_stopped:
            return "force_stopped"
        if self.cancelled:
            return "cancelled"
        return "failed" if self.failed else "done"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> SimulationRow:
        data = {k: row[k] for k in row.keys()}  # noqa: SIM118 - sqlite3.Row has no items()
        for k in _JSON_COLUMNS:
            data[k] = _loads(data[k])
        for k in ("is_done", "cancelled", "failed", "force_stopped"):
            data[k] = bool(data[k])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__} | {"state": self.state}


@dataclass(frozen=True)
class StatusRow:
    """One row of `sim_status`."""

    id: int
    sim_id: str
    time: str
    code: StatusCode
    subcode: StatusSubcode
    details: str
    error_trace: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StatusRow:
        return cls(
            id=int(row["id"]),
            sim_id=str(row["sim_id"]),
            time=str(row["time"]),
            code=StatusCode(row["code"]),
            subcode=StatusSubcode(row["subcode"]),
            details=str(row["details"]),
            error_trace=row["error_trace"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sim_id": self.sim_id,
            "time": self.time,
            "code": self.code.name,
            "subcode": self.subcode.name,
            "details": self.details,
            "error_trace": self.error_trace,
        }


StatusTuple = tuple[StatusCode, StatusSubcode, str, "str | None"]


class Records:
    """Rows of the project database at `db_path`; `sims_folder` is where `delete` removes a
    simulation's files."""

    def __init__(self, db_path: Path, sims_folder: Path) -> None:
        self.db_path = db_path
        self.sims_folder = sims_folder
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"Records({str(self.db_path)!r})"

    # -- connections ---------------------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (a forked child opens its own: an SQLite connection
        must not cross a fork; the inherited ones are left alone, not closed)."""
        if self._pid != os.getpid():
            self._lock = threading.Lock()  # the parent's may have been held at the fork
            self._pid, self._all, self._local = os.getpid(), [], threading.local()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.db_path)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection (idempotent)."""
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            c.close()
        self._local = threading.local()

    def _write(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return write(self.conn, lambda c: c.execute(sql, params))

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return retry(lambda: self.conn.execute(sql, params).fetchall())

    # -- simulations ---------------------------------------------------------------------
    def create_simulation(
        self,
        *,
        name: str,
        sim_key: str,
        config: Mapping[str, Any] | None,
        start_kwargs: Mapping[str, Any] | None,
        sim_type_name: str,
        sim_module_name: str,
    ) -> str:
        """A new pending simulation row; returns its sim_id (a UUID4 string)."""
        sim_id = str(uuid.uuid4())
        self._write(
            "INSERT INTO simulations (sim_id, name, created, config, start_kwargs, "
            "sim_type_name, sim_module_name, sim_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                sim_id,
                name,
                utc_now(),
                _dumps(config),
                _dumps(start_kwargs),
                sim_type_name,
                sim_module_name,
                sim_key,
            ),
        )
        return sim_id

    def mark_started(self, sim_id: str, *, pid: int, pid_start_time: int | None, host: str) -> None:
        now = utc_now()
        self._write(
            "UPDATE simulations SET started = ?, pid = ?, pid_start_time = ?, host = ?, "
            "heartbeat = ? WHERE sim_id = ?",
            (now, pid, pid_start_time, host, now, sim_id),
        )

    def heartbeat(self, sim_id: str) -> None:
        self._write("UPDATE simulations SET heartbeat = ? WHERE sim_id = ?", (utc_now(), sim_id))

    def set_progress(self, sim_id: str, done: int, total: int | None) -> None:
        self._write(
            "UPDATE simulations SET progress_done = ?, progress_total = ? WHERE sim_id = ?",
            (done, total, sim_id),
        )

    def set_environment(self, sim_id: str, environment: Mapping[str, Any]) -> None:
        self._write(
            "UPDATE simulations SET environment = ? WHERE sim_id = ?",
            (_dumps(dict(environment)), sim_id),
        )

    def set_result(self, sim_id: str, result: Mapping[str, Any]) -> None:
        self._write(
            "UPDATE simulations SET result = ? WHERE sim_id = ?", (_dumps(dict(result)), sim_id)
        )

    def finish(
        self,
        sim_id: str,
        *,
        failed: bool = False,
        cancelled: bool = False,
        force_stopped: bool = False,
        status: StatusTuple,
    ) -> bool:
        """The terminal state and its status row, in one transaction, unless the simulation
        had ended already (then nothing changes and False is returned)."""
        code, subcode, details, trace = status

        def apply(c: sqlite3.Connection) -> bool:
            now = utc_now()
            cur = c.execute(
                "UPDATE simulations SET is_done = 1, ended = ?, failed = ?, cancelled = ?, "
                "force_stopped = ? WHERE sim_id = ? AND is_done = 0",
                (now, int(failed or cancelled or force_stopped), int(cancelled),
                 int(force_stopped), sim_id),
            )  # fmt: skip
            if cur.rowcount == 0:
                return False
            c.execute(
                "INSERT INTO sim_status (sim_id, time, code, subcode, details, error_trace) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (sim_id, now, int(code), int(subcode), details, trace),
            )
            return True

        return write(self.conn, apply)

    def add_status(
        self,
        sim_id: str,
        code: StatusCode,
        subcode: StatusSubcode = StatusSubcode.NONE,
        details: str = "",
        error_trace: str | None = None,
    ) -> int:
        """Append a status row; returns its id."""
        cur = self._write(
            "INSERT INTO sim_status (sim_id, time, code, subcode, details, error_trace) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (sim_id, utc_now(), int(code), int(subcode), details, error_trace),
        )
        return int(cur.lastrowid or 0)

    def add_statuses(
        self, rows: Sequence[tuple[str, StatusCode, StatusSubcode, str, str | None]]
    ) -> None:
        """Append several status rows in one transaction."""
        now = utc_now()
        data = [(s, now, int(c), int(sc), d, t) for s, c, sc, d, t in rows]

        def apply(c: sqlite3.Connection) -> None:
            c.executemany(
                "INSERT INTO sim_status (sim_id, time, code, subcode, details, error_trace) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                data,
            )

        write(self.conn, apply)

    def get(self, sim_id: str) -> SimulationRow:
        """The simulation `sim_id` (a unique prefix of it is enough)."""
        rows = self._read("SELECT * FROM simulations WHERE sim_id = ?", (sim_id,))
        if not rows and sim_id and all(ch in "0123456789abcdef-" for ch in sim_id):
            rows = self._read(
                "SELECT * FROM simulations WHERE sim_id LIKE ? LIMIT 2", (sim_id + "%",)
            )
            if len(rows) > 1:
                raise InvalidArgumentError(
                    f"simulation id prefix {sim_id!r} matches more than one simulation; give "
                    "more of the id"
                )
        if not rows:
            raise InvalidArgumentError(
                f"no simulation {sim_id!r} in the project database {self.db_path}"
            )
        return SimulationRow.from_row(rows[0])

    def list(
        self, *, state: str | None = None, key: str | None = None, limit: int | None = None
    ) -> builtins.list[SimulationRow]:
        """Simulations, oldest first, filtered by `state` (one of STATES) and `key`;
        `limit` keeps the newest ones."""
        where, params = [], []
        if state is not None:
            if state not in _STATE_SQL:
                raise InvalidArgumentError(f"state {state!r}: give one of {', '.join(STATES)}")
            where.append(f"({_STATE_SQL[state]})")
        if key is not None:
            where.append("sim_key = ?")
            params.append(key)
        sql = "SELECT * FROM simulations"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, rowid DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [SimulationRow.from_row(r) for r in reversed(self._read(sql, params))]

    def unfinished(self) -> builtins.list[SimulationRow]:
        """Simulations not done (pending or running)."""
        rows = self._read("SELECT * FROM simulations WHERE is_done = 0 ORDER BY created")
        return [SimulationRow.from_row(r) for r in rows]

    def statuses(
        self, sim_id: str, *, after: int = 0, limit: int | None = None
    ) -> builtins.list[StatusRow]:
        """`sim_id`'s status rows in order (only those with id > `after`; the last `limit`)."""
        sql = "SELECT * FROM sim_status WHERE sim_id = ? AND id > ? ORDER BY id"
        params: builtins.list[Any] = [sim_id, after]
        if limit is not None:
            sql = f"SELECT * FROM ({sql.replace('ORDER BY id', 'ORDER BY id DESC')} LIMIT ?) "
            sql += "ORDER BY id"
            params.append(int(limit))
        return [StatusRow.from_row(r) for r in self._read(sql, params)]

    def count_statuses(self, sim_id: str | None = None) -> int:
        if sim_id is None:
            return int(self._read("SELECT count(*) FROM sim_status")[0][0])
        return int(self._read("SELECT count(*) FROM sim_status WHERE sim_id = ?", (sim_id,))[0][0])

    def delete(self, sim_id: str) -> str:
        """Delete a simulation that is not running: its rows (statuses, files index) and its
        folder sims/<sim_id>/. Returns the full id."""
        row = self.get(sim_id)
        if not row.is_done and row.started is not None:
            raise InvalidArgumentError(
                f"simulation {row.sim_id} is running: cancel it first (dbgym sims cancel)"
            )
        self._write("DELETE FROM simulations WHERE sim_id = ?", (row.sim_id,))
        shutil.rmtree(self.sims_folder / row.sim_id, ignore_errors=True)
        return row.sim_id

    # -- files, types, api calls, bench runs ---------------------------------------------
    def add_file(
        self, sim_id: str, kind: str, relpath: str, rows: int, schema_version: int
    ) -> None:
        """Index a training-data file of `sim_id` (relpath under sims/<sim_id>/)."""
        self._write(
            "INSERT OR REPLACE INTO sim_files (sim_id, kind, relpath, rows, schema_version, "
            "time) VALUES (?, ?, ?, ?, ?, ?)",
            (sim_id, kind, relpath, rows, schema_version, utc_now()),
        )

    def files(self, sim_id: str, kind: str | None = None) -> builtins.list[dict[str, Any]]:
        sql = "SELECT * FROM sim_files WHERE sim_id = ?"
        params: builtins.list[Any] = [sim_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        return [dict(r) for r in self._read(sql + " ORDER BY id", params)]

    def register_sim_type(self, key: str, module: str, qualname: str, path: str | None) -> None:
        self._write(
            "INSERT OR REPLACE INTO sim_types (key, module, qualname, path, time) "
            "VALUES (?, ?, ?, ?, ?)",
            (key, module, qualname, path, utc_now()),
        )

    def sim_types(self) -> builtins.list[dict[str, Any]]:
        return [dict(r) for r in self._read("SELECT * FROM sim_types ORDER BY key")]

    def add_api_call(self, name: str, code: int, details: Mapping[str, Any]) -> None:
        self._write(
            "INSERT INTO api_calls (name, time, code, details) VALUES (?, ?, ?, ?)",
            (name, utc_now(), int(code), _dumps(dict(details))),
        )

    def api_calls(self, name: str | None = None) -> builtins.list[dict[str, Any]]:
        sql, params = "SELECT * FROM api_calls", []
        if name is not None:
            sql += " WHERE name = ?"
            params.append(name)
        out = []
        for r in self._read(sql + " ORDER BY id", params):
            d = dict(r)
            d["details"] = _loads(d["details"])
            out.append(d)
        return out

    def add_bench_run(self, name: str, report: Mapping[str, Any]) -> int:
        cur = self._write(
            "INSERT INTO bench_runs (name, time, report) VALUES (?, ?, ?)",
            (name, utc_now(), _dumps(dict(report))),
        )
        return int(cur.lastrowid or 0)

    def bench_runs(self) -> builtins.list[dict[str, Any]]:
        out = []
        for r in self._read("SELECT * FROM bench_runs ORDER BY id"):
            d = dict(r)
            d["report"] = _loads(d["report"])
            out.append(d)
        return out

    def __iter__(self) -> Iterator[SimulationRow]:
        return iter(self.list())
