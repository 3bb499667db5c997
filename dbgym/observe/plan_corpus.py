"""A corpus of real EXPLAIN (FORMAT JSON) plans captured from a live server: training and
validation data for plan models, and the featurizer's tests and bench.

`launch_server()` starts a PostgresInstance with TPC-H (scale 0.01, dbgym's generator) and
pgbench (scale 1) loaded (`prepare` loads them into any empty database); `capture(target)`
explains the 22 TPC-H queries, pgbench's tpcb-like statements and extra shapes (CTEs,
recursive CTEs, window functions, set operations, subplans, locking, DML), each under
several planner settings and EXPLAIN option sets with dbgym.observe.plans's explain_one
(DML under ANALYZE runs inside a transaction that is rolled back). EXPLAIN ANALYZE runs
that hit the 5 s statement timeout (forced nested loops) are left out.

```python
with launch_server() as inst:
    plans = capture(inst)          # about 500 CapturedPlan(query, setting, options, sql, text)
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg

from dbgym.benchmarks import pgbench, tpch
from dbgym.dbms.instance import PostgresInstance
from dbgym.observe.plans import explain_one
from dbgym.types import SupportsConnect, Target, target_dsn
from dbgym.workload.workload import Workload

#: Indexes beyond the TPC-H loader's keys, for more scan shapes (index-only, bitmap).
EXTRA_INDEXES = (
    "CREATE INDEX lineitem_shipdate_idx ON lineitem (l_shipdate)",
    "CREATE INDEX orders_orderdate_idx ON orders (o_orderdate)",
    "ANALYZE lineitem, orders",
)

TPCH_SCALE = 0.01

EXTRA_QUERIES: dict[str, str] = {
    "cte_materialized": """with big as materialized (select o_custkey, sum(o_totalprice) t
            from orders group by o_custkey)
        select c_name, t from customer join big on c_custkey = o_custkey
        where t > (select avg(t) from big) order by t desc limit 5""",
    "recursive_cte": """with recursive r(n) as (select 1 union all select n + 1 from r
            where n < 100) select count(*) from r join nation on n = n_nationkey""",
    "window": """select o_custkey, o_orderdate, o_totalprice,
        rank() over (partition by o_custkey order by o_totalprice desc),
        sum(o_totalprice) over (order by o_orderdate rows between 3 preceding and current row)
        from orders where o_custkey < 100""",
    "setops": """select c_nationkey from customer union select s_nationkey from supplier
        intersect select n_nationkey from nation except select 3""",
    "union_all_values": """select n_name from nation union all
        select x from (values ('a'), ('b'), ('c')) v(x) union all select 'z'""",
    "function_scan": """select g, n_name from generate_series(1, 20) g
        left join nation on n_nationkey = g""",
    "distinct_limit": """select distinct o_orderstatus, o_orderpriority from orders
        order by 1, 2 limit 7""",
    "for_update": """select * from nation where n_regionkey = 2 for update""",
    "correlated_subplan": """select c_custkey, (select max(o_totalprice) from orders
        where o_custkey = c_custkey) from customer where c_custkey < 50""",
    "any_subplan": """select p_partkey from part where p_size = 3 and p_partkey <> all (
        select l_partkey from lineitem where l_quantity > 48)""",
    "incremental_sort": """select * from orders order by o_orderkey, o_totalprice limit 50""",
    "tid_scan": """select * from lineitem where ctid = '(0,1)'""",
}

#: Statements with side effects: explained (and under ANALYZE, run and rolled back).
DML_QUERIES: dict[str, str] = {
    "insert_select": """insert into region select r_regionkey + 100, r_name, r_comment
        from region""",
    "update_join": """update orders set o_comment = 'x' from customer
        where o_custkey = c_custkey and c_nationkey = 3 and o_orderdate < date '1992-03-01'""",
    "delete_exists": """delete from lineitem where l_orderkey < 200 and exists (
        select 1 from orders where o_orderkey = l_orderkey and o_orderstatus = 'F')""",
    "insert_returning_cte": """with moved as (update pgbench_tellers set tbalance = 0
        where tid < 3 returning tid, bid) insert into pgbench_history (tid, bid, aid, delta,
        mtime) select tid, bid, 1, 0, now() from moved returning tid""",
}

#: Planner settings each query is explained under (SET LOCAL inside a transaction).
PLANNER_SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    "nestloop": {"enable_hashjoin": "off", "enable_mergejoin": "off"},
    "mergejoin": {"enable_hashjoin": "off", "enable_nestloop": "off"},
    "index": {"enable_seqscan": "off", "enable_bitmapscan": "off"},
    "bitmap": {"enable_seqscan": "off", "enable_indexscan": "off"},
    "parallel": {
        "parallel_setup_cost": "0",
        "parallel_tuple_cost": "0",
        "min_parallel_table_scan_size": "0",
        "min_parallel_index_scan_size": "0",
        "max_parallel_workers_per_gather": "2",
    },
}

EXPLAIN_OPTIONS: dict[str, str] = {
    "plain": "FORMAT JSON",
    "analyze": "ANALYZE, FORMAT JSON",
    "full": "ANALYZE, BUFFERS, VERBOSE, SETTINGS, FORMAT JSON",
}


@dataclass(frozen=True)
class CapturedPlan:
    query: str
    setting: str
    options: str
    sql: str
    text: str


def pgbench_statements() -> dict[str, str]:
    """One statement per template of pgbench's tpcb-like script (BEGIN/END left out)."""
    wl = Workload.benchmark("pgbench", script="tpcb-like", transactions=1)
    out = {}
    for t in wl.templates():
        st = wl.statement(int((wl.template_ids() == t.id).argmax()))
        if st.sql.strip().rstrip(";").upper() not in ("BEGIN", "END"):
            out[f"pgbench_t{t.id}"] = st.sql
    return out


