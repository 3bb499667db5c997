"""Real EXPLAIN (FORMAT JSON) plans captured from a live server, for tests and the bench.

A small TPC-H-shaped database (schema by SQL, rows by generate_series) plus pgbench's
tables; TPC-H-style queries, pgbench's statements and extra shapes (CTEs, recursive
CTEs, window functions, set operations, subplans, locking, DML), each explained under
several planner settings and EXPLAIN option sets. DML under ANALYZE runs inside a
transaction that is rolled back.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.string import TextLoader

from tests.pg_throwaway import BIN_DIR, ThrowawayServer

SCHEMA = """
CREATE TABLE region (r_regionkey int PRIMARY KEY, r_name text NOT NULL, r_comment text);
CREATE TABLE nation (n_nationkey int PRIMARY KEY, n_name text NOT NULL,
                     n_regionkey int NOT NULL REFERENCES region, n_comment text);
CREATE TABLE supplier (s_suppkey int PRIMARY KEY, s_name text, s_address text,
                       s_nationkey int NOT NULL REFERENCES nation, s_phone text,
                       s_acctbal numeric(15,2), s_comment text);
CREATE TABLE customer (c_custkey int PRIMARY KEY, c_name text, c_address text,
                       c_nationkey int NOT NULL REFERENCES nation, c_phone text,
                       c_acctbal numeric(15,2), c_mktsegment text, c_comment text);
CREATE TABLE part (p_partkey int PRIMARY KEY, p_name text, p_mfgr text, p_brand text,
                   p_type text, p_size int, p_container text, p_retailprice numeric(15,2),
                   p_comment text);
CREATE TABLE partsupp (ps_partkey int NOT NULL REFERENCES part, ps_suppkey int NOT NULL
                       REFERENCES supplier, ps_availqty int, ps_supplycost numeric(15,2),
                       ps_comment text, PRIMARY KEY (ps_partkey, ps_suppkey));
CREATE TABLE orders (o_orderkey int PRIMARY KEY, o_custkey int NOT NULL REFERENCES customer,
                     o_orderstatus char(1), o_totalprice numeric(15,2), o_orderdate date,
                     o_orderpriority text, o_clerk text, o_shippriority int, o_comment text);
CREATE TABLE lineitem (l_orderkey int NOT NULL REFERENCES orders, l_partkey int NOT NULL,
                       l_suppkey int NOT NULL, l_linenumber int NOT NULL,
                       l_quantity numeric(15,2), l_extendedprice numeric(15,2),
                       l_discount numeric(15,2), l_tax numeric(15,2), l_returnflag char(1),
                       l_linestatus char(1), l_shipdate date, l_commitdate date,
                       l_receiptdate date, l_shipinstruct text, l_shipmode text,
                       l_comment text, PRIMARY KEY (l_orderkey, l_linenumber));

INSERT INTO region SELECT i, (ARRAY['AFRICA','AMERICA','ASIA','EUROPE','MIDDLE EAST'])[i+1], 'r'
  FROM generate_series(0, 4) i;
INSERT INTO nation SELECT i, 'NATION' || i, i % 5, 'n' FROM generate_series(0, 24) i;
INSERT INTO supplier SELECT i, 'Supplier#' || i, 'addr', i % 25, '11-' || i,
  (i * 37 % 10000) - 999, CASE WHEN i % 50 = 0 THEN 'Customer Complaints' ELSE 'ok' END
  FROM generate_series(1, 200) i;
INSERT INTO customer SELECT i, 'Customer#' || i, 'addr', i % 25,
  (10 + i % 25) || '-' || i, (i * 13 % 10000) - 999,
  (ARRAY['AUTOMOBILE','BUILDING','FURNITURE','HOUSEHOLD','MACHINERY'])[i % 5 + 1], 'c'
  FROM generate_series(1, 3000) i;
