"""The index action: candidate indexes mined from a workload, their sizes, the budget,
and `IndexSpace` (a MultiBinary over the candidates, with repair and SWIRL-style masks).

Mining (`mine_candidates`): each statement is explained with EXPLAIN (VERBOSE, FORMAT
JSON), which qualifies every column reference with its relation's (unique) alias. The
plan's expressions that decide which rows are read or how they are combined - "Filter"
(of scans and joins), "Index Cond", "Recheck Cond", "Hash Cond", "Merge Cond", "Join
Filter", "Cache Key" - give every `alias.column` they mention; "Group Key", "Sort Key"
and "Presorted Key" give their plain column keys (not aggregates or expressions). Aliases
map to tables through the plan's scan nodes ("Relation Name", "Schema", "Alias"), so
aliases, self-joins and unqualified names are resolved by PostgreSQL itself. Statements
with `$n` placeholders are explained as a generic plan: PREPARE, then EXPLAIN EXECUTE with
NULL arguments under `plan_cache_mode = force_generic_plan` (PostgreSQL 15 has no
EXPLAIN (GENERIC_PLAN)); a statement EXPLAIN refuses (BEGIN, DDL, a placeholder whose
type cannot be inferred) is skipped.

Candidates: one single-column btree index per column used, plus ordered multi-column
indexes (a, b, ...) up to `max_width` columns on one table whose columns are all used by
one statement and whose prefix (all but the last column) is itself a candidate. Left out:
tables with fewer than `min_rows` rows (pg_class.reltuples; tables never analyzed are
ANALYZEd first), system tables, and candidates whose columns are the leading key columns
of an existing non-partial btree index of the database (the primary key's first column,
say): such an index already serves them. Their extensions stay candidates, standing
alone (the prefix is always in force), unless the prefix is a unique index's whole key
(a primary key): one row per key leaves nothing for a second column to narrow. dbgym's
own indexes (dbgym.dbms.indexes) do not count as existing.

Ranking: by the number of statements using the candidate (all its columns), then fewer
columns, then table and column names; the first `max_candidates` are kept. A prefix is
used by at least as many statements as its extensions and has fewer columns, so it ranks
before them: the kept set holds the prefix of each of its multi-column candidates.

Sizes (`estimate_sizes`): HypoPG's estimate of each candidate (hypothetical indexes
created and dropped again on the given connection; only those, so hypothetical indexes
someone else made on the connection stay), corrected twice. (1) HypoPG counts a btree
tuple's header and line pointer once per column (hypo_estimate_index), so it makes a
two-integer index 1.6x the size of a one-integer one where PostgreSQL stores the same 20
bytes per row; when HypoPG's figure is what that formula gives, it is rescaled to the
per-tuple overhead counted once (HypoPG's 30 % bloat stays). (2) HypoPG ignores btree
deduplication (PostgreSQL 13+), which stores a run of equal keys once: a date column of
TPC-H's lineitem takes a third of HypoPG's figure. So sizes are scaled by a deduplication
factor from pg_stats' n_distinct (see _dedup_factor) when every column's type allows
deduplication (numeric and float do not). Without HypoPG (the extension cannot be
created) the same model is computed from pg_class.reltuples and pg_stats.avg_width (8
bytes when unknown): reltuples x (MAXALIGN(8 + key bytes) + 4) x 1.3 / usable page
bytes, deduplicated likewise, in whole 8 kB pages. On TPC-H SF 0.01 and pgbench scale 1
both are within 0.85x-1.2x of the built index (tests/test_env_index_space.py).

Budget: `default_budget` is the total size of the user tables (pg_table_size, i.e. heap,
TOAST, free space and visibility maps, of every ordinary table outside the system
schemas): indexes may take as much room as the data. `parse_budget` reads "2GB", "500MB",
"1g", "64kB" or bytes.

`IndexSpace` rules (SWIRL, Kossmann et al., EDBT 2022): only mined candidates can be
chosen; a multi-column candidate only together with its prefix; the chosen set must fit
the budget. `repair` makes any MultiBinary action follow them (deterministically, with a
note per dropped candidate); `mask` (against the indexes in force) hides what SWIRL
hides, so any single change it allows needs no repair, while several changes at once may
(over budget together, or a prefix dropped while an extension is added): `repair`
resolves those. `mask(strict=True)` guarantees instead that every masked sample needs no
repair, by allowing fewer changes (see there). `sb3_mask` is either in sb3-contrib
MaskablePPO's layout.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import permutations
from typing import Any

import numpy as np
import psycopg
from gymnasium import spaces
from numpy.typing import NDArray

from dbgym.dbms.indexes import INDEX_PREFIX, IndexSpec
from dbgym.dbms.knobs import memory_limit_bytes
from dbgym.errors import InvalidArgumentError, SpecError
from dbgym.observe.plans import explain_one

#: Plan node fields whose expressions select or combine rows: every column they mention.
_PREDICATE_FIELDS = (
    "Index Cond",
    "Recheck Cond",
    "Hash Cond",
    "Merge Cond",
    "Join Filter",
    "Cache Key",
)
#: Plan node fields listing keys: only the keys that are plain column references.
_KEY_FIELDS = ("Group Key", "Sort Key", "Presorted Key")
#: Node types whose "Filter" is a HAVING-like condition on computed values, not on rows.
_NO_FILTER_NODES = frozenset({"Aggregate", "Group", "WindowAgg", "Result", "SetOp"})
_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_REF = re.compile(rf'(?<![\w$."])({_IDENT})\.({_IDENT})(?![\w$."(])')
_KEY = re.compile(
    rf"^\(*({_IDENT})\.({_IDENT})\)*(?:\s+(?:ASC|DESC|USING\s+\S+))?(?:\s+NULLS\s+(?:FIRST|LAST))?$"
)
_STRING = re.compile(r"'(?:[^']|'')*'")
_PLACEHOLDER = re.compile(r"\$(\d+)")
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
#: Seconds one EXPLAIN may take while mining.
EXPLAIN_TIMEOUT = 30.0
_PAGE = 8192
#: Bytes of a btree page that hold tuples (page header 24, btree special space 16).
_USABLE = _PAGE - 24 - 16
#: HypoPG's btree bloat: (200 - fillfactor 90 + 20 % additional bloat) / 100.
_BLOAT = 1.3


def _unquote(ident: str) -> str:
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident


@dataclass(frozen=True)
class _Table:
    oid: int
    schema: str
    name: str
    rows: float
    columns: frozenset[str]

    @property
    def spec_name(self) -> str:
        """The table as IndexSpec spells it: bare in "public", else schema-qualified."""
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"


def _user_tables(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], _Table]:
    """(schema, name) -> table, for the ordinary and partitioned user tables; tables never
    analyzed (reltuples < 0) are ANALYZEd first."""
    query = (
        "SELECT c.oid, n.nspname, c.relname, c.reltuples FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%s) "
        "AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast%%'"
    )
    rows = conn.execute(query, (list(_SYSTEM_SCHEMAS),)).fetchall()
    unanalyzed = [(schema, name) for _, schema, name, tuples in rows if tuples < 0]
    if unanalyzed:
        from psycopg import sql

        for schema, name in unanalyzed:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, name)))
        rows = conn.execute(query, (list(_SYSTEM_SCHEMAS),)).fetchall()
    columns: dict[int, set[str]] = {}
    for oid, attname in conn.execute(
        "SELECT attrelid, attname FROM pg_attribute WHERE attrelid = ANY(%s) AND attnum > 0 "
        "AND NOT attisdropped",
        ([r[0] for r in rows],),
    ):
        columns.setdefault(int(oid), set()).add(str(attname))
    return {
        (str(schema), str(name)): _Table(
            int(oid), str(schema), str(name), float(tuples), frozenset(columns.get(int(oid), ()))
        )
        for oid, schema, name, tuples in rows
    }


def _existing_prefixes(conn: psycopg.Connection[Any]) -> dict[tuple[int, tuple[str, ...]], bool]:
    """(table oid, leading key columns) of every prefix of the valid, non-partial btree
    indexes not made by dbgym -> whether those columns are a unique index's whole key
    (then a longer index starting with them finds no fewer rows)."""
    rows = conn.execute(
        "SELECT i.indrelid, ic.relname, i.indnkeyatts, i.indisunique, "
        "  array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "        LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "        ORDER BY k.ord) "
        "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
        "JOIN pg_am am ON am.oid = ic.relam "
        "WHERE am.amname = 'btree' AND i.indisvalid AND i.indpred IS NULL"
    ).fetchall()
    out: dict[tuple[int, tuple[str, ...]], bool] = {}
    for relid, name, nkey, unique, names in rows:
        if str(name).startswith(INDEX_PREFIX):
            continue
        keys: list[str] = []
        for k, col in enumerate(list(names)[: int(nkey)]):
            if col is None:  # an expression column ends the usable prefix
                break
            keys.append(str(col))
            whole = bool(unique) and k == int(nkey) - 1
            out[(int(relid), tuple(keys))] = out.get((int(relid), tuple(keys)), False) or whole
    return out


def _explain(
    conn: psycopg.Connection[Any], statement: str, params: tuple[str | None, ...] | None
) -> Any | None:
    """The EXPLAIN (VERBOSE, FORMAT JSON) plan tree of `statement` (with `params`, or a
    generic plan when it has $n placeholders and no params are given), or None when the
    server refuses to explain it."""
    generic = False
    if not params:
        found = _PLACEHOLDER.findall(_STRING.sub("''", statement))
        params = (None,) * max((int(m) for m in found), default=0)
        generic = bool(params)
    try:
        text = explain_one(
            conn,
            statement,
            params,
            options="VERBOSE, FORMAT JSON",
            planner_settings={"plan_cache_mode": "force_generic_plan"} if generic else None,
            timeout=EXPLAIN_TIMEOUT,
        )
    except psycopg.Error:
        if conn.broken or conn.closed:
            raise
        return None
    doc = json.loads(text)
    return doc[0]["Plan"] if doc and isinstance(doc, list) else None


def _nodes(plan: Any) -> Iterable[dict[str, Any]]:
    stack = [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(reversed(node.get("Plans", [])))


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def plan_columns(plan: Any) -> set[tuple[str, str, str]]:
    """(schema, table, column) of the columns a plan tree (EXPLAIN VERBOSE JSON "Plan")
    uses in predicates, join conditions and grouping / sort keys (see the module
    docstring); columns of CTEs, subqueries and functions are not tables' and left out."""
    aliases: dict[str, tuple[str, str]] = {}
    nodes = list(_nodes(plan))
    for node in nodes:
        if "Relation Name" in node and "Alias" in node:
            aliases[str(node["Alias"])] = (str(node.get("Schema", "public")), node["Relation Name"])
    refs: set[tuple[str, str]] = set()
    for node in nodes:
        texts = [t for f in _PREDICATE_FIELDS for t in _as_list(node.get(f))]
        if node.get("Node Type") not in _NO_FILTER_NODES:
            texts += _as_list(node.get("Filter"))
        for text in texts:
            for alias, column in _REF.findall(_STRING.sub("''", text)):
                refs.add((_unquote(alias), _unquote(column)))
        for key in (k for f in _KEY_FIELDS for k in _as_list(node.get(f))):
            m = _KEY.match(key.strip())
            if m:
                refs.add((_unquote(m.group(1)), _unquote(m.group(2))))
    return {(*aliases[a], c) for a, c in refs if a in aliases}


