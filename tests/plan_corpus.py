"""The plan corpus of dbgym.observe.plan_corpus on one server per test process.

`corpus_server()` is launched once (closed at exit), `corpus()` captured once; the names of
the product module are re-exported for the tests that import them from here.
"""

from __future__ import annotations

import functools

from dbgym.dbms.instance import PostgresInstance
from dbgym.observe.plan_corpus import (
    DML_QUERIES,
    EXPLAIN_OPTIONS,
    EXTRA_INDEXES,
    EXTRA_QUERIES,
    PLANNER_SETTINGS,
    TPCH_SCALE,
    CapturedPlan,
    all_queries,
    capture,
    launch_server,
    pgbench_statements,
)

__all__ = [
    "DML_QUERIES",
    "EXPLAIN_OPTIONS",
    "EXTRA_INDEXES",
    "EXTRA_QUERIES",
    "PLANNER_SETTINGS",
    "TPCH_SCALE",
    "CapturedPlan",
    "all_queries",
    "corpus",
    "corpus_server",
    "pgbench_statements",
]


@functools.cache
def corpus_server() -> PostgresInstance:
    """One instance per test session with TPC-H and pgbench loaded (closed at exit)."""
    return launch_server()


@functools.cache
def corpus() -> tuple[CapturedPlan, ...]:
    return tuple(capture(corpus_server()))
