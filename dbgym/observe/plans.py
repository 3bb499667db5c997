"""collect_plans(): EXPLAIN (FORMAT JSON) of a workload's templates on a live instance.

One representative statement per template (its first occurrence in the workload), each
explained in its own transaction that is always rolled back, so EXPLAIN ANALYZE of DML
leaves the database unchanged. A statement timeout bounds each EXPLAIN; failures
(timeouts, errors, statements EXPLAIN cannot take such as BEGIN) are recorded on the
result, never raised. Extended-protocol statements (`$n` placeholders with logged
parameter values) are explained through PREPARE / EXPLAIN EXECUTE.

`collect_plans(target, workload, *, template_settings=, planner_settings=, timeout=)`
follows the calling convention of dbgym.types (target first, float-second timeouts,
per-template settings of the same type replay takes).
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.string import TextLoader

from dbgym.errors import InvalidArgumentError
from dbgym.redact import safe_connect
from dbgym.types import (
    PlannerSettings,
    Seconds,
    SupportsConnect,
    Target,
    TemplateSettings,
    check_seconds,
    setting_text,
    target_dsn,
    template_settings_text,
)
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


#: What collect_plans can explain on: an open psycopg connection (autocommit), an object
#: with `.connect()` (PostgresInstance, DbSession), or any target with a DSN.
PlanTarget = Target | SupportsConnect | psycopg.Connection[Any]


@contextlib.contextmanager
def _connection(target: PlanTarget) -> Iterator[psycopg.Connection[Any]]:
    if isinstance(target, psycopg.Connection):
        yield target
    elif isinstance(target, SupportsConnect):
        with target.connect(autocommit=True) as conn:
            yield conn
    else:  # errors name the server, never the password
        dsn = target_dsn(target)
        with safe_connect(dsn, "cannot connect to collect plans", autocommit=True) as conn:
            yield conn


def _deprecated(old: str, new: str, where: str, stacklevel: int = 3) -> None:
    """Warns that `where(old=...)` is deprecated (stacklevel 3: the caller of `where`)."""
    warnings.warn(
        f"{where}({old}=...) is deprecated; use {new}=...",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def _seconds(timeout: Seconds, timeout_ms: int | None, where: str) -> Seconds:
    """`timeout` in seconds, or the deprecated `timeout_ms` converted (with a warning)."""
    if timeout_ms is not None:
        _deprecated("timeout_ms", "timeout (float seconds)", where, stacklevel=4)
        timeout = timeout_ms / 1000.0
    seconds = check_seconds(f"{where}: timeout", timeout)
    if seconds is None:
        raise InvalidArgumentError(f"{where}: timeout must be a positive number of seconds")
    return seconds


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
    planner_settings: PlannerSettings | None = None,
    timeout: Seconds = 30.0,
    settings: PlannerSettings | None = None,
    timeout_ms: int | None = None,
) -> str:
    """EXPLAIN (options) of one statement in a rolled-back transaction, with
    `planner_settings` SET LOCAL and a statement timeout of `timeout` seconds; raises
    psycopg.Error. `settings=` and `timeout_ms=` are deprecated spellings of
    `planner_settings=` and `timeout=`."""
    timeout = _seconds(timeout, timeout_ms, "explain_one")
    if settings is not None:
        _deprecated("settings", "planner_settings", "explain_one")
        planner_settings = {**settings, **(planner_settings or {})}
    conn.adapters.register_loader("json", TextLoader)
    text = statement.strip().rstrip(";").strip()
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute(
            sql.SQL("SET LOCAL statement_timeout = {}").format(
                sql.Literal(max(1, round(timeout * 1000)))
            )
        )
        for name, value in (planner_settings or {}).items():
            cur.execute(
                sql.SQL("SET LOCAL {} = {}").format(
                    sql.Identifier(name), sql.Literal(setting_text(value, name))
                )
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
    target: PlanTarget,
    workload: Workload | Mapping[str, str] | Mapping[int, str],
    *,
    analyze: bool = False,
    buffers: bool = False,
    verbose: bool = False,
    template_settings: TemplateSettings | None = None,
    planner_settings: PlannerSettings | None = None,
    timeout: Seconds = 30.0,
    progress: bool | None = None,
    settings: PlannerSettings | None = None,
    timeout_ms: int | None = None,
) -> list[CollectedPlan]:
    """EXPLAIN each template of `workload` once on `target` (a PostgresInstance, a
    DbSession, a DSN, or an open psycopg connection in autocommit mode).

    `workload` is a Workload (its templates' first statements are explained) or a mapping
    of names (or template ids) to SQL. Settings are SET LOCAL before each EXPLAIN:
    `planner_settings` (GUC -> value) for every template, then `template_settings`
    ({template_id: {GUC: value}}, the type replay takes) for that template's statement,
    winning over `planner_settings`. ANALYZE runs the statement, inside a transaction
    that is rolled back. `timeout`: seconds per EXPLAIN (a timeout is recorded as 57014).
    `progress`: a progress bar (None: when stderr is a terminal).

    Deprecated: `settings=` (planner settings for all templates; use planner_settings=)
    and `timeout_ms=` (use timeout= in seconds).
    """
    timeout = _seconds(timeout, timeout_ms, "collect_plans")
    if settings is not None:
        _deprecated("settings", "planner_settings", "collect_plans")
        planner_settings = {**settings, **(planner_settings or {})}
    common = {
        str(k): setting_text(v, f"planner_settings[{k!r}]")
        for k, v in (planner_settings or {}).items()
    }
    per_template = template_settings_text(template_settings)
    options = explain_options(analyze=analyze, buffers=buffers, verbose=verbose, settings=False)
    todo = representatives(workload)
    unknown = sorted(set(per_template) - {t for t, _, _ in todo})
    if unknown:
        raise InvalidArgumentError(
            f"template_settings[{unknown[0]}]: the workload has no template {unknown[0]}"
        )
    out: list[CollectedPlan] = []
    bar = None
    show = sys.stderr.isatty() if progress is None else progress
    if show:
        from rich.progress import Progress

        bar = Progress(transient=True)
        task = bar.add_task("EXPLAIN", total=len(todo))
        bar.start()
    try:
        with _connection(target) as conn:
            for template, text, params in todo:
                t0 = time.perf_counter()
                word = _first_word(text)
                plan: str | None = None
                error: str | None = None
                if word not in EXPLAINABLE:
                    error = f"not explainable: {word or 'empty'} statement"
                else:
                    gucs = common
                    if isinstance(template, int) and template in per_template:
                        gucs = {**common, **per_template[template]}
                    try:
                        plan = explain_one(
                            conn, text, params, options=options, planner_settings=gucs,
                            timeout=timeout,
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