def mine_candidates(
    conn: psycopg.Connection[Any],
    statements: Sequence[str],
    *,
    max_width: int,
    min_rows: int,
    max_candidates: int,
    params: Sequence[Sequence[str | None]] | None = None,
) -> list[IndexSpec]:
    """Candidate btree indexes for `statements` on the connected database, best first (see
    the module docstring). `conn`: an autocommit connection. `params`: per statement, the
    values of its $n placeholders (None: a generic plan is explained instead).
    Deterministic for the same database and statements."""
    if isinstance(statements, str):
        raise InvalidArgumentError("mine_candidates: statements must be a list of SQL texts")
    for key, value in (("max_width", max_width), ("max_candidates", max_candidates)):
        if not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"mine_candidates: {key} must be >= 1, got {value!r}")
    if not isinstance(min_rows, int) or min_rows < 0:
        raise InvalidArgumentError(f"mine_candidates: min_rows must be >= 0, got {min_rows!r}")
    tables = _user_tables(conn)
    existing = _existing_prefixes(conn)
    counts: Counter[tuple[_Table, tuple[str, ...]]] = Counter()
    if params is not None and len(params) != len(statements):
        raise InvalidArgumentError(
            f"mine_candidates: {len(statements)} statements but {len(params)} parameter lists"
        )
    for k, statement in enumerate(statements):
        plan = _explain(conn, statement, tuple(params[k]) if params is not None else None)
        if plan is None:
            continue
        used: dict[_Table, set[str]] = {}
        for schema, name, column in plan_columns(plan):
            table = tables.get((schema, name))
            if table is None or column not in table.columns or table.rows < min_rows:
                continue
            used.setdefault(table, set()).add(column)
        found: set[tuple[_Table, tuple[str, ...]]] = set()
        for table, columns in used.items():
            ordered = sorted(columns)
            for width in range(1, min(max_width, len(ordered)) + 1):
                found.update((table, cols) for cols in permutations(ordered, width))
        counts.update(found)
    kept: set[tuple[_Table, tuple[str, ...]]] = set()
    for width in range(1, max_width + 1):
        for table, cols in counts:
            if len(cols) != width or (table.oid, cols) in existing:
                continue
            prefix = cols[:-1]
            if width == 1 or (table, prefix) in kept or existing.get((table.oid, prefix)) is False:
                kept.add((table, cols))
    ranked = sorted(kept, key=lambda tc: (-counts[tc], len(tc[1]), tc[0].schema, tc[0].name, tc[1]))
    return [IndexSpec(table.spec_name, cols) for table, cols in ranked[:max_candidates]]


