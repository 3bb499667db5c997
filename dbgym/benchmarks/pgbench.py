"""pgbench: schema and data through the `pgbench -i` tool, and workloads of its built-in scripts.

The workload statements are exactly what pgbench sends (see rust/tpch/pgbench.rs): for
`protocol="simple"` the text with literals, for `"extended"` the `$n` text plus parameters.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

import psycopg

import dbgym._core as _core
from dbgym.benchmarks.tpch import LoadReport
from dbgym.dbms.client_tools import conninfo_and_env, find_client, run_streaming
from dbgym.errors import WorkloadError
from dbgym.progress import ProgressFn

TABLES: tuple[str, ...] = (
    "pgbench_accounts",
    "pgbench_branches",
    "pgbench_history",
    "pgbench_tellers",
)

SCRIPTS: tuple[str, ...] = ("tpcb-like", "select-only")

_PROGRESS = re.compile(r"^(\d+) of (\d+) tuples")


def check_scale(scale: object) -> int:
    """pgbench scale factors are positive integers."""
    if isinstance(scale, bool) or not isinstance(scale, int | float) or scale != int(scale):
        raise WorkloadError(f"pgbench scale must be a positive integer, got {scale!r}")
    if int(scale) < 1:
        raise WorkloadError(f"pgbench scale must be a positive integer, got {scale!r}")
    return int(scale)


def load(
    dsn: str,
    scale: int,
    *,
    bin_dir: Path | str | None = None,
    progress: ProgressFn | None = None,
) -> LoadReport:
    """Runs `pgbench -i -s scale` against `dsn` (tables, data, VACUUM, primary keys), then
    ANALYZE. On failure or Ctrl-C the pgbench process is stopped and its tables dropped."""
    scale = check_scale(scale)
    pgbench = find_client("pgbench", bin_dir)
    total = 100_000 * scale
    report = LoadReport()

    def on_line(line: str) -> None:
        m = _PROGRESS.match(line)
        if m and progress is not None:
            progress({"pgbench_accounts": int(m[1])}, {"pgbench_accounts": int(m[2])})

    t0 = time.perf_counter()
    try:
        conninfo, env = conninfo_and_env(dsn)
        run_streaming(
            [pgbench, "-i", "-s", str(scale), conninfo], what="pgbench -i", on_line=on_line, env=env
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ANALYZE " + ", ".join(TABLES))
            for table in TABLES:
                row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                report.rows[table] = int(row[0]) if row else 0
    except BaseException:
        with contextlib.suppress(Exception), psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS " + ", ".join(TABLES))
        raise
    report.seconds["copy"] = time.perf_counter() - t0
    if progress is not None:
        progress({"pgbench_accounts": total}, {"pgbench_accounts": total})
    return report


def trace(
    script: str = "select-only",
    scale: int = 1,
    clients: int = 1,
    transactions: int = 1000,
    protocol: str = "simple",
    rate: float | None = None,
    seed: int = 0,
) -> _core.Trace:
    """A pgbench workload: `clients` sessions each running `transactions` of `script`.

    `rate` (transactions/s over all clients) schedules Poisson arrivals like `pgbench --rate`;
    without it every statement has timestamp 0 (replay as fast as possible).
    """
    if script not in SCRIPTS:
        raise WorkloadError(f"unknown pgbench script {script!r} (scripts: {', '.join(SCRIPTS)})")
    for name, value in (("clients", clients), ("transactions", transactions)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise WorkloadError(f"pgbench {name} must be a positive integer, got {value!r}")
    return _core.pgbench_trace(
        script, check_scale(scale), clients, transactions, protocol, rate, seed
    )