INSERT INTO part SELECT i, 'part ' || (ARRAY['green','forest','blue','red'])[i % 4 + 1],
  'Manufacturer#' || (i % 5 + 1), 'Brand#' || (i % 5 + 1) || (i % 5 + 1),
  (ARRAY['PROMO BRUSHED TIN','STANDARD POLISHED BRASS','ECONOMY ANODIZED STEEL'])[i % 3 + 1],
  i % 50 + 1, (ARRAY['SM CASE','MED BOX','LG PACK','JUMBO JAR'])[i % 4 + 1], 900 + i % 200, 'p'
  FROM generate_series(1, 4000) i;
INSERT INTO partsupp SELECT p, (p + k * 50) % 200 + 1, (p * k) % 9999 + 1, (p % 1000) + 1, 'ps'
  FROM generate_series(1, 4000) p, generate_series(0, 3) k;
INSERT INTO orders SELECT i, (i * 7) % 3000 + 1, (ARRAY['O','F','P'])[i % 3 + 1], i % 50000 + 100,
  date '1992-01-01' + (i % 2400), (ARRAY['1-URGENT','2-HIGH','3-MEDIUM','4-NOT SPECIFIED',
  '5-LOW'])[i % 5 + 1], 'Clerk#' || (i % 1000), 0,
  CASE WHEN i % 97 = 0 THEN 'special requests' ELSE 'o' END
  FROM generate_series(1, 30000) i;
INSERT INTO lineitem SELECT o, (o * 31 + l) % 4000 + 1, (o + l) % 200 + 1, l, (o + l) % 50 + 1,
  1000 + (o * l) % 9000, ((o + l) % 11) / 100.0, ((o + l) % 9) / 100.0,
  (ARRAY['R','A','N'])[(o + l) % 3 + 1], (ARRAY['O','F'])[(o + l) % 2 + 1],
  date '1992-01-02' + (o % 2400) + l, date '1992-01-30' + (o % 2400),
  date '1992-01-05' + (o % 2400) + l * 2, 'DELIVER IN PERSON',
  (ARRAY['MAIL','SHIP','AIR','TRUCK','RAIL'])[(o + l) % 5 + 1], 'l'
  FROM generate_series(1, 30000) o, generate_series(1, 4) l;