def all_queries() -> dict[str, str]:
    tpch_queries = {f"tpch_q{i}": q for i, q in enumerate(tpch.queries(TPCH_SCALE), start=1)}
    return {**tpch_queries, **EXTRA_QUERIES, **pgbench_statements(), **DML_QUERIES}


def capture(target: SupportsConnect) -> list[CapturedPlan]:
    """Every query under every planner setting and EXPLAIN option set, on `target` (a
    PostgresInstance or DbSession holding the corpus database, see `prepare`)."""
    out: list[CapturedPlan] = []
    with target.connect(autocommit=True) as conn:
        for qname, sql in all_queries().items():
            for sname, settings in PLANNER_SETTINGS.items():
                for oname, options in EXPLAIN_OPTIONS.items():
                    if oname != "plain" and sname not in ("default", "parallel", "nestloop"):
                        continue  # keep ANALYZE runs few: plain EXPLAIN covers the rest
                    try:
                        text = explain_one(
                            conn, sql, options=options, planner_settings=settings, timeout=5.0
                        )
                    except psycopg.errors.QueryCanceled:
                        continue
                    out.append(CapturedPlan(qname, sname, oname, sql, text))
    return out


def prepare(target: Target, bin_dir: Path | str | None = None) -> None:
    """Loads the corpus database into the empty database of `target`: TPC-H (scale
    TPCH_SCALE), pgbench (scale 1, with the client binaries of `bin_dir`) and EXTRA_INDEXES."""
    tpch.load(target, TPCH_SCALE)
    pgbench.load(target, 1, bin_dir=bin_dir)
    with psycopg.connect(target_dsn(target), autocommit=True) as conn:
        for stmt in EXTRA_INDEXES:
            conn.execute(stmt)


def launch_server() -> PostgresInstance:
    """A new local PostgresInstance holding the corpus database (pg_stat_statements
    preloaded, parallel plans allowed); the caller closes it."""
    inst = PostgresInstance.launch(
        knobs={
            "shared_preload_libraries": "pg_stat_statements",
            "max_parallel_workers_per_gather": 2,
        }
    )
    try:
        prepare(inst, bin_dir=inst.bin_dir)
    except BaseException:
        inst.close()
        raise
    return inst
