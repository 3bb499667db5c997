"""collect_plans(): EXPLAIN (FORMAT JSON) of a workload's templates on a live instance.

One representative statement per template (its first occurrence in the workload), each
explained in its own transaction that is always rolled back, so EXPLAIN ANALYZE of DML
leaves the database unchanged. A statement timeout bounds each EXPLAIN; failures
(timeouts, errors, statements EXPLAIN cannot take such as BEGIN) are recorded on the
result, never raised. Extended-protocol statements (`$n` placeholders with logged
parameter values) are explained through PREPARE / EXPLAIN EXECUTE.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.string import TextLoader

from dbgym.types import SupportsConnect
from dbgym.workload.workload import Workload

#: Statement kinds EXPLAIN accepts (first keyword).
EXPLAINABLE = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "WITH", "TABLE"}
)
_FIRST_WORD = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*\(*\s*([A-Za-z]+)", re.S)
_PREPARED = "dbgym_collect_plan"


@dataclass(frozen=True)
class CollectedPlan:
    """The EXPLAIN output of one template's representative statement, or why there is none."""

    template: int | str
    sql: str
    params: tuple[str | None, ...]
    #: EXPLAIN (FORMAT JSON) text as the server printed it; None when `error` is set.
    plan: str | None
    #: "SQLSTATE: message" (57014 = statement timeout) or why it was not explained.
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.plan is not None


def _first_word(text: str) -> str:
    m = _FIRST_WORD.match(text)
    return m.group(1).upper() if m else ""


def representatives(
    workload: Workload | Mapping[str, str] | Mapping[int, str],
) -> list[tuple[int | str, str, tuple[str | None, ...]]]:
    """(template, sql, params) of each template's first statement, by template id."""
    if isinstance(workload, Workload):
        ids = workload.template_ids()
        _, first = np.unique(ids, return_index=True)
        out: list[tuple[int | str, str, tuple[str | None, ...]]] = []
        for i in first:
            st = workload.statement(int(i))
            out.append((st.template_id, st.sql, st.params))
        return out
    return [(key, text, ()) for key, text in workload.items()]


@contextlib.contextmanager
def _connection(
    source: SupportsConnect | psycopg.Connection[Any],
) -> Iterator[psycopg.Connection[Any]]:
    if isinstance(source, psycopg.Connection):
        yield source
    else:
        with source.connect(autocommit=True) as conn:
            yield conn


def explain_options(*, analyze: bool, buffers: bool, verbose: bool, settings: bool) -> str:
    opts = [name for name, on in [("ANALYZE", analyze), ("BUFFERS", buffers),
                                  ("VERBOSE", verbose), ("SETTINGS", settings)] if on]  # fmt: skip
    return ", ".join([*opts, "FORMAT JSON"])


def explain_one(
    conn: psycopg.Connection[Any],
    statement: str,
    params: Sequence[str | None] = (),
    *,
    options: str = "FORMAT JSON",
    settings: Mapping[str, str] | None = None,
    timeout_ms: int = 30_000,
) -> str:
    """EXPLAIN (options) of one statement in a rolled-back transaction; raises psycopg.Error."""
    conn.adapters.register_loader("json", TextLoader)
    text = statement.strip().rstrip(";").strip()
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute(
            sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(int(timeout_ms)))
        )
        for name, value in (settings or {}).items():
            cur.execute(
                sql.SQL("SET LOCAL {} = {}").format(sql.Identifier(name), sql.Literal(str(value)))
            )
        explain = sql.SQL("EXPLAIN (" + options + ") ")  # options are keywords we built
        if params:
            cur.execute(sql.SQL("PREPARE {} AS ").format(sql.Identifier(_PREPARED)) + sql.SQL(text))
            try:
                args = sql.SQL(", ").join(sql.Literal(p) for p in params)
                stmt = explain + sql.SQL("EXECUTE {}({})").format(sql.Identifier(_PREPARED), args)
                row = cur.execute(stmt).fetchone()
            finally:
                with contextlib.suppress(psycopg.Error):
                    cur.execute(sql.SQL("DEALLOCATE {}").format(sql.Identifier(_PREPARED)))
        else:
            row = cur.execute(explain + sql.SQL(text)).fetchone()
        if row is None:
            raise psycopg.ProgrammingError("EXPLAIN returned no row")
        return str(row[0])


def collect_plans(
    source: SupportsConnect | psycopg.Connection[Any],
    workload: Workload | Mapping[str, str] | Mapping[int, str],
    *,
    analyze: bool = False,
    buffers: bool = False,
    verbose: bool = False,
    settings: Mapping[str, str] | None = None,
    timeout_ms: int = 30_000,
    progress: bool = False,
) -> list[CollectedPlan]:
    """EXPLAIN each template of `workload` once on `source` (a PostgresInstance or an open
    psycopg connection in autocommit mode).

    `workload` is a Workload (its templates' first statements are explained) or a mapping
    of names to SQL. `settings` are SET LOCAL before each EXPLAIN (e.g. planner knobs).
    ANALYZE runs the statement, inside a transaction that is rolled back.
    """
    options = explain_options(analyze=analyze, buffers=buffers, verbose=verbose, settings=False)
    todo = representatives(workload)
    out: list[CollectedPlan] = []
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        task = bar.add_task("EXPLAIN", total=len(todo))
        bar.start()
    try:
        with _connection(source) as conn:
            for template, text, params in todo:
                t0 = time.perf_counter()
                word = _first_word(text)
                plan: str | None = None
                error: str | None = None
                if word not in EXPLAINABLE:
                    error = f"not explainable: {word or 'empty'} statement"
                else:
                    try:
                        plan = explain_one(
                            conn, text, params, options=options, settings=settings,
                            timeout_ms=timeout_ms,
                        )  # fmt: skip
                    except psycopg.Error as e:
                        error = f"{e.sqlstate or 'error'}: {str(e).strip()}"
                out.append(
                    CollectedPlan(
                        template, text, tuple(params), plan, error, time.perf_counter() - t0
                    )
                )
                if bar is not None:
                    bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    return out
