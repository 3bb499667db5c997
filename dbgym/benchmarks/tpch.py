"""TPC-H: schema, loading (Rust generator streamed with COPY) and the 22 queries.

The data generator and the query parameter substitution are in Rust (rust/benchmarks/tpch/);
this module holds the schema and drives a load: create tables, COPY every table (one COPY per
table, tables in parallel over several connections), then primary/foreign keys, secondary
indexes and VACUUM (FREEZE, ANALYZE).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar, cast

import psycopg
from psycopg.rows import TupleRow

import dbgym._core as _core
import dbgym.redact as redact
from dbgym.benchmarks.base import (
    Benchmark,
    Param,
    boolean,
    check_seed,
    int_list,
    optional,
    positive_int,
)
from dbgym.errors import SpecError, WorkloadError
from dbgym.jobs import run_job
from dbgym.progress import ProgressFn
from dbgym.spec import JsonValue
from dbgym.state.report import LoadReport
from dbgym.types import Target, target_dsn

TABLES: tuple[str, ...] = (
    "region",
    "nation",
    "part",
    "supplier",
    "partsupp",
    "customer",
    "orders",
    "lineitem",
)

#: Default seed of the TPC-H generator and query parameters.
DEFAULT_SEED = 15721

#: The TPC-H scale factors the generator takes. The Rust generator owns both limits (order
#: keys are `integer`, so 6,000,000 * SF must stay below 2^31); nothing in Python spells them.
MIN_SCALE: float = _core.TPCH_MIN_SCALE
MAX_SCALE: float = _core.TPCH_MAX_SCALE

SCHEMA: dict[str, str] = {
    "region": """CREATE TABLE region (
        r_regionkey integer NOT NULL, r_name char(25) NOT NULL, r_comment varchar(152) NOT NULL)""",
    "nation": """CREATE TABLE nation (
        n_nationkey integer NOT NULL, n_name char(25) NOT NULL, n_regionkey integer NOT NULL,
        n_comment varchar(152) NOT NULL)""",
    "part": """CREATE TABLE part (
        p_partkey integer NOT NULL, p_name varchar(55) NOT NULL, p_mfgr char(25) NOT NULL,
        p_brand char(10) NOT NULL, p_type varchar(25) NOT NULL, p_size integer NOT NULL,
        p_container char(10) NOT NULL, p_retailprice decimal(15,2) NOT NULL,
        p_comment varchar(23) NOT NULL)""",
    "supplier": """CREATE TABLE supplier (
        s_suppkey integer NOT NULL, s_name char(25) NOT NULL, s_address varchar(40) NOT NULL,
        s_nationkey integer NOT NULL, s_phone char(15) NOT NULL, s_acctbal decimal(15,2) NOT NULL,
        s_comment varchar(101) NOT NULL)""",
    "partsupp": """CREATE TABLE partsupp (
        ps_partkey integer NOT NULL, ps_suppkey integer NOT NULL, ps_availqty integer NOT NULL,
        ps_supplycost decimal(15,2) NOT NULL, ps_comment varchar(199) NOT NULL)""",
    "customer": """CREATE TABLE customer (
        c_custkey integer NOT NULL, c_name varchar(25) NOT NULL, c_address varchar(40) NOT NULL,
        c_nationkey integer NOT NULL, c_phone char(15) NOT NULL, c_acctbal decimal(15,2) NOT NULL,
        c_mktsegment char(10) NOT NULL, c_comment varchar(117) NOT NULL)""",
    "orders": """CREATE TABLE orders (
        o_orderkey integer NOT NULL, o_custkey integer NOT NULL, o_orderstatus char(1) NOT NULL,
        o_totalprice decimal(15,2) NOT NULL, o_orderdate date NOT NULL,
        o_orderpriority char(15) NOT NULL, o_clerk char(15) NOT NULL,
        o_shippriority integer NOT NULL, o_comment varchar(79) NOT NULL)""",
    "lineitem": """CREATE TABLE lineitem (
        l_orderkey integer NOT NULL, l_partkey integer NOT NULL, l_suppkey integer NOT NULL,
        l_linenumber integer NOT NULL, l_quantity decimal(15,2) NOT NULL,
        l_extendedprice decimal(15,2) NOT NULL, l_discount decimal(15,2) NOT NULL,
        l_tax decimal(15,2) NOT NULL, l_returnflag char(1) NOT NULL,
        l_linestatus char(1) NOT NULL, l_shipdate date NOT NULL, l_commitdate date NOT NULL,
        l_receiptdate date NOT NULL, l_shipinstruct char(25) NOT NULL,
        l_shipmode char(10) NOT NULL, l_comment varchar(44) NOT NULL)""",
}

PRIMARY_KEYS: tuple[str, ...] = (
    "ALTER TABLE lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber)",
    "ALTER TABLE orders ADD PRIMARY KEY (o_orderkey)",
    "ALTER TABLE partsupp ADD PRIMARY KEY (ps_partkey, ps_suppkey)",
    "ALTER TABLE customer ADD PRIMARY KEY (c_custkey)",
    "ALTER TABLE part ADD PRIMARY KEY (p_partkey)",
    "ALTER TABLE supplier ADD PRIMARY KEY (s_suppkey)",
    "ALTER TABLE nation ADD PRIMARY KEY (n_nationkey)",
    "ALTER TABLE region ADD PRIMARY KEY (r_regionkey)",
)

FOREIGN_KEYS: tuple[str, ...] = (
    "ALTER TABLE nation ADD FOREIGN KEY (n_regionkey) REFERENCES region",
    "ALTER TABLE supplier ADD FOREIGN KEY (s_nationkey) REFERENCES nation",
    "ALTER TABLE customer ADD FOREIGN KEY (c_nationkey) REFERENCES nation",
    "ALTER TABLE partsupp ADD FOREIGN KEY (ps_partkey) REFERENCES part",
    "ALTER TABLE partsupp ADD FOREIGN KEY (ps_suppkey) REFERENCES supplier",
    "ALTER TABLE orders ADD FOREIGN KEY (o_custkey) REFERENCES customer",
    "ALTER TABLE lineitem ADD FOREIGN KEY (l_orderkey) REFERENCES orders",
    "ALTER TABLE lineitem ADD FOREIGN KEY (l_partkey, l_suppkey) REFERENCES partsupp",
)

#: Indexes on the foreign-key columns the queries join or correlate on (Q17, Q20 need
#: lineitem (l_partkey, ...) to avoid a lineitem scan per outer row).
SECONDARY_INDEXES: tuple[str, ...] = (
    "CREATE INDEX lineitem_part_supp_idx ON lineitem (l_partkey, l_suppkey)",
    "CREATE INDEX orders_custkey_idx ON orders (o_custkey)",
    "CREATE INDEX partsupp_suppkey_idx ON partsupp (ps_suppkey)",
    "CREATE INDEX supplier_nationkey_idx ON supplier (s_nationkey)",
    "CREATE INDEX customer_nationkey_idx ON customer (c_nationkey)",
    "CREATE INDEX nation_regionkey_idx ON nation (n_regionkey)",
)


def check_scale(scale: object, key: str = "scale") -> float:
    """`scale` as a float, or a SpecError (an InvalidArgumentError) naming the allowed range."""
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise SpecError(f"TPC-H scale must be a number, got {scale!r}", key=key)
    value = float(scale)
    if not MIN_SCALE <= value <= MAX_SCALE:
        raise SpecError(
            f"TPC-H scale must be in [{MIN_SCALE:g}, {MAX_SCALE:g}], got {scale!r}", key=key
        )
    return value


def existing_tables(conn: psycopg.Connection[TupleRow]) -> list[str]:
    """TPC-H table names that already exist in the connection's search path."""
    rows = conn.execute(
        "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL", (list(TABLES),)
    ).fetchall()
    return [str(r[0]) for r in rows]