def _create_hypopg(conn: psycopg.Connection[Any]) -> bool:
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
    except psycopg.Error:
        if conn.broken or conn.closed:
            raise
        return False
    return True


def _index_ddl(conn: psycopg.Connection[Any], spec: IndexSpec) -> str:
    from psycopg import sql

    return (
        sql.SQL("CREATE INDEX ON {} USING {} ({})")
        .format(
            spec.table_sql(),
            sql.Identifier(spec.using),
            sql.SQL(", ").join(sql.Identifier(c) for c in spec.columns),
        )
        .as_string(conn)
    )


@dataclass(frozen=True)
class _Stats:
    """What the size models need of an index's table and columns."""

    rows: float
    #: pg_stats.avg_width per column, 8 when unknown
    widths: tuple[int, ...]
    #: what HypoPG reads instead (get_attavgwidth): avg_width, 0 when unknown
    hypo_widths: tuple[int, ...]
    distinct: tuple[float, ...]
    #: every column's type supports btree deduplication (an "equalimage" support function
    #: in its default btree operator class, a deterministic collation)
    dedup: bool


def _stats(conn: psycopg.Connection[Any], spec: IndexSpec) -> _Stats:
    qualified = spec.table_sql().as_string(conn)
    row = conn.execute(
        "SELECT c.oid, greatest(c.reltuples, 0), n.nspname, c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
        (qualified,),
    ).fetchone()
    if row is None:
        raise InvalidArgumentError(f"index {spec}: no table {spec.table!r}")
    oid, rows, schema, name = int(row[0]), float(row[1]), str(row[2]), str(row[3])
    info = {
        str(r[0]): r[1:]
        for r in conn.execute(
            "SELECT a.attname, s.avg_width, s.n_distinct, "
            "  coalesce(coll.collisdeterministic, true) AND EXISTS ("
            "    SELECT 1 FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod "
            "    JOIN pg_amproc ap ON ap.amprocfamily = oc.opcfamily "
            "      AND ap.amproclefttype = oc.opcintype AND ap.amprocnum = 4 "
            "    WHERE am.amname = 'btree' AND oc.opcdefault AND (oc.opcintype = a.atttypid "
            "      OR (a.atttypid = 'varchar'::regtype AND oc.opcintype = 'text'::regtype))) "
            "FROM pg_attribute a "
            "LEFT JOIN pg_collation coll ON coll.oid = a.attcollation "
            "LEFT JOIN pg_stats s ON s.schemaname = %s AND s.tablename = %s "
            "  AND s.attname = a.attname AND NOT s.inherited "
            "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped",
            (schema, name, oid),
        )
    }
    missing = [c for c in spec.columns if c not in info]
    if missing:
        raise InvalidArgumentError(
            f"index {spec}: table {spec.table} has no column(s) {', '.join(missing)}"
        )
    widths, hypo_widths, distinct, dedup = [], [], [], spec.using == "btree"
    for c in spec.columns:
        width, nd, equalimage = info[c]
        widths.append(int(width) if width is not None else 8)
        hypo_widths.append(int(width) if width is not None else 0)
        if nd is None:
            distinct.append(rows)
        else:
            distinct.append(float(nd) if float(nd) > 0 else -float(nd) * rows)
        dedup = dedup and bool(equalimage)
    return _Stats(rows, tuple(widths), tuple(hypo_widths), tuple(distinct), dedup)


