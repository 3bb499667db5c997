"""WhatIfEstimator: the environment's `evaluation="estimate"` mode (no execution).

A configuration is costed by EXPLAIN (FORMAT JSON) of each template's representative
statement, with the configuration's indexes as HypoPG hypothetical indexes and its
settings applied in the estimator's own session: a template's cost is the plan's
"Total Cost", the step's value is the sum of cost x statement count.

What estimate mode can see. Only settings the planner reads in a session are applied:
pg_settings context "user" or "superuser" (random_page_cost, seq_page_cost, cpu_*_cost,
effective_cache_size, work_mem, hash_mem_multiplier, the enable_* switches,
join_collapse_limit, from_collapse_limit, max_parallel_workers_per_gather, jit, ...).
The others are validated (an unknown name or a bad value raises KnobError) and then
ignored, because no session can change them and the planner does not read them:
shared_buffers (the planner uses effective_cache_size instead), wal_*/checkpoint_*/
bgwriter_* knobs, max_connections, max_worker_processes and every other postmaster or
sighup knob. `blind_to(names)` lists the ones given that estimate
mode cannot see. `statement_timeout` is the estimator's own (the `timeout` of one
EXPLAIN), so a value given for it is validated and ignored.

Settings are applied at session level, once per distinct combination: before an EXPLAIN
the estimator sets what differs from what its session holds (one `set_config` query) and
RESETs what the combination no longer has, and the templates to explain are sorted by
their combination so each combination is set once. The planner sees exactly the values it
would see under SET LOCAL in a rolled-back transaction, so the results are identical; the
session form needs no transaction, and one failing EXPLAIN cannot abort the others.

Hypothetical indexes follow `indexes` by diff, per table: the tables whose set of indexes
changed get theirs dropped (hypopg_drop_index) and re-created (hypopg_create_index) in
name order, the other tables' are left alone. The planner breaks exact cost ties by the
order of a table's index list, which HypoPG builds in creation order; re-creating a
changed table's set in one canonical order makes a plan independent of the order in which
earlier steps added indexes, so the same inputs give the same plan bit for bit.
Plans name hypothetical indexes "<oid>btree_table_column"; the estimator rewrites each to
the `IndexSpec.name` of its spec, the name the index has in execute mode.

The cache. At construction a plain EXPLAIN of every template learns the tables its plan
reads (every "Relation Name", plus the parents of partitions and inherited tables); a
template's cache key is (template, the names of the indexes on those tables, the
effective settings: the common ones overridden by the template's own, spelled
canonically). A warm step is one dict lookup per template and no round trip; a cold one
is one EXPLAIN per template whose key changed. Failed EXPLAINs are cached as failures
(cost NaN, the error text) like successes. The plans of that first EXPLAIN (no index, no
setting) are the first cache entries.

A lost connection (server restarted) is reconnected once, and the hypothetical indexes
are created again in the new session; a second loss raises InstanceError. An EXPLAIN
that fails for one template is recorded in `Estimate.errors` and never raised.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.types.string import TextLoader

from dbgym.dbms.indexes import IndexSpec, check_targets, validated
from dbgym.dbms.knobs import CATALOG_SQL, KnobSpec, catalog_from_rows, lookup, normalize
from dbgym.errors import (
    CONNECTION_LOST_SQLSTATES,
    InstanceError,
    InvalidArgumentError,
    KnobError,
)
from dbgym.observe.plans import EXPLAINABLE
from dbgym.types import SupportsConnect, check_seconds

#: pg_settings contexts a session can SET, hence what the planner of a session sees.
PLANNER_CONTEXTS = frozenset({"user", "superuser"})
#: Settings the estimator sets itself (validated when given, then ignored).
OWN_SETTINGS = frozenset({"statement_timeout"})

_FIRST_WORD = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*\(*\s*([A-Za-z]+)", re.S)
_HYPO_NAME = re.compile(r'"(<\d+>[^"\\]*)"')
_PREPARED = "dbgym_whatif"

#: One template as the environment gives it: (slot key, sql, logged params, count).
TemplateRow = tuple[int, str, tuple[str | None, ...], int]
#: A cache key: (template key, index names on its tables, effective settings).
_Key = tuple[int, tuple[str, ...], tuple[tuple[str, str], ...]]
_T = TypeVar("_T")


@dataclass(frozen=True)
class Estimate:
    """One configuration's estimate.

    total: sum of cost x count over the templates whose EXPLAIN worked (failed ones add
        nothing; see `errors`). per_template: the plan's Total Cost by template key (NaN
        when its EXPLAIN failed). plans: EXPLAIN (FORMAT JSON) text by template key (the
        failed ones are absent), hypothetical indexes named by their IndexSpec.name.
    errors: "SQLSTATE: message" by template key. hits, misses: templates answered from the
        cache / explained. seconds: wall time of the call.
    """

    total: float
    per_template: dict[int, float]
    plans: dict[int, str]
    errors: dict[int, str]
    hits: int
    misses: int
    seconds: float


@dataclass(frozen=True)
class _Template:
    key: int
    sql: str
    params: tuple[str | None, ...]
    count: int
    #: lower-case names of the tables its plan reads; None: unknown (every index counts)
    tables: frozenset[str] | None


@dataclass(frozen=True)
class _Entry:
    cost: float
    plan: str | None
    error: str | None


def _first_word(text: str) -> str:
    m = _FIRST_WORD.match(text)
    return m.group(1).upper() if m else ""


def _relations(node: Any, out: set[str]) -> None:
    """Every "Relation Name" anywhere in a JSON plan."""
    if isinstance(node, dict):
        name = node.get("Relation Name")
        if isinstance(name, str):
            out.add(name.lower())
        for value in node.values():
            _relations(value, out)
    elif isinstance(node, list):
        for value in node:
            _relations(value, out)


def _total_cost(plan: str) -> float:
    return float(json.loads(plan)[0]["Plan"]["Total Cost"])


def _table_of(spec: IndexSpec) -> str:
    return spec.table.split(".")[-1].lower()


def _error_text(exc: psycopg.Error) -> str:
    return f"{exc.sqlstate or 'error'}: {str(exc).strip()}"


class WhatIfEstimator:
    """Costs configurations by EXPLAIN with HypoPG (see the module docstring).

    target: an object with `.connect(**kw)` (a DbSession, a PostgresInstance); the
    estimator opens its own connection and closes it in `close()`. templates: (slot key,
    sql, params, count) per template. timeout: seconds one EXPLAIN may take.
    """

    def __init__(
        self,
        target: SupportsConnect,
        templates: Sequence[TemplateRow],
        *,
        timeout: float,
    ) -> None:
        seconds = check_seconds("WhatIfEstimator: timeout", timeout)
        if seconds is None:
            raise InvalidArgumentError("WhatIfEstimator: timeout must be a number of seconds")
        self._timeout_ms = max(1, round(seconds * 1000))
        self._target = target
        rows: dict[int, tuple[str, tuple[str | None, ...], int]] = {}
        for i, row in enumerate(templates):
            try:
                key, text, params, count = row
            except (TypeError, ValueError):
                raise InvalidArgumentError(
                    f"templates[{i}]: give (key, sql, params, count), got {row!r}"
                ) from None
            if isinstance(key, bool) or not isinstance(key, int):
                raise InvalidArgumentError(f"templates[{i}]: key {key!r} is not an int")
            if key in rows:
                raise InvalidArgumentError(f"templates[{i}]: key {key} is given twice")
            if not isinstance(text, str):
                raise InvalidArgumentError(f"templates[{i}]: sql must be a string")
            rows[key] = (text, tuple(params), int(count))
        self._closed = False
        self._conn: psycopg.Connection[Any] | None = None
        #: hypothetical indexes in the session: spec -> (oid, HypoPG's name)
        self._hypo: dict[IndexSpec, tuple[int, str]] = {}
        #: HypoPG's name -> IndexSpec.name, for the indexes of the current session
        self._rename: dict[str, str] = {}
        #: settings this estimator SET in its session (canonical name -> value)
        self._session: dict[str, str] = {}
        self._checked: set[IndexSpec] = set()
        self._cache: dict[_Key, _Entry] = {}
        self._values: dict[tuple[str, str], tuple[str, str, bool]] = {}
        self._conn = self._open()
        try:
            conn = self._conn
            self._catalog: dict[str, KnobSpec] = catalog_from_rows(
                conn.execute(CATALOG_SQL).fetchall()
            )
            self._lower = {name.lower(): spec for name, spec in self._catalog.items()}
            parents: dict[str, set[str]] = {}
            for child, parent in conn.execute(
                "SELECT c.relname, p.relname FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
            ):
                parents.setdefault(str(child).lower(), set()).add(str(parent).lower())
            self._templates: dict[int, _Template] = {}
            for key, (text, params, count) in rows.items():
                entry = self._explain(text, params)
                tables: frozenset[str] | None = None
                if entry.plan is not None:
                    found: set[str] = set()
                    _relations(json.loads(entry.plan), found)
                    todo = list(found)
                    while todo:  # a partition's or child table's parents count too
                        for parent in parents.get(todo.pop(), ()):
                            if parent not in found:
                                found.add(parent)
                                todo.append(parent)
                    tables = frozenset(found)
                    self._cache[(key, (), ())] = entry
                self._templates[key] = _Template(key, text, params, count, tables)
        except BaseException:
            self.close()
            raise

    # -- public --------------------------------------------------------------------------
    @property
    def templates(self) -> dict[int, frozenset[str] | None]:
        """The tables each template's plan reads (None: unknown, its EXPLAIN failed)."""
        return {k: t.tables for k, t in self._templates.items()}

    @property
    def cache_size(self) -> int:
        return len(self._cache)

    def clear_cache(self) -> None:
        """Forget every cached plan (the next estimate explains every template)."""
        self._cache.clear()

    def blind_to(self, names: Sequence[str]) -> list[str]:
        """The settings among `names` estimate mode cannot see (not settable in a session,
        see the module docstring), in the order given; KnobError for an unknown name."""
        out = []
        for name in names:
            spec = self._knob(name)
            if spec.context not in PLANNER_CONTEXTS or spec.name in OWN_SETTINGS:
                out.append(name)
        return out

    def estimate(
        self,
        indexes: Sequence[IndexSpec],
        settings: Mapping[str, str],
        template_settings: Mapping[int, Mapping[str, str]],
    ) -> Estimate:
        """The cost of the configuration (`indexes` as hypothetical indexes, `settings`
        for every template, `template_settings` by template key on top); see `Estimate`.
        InvalidArgumentError (KnobError) for an unknown setting or a bad value, an
        unknown template key, or an index on a missing table or column."""
        t0 = time.perf_counter()
        if self._closed:
            raise InvalidArgumentError("the WhatIfEstimator is closed")
        specs = validated(indexes)
        common = self._settings(settings, "settings")
        per: dict[int, dict[str, str]] = {}
        for key, kv in template_settings.items():
            if key not in self._templates:
                raise InvalidArgumentError(
                    f"template_settings[{key!r}]: no template has key {key!r}"
                )
            per[key] = self._settings(kv, f"template_settings[{key}]")
        new = [s for s in specs if s not in self._checked]
        if new:
            self._retry(lambda conn: check_targets(conn, new))
            self._checked.update(new)
        on_table: dict[str, list[str]] = {}
        for spec in specs:
            on_table.setdefault(_table_of(spec), []).append(spec.name)
        every = tuple(sorted(s.name for s in specs))
        keys: dict[int, _Key] = {}
        misses: list[tuple[_Key, dict[str, str]]] = []
        for key, tmpl in self._templates.items():
            eff = {**common, **per[key]} if key in per else common
            if tmpl.tables is None:
                names = every
            else:
                names = tuple(sorted(n for t in tmpl.tables for n in on_table.get(t, ())))
            ck: _Key = (key, names, tuple(sorted(eff.items())))
            keys[key] = ck
            if ck not in self._cache:
                misses.append((ck, eff))
        if misses:
            self._retry(lambda conn: self._fill(conn, specs, misses))
        per_template: dict[int, float] = {}
        plans: dict[int, str] = {}
        errors: dict[int, str] = {}
        total = 0.0
        for key, ck in keys.items():
            entry = self._cache[ck]
            per_template[key] = entry.cost
            if entry.plan is not None:
                plans[key] = entry.plan
                total += entry.cost * self._templates[key].count
            if entry.error is not None:
                errors[key] = entry.error
        return Estimate(
            total=total,
            per_template=per_template,
            plans=plans,
            errors=errors,
            hits=len(keys) - len(misses),
            misses=len(misses),
            seconds=time.perf_counter() - t0,
        )

    def close(self) -> None:
        """Drop the hypothetical indexes and close the connection (safe to call twice)."""
        self._closed = True
        conn, self._conn = self._conn, None
        self._hypo.clear()
        self._rename.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                if not conn.closed and not conn.broken:
                    conn.execute("SELECT hypopg_reset()")
            with contextlib.suppress(Exception):
                conn.close()

    def __enter__(self) -> WhatIfEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- settings ------------------------------------------------------------------------
    def _knob(self, name: str) -> KnobSpec:
        if not isinstance(name, str):
            raise KnobError(f"setting names are strings, got {name!r}")
        spec = self._lower.get(name.strip().lower())
        if spec is None:
            return lookup(self._catalog, name, self._lower)  # raises, with close names
        return spec

    def _settings(self, given: Mapping[str, str], where: str) -> dict[str, str]:
        """The planner-visible part of `given`, by pg_settings name, values spelled
        canonically; KnobError naming the first bad one."""
        out: dict[str, str] = {}
        seen: dict[str, str] = {}
        for name, value in given.items():
            pair = (name, value if isinstance(value, str) else repr(value))
            known = self._values.get(pair)
            if known is None:
                try:
                    spec = lookup(self._catalog, name, self._lower)
                    text = normalize(spec, value).conf_value
                except KnobError as exc:
                    raise KnobError(f"{where}: {exc}", exc.knob or str(name)) from None
                visible = spec.context in PLANNER_CONTEXTS and spec.name not in OWN_SETTINGS
                known = (spec.name, text, visible)
                self._values[pair] = known
            canonical, text, visible = known
            if canonical in seen:
                raise KnobError(
                    f"{where}: {canonical} is given twice ({seen[canonical]!r} and {name!r})",
                    canonical,
                )
            seen[canonical] = name
            if visible:
                out[canonical] = text
        return out

    def _apply_settings(self, conn: psycopg.Connection[Any], eff: Mapping[str, str]) -> None:
        """Make the session hold exactly `eff` on top of the server's defaults."""
        for name in [n for n in self._session if n not in eff]:
            conn.execute(sql.SQL("RESET {}").format(sql.Identifier(name)))
            del self._session[name]
        changes = [(n, v) for n, v in sorted(eff.items()) if self._session.get(n) != v]
        if not changes:
            return
        try:
            self._set(conn, changes)
        except psycopg.Error as exc:
            if self._lost(conn, exc):
                raise
            for name, value in changes:  # which one the server refused
                try:
                    self._set(conn, [(name, value)])
                except psycopg.Error as one:
                    if self._lost(conn, one):
                        raise
                    raise KnobError(
                        f"setting {name} = {value!r}: the server refused it: {str(one).strip()}",
                        name,
                    ) from None
            raise  # pragma: no cover - all of them alone worked
        self._session.update(changes)

    @staticmethod
    def _set(conn: psycopg.Connection[Any], changes: Sequence[tuple[str, str]]) -> None:
        calls = sql.SQL(", ").join(sql.SQL("set_config(%s, %s, false)") for _ in changes)
        args = [x for pair in changes for x in pair]
        conn.execute(sql.SQL("SELECT ") + calls, args)

    # -- hypothetical indexes ------------------------------------------------------------
    def _sync(self, conn: psycopg.Connection[Any], specs: Sequence[IndexSpec]) -> None:
        """Make the session's hypothetical indexes exactly `specs` (per changed table:
        dropped, then re-created in name order)."""
        wanted = set(specs)
        changed = {_table_of(s) for s in wanted.symmetric_difference(self._hypo)}
        if not changed:
            return
        drop = [s for s in self._hypo if _table_of(s) in changed]
        if drop:
            oids = [self._hypo[s][0] for s in drop]
            conn.execute("SELECT hypopg_drop_index(o) FROM unnest(%s::oid[]) AS o", (oids,))
            for s in drop:
                self._rename.pop(self._hypo.pop(s)[1], None)
        for spec in sorted((s for s in wanted if _table_of(s) in changed), key=lambda s: s.name):
            ddl = sql.SQL("CREATE INDEX ON {} USING {} ({})").format(
                spec.table_sql(),
                sql.Identifier(spec.using),
                sql.SQL(", ").join(sql.Identifier(c) for c in spec.columns),
            )
            try:
                row = conn.execute(
                    "SELECT indexrelid, indexname FROM hypopg_create_index(%s)",
                    (ddl.as_string(conn),),
                ).fetchone()
            except psycopg.Error as exc:
                if self._lost(conn, exc):
                    raise
                raise InvalidArgumentError(
                    f"hypothetical index {spec}: {str(exc).strip().splitlines()[0]}"
                ) from None
            if row is None:  # pragma: no cover - hypopg_create_index returns one row
                raise InvalidArgumentError(f"hypothetical index {spec}: HypoPG made none")
            self._hypo[spec] = (int(row[0]), str(row[1]))
            self._rename[str(row[1])] = spec.name

    # -- EXPLAIN -------------------------------------------------------------------------
    def _fill(
        self,
        conn: psycopg.Connection[Any],
        specs: Sequence[IndexSpec],
        misses: Sequence[tuple[_Key, dict[str, str]]],
    ) -> None:
        """Explain the missing keys, grouped by setting combination."""
        self._sync(conn, specs)
        for ck, eff in sorted(misses, key=lambda m: (m[0][2], m[0][0])):
            if ck in self._cache:  # done before a reconnect
                continue
            self._apply_settings(conn, eff)
            tmpl = self._templates[ck[0]]
            self._cache[ck] = self._explain(tmpl.sql, tmpl.params)

    def _explain(self, text: str, params: Sequence[str | None]) -> _Entry:
        """EXPLAIN (FORMAT JSON) in the session as it is; a failure becomes an entry
        (a lost connection propagates)."""
        conn = self._live()
        word = _first_word(text)
        if word not in EXPLAINABLE:
            return _Entry(math.nan, None, f"not explainable: {word or 'empty'} statement")
        statement = text.strip().rstrip(";").strip()
        try:
            if params:
                conn.execute(
                    sql.SQL("PREPARE {} AS ").format(sql.Identifier(_PREPARED)) + sql.SQL(statement)
                )
                try:
                    args = sql.SQL(", ").join(sql.Literal(p) for p in params)
                    row = conn.execute(
                        sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE {}({})").format(
                            sql.Identifier(_PREPARED), args
                        )
                    ).fetchone()
                finally:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute(sql.SQL("DEALLOCATE {}").format(sql.Identifier(_PREPARED)))
            else:
                row = conn.execute(
                    sql.SQL("EXPLAIN (FORMAT JSON) ") + sql.SQL(statement)
                ).fetchone()
        except psycopg.Error as exc:
            if self._lost(conn, exc):
                raise
            return _Entry(math.nan, None, _error_text(exc))
        if row is None:
            return _Entry(math.nan, None, "error: EXPLAIN returned no row")
        plan = str(row[0])
        if self._rename:
            plan = _HYPO_NAME.sub(
                lambda m: json.dumps(self._rename.get(m.group(1), m.group(1))), plan
            )
        return _Entry(_total_cost(plan), plan, None)

    # -- the connection ------------------------------------------------------------------
    def _open(self) -> psycopg.Connection[Any]:
        conn = self._target.connect(autocommit=True)
        try:
            conn.adapters.register_loader("json", TextLoader)
            conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
            conn.execute("SELECT hypopg_reset()")
            conn.execute(
                "SELECT set_config('statement_timeout', %s, false)", (str(self._timeout_ms),)
            )
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            raise
        return conn

    def _live(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise InvalidArgumentError("the WhatIfEstimator is closed")
        return self._conn

    @staticmethod
    def _lost(conn: psycopg.Connection[Any], exc: psycopg.Error) -> bool:
        state = exc.sqlstate or ""
        return (
            conn.closed
            or conn.broken
            or (
                isinstance(exc, psycopg.InterfaceError | psycopg.OperationalError)
                and state.startswith(CONNECTION_LOST_SQLSTATES)
            )
        )

    def _reconnect(self) -> None:
        old, self._conn = self._conn, None
        if old is not None:
            with contextlib.suppress(Exception):
                old.close()
        self._hypo.clear()
        self._rename.clear()
        self._session.clear()
        self._conn = self._open()

    def _retry(self, work: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """`work(conn)`, again on a new connection when the first one was lost."""
        for attempt in _attempts():
            conn = self._live()
            try:
                return work(conn)
            except psycopg.Error as exc:
                if not self._lost(conn, exc):
                    raise InstanceError(f"what-if estimate: {_error_text(exc)}") from exc
                if attempt:
                    raise InstanceError(
                        f"what-if estimate: the connection was lost again after reconnecting: "
                        f"{_error_text(exc)}"
                    ) from exc
            self._reconnect()
        raise AssertionError("unreachable")  # pragma: no cover


def _attempts() -> Iterator[int]:
    yield 0
    yield 1
