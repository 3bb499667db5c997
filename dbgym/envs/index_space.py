"""The index action: candidate indexes mined from the workload, one bit each.

Mining (`mine_candidates`): each template's representative statement is EXPLAINed
(VERBOSE, without ANALYZE: nothing runs), and the columns its plan uses are read from the
expressions the planner prints qualified by the relation alias: filters ("Filter", "Index
Cond", "Recheck Cond"), joins ("Hash Cond", "Merge Cond", "Join Filter", and an inner index
scan's "Index Cond"), "Group Key" and "Sort Key". EXPLAIN resolves aliases, unqualified
names, views and CTEs for us, which a SQL tokenizer would have to redo. Statements EXPLAIN
cannot take (BEGIN, utility statements) and extended-protocol statements whose parameters
were not logged are skipped. A column counts for a table with at least `min_rows` rows
(pg_class.reltuples, after ANALYZE when a table was never analyzed).

Candidates: every used column alone, and, up to `max_width` columns, ordered combinations
(a, b, ...) of columns of one table used together by one statement whose prefix is itself a
candidate. A candidate whose columns are the leading columns of an index the database
already has (a primary key, TPC-H's foreign-key indexes) is left out: building it again
changes nothing. Candidates are ranked by how many statements use them (ties: table, then
columns), `max_candidates` kept, prefixes before their extensions.

Sizes (`estimate_sizes`) come from HypoPG (`hypopg_relation_size` of a hypothetical index)
before anything is built; without HypoPG, from reltuples x (the columns' average width from
pg_stats + 16 bytes of tuple overhead) x 1.3.

`IndexSpace`: the MultiBinary action, `repair` (any action becomes applicable: a
multi-column candidate without its prefix chosen is dropped; over the budget, chosen
candidates are dropped from the last one backwards until it fits) and the masks (SWIRL's
rules, Kossmann et al., EDBT 2022: only candidates of the workload; a multi-column candidate
only once its prefix is in force; no candidate larger than the budget left by the indexes in
force). The mask bounds single additions; several new candidates that fit one by one but not
together are cut by `repair`, and `info["notes"]` says so.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import psycopg
from gymnasium import spaces
from numpy.typing import NDArray

from dbgym.dbms.indexes import IndexSpec
from dbgym.errors import InvalidArgumentError
from dbgym.observe.plans import EXPLAINABLE, explain_one

_EXPR_KEYS = (
    "Filter",
    "Index Cond",
    "Recheck Cond",
    "Hash Cond",
    "Merge Cond",
    "Join Filter",
    "Group Key",
    "Sort Key",
)
_QUALIFIED = re.compile(r'(?<![\w."])("?)([A-Za-z_][\w$]*)\1\.("?)([A-Za-z_][\w$]*)\3(?![\w"(])')
_STRING = re.compile(r"'(?:[^']|'')*'")
_FIRST = re.compile(r"^\s*\(*\s*([A-Za-z]+)")
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20, "g": 2**30, "gb": 2**30,
          "t": 2**40, "tb": 2**40}  # fmt: skip
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")

_TABLES_SQL = """
SELECT c.relname, c.reltuples, a.attname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
"""

_EXISTING_SQL = """
SELECT t.relname, array_agg(a.attname ORDER BY k.ord)
FROM pg_index i
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND k.attnum > 0
GROUP BY i.indexrelid, t.relname
"""


def _walk(node: Any, aliases: dict[str, str], exprs: list[str]) -> None:
    if isinstance(node, dict):
        rel = node.get("Relation Name")
        if isinstance(rel, str):
            aliases[str(node.get("Alias", rel))] = rel
        for key in _EXPR_KEYS:
            value = node.get(key)
            if isinstance(value, str):
                exprs.append(value)
            elif isinstance(value, list):
                exprs.extend(str(v) for v in value)
        for child in node.get("Plans", ()):
            _walk(child, aliases, exprs)


def plan_columns(plan_json: str) -> set[tuple[str, str]]:
    """(table, column) pairs an EXPLAIN (VERBOSE, FORMAT JSON) plan's filters, joins,
    group and sort keys use."""
    doc = json.loads(plan_json)
    root = doc[0]["Plan"] if isinstance(doc, list) else doc["Plan"]
    aliases: dict[str, str] = {}
    exprs: list[str] = []
    _walk(root, aliases, exprs)
    out: set[tuple[str, str]] = set()
    for expr in exprs:
        for m in _QUALIFIED.finditer(_STRING.sub("''", expr)):
            table = aliases.get(m.group(2))
            if table is not None:
                out.add((table, m.group(4)))
    return out


def mine_candidates(
    conn: psycopg.Connection[Any],
    statements: Sequence[str],
    *,
    max_width: int,
    min_rows: int,
    max_candidates: int,
    params: Sequence[Sequence[str | None]] | None = None,
) -> list[IndexSpec]:
    """Candidate indexes for `statements` (see the module docstring)."""
    rows = conn.execute(_TABLES_SQL).fetchall()
    if any(float(r[1]) < 0 for r in rows):
        conn.execute("ANALYZE")
        rows = conn.execute(_TABLES_SQL).fetchall()
    reltuples = {str(r[0]): float(r[1]) for r in rows}
    columns = {(str(r[0]), str(r[2])) for r in rows}
    existing = {(str(t), tuple(str(c) for c in cols)) for t, cols in conn.execute(_EXISTING_SQL)}
    covered = {(t, cols[:k]) for t, cols in existing for k in range(1, len(cols) + 1)}
    uses: Counter[tuple[str, tuple[str, ...]]] = Counter()
    for i, text in enumerate(statements):
        m = _FIRST.match(text)
        if m is None or m.group(1).upper() not in EXPLAINABLE:
            continue
        args = tuple(params[i]) if params is not None else ()
        if "$1" in text and not args:
            continue
        try:
            plan = explain_one(conn, text, args, options="VERBOSE, FORMAT JSON", timeout=30.0)
        except psycopg.Error:
            continue
        used = sorted(
            (t, c)
            for t, c in plan_columns(plan)
            if (t, c) in columns and reltuples.get(t, 0.0) >= min_rows
        )
        by_table: dict[str, list[str]] = {}
        for t, c in used:
            by_table.setdefault(t, []).append(c)
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for t, names in by_table.items():
            combos: list[tuple[str, ...]] = [(c,) for c in names]
            frontier = list(combos)
            for _ in range(1, max_width):
                frontier = [(*p, c) for p in frontier for c in names if c not in p]
                combos.extend(frontier)
            seen.update((t, combo) for combo in combos)
        uses.update(seen)
    kept = [k for k in uses if k not in covered]
    kept.sort(key=lambda k: (-uses[k], len(k[1]), k[0], k[1]))
    chosen: list[tuple[str, tuple[str, ...]]] = []
    have = set()
    for t, cols in kept:
        if len(chosen) >= max_candidates:
            break
        prefix_ok = len(cols) == 1 or (t, cols[:-1]) in have or (t, cols[:-1]) in covered
        if prefix_ok:
            chosen.append((t, cols))
            have.add((t, cols))
    chosen.sort(key=lambda k: (len(k[1]), -uses[k], k[0], k[1]))
    return [IndexSpec(t, cols) for t, cols in chosen]


def estimate_sizes(conn: psycopg.Connection[Any], specs: Sequence[IndexSpec]) -> list[int]:
    """Bytes each index would take (HypoPG; see the module docstring for the fallback)."""
    if not specs:
        return []
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
    except psycopg.Error:
        return [_fallback_size(conn, s) for s in specs]
    out: list[int] = []
    try:
        for s in specs:
            cols = ", ".join(f'"{c}"' for c in s.columns)
            table = ".".join(f'"{p}"' for p in s.table.split("."))
            ddl = f"CREATE INDEX ON {table} USING {s.using} ({cols})"
            row = conn.execute(
                "SELECT hypopg_relation_size(indexrelid) FROM hypopg_create_index(%s)", (ddl,)
            ).fetchone()
            out.append(int(row[0]) if row is not None else _fallback_size(conn, s))
    finally:
        conn.execute("SELECT hypopg_reset()")
    return out


def _fallback_size(conn: psycopg.Connection[Any], spec: IndexSpec) -> int:
    row = conn.execute(
        "SELECT greatest(c.reltuples, 0), coalesce(sum(s.avg_width), 0) FROM pg_class c "
        "LEFT JOIN pg_stats s ON s.tablename = c.relname AND s.attname = ANY(%s) "
        "WHERE c.relname = %s GROUP BY c.reltuples",
        (list(spec.columns), spec.table.split(".")[-1]),
    ).fetchone()
    if row is None:
        return 8192
    return max(8192, int(float(row[0]) * (float(row[1]) + 16) * 1.3))


def default_budget(conn: psycopg.Connection[Any]) -> int:
    """The default storage budget: the size of the user tables (heap, without indexes),
    i.e. the indexes may at most double the data's footprint."""
    row = conn.execute(
        "SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%%'"
    ).fetchone()
    return max(int(row[0]) if row is not None else 0, 8192)