def _dedup_factor(stats: _Stats) -> float:
    """Size of a deduplicated btree (PostgreSQL 13+) over one without deduplication.

    Without it every row is an index tuple of `tw` = MAXALIGN(8 + key bytes) + 4 (line
    pointer) bytes; with it each run of equal keys is one tuple plus 6 bytes per further
    row (heap TID in the posting list), and a posting list holds at most ~400 TIDs
    (posting tuples are capped at a third of a page)."""
    if not stats.dedup or stats.rows <= 0:
        return 1.0
    tw = _line(stats.widths)
    keys = min(stats.rows, max(1.0, float(np.prod(stats.distinct))))
    groups = max(keys, stats.rows / 400)
    dedup = groups * tw + (stats.rows - groups) * 6
    return min(1.0, dedup / (stats.rows * tw))


def _deduplicated(size: int, factor: float) -> int:
    """A btree's `size` without deduplication scaled by `factor`: the key pages shrink,
    the meta page stays, and more than one leaf page needs a root page."""
    if factor >= 1.0:
        return _PAGE * max(1, math.ceil(size / _PAGE))
    leaves = max(1, math.ceil((size - _PAGE) * factor / _PAGE))
    return _PAGE * (1 + leaves + (leaves > 1))


def _maxalign(n: int) -> int:
    return (n + 7) // 8 * 8


