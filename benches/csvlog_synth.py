"""Synthesize a large PostgreSQL 15 csvlog shaped like real server output.

The records copy the layout of rust/trace/testdata/pg15.csv (a real server's csvlog with
log_statement = 'all' and log_min_duration_statement = 0): 26 columns, quoted text fields,
`statement:` lines followed by standalone `duration:` lines, extended-protocol sessions with
`duration: .. parse`/`bind` lines, `execute` lines with a `parameters:` DETAIL, multi-line
analytic queries with string literals, and connection/checkpoint noise.
"""

from __future__ import annotations

import random
from pathlib import Path

_HEAD = ',"{user}","{db}",{pid},"[local]",{sid},{line},"{tag}",{start},{vxid},0,'
_TAIL = ',,,,,,,,"{app}","client backend",,0\n'

_TPCB = [
    "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
    "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;",
    "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
    "VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);",
]

_ANALYTIC = [
    "select\n\tl_returnflag,\n\tl_linestatus,\n\tsum(l_quantity) as sum_qty,\n"
    "\tsum(l_extendedprice * (1 - l_discount)) as sum_disc_price\nfrom\n\tlineitem\nwhere\n"
    "\tl_shipdate <= date '1998-12-01' - interval '{d}' day\ngroup by\n"
    "\tl_returnflag,\n\tl_linestatus\norder by\n\tl_returnflag,\n\tl_linestatus;",
    "select o_orderpriority, count(*) as order_count\nfrom orders\n"
    "where o_orderdate >= date '{y}-0{m}-01'\n  and o_orderdate < date '{y}-0{m}-01' + "
    "interval '3' month\n  and exists (select * from lineitem where l_orderkey = o_orderkey "
    "and l_commitdate < l_receiptdate)\ngroup by o_orderpriority\norder by o_orderpriority",
    "SELECT c.name, c.email FROM customers c WHERE c.id = {a} AND c.status = 'active' "
    "AND c.note <> 'it''s {b}'",
    "select * from orders where customer_id = {a} and total > {f} order by created_at desc "
    "limit {c}",
]


def _q(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


class _Clock:
    def __init__(self) -> None:
        self.ms = 0

    def tick(self, rng: random.Random) -> str:
        self.ms += rng.randint(0, 3)
        s, ms = divmod(self.ms, 1000)
        m, s = divmod(s, 60)
        h, m = divmod(m, 60)
        return f"2026-11-22 {h % 24:02d}:{m:02d}:{s:02d}.{ms:03d} UTC"


def _session(rng: random.Random, idx: int, out: list[str]) -> int:
    """Append one session's records (without their leading timestamp); returns its statements."""
    pid = 20000 + idx
    sid = f"6b0{idx:05x}.{pid:x}"
    start = f"2026-11-22 00:{idx // 60 % 60:02d}:{idx % 60:02d} UTC"
    user, db = rng.choice([("app", "shop"), ("bench", "postgres"), ("report", "dw")])
    line = 0
    statements = 0

    def rec(tag: str, msg: str, detail: str = "", app: str = "") -> None:
        nonlocal line, statements
        line += 1
        if msg.startswith(("statement: ", "execute ")):
            statements += 1
        head = _HEAD.format(
            user=user,
            db=db,
            pid=pid,
            sid=sid,
            line=line,
            tag=tag,
            start=start,
            vxid=f"3/{line}",
        )
        det = _q(detail) if detail else ""
        out.append(f"{head}LOG,00000,{_q(msg)},{det}{_TAIL.format(app=app)}")

    out.append(
        _HEAD.format(
            user=user,
            db=db,
            pid=pid,
            sid=sid,
            line=0,
            tag="authentication",
            start=start,
            vxid="",
        )
        + f"LOG,00000,{_q(f'connection authorized: user={user} database={db}')},"
        + _TAIL.format(app="")
    )
    kind = idx % 3
    for _ in range(rng.randint(20, 60)):
        dur = f"{rng.random() * 3:.3f}"
        if kind == 0:  # pgbench -M extended: parse/bind/execute/duration per statement
            rec("BEGIN", "statement: BEGIN;")
            rec("BEGIN", f"duration: {dur} ms")
            aid, tid, bid, delta = (
                rng.randint(1, 100000),
                rng.randint(1, 10),
                rng.randint(1, 1),
                rng.randint(-5000, 5000),
            )
            values = [[delta, aid], [aid], [delta, tid], [delta, bid], [tid, bid, aid, delta]]
            for sql, vals in zip(_TPCB, values, strict=True):
                params = ", ".join(f"${i + 1} = '{v}'" for i, v in enumerate(vals))
                rec("PARSE", f"duration: 0.0{rng.randint(10, 99)} ms  parse <unnamed>: {sql}")
                rec(
                    "BIND",
                    f"duration: 0.0{rng.randint(10, 99)} ms  bind <unnamed>: {sql}",
                    f"parameters: {params}",
                )
                rec("UPDATE", f"execute <unnamed>: {sql}", f"parameters: {params}", "pgbench")
                rec("UPDATE", f"duration: {dur} ms", app="pgbench")
            rec("COMMIT", "statement: END;")
            rec("COMMIT", f"duration: {dur} ms")
        elif kind == 1:  # application with the simple protocol, literals inline
            a, b, c = rng.randint(1, 10**6), rng.randint(1, 999), rng.randint(1, 100)
            f = f"{rng.random() * 1000:.2f}"
            sql = rng.choice(_ANALYTIC[2:]).format(a=a, b=b, c=c, f=f)
            rec("SELECT", f"statement: {sql}", app="shop-api")
            rec("SELECT", f"duration: {dur} ms", app="shop-api")
        else:  # reporting: multi-line analytic queries
            sql = rng.choice(_ANALYTIC[:2]).format(
                d=rng.randint(60, 120), y=rng.randint(1993, 1997), m=rng.randint(1, 9)
            )
            rec("SELECT", f"statement: {sql}", app="psql")
            rec("SELECT", f"duration: {rng.random() * 900:.3f} ms", app="psql")
    rec("idle", "disconnection: session time: 0:00:01.234 user=x database=y host=[local]")
    return statements


def write_csvlog(path: Path, target_bytes: int, seed: int = 15721) -> int:
    """Write a csvlog of about `target_bytes`; returns the number of statements in it."""
    rng = random.Random(seed)
    clock = _Clock()
    size = 0
    idx = 0
    statements = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        while size < target_bytes:
            out: list[str] = []
            # Interleave a few sessions like concurrent backends do.
            batch: list[list[str]] = []
            for _ in range(4):
                recs: list[str] = []
                statements += _session(rng, idx, recs)
                idx += 1
                batch.append(recs)
            longest = max(len(b) for b in batch)
            for i in range(longest):
                out.extend(clock.tick(rng) + b[i] for b in batch if i < len(b))
            if idx % 40 == 0:
                ts = clock.tick(rng)
                out.append(
                    f"{ts},,,{19000},,6b0.4a38,{idx},,{ts[:19]} UTC,,0,LOG,00000,"
                    '"checkpoint starting: time",,,,,,,,,"","checkpointer",,0\n'
                )
            text = "".join(out)
            f.write(text)
            size += len(text.encode())
    return statements