def parse_budget(value: int | str) -> int:
    """A budget in bytes: an int, or "2GB" / "500MB" / "1g" / "64kB"."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise InvalidArgumentError(f"index_budget: must be positive, got {value}")
        return value
    m = _BUDGET.match(value) if isinstance(value, str) else None
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise InvalidArgumentError(
            f"index_budget={value!r}: give bytes or a size like '2GB', '500MB', '64kB'"
        )
    return max(1, int(float(m.group(1)) * _UNITS[unit]))


class IndexSpace:
    """The MultiBinary index action over `candidates` (see the module docstring)."""

    def __init__(
        self, candidates: Sequence[IndexSpec], sizes: Sequence[int], budget_bytes: int
    ) -> None:
        if len(candidates) != len(sizes):
            raise InvalidArgumentError(
                f"{len(candidates)} candidates but {len(sizes)} sizes were given"
            )
        if not candidates:
            raise InvalidArgumentError("an index space needs at least one candidate")
        self.candidates: tuple[IndexSpec, ...] = tuple(candidates)
        self.sizes: NDArray[np.int64] = np.asarray(sizes, dtype=np.int64)
        self.budget_bytes = int(budget_bytes)
        self._pos = {(c.table, c.columns): i for i, c in enumerate(self.candidates)}
        #: position of each candidate's prefix candidate (-1: single column, or a prefix
        #: the database already indexes)
        self.prefix: NDArray[np.int64] = np.array(
            [self._pos.get((c.table, c.columns[:-1]), -1) for c in self.candidates],
            dtype=np.int64,
        )
        self.space = spaces.MultiBinary(len(self.candidates))

    def check(self, action: object) -> NDArray[np.int8]:
        arr = np.asarray(action)
        n = len(self.candidates)
        if arr.shape != (n,):
            raise InvalidArgumentError(f"indexes action: expected shape ({n},), got {arr.shape}")
        bad = np.flatnonzero((arr != 0) & (arr != 1))
        if bad.size:
            i = int(bad[0])
            raise InvalidArgumentError(f"indexes action[{i}] = {arr[i]!r}: must be 0 or 1")
        return arr.astype(np.int8)

    def specs(self, bits: object) -> list[IndexSpec]:
        arr = self.check(bits)
        return [c for c, b in zip(self.candidates, arr, strict=True) if b]

    def bits(self, specs: Iterable[IndexSpec]) -> NDArray[np.int8]:
        out = np.zeros(len(self.candidates), dtype=np.int8)
        for s in specs:
            i = self._pos.get((s.table, s.columns))
            if i is not None:
                out[i] = 1
        return out

    def repair(self, action: object) -> tuple[NDArray[np.int8], list[str]]:
        """`action` made applicable (prefix rule, budget), with what was dropped."""
        bits = self.check(action).copy()
        notes: list[str] = []
        for i in range(len(bits)):  # prefixes come first: one pass settles chains
            p = int(self.prefix[i])
            if bits[i] and p >= 0 and not bits[p]:
                bits[i] = 0
                notes.append(f"dropped {self.candidates[i]}: its prefix is not chosen")
        total = int(self.sizes[bits == 1].sum())
        for i in reversed(range(len(bits))):
            if total <= self.budget_bytes:
                break
            if bits[i] and not (bits[self.prefix == i] == 1).any():
                bits[i] = 0
                total -= int(self.sizes[i])
                notes.append(f"dropped {self.candidates[i]}: over the index budget")
        return bits, notes

    def mask(self, current: object) -> NDArray[np.int8]:
        """gymnasium's MultiBinary sample mask (0: must be 0, 2: free) from the indexes
        in force (`current`)."""
        cur = self.check(current)
        room = self.budget_bytes - int(self.sizes[cur == 1].sum())
        allowed = (cur == 1) | (self.sizes <= room)
        has_prefix = self.prefix < 0
        has_prefix |= np.where(self.prefix >= 0, cur[np.maximum(self.prefix, 0)] == 1, False)
        allowed &= has_prefix | (cur == 1)
        return np.where(allowed, 2, 0).astype(np.int8)

    def sb3_mask(self, current: object) -> NDArray[np.bool_]:
        """sb3-contrib MaskablePPO's form: per candidate [may be 0, may be 1], flat."""
        free = self.mask(current) == 2
        return np.stack([np.ones_like(free), free], axis=1).reshape(-1)