def _line(widths: Sequence[int]) -> int:
    """Bytes of one btree leaf tuple without deduplication: the tuple (8 bytes of header
    and heap TID, then the keys) MAXALIGNed, plus its 4-byte line pointer."""
    return _maxalign(8 + sum(widths)) + 4


def _hypopg_line(widths: Sequence[int]) -> int:
    """HypoPG's bytes per row of a btree (hypo_estimate_index): it counts the tuple
    header and the line pointer once per column, not once per tuple."""
    n = len(widths)
    return sum(widths) + 8 * n + _maxalign(4 * n)


def _hypopg_corrected(hypo: int, stats: _Stats) -> int:
    """HypoPG's btree size with the per-tuple overhead counted once: `hypo` x
    _line / _hypopg_line, when `hypo` is what HypoPG's formula gives for the table's
    rows (within a page or 5 %: the rows HypoPG reads are pg_class's, scaled to the
    table's current size). Otherwise (another HypoPG, an unforeseen estimate) `hypo`."""
    hypo_line = _hypopg_line(stats.hypo_widths)
    expected = math.floor(stats.rows * hypo_line * _BLOAT / _USABLE) * _PAGE
    if abs(hypo - expected) > max(_PAGE, 0.05 * expected) or expected <= _PAGE:
        return hypo
    return round(hypo * _line(stats.widths) / hypo_line)


def _fallback_size(conn: psycopg.Connection[Any], spec: IndexSpec) -> int:
    """The size model without HypoPG: HypoPG's, with the per-tuple overhead counted once."""
    stats = _stats(conn, spec)
    plain = stats.rows * _line(stats.widths) * _BLOAT / _USABLE * _PAGE
    return _deduplicated(max(_PAGE, int(plain)), _dedup_factor(stats))


