"""Indexes dbgym creates: `IndexSpec` and the DDL that makes a database's set of them
match a list (what `DbSession.apply(indexes=...)` does).

Every such index has a deterministic name starting with INDEX_PREFIX; that prefix is how
dbgym tells its indexes from the database's own, which it never touches.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from dbgym.errors import InvalidArgumentError

#: Name prefix of the indexes dbgym manages.
INDEX_PREFIX = "dbgym_ix_"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
#: SQLSTATE classes of a statement the server refused as invalid: data exception,
#: integrity constraint, syntax error or access rule, feature not supported.
_REFUSED = ("22", "23", "42", "0A")


@dataclass(frozen=True)
class IndexSpec:
    """An index: `table` ("orders" or "schema.orders"), its `columns` (names as the
    catalog spells them: unquoted SQL names are lower case) and the access method. `name`
    is deterministic (the same spec always has the same name) and starts with
    INDEX_PREFIX."""

    table: str
    columns: tuple[str, ...]
    using: str = "btree"

    def __post_init__(self) -> None:
        columns: Any = self.columns
        if isinstance(columns, str):
            columns = (columns,)
        try:
            columns = tuple(columns)
        except TypeError:
            raise InvalidArgumentError(
                f"IndexSpec columns must be a sequence of column names, got {self.columns!r}"
            ) from None
        object.__setattr__(self, "columns", columns)
        parts = self.table.split(".") if isinstance(self.table, str) else []
        if not 1 <= len(parts) <= 2 or not all(_IDENT.match(p) for p in parts):
            raise InvalidArgumentError(
                f"IndexSpec table {self.table!r}: give a table name or schema.table of "
                "letters, digits, '_' and '$'"
            )
        if not columns:
            raise InvalidArgumentError(f"IndexSpec on {self.table}: no columns given")
        bad = [c for c in columns if not (isinstance(c, str) and _IDENT.match(c))]
        if bad:
            raise InvalidArgumentError(
                f"IndexSpec on {self.table}: column names must be letters, digits, '_' and "
                f"'$', got {', '.join(map(repr, bad))}"
            )
        if len(set(columns)) != len(columns):
            raise InvalidArgumentError(f"IndexSpec on {self.table}: repeated column in {columns}")
        if not (isinstance(self.using, str) and _IDENT.match(self.using)):
            raise InvalidArgumentError(
                f"IndexSpec on {self.table}: access method {self.using!r} is not a name"
            )

    @property
    def name(self) -> str:
        """`dbgym_ix_<table>_<columns>_<hash>`, at most 63 characters."""
        key = f"{self.table}\0{','.join(self.columns)}\0{self.using}".encode()
        digest = hashlib.sha256(key).hexdigest()[:10]
        readable = "_".join([self.table.split(".")[-1], *self.columns]).lower()
        readable = re.sub(r"[^a-z0-9_]", "_", readable)[:40]
        return f"{INDEX_PREFIX}{readable}_{digest}"

    def table_sql(self) -> sql.Identifier:
        """The table as a (schema-qualified) SQL identifier."""
        return sql.Identifier(*self.table.split("."))

    def __str__(self) -> str:
        return f"{self.table} USING {self.using} ({', '.join(self.columns)})"


def validated(indexes: Sequence[IndexSpec]) -> list[IndexSpec]:
    """`indexes` as a list without repeats; InvalidArgumentError unless IndexSpec values."""
    if isinstance(indexes, str | IndexSpec) or not isinstance(indexes, Sequence | set):
        raise InvalidArgumentError(
            f"indexes must be a list of IndexSpec, got {type(indexes).__name__}"
        )
    specs = list(indexes)
    bad = [s for s in specs if not isinstance(s, IndexSpec)]
    if bad:
        raise InvalidArgumentError(
            f"indexes must be IndexSpec values, got {type(bad[0]).__name__}: {bad[0]!r}"
        )
    return list(dict.fromkeys(specs))


def check_targets(conn: psycopg.Connection[Any], specs: Sequence[IndexSpec]) -> None:
    """InvalidArgumentError naming the first spec whose access method, table or columns
    the database does not have."""
    methods = {r[0] for r in conn.execute("SELECT amname FROM pg_am WHERE amtype = 'i'")}
    for spec in specs:
        if spec.using not in methods:
            raise InvalidArgumentError(
                f"index {spec}: unknown access method {spec.using!r} (this server has "
                f"{', '.join(sorted(methods))})"
            )
        qualified = spec.table_sql().as_string(conn)
        row = conn.execute("SELECT to_regclass(%s)::oid", (qualified,)).fetchone()
        if row is None or row[0] is None:
            raise InvalidArgumentError(f"index {spec}: no table {spec.table!r}")
        have = {
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 "
                "AND NOT attisdropped",
                (row[0],),
            )
        }
        missing = [c for c in spec.columns if c not in have]
        if missing:
            raise InvalidArgumentError(
                f"index {spec}: table {spec.table} has no column(s) {', '.join(missing)}"
            )


def managed(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """dbgym's indexes in the connected database: name -> schema."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'i' AND starts_with(c.relname, %s)",
        (INDEX_PREFIX,),
    )
    return {name: schema for schema, name in rows}


def apply(
    conn: psycopg.Connection[Any], specs: Sequence[IndexSpec], *, timeout: float | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Make dbgym's indexes exactly `specs`, in one transaction (all or nothing): create
    the missing ones, drop the others. Returns (created, dropped) names. `timeout`: seconds
    each DDL statement may take, waiting for locks included (SET LOCAL statement_timeout;
    a timeout rolls everything back: psycopg's QueryCanceled, SQLSTATE 57014). A statement
    the server refuses (e.g. no operator class for the access method) raises
    InvalidArgumentError; other psycopg errors (a lost connection, a timeout) propagate."""
    existing = managed(conn)
    wanted = {spec.name: spec for spec in specs}
    dropped = tuple(sorted(n for n in existing if n not in wanted))
    created = tuple(n for n in wanted if n not in existing)
    with conn.transaction():
        if timeout is not None:
            ms = max(1, round(timeout * 1000))
            conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(ms)))
        for name in dropped:
            conn.execute(
                sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(existing[name], name))
            )
        for name in created:
            spec = wanted[name]
            statement = sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING {} ({})").format(
                sql.Identifier(name),
                spec.table_sql(),
                sql.Identifier(spec.using),
                sql.SQL(", ").join(sql.Identifier(c) for c in spec.columns),
            )
            try:
                conn.execute(statement)
            except psycopg.Error as exc:
                if (exc.sqlstate or "")[:2] in _REFUSED:
                    detail = str(exc).strip().splitlines()[0]
                    raise InvalidArgumentError(f"creating index {spec}: {detail}") from exc
                raise
    return created, dropped
