"""pgbench: schema and data through the `pgbench -i` tool, and workloads of its built-in scripts.

The workload statements are exactly what pgbench sends (see rust/benchmarks/pgbench.rs): for
`protocol="simple"` the text with literals, for `"extended"` the `$n` text plus parameters.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal, cast

import psycopg

import dbgym._core as _core
import dbgym.redact as redact
from dbgym.benchmarks.base import (
    Benchmark,
    Param,
    check_seed,
    one_of,
    optional,
    positive_int,
    positive_number,
)
from dbgym.dbms.client_tools import conninfo_and_env, find_client, run_streaming
from dbgym.errors import SpecError
from dbgym.progress import ProgressFn
from dbgym.spec import JsonValue
from dbgym.state.report import LoadReport
from dbgym.types import Target, target_dsn

TABLES: tuple[str, ...] = (
    "pgbench_accounts",
    "pgbench_branches",
    "pgbench_history",
    "pgbench_tellers",
)

Script = Literal["tpcb-like", "select-only"]
Protocol = Literal["simple", "extended"]
SCRIPTS: tuple[Script, ...] = ("tpcb-like", "select-only")
PROTOCOLS: tuple[Protocol, ...] = ("simple", "extended")

_PROGRESS = re.compile(r"^(\d+) of (\d+) tuples")


def check_scale(scale: object, key: str = "scale") -> int:
    """pgbench scale factors are positive integers (SpecError, an InvalidArgumentError)."""
    if (
        isinstance(scale, bool)
        or not isinstance(scale, int | float)
        or not math.isfinite(scale)
        or scale != int(scale)
        or scale < 1
    ):
        raise SpecError(f"pgbench scale must be a positive integer, got {scale!r}", key=key)
    return int(scale)


@redact.scrubs("target")
def load(
    target: Target,
    scale: int,
    *,
    bin_dir: Path | str | None = None,
    on_progress: ProgressFn | None = None,
) -> LoadReport:
    """Runs `pgbench -i -s scale` against `target` (a DSN, or anything with a `.dsn`):
    tables, data, VACUUM, primary keys, then ANALYZE; `on_progress(done, totals)` is called
    as it goes. On failure or Ctrl-C the pgbench process is stopped and its tables dropped."""
    dsn = target_dsn(target)
    scale = check_scale(scale)
    pgbench = find_client("pgbench", bin_dir)
    total = 100_000 * scale
    report = LoadReport()

    def on_line(line: str) -> None:
        m = _PROGRESS.match(line)
        if m and on_progress is not None:
            on_progress({"pgbench_accounts": int(m[1])}, {"pgbench_accounts": int(m[2])})

    # reachable first: a server that is not is a ConnectError, not a failed pgbench run
    redact.safe_connect(dsn, "cannot connect to load pgbench").close()
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
    if on_progress is not None:
        on_progress({"pgbench_accounts": total}, {"pgbench_accounts": total})
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
    return BENCHMARK.trace(
        script=script,
        scale=scale,
        clients=clients,
        transactions=transactions,
        protocol=protocol,
        rate=rate,
        seed=seed,
    )


class Pgbench(Benchmark):
    """pgbench: the scale shapes the data (`pgbench -i`) and the accounts the scripts touch."""

    name = "pgbench"
    params: ClassVar[Mapping[str, Param]] = {
        "scale": Param(1, "both", check_scale, "scale factor (100,000 accounts each)"),
        "script": Param("select-only", "workload", one_of(SCRIPTS, "pgbench script")),
        "clients": Param(1, "workload", positive_int, "sessions"),
        "transactions": Param(1000, "workload", positive_int, "transactions per client"),
        "protocol": Param("simple", "workload", one_of(PROTOCOLS, "pgbench protocol")),
        "rate": Param(None, "workload", optional(positive_number), "transactions/s (none)"),
        "seed": Param(0, "workload", check_seed, "seed of the statements' values"),
    }

    def load(
        self,
        target: Target,
        params: Mapping[str, JsonValue],
        *,
        bin_dir: Path | str | None = None,
        workers: int = 2,
        on_progress: ProgressFn | None = None,
    ) -> LoadReport:
        return load(target, cast(int, params["scale"]), bin_dir=bin_dir, on_progress=on_progress)

    def make_trace(self, params: Mapping[str, JsonValue]) -> _core.Trace:
        return _core.pgbench_trace(
            cast(Script, params["script"]),
            cast(int, params["scale"]),
            cast(int, params["clients"]),
            cast(int, params["transactions"]),
            cast(Protocol, params["protocol"]),
            cast("float | None", params["rate"]),
            cast(int, params["seed"]),
        )


#: The registry entry (dbgym.benchmarks.BENCHMARKS["pgbench"]).
BENCHMARK = Pgbench()