def estimate_sizes(conn: psycopg.Connection[Any], specs: Sequence[IndexSpec]) -> list[int]:
    """Estimated bytes of each index in `specs` (HypoPG, else the fallback model of the
    module docstring). InvalidArgumentError when a spec's table or column is unknown."""
    if not specs:
        return []
    if not _create_hypopg(conn):
        return [_fallback_size(conn, s) for s in specs]
    sizes: list[int] = []
    oids: list[int] = []
    try:
        for spec in specs:
            try:
                row = conn.execute(
                    "SELECT indexrelid FROM hypopg_create_index(%s)", (_index_ddl(conn, spec),)
                ).fetchone()
            except psycopg.Error as exc:
                if conn.broken or conn.closed:
                    raise
                detail = str(exc).strip().splitlines()[0]
                raise InvalidArgumentError(f"index {spec}: HypoPG refused it: {detail}") from exc
            if row is None:  # pragma: no cover - hypopg_create_index returns one row
                raise InvalidArgumentError(f"index {spec}: HypoPG made no hypothetical index")
            oids.append(int(row[0]))
            size = conn.execute("SELECT hypopg_relation_size(%s)", (oids[-1],)).fetchone()
            hypo = int(size[0]) if size and size[0] is not None else _PAGE
            stats = _stats(conn, spec)
            if spec.using == "btree":
                hypo = _hypopg_corrected(hypo, stats)
            sizes.append(_deduplicated(hypo, _dedup_factor(stats)))
    finally:
        if oids and not (conn.broken or conn.closed):
            conn.execute("SELECT hypopg_drop_index(o) FROM unnest(%s::oid[]) AS o", (oids,))
    return sizes


def default_budget(conn: psycopg.Connection[Any]) -> int:
    """Bytes of the database's ordinary user tables (sum of pg_table_size), at least one
    page: the default index storage budget."""
    row = conn.execute(
        "SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg_temp%%' "
        "AND n.nspname NOT LIKE 'pg_toast%%'",
        (list(_SYSTEM_SCHEMAS),),
    ).fetchone()
    return max(_PAGE, int(row[0]) if row else 0)