CREATE INDEX lineitem_partkey_idx ON lineitem (l_partkey);
CREATE INDEX lineitem_shipdate_idx ON lineitem (l_shipdate);
CREATE INDEX orders_custkey_idx ON orders (o_custkey);
CREATE INDEX orders_orderdate_idx ON orders (o_orderdate);
CREATE INDEX partsupp_suppkey_idx ON partsupp (ps_suppkey);
ANALYZE;
"""

TPCH_QUERIES: dict[str, str] = {
    "tpch_q1": """select l_returnflag, l_linestatus, sum(l_quantity) as sum_qty,
        sum(l_extendedprice) as sum_base_price,
        sum(l_extendedprice * (1 - l_discount)) as sum_disc_price,
        sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) as sum_charge,
        avg(l_quantity) as avg_qty, avg(l_extendedprice) as avg_price,
        avg(l_discount) as avg_disc, count(*) as count_order
        from lineitem where l_shipdate <= date '1998-12-01' - interval '90' day
        group by l_returnflag, l_linestatus order by l_returnflag, l_linestatus""",
    "tpch_q2": """select s_acctbal, s_name, n_name, p_partkey, p_mfgr
        from part, supplier, partsupp, nation, region
        where p_partkey = ps_partkey and s_suppkey = ps_suppkey and p_size = 15
          and p_type like '%BRASS' and s_nationkey = n_nationkey
          and n_regionkey = r_regionkey and r_name = 'EUROPE'
          and ps_supplycost = (select min(ps_supplycost) from partsupp, supplier, nation, region
              where p_partkey = ps_partkey and s_suppkey = ps_suppkey
                and s_nationkey = n_nationkey and n_regionkey = r_regionkey
                and r_name = 'EUROPE')
        order by s_acctbal desc, n_name, s_name, p_partkey limit 100""",
    "tpch_q3": """select l_orderkey, sum(l_extendedprice * (1 - l_discount)) as revenue,
        o_orderdate, o_shippriority from customer, orders, lineitem
        where c_mktsegment = 'BUILDING' and c_custkey = o_custkey and l_orderkey = o_orderkey
          and o_orderdate < date '1995-03-15' and l_shipdate > date '1995-03-15'
        group by l_orderkey, o_orderdate, o_shippriority
        order by revenue desc, o_orderdate limit 10""",
    "tpch_q4": """select o_orderpriority, count(*) as order_count from orders
        where o_orderdate >= date '1993-07-01' and o_orderdate < date '1993-10-01'
          and exists (select * from lineitem where l_orderkey = o_orderkey
                      and l_commitdate < l_receiptdate)
        group by o_orderpriority order by o_orderpriority""",
    "tpch_q5": """select n_name, sum(l_extendedprice * (1 - l_discount)) as revenue
        from customer, orders, lineitem, supplier, nation, region
        where c_custkey = o_custkey and l_orderkey = o_orderkey and l_suppkey = s_suppkey
          and c_nationkey = s_nationkey and s_nationkey = n_nationkey
          and n_regionkey = r_regionkey and r_name = 'ASIA'
          and o_orderdate >= date '1994-01-01' and o_orderdate < date '1995-01-01'
        group by n_name order by revenue desc""",
    "tpch_q6": """select sum(l_extendedprice * l_discount) as revenue from lineitem
        where l_shipdate >= date '1994-01-01' and l_shipdate < date '1995-01-01'
          and l_discount between 0.05 and 0.07 and l_quantity < 24""",
    "tpch_q10": """select c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) as revenue,
        c_acctbal, n_name from customer, orders, lineitem, nation
        where c_custkey = o_custkey and l_orderkey = o_orderkey
          and o_orderdate >= date '1993-10-01' and o_orderdate < date '1994-01-01'
          and l_returnflag = 'R' and c_nationkey = n_nationkey
        group by c_custkey, c_name, c_acctbal, n_name order by revenue desc limit 20""",
    "tpch_q11": """select ps_partkey, sum(ps_supplycost * ps_availqty) as value
        from partsupp, supplier, nation
        where ps_suppkey = s_suppkey and s_nationkey = n_nationkey and n_name = 'NATION7'
        group by ps_partkey having sum(ps_supplycost * ps_availqty) > (
            select sum(ps_supplycost * ps_availqty) * 0.0001 from partsupp, supplier, nation
            where ps_suppkey = s_suppkey and s_nationkey = n_nationkey and n_name = 'NATION7')
        order by value desc""",
    "tpch_q13": """select c_count, count(*) as custdist from (
            select c_custkey, count(o_orderkey) from customer left outer join orders
              on c_custkey = o_custkey and o_comment not like '%special%requests%'
            group by c_custkey) as c_orders (c_custkey, c_count)
        group by c_count order by custdist desc, c_count desc""",
    "tpch_q16": """select p_brand, p_type, p_size, count(distinct ps_suppkey) as supplier_cnt
        from partsupp, part where p_partkey = ps_partkey and p_brand <> 'Brand#45'
          and p_type not like 'MEDIUM POLISHED%' and p_size in (49, 14, 23, 45, 19, 3, 36, 9)
          and ps_suppkey not in (select s_suppkey from supplier
                                 where s_comment like '%Customer%Complaints%')
        group by p_brand, p_type, p_size
        order by supplier_cnt desc, p_brand, p_type, p_size""",
    "tpch_q17": """select sum(l_extendedprice) / 7.0 as avg_yearly from lineitem, part
        where p_partkey = l_partkey and p_brand = 'Brand#23' and p_container = 'MED BOX'
          and l_quantity < (select 0.2 * avg(l_quantity) from lineitem
                            where l_partkey = p_partkey)""",
    "tpch_q18": """select c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice,
        sum(l_quantity) from customer, orders, lineitem
        where o_orderkey in (select l_orderkey from lineitem group by l_orderkey
                             having sum(l_quantity) > 150)
          and c_custkey = o_custkey and o_orderkey = l_orderkey
        group by c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice
        order by o_totalprice desc, o_orderdate limit 100""",
    "tpch_q22": """select cntrycode, count(*) as numcust, sum(c_acctbal) as totacctbal from (
            select substring(c_phone from 1 for 2) as cntrycode, c_acctbal from customer
            where substring(c_phone from 1 for 2) in ('13', '31', '23', '29', '30', '18', '17')
              and c_acctbal > (select avg(c_acctbal) from customer where c_acctbal > 0.00
                  and substring(c_phone from 1 for 2) in ('13','31','23','29','30','18','17'))
              and not exists (select * from orders where o_custkey = c_custkey)) as custsale
        group by cntrycode order by cntrycode""",
}

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
    "pgbench_update_accounts": "UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid = 42",
    "pgbench_select": "SELECT abalance FROM pgbench_accounts WHERE aid = 42",
    "pgbench_update_tellers": "UPDATE pgbench_tellers SET tbalance = tbalance + 7 WHERE tid = 3",
    "pgbench_update_branches": "UPDATE pgbench_branches SET bbalance = bbalance + 7 WHERE bid = 1",
    "pgbench_insert_history": (
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
        "VALUES (3, 1, 42, 7, CURRENT_TIMESTAMP)"
    ),
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


def load_schema(conn: psycopg.Connection[Any]) -> None:
    conn.execute(SCHEMA)


def init_pgbench(server: ThrowawayServer) -> None:
    subprocess.run(
        [
            str(BIN_DIR / "pgbench"),
            "-i",
            "-s",
            "1",
            "-q",
            "-h",
            str(server.dir),
            "-p",
            str(server.port),
            "-U",
            "postgres",
            "postgres",
        ],
        check=True,
        capture_output=True,
    )


def explain_text(
    conn: psycopg.Connection[Any], sql: str, options: str, settings: dict[str, str]
) -> str:
    """EXPLAIN (options) sql as the server's JSON text, in a rolled-back transaction."""
    conn.adapters.register_loader("json", TextLoader)
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        for name, value in settings.items():
            cur.execute(f"SET LOCAL {name} = '{value}'")
        row = cur.execute(f"EXPLAIN ({options}) {sql}").fetchone()
        assert row is not None
        return str(row[0])


def capture(server: ThrowawayServer) -> list[CapturedPlan]:
    """Every query under every planner setting and EXPLAIN option set."""
    out: list[CapturedPlan] = []
    queries = {**TPCH_QUERIES, **EXTRA_QUERIES, **DML_QUERIES}
    with server.connect(autocommit=True) as conn:
        for qname, sql in queries.items():
            for sname, settings in PLANNER_SETTINGS.items():
                for oname, options in EXPLAIN_OPTIONS.items():
                    if oname != "plain" and sname not in ("default", "parallel", "nestloop"):
                        continue  # keep ANALYZE runs few: plain EXPLAIN covers the rest
                    text = explain_text(conn, sql, options, settings)
                    out.append(CapturedPlan(qname, sname, oname, sql, text))
    return out


@functools.cache
def corpus_server() -> ThrowawayServer:
    """One server per test session with the schema and pgbench tables loaded."""
    import atexit

    server = ThrowawayServer()
    atexit.register(server.stop)
    with server.connect(autocommit=True) as conn:
        load_schema(conn)
    init_pgbench(server)
    return server


@functools.cache
def corpus() -> tuple[CapturedPlan, ...]:
    return tuple(capture(corpus_server()))
