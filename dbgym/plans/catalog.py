"""PlanCatalog: the relations, indexes and columns a featurization is relative to.

The catalog fixes the one-hot columns of the "qppnet" encoding (one column per relation
and per index, plus an `<other>` column each), so features computed against the same
catalog are comparable across sessions. It is built from a live database, from plain
lists, or read back from its JSON form.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg

import dbgym._core as _core
from dbgym.errors import InvalidArgumentError
from dbgym.redact import safe_connect
from dbgym.types import SupportsConnect

_RELATIONS_SQL = """
SELECT DISTINCT c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1
"""

_INDEXES_SQL = """
SELECT DISTINCT c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('i', 'I')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1
"""

_COLUMNS_SQL = """
SELECT DISTINCT c.relname || '.' || a.attname
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1
"""


class PlanCatalog:
    """Relations, indexes and columns (`"relation.column"`) of a database, in one-hot order.

    Names are unqualified, as EXPLAIN prints them in "Relation Name"/"Index Name".
    """

    __slots__ = ("_core",)

    def __init__(
        self,
        relations: Iterable[str] = (),
        indexes: Iterable[str] = (),
        columns: Iterable[str] = (),
    ) -> None:
        self._core = _core.PlanCatalog(list(relations), list(indexes), list(columns))

    @classmethod
    def _wrap(cls, core: _core.PlanCatalog) -> PlanCatalog:
        cat = cls.__new__(cls)
        cat._core = core
        return cat

    @classmethod
    def from_instance(cls, target: SupportsConnect) -> PlanCatalog:
        """Read the user relations, indexes and columns of the database of `target` (a
        PostgresInstance, a DbSession: anything with `.connect()`)."""
        with target.connect() as conn:
            return cls.from_connection(conn)

    @classmethod
    def from_connection(cls, conn: psycopg.Connection[Any] | str) -> PlanCatalog:
        """Read the user relations, indexes and columns through an open connection, or
        through a new one to a DSN (libpq URI or key=value string; closed afterwards).

        Raises InvalidArgumentError for anything else (or a DSN libpq cannot parse) and
        ConnectError when the DSN's server cannot be reached; never shows a password."""
        if isinstance(conn, str):
            with safe_connect(conn, "cannot connect to read a plan catalog") as owned:
                return cls.from_connection(owned)
        if not isinstance(conn, psycopg.Connection):
            raise InvalidArgumentError(
                "PlanCatalog.from_connection takes a psycopg connection or a DSN string, got "
                f"{type(conn).__name__} (for a PostgresInstance, use from_instance)"
            )
        with conn.cursor() as cur:
            relations = [str(r[0]) for r in cur.execute(_RELATIONS_SQL).fetchall()]
            indexes = [str(r[0]) for r in cur.execute(_INDEXES_SQL).fetchall()]
            columns = [str(r[0]) for r in cur.execute(_COLUMNS_SQL).fetchall()]
        return cls(relations, indexes, columns)

    @property
    def relations(self) -> tuple[str, ...]:
        return tuple(self._core.relations)

    @property
    def indexes(self) -> tuple[str, ...]:
        return tuple(self._core.indexes)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._core.columns)

    def to_json(self) -> str:
        """The serialized form (`{"format": "dbgym.plan_catalog", "version": 1, ...}`)."""
        return self._core.to_json()

    @classmethod
    def from_json(cls, text: str) -> PlanCatalog:
        """Read the form written by `to_json`; raises PlanCatalogError if it is not one."""
        return cls._wrap(_core.PlanCatalog.from_json(text))

    def save(self, path: str | Path) -> None:
        """Write the JSON form to `path` (atomically: a temp file renamed into place)."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(self.to_json() + "\n", encoding="utf-8")
        tmp.replace(target)

    @classmethod
    def load(cls, path: str | Path) -> PlanCatalog:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """Pickles as its JSON form (read back by `from_json`)."""
        return (type(self).from_json, (self.to_json(),))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlanCatalog) and self._core == other._core

    def __hash__(self) -> int:
        return hash(self._core)

    def __repr__(self) -> str:
        return repr(self._core)