def parse_budget(value: int | str) -> int:
    """An index budget in bytes: a positive int, or a string such as "2GB", "500MB",
    "1g", "64kB", "4096" (units k, m, g, powers of 1024; an optional trailing "b", any
    case). SpecError (an InvalidArgumentError) naming index_budget otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SpecError(
            f"index_budget: give bytes or a size like '2GB', got {type(value).__name__}",
            key="index_budget",
        )
    try:
        return memory_limit_bytes(value)
    except InvalidArgumentError:
        raise SpecError(
            f"index_budget={value!r}: give a positive number of bytes or a size like "
            "'2GB', '500MB', '1g', '64kB'",
            key="index_budget",
        ) from None


class IndexSpace:
    """The index action: `space` is MultiBinary(n) over `candidates`; bit i set means
    candidate i is wanted. `sizes` (bytes, int64) and `budget_bytes` bound the chosen
    set's total size. `prefix[i]` is the position of candidate i's prefix (-1 for a
    single-column candidate)."""

    def __init__(
        self,
        candidates: Sequence[IndexSpec],
        sizes: Sequence[int] | NDArray[np.integer[Any]],
        budget_bytes: int,
    ) -> None:
        cands = tuple(candidates)
        if not cands:  # gymnasium has no MultiBinary(0)
            raise InvalidArgumentError("IndexSpace: at least one index candidate is needed")
        bad = [i for i, c in enumerate(cands) if not isinstance(c, IndexSpec)]
        if bad:
            raise InvalidArgumentError(
                f"IndexSpace candidates[{bad[0]}]: an IndexSpec is needed, got "
                f"{type(cands[bad[0]]).__name__}"
            )
        if len(set(cands)) != len(cands):
            twice = next(c for c in cands if cands.count(c) > 1)
            raise InvalidArgumentError(f"IndexSpace: candidate {twice} is listed twice")
        size_arr = np.asarray(sizes)
        if size_arr.shape != (len(cands),) or (
            len(cands) and (size_arr.dtype.kind not in "iu" or int(size_arr.min()) < 0)
        ):
            raise InvalidArgumentError(
                f"IndexSpace sizes: {len(cands)} non-negative integers needed (one per "
                f"candidate), got {sizes!r}"
            )
        if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int | np.integer):
            raise InvalidArgumentError(f"IndexSpace budget_bytes: an int, got {budget_bytes!r}")
        if budget_bytes < 0:
            raise InvalidArgumentError(f"IndexSpace budget_bytes: must be >= 0, got {budget_bytes}")
        position = {c: i for i, c in enumerate(cands)}
        prefix = []
        for c in cands:
            if len(c.columns) == 1:
                prefix.append(-1)
                continue
            # -1 when the prefix is no candidate: the miner does so only for a prefix the
            # database already indexes (always in force)
            p = position.get(IndexSpec(c.table, c.columns[:-1], c.using), -1)
            prefix.append(p)
        self.candidates: tuple[IndexSpec, ...] = cands
        self.sizes: NDArray[np.int64] = size_arr.astype(np.int64)
        self.budget_bytes = int(budget_bytes)
        self.prefix: NDArray[np.int64] = np.asarray(prefix, dtype=np.int64)
        #: extensions[i]: positions of the candidates whose prefix is candidate i
        self.extensions: tuple[tuple[int, ...], ...] = tuple(
            tuple(j for j, p in enumerate(prefix) if p == i) for i in range(len(cands))
        )
        self.space = spaces.MultiBinary(len(cands))
        self._position = position
        self._by_name = {c.name: i for i, c in enumerate(cands)}

    def __len__(self) -> int:
        return len(self.candidates)

    def _check(self, bits: Any, what: str) -> NDArray[np.int8]:
        arr = np.asarray(bits)
        n = len(self.candidates)
        if arr.shape != (n,):
            raise InvalidArgumentError(f"{what}: shape ({n},) needed, got {arr.shape}")
        if arr.dtype.kind not in "biuf" or not np.isin(arr, (0, 1)).all():
            bad = (
                [int(i) for i in np.flatnonzero(~np.isin(arr, (0, 1)))]
                if arr.dtype.kind in "biuf"
                else []
            )
            where = f" (position {bad[0]}: {arr[bad[0]]!r})" if bad else f" (dtype {arr.dtype})"
            raise InvalidArgumentError(f"{what}: values must be 0 or 1{where}")
        return arr.astype(np.int8)

    def specs(self, bits: Any) -> list[IndexSpec]:
        """The candidates whose bit is set, in candidate order."""
        arr = self._check(bits, "index action")
        return [self.candidates[i] for i in np.flatnonzero(arr)]

    def bits(self, specs: Iterable[IndexSpec | str]) -> NDArray[np.int8]:
        """The bit vector of the indexes in force: `specs` are IndexSpec values or their
        names (IndexSpec.name, as dbgym.dbms.indexes.managed lists them).
        InvalidArgumentError for one that is no candidate."""
        if isinstance(specs, str | IndexSpec):
            raise InvalidArgumentError(
                "IndexSpace.bits: give a list of IndexSpec values or index names"
            )
        out = np.zeros(len(self.candidates), dtype=np.int8)
        for spec in specs:
            if isinstance(spec, IndexSpec):
                i = self._position.get(spec)
            elif isinstance(spec, str):
                i = self._by_name.get(spec)
            else:
                raise InvalidArgumentError(
                    f"IndexSpace.bits: an IndexSpec or an index name is needed, got "
                    f"{type(spec).__name__}: {spec!r}"
                )
            if i is None:
                raise InvalidArgumentError(f"index {spec} is not one of the index candidates")
            out[i] = 1
        return out

    def size(self, bits: Any) -> int:
        """Total estimated bytes of the chosen candidates."""
        arr = self._check(bits, "index action")
        return int(self.sizes[arr.astype(bool)].sum())

    def _drop(self, out: NDArray[np.int8], i: int) -> list[int]:
        """Unsets i and (transitively) its chosen extensions; returns what it unset."""
        gone, todo = [], [i]
        while todo:
            k = todo.pop()
            if out[k]:
                out[k] = 0
                gone.append(k)
                todo.extend(self.extensions[k])
        return gone

    def repair(self, action: Any) -> tuple[NDArray[np.int8], list[str]]:
        """`action` made applicable, with a note per change: (1) a multi-column candidate
        whose prefix is not chosen is dropped (in candidate order, so chains of prefixes
        resolve); (2) while the chosen set exceeds the budget, the chosen candidate with
        the highest position (the least used: candidates are ranked best first) is dropped,
        with its chosen extensions. Deterministic; a valid action comes back unchanged."""
        out = self._check(action, "index action").copy()
        notes: list[str] = []
        changed = True
        while changed:  # a chain (a), (a, b), (a, b, c) settles in at most width passes
            changed = False
            for j in np.flatnonzero(out):
                p = int(self.prefix[j])
                if p >= 0 and not out[p]:
                    out[j] = 0
                    changed = True
                    notes.append(
                        f"index candidate {j} ({self.candidates[j]}) dropped: its prefix, "
                        f"candidate {p} ({self.candidates[p]}), is not chosen"
                    )
        total = self.size(out)
        while total > self.budget_bytes:
            i = int(np.flatnonzero(out)[-1])
            for k in self._drop(out, i):
                notes.append(
                    f"index candidate {k} ({self.candidates[k]}, {int(self.sizes[k])} bytes) "
                    f"dropped: the chosen indexes ({total} bytes) exceed the budget of "
                    f"{self.budget_bytes} bytes"
                )
            total = self.size(out)
        return out, notes

    def mask(self, current: Any, *, strict: bool = False) -> NDArray[np.int8]:
        """gymnasium's `MultiBinary.sample(mask=)` form (0: must be 0, 1: must be 1, 2:
        free) against `current`, the indexes in force, following SWIRL: a candidate not in
        force is allowed (2) only if it fits the remaining budget (budget - size of
        `current`) and, for a multi-column one, its prefix is in force; else 0. A candidate
        in force is free, except a prefix of an extension in force, which must stay (1):
        drop the extension first.

        So every action that changes one bit of `current` that the mask allows is
        applicable as is (`repair` changes nothing). Not so for several changes at once:
        new picks the mask allows can together exceed the budget, and dropping a prefix
        in force while adding one of its extensions breaks the prefix rule; `repair`
        resolves those (see there).

        `strict=True` closes both gaps, at a price: new candidates are allowed in
        candidate order (best first) only while their sizes add up to no more than the
        remaining budget (one that does not fit is hidden, later smaller ones may still
        be allowed), and the prefix of an allowed new extension must stay (1). Then, when
        `current` is itself valid (`repair` leaves it unchanged), every action the mask
        allows is: `repair` leaves it unchanged. The price: a candidate that fits alone
        can be hidden behind better-ranked ones, and a prefix with an extension that fits
        cannot be dropped in that step."""
        cur = self._check(current, "current indexes")
        room = self.budget_bytes - self.size(cur)
        out = np.full(len(cur), 2, dtype=np.int8)
        for i in range(len(cur)):
            p = int(self.prefix[i])
            if cur[i]:
                if any(cur[j] for j in self.extensions[i]):
                    out[i] = 1
            elif self.sizes[i] > room or (p >= 0 and not cur[p]):
                out[i] = 0
            elif strict:  # allowed: what is left for the later candidates shrinks
                room -= int(self.sizes[i])
                if p >= 0:
                    out[p] = 1
        return out

    def sb3_mask(self, current: Any, *, strict: bool = False) -> NDArray[np.bool_]:
        """`mask(current, strict=strict)` in sb3-contrib MaskablePPO's MultiBinary layout
        (MaskableBernoulliDistribution treats MultiBinary(n) as MultiDiscrete([2] * n)):
        shape (2n,), per candidate [may be 0, may be 1]."""
        m = self.mask(current, strict=strict)
        out = np.empty((len(m), 2), dtype=bool)
        out[:, 0] = m != 1
        out[:, 1] = m != 0
        return out.reshape(-1)
