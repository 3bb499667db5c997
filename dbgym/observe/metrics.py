"""Metrics observation: deltas of PostgreSQL's cumulative statistics as a named Box.

Sources (fixed when the observer is built, from the server version and what is loaded):
- pg_stat_database, the row of the connected database: every cumulative counter
  (numbackends and stats_reset, a gauge and a timestamp, are left out);
- pg_stat_bgwriter (all PostgreSQL versions; PostgreSQL 17 moved the checkpoint counters)
  and pg_stat_checkpointer (PostgreSQL 17+);
- pg_stat_statements, summed over all statements, when the extension is installed and
  loaded (shared_preload_libraries): calls, rows, times, blocks, WAL, ... (min/max/mean/
  stddev times are not sums and are left out).

Columns are discovered from the views themselves, so new counters in newer releases are
picked up. Values are float64; `observe()` returns the change since the previous call.
The observer's own queries are part of what it measures (a few transactions and tuples
per call).

Restarts: a restart, a restore or a crash of a backend ends the observer's connection,
and the counters may jump back (a restore brings back the snapshot's counters; crash
recovery zeroes them). Registered with a `DbSession`, the observer reconnects and takes
a new baseline at every epoch (`on_epoch`). On its own, `observe()` notices the lost
connection, reconnects and returns zeros (the new baseline): never a delta across a
restart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
from gymnasium import spaces
from numpy.typing import NDArray
from psycopg import sql

from dbgym.errors import ObservationError
from dbgym.observe.source import ServerSource
from dbgym.types import SupportsConnect

#: Postgres type OIDs of numeric columns: int2, int4, int8, float4, float8, numeric.
_NUMERIC_OIDS = frozenset({21, 23, 20, 700, 701, 1700})
_SKIP = {
    "pg_stat_database": {"datid", "numbackends"},
    "pg_stat_statements": {"userid", "dbid", "queryid", "toplevel"},
}
_NOT_A_SUM = ("min_", "max_", "mean_", "stddev_")


def _numeric_columns(conn: psycopg.Connection[Any], view: str) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(sql.Identifier(view)))
        desc = cur.description or []
    skip = _SKIP.get(view, set())
    cols = [d.name for d in desc if d.type_code in _NUMERIC_OIDS and d.name not in skip]
    if view == "pg_stat_statements":
        cols = [c for c in cols if not c.startswith(_NOT_A_SUM)]
    return cols


def _pg_stat_statements_usable(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone()
    if row is None:
        return False
    try:
        with conn.transaction():
            conn.execute("SELECT 1 FROM pg_stat_statements LIMIT 1")
    except psycopg.Error:  # installed but not in shared_preload_libraries
        return False
    return True


class MetricsObserver(ServerSource):
    """Deltas of the server's cumulative statistics, as `space` (a Box) with `names`."""

    what = "the metrics observer"

    def __init__(self, target: SupportsConnect | str) -> None:
        super().__init__(target)
        try:
            conn = self._conn
            self.server_version_num = conn.info.server_version
            views = ["pg_stat_database", "pg_stat_bgwriter"]
            if self.server_version_num >= 170000:
                views.append("pg_stat_checkpointer")
            self.has_pg_stat_statements = _pg_stat_statements_usable(conn)
            if self.has_pg_stat_statements:
                views.append("pg_stat_statements")
            queries: list[sql.Composed] = []
            names: list[str] = []
            for view in views:
                cols = _numeric_columns(conn, view)
                if not cols:
                    raise ObservationError(f"{view} has no numeric columns on this server")
                names += [f"{view}.{c}" for c in cols]
                agg = "sum" if view == "pg_stat_statements" else "max"
                exprs = sql.SQL(", ").join(
                    sql.SQL("coalesce({}({})::float8, 0)").format(sql.SQL(agg), sql.Identifier(c))
                    for c in cols
                )
                where = sql.SQL(
                    " WHERE datname = current_database()" if view == "pg_stat_database" else ""
                )
                queries.append(
                    sql.SQL("(SELECT ARRAY[{}] FROM {}{})").format(
                        exprs, sql.Identifier(view), where
                    )
                )
            self._query = sql.SQL("SELECT ") + sql.SQL(", ").join(queries)
            self.names: tuple[str, ...] = tuple(names)
            self.space = spaces.Box(low=-np.inf, high=np.inf, shape=(len(names),), dtype=np.float64)
            self._last = self.snapshot()
        except BaseException:
            self.close()
            raise

    def snapshot(self) -> NDArray[np.float64]:
        """Current values of every counter (not deltas)."""
        row = self._read(lambda conn: conn.execute(self._query).fetchone())
        if row is None:
            raise ObservationError("the statistics views returned no row")
        values: list[float] = []
        for part in row:
            values.extend(float(v) for v in part)
        return np.array(values, dtype=np.float64)

    def reset(self) -> NDArray[np.float64]:
        """Take the current values as the baseline of the next `observe()`; returns zeros."""
        self._last = self.snapshot()
        return np.zeros(len(self.names), dtype=np.float64)

    def observe(self) -> NDArray[np.float64]:
        """Change of every counter since the previous observe()/reset() (or construction).

        If the connection was lost since (the server restarted, was restored or a backend
        crashed), reconnects and returns zeros: the new baseline."""
        lost = self.reconnects
        now = self.snapshot()  # reconnects if the connection was lost
        if self.reconnects != lost:
            self._last = now
            return np.zeros(len(self.names), dtype=np.float64)
        delta = now - self._last
        self._last = now
        return delta

    def on_epoch(self, session: SupportsConnect) -> None:
        """A `DbSession` restarted or restored its server: connect through `session`
        and take the new baseline (the next observe() counts from here)."""
        super().on_epoch(session)
        self.reset()

    def as_dict(self, observation: NDArray[np.float64]) -> dict[str, float]:
        return dict(zip(self.names, observation.tolist(), strict=True))