def drop_tables(conn: psycopg.Connection[TupleRow]) -> None:
    """Drops the TPC-H tables (used to leave nothing half-built behind)."""
    conn.execute("DROP TABLE IF EXISTS " + ", ".join(TABLES) + " CASCADE")


@redact.scrubs("target")
def load(
    target: Target,
    scale: float,
    seed: int = DEFAULT_SEED,
    *,
    keys: bool = True,
    indexes: bool = True,
    workers: int = 2,
    on_progress: ProgressFn | None = None,
) -> LoadReport:
    """Builds the TPC-H database at `target` (a DSN, or anything with a `.dsn`): tables, COPY
    of generated data, keys, indexes, stats. `on_progress(done, totals)` is called as it goes.

    The database must not have TPC-H tables yet (WorkloadError). On any error or Ctrl-C the
    tables created so far are dropped again. A server that cannot be reached or refuses the
    login is a ConnectError (an InstanceError naming host, port, user and database, never
    the password); a DSN libpq cannot parse is an InvalidArgumentError.
    """
    scale = check_scale(scale)
    report = LoadReport()
    dsn = target_dsn(target)
    gen = _core.TpchGenerator(scale, seed)
    counts = gen.rows()
    totals = {t: counts[t] for t in TABLES}
    steps: list[str] = list(PRIMARY_KEYS) + list(FOREIGN_KEYS) if keys else []
    steps += list(SECONDARY_INDEXES) if indexes else []
    after = {"keys/indexes": len(steps), "vacuum/analyze": 1}

    def report_progress(done: dict[str, int]) -> None:
        if on_progress is not None:
            on_progress(done, {**totals, **after})

    def loaded(done: dict[str, int], _totals: dict[str, int]) -> None:
        report_progress(done)

    # ConnectError (an InstanceError naming host, port, user, database; never the
    # password), or InvalidArgumentError for a DSN libpq cannot parse
    with redact.safe_connect(dsn, "cannot connect to load TPC-H", autocommit=True) as conn:
        found = existing_tables(conn)
        if found:
            raise WorkloadError(
                "the database already has TPC-H tables (" + ", ".join(found) + "); "
                "load into an empty database"
            )
        try:
            t0 = time.perf_counter()
            for table in TABLES:
                conn.execute(SCHEMA[table])
            job = gen.load_start(dsn, workers=workers)
            report.rows = run_job(job, title="load", progress=False, on_progress=loaded).result()
            report.seconds["copy"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            conn.execute("SET maintenance_work_mem = '256MB'")
            for i, sql in enumerate(steps):
                report_progress({**report.rows, "keys/indexes": i})
                conn.execute(sql)
            report.seconds["keys"] = time.perf_counter() - t0
            report_progress({**report.rows, "keys/indexes": len(steps)})
            t0 = time.perf_counter()
            conn.execute("VACUUM (FREEZE, ANALYZE) " + ", ".join(TABLES))
            report.seconds["analyze"] = time.perf_counter() - t0
            report_progress({**report.rows, **after})
        except BaseException:
            with contextlib.suppress(Exception):
                drop_tables(conn)
            raise
    return report


def query(number: int, scale: float = 1.0, seed: int = DEFAULT_SEED, stream: int = 0) -> str:
    """Query `number` (1..22) with qgen-style parameters drawn for `(seed, stream)`."""
    return _core.tpch_query(number, check_scale(scale), seed, stream)


def queries(scale: float = 1.0, seed: int = DEFAULT_SEED, stream: int = 0) -> list[str]:
    """The 22 queries of one stream, in query-number order."""
    return [query(n, scale, seed, stream) for n in range(1, 23)]


def trace(
    scale: float = 1.0,
    seed: int = DEFAULT_SEED,
    streams: int = 1,
    queries: Sequence[int] | None = None,
    shuffle: bool = True,
) -> _core.Trace:
    """A TPC-H trace: `streams` sessions, each running `queries` (default all 22) once."""
    return BENCHMARK.trace(
        scale=scale,
        seed=seed,
        streams=streams,
        queries=None if queries is None else list(queries),
        shuffle=shuffle,
    )


class Tpch(Benchmark):
    """TPC-H: scale and seed shape both the data and the query parameters."""

    name = "tpch"
    params: ClassVar[Mapping[str, Param]] = {
        "scale": Param(1.0, "both", check_scale, "scale factor (SF 1 = about 1 GB)"),
        "seed": Param(DEFAULT_SEED, "both", check_seed, "seed of the data and query parameters"),
        "keys": Param(True, "state", boolean, "primary and foreign keys"),
        "indexes": Param(True, "state", boolean, "secondary indexes on foreign keys"),
        "streams": Param(1, "workload", positive_int, "query streams (one session each)"),
        "queries": Param(None, "workload", optional(int_list(1, 22)), "query numbers (all)"),
        "shuffle": Param(True, "workload", boolean, "each stream in its own seeded order"),
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
        return load(
            target,
            cast(float, params["scale"]),
            cast(int, params["seed"]),
            keys=bool(params["keys"]),
            indexes=bool(params["indexes"]),
            workers=workers,
            on_progress=on_progress,
        )

    def make_trace(self, params: Mapping[str, JsonValue]) -> _core.Trace:
        queries = cast("tuple[int, ...] | None", params["queries"])
        return _core.tpch_trace(
            cast(float, params["scale"]),
            cast(int, params["seed"]),
            cast(int, params["streams"]),
            None if queries is None else list(queries),
            bool(params["shuffle"]),
        )


#: The registry entry (dbgym.benchmarks.BENCHMARKS["tpch"]).
BENCHMARK = Tpch()
