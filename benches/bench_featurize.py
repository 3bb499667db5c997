"""Plan featurization speed, on one batch of real plans in one run.

The batch: every plan of dbgym.observe.plan_corpus (TPC-H-style queries, pgbench statements,
DML, CTEs, window functions, ... under several planner settings and EXPLAIN option sets,
captured from a live server once per module), replicated 8 times (about 4100 plans, 30 MB of
JSON).

Asserted, per encoding:
- >= 10x faster than the plain-Python featurizer (dbgym.plans.reference: json.loads +
  walking the dicts into the same arrays; checked equal to the Rust output first);
- <= 2x the Rust parse-only floor (the same parse into the same node representation,
  without encoding).
Timings are the best of interleaved rounds (4 of the baseline, 20 of the others).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from benches.guard import Guard, record_all
from dbgym.dbms.instance import PostgresInstance
from dbgym.observe.plan_corpus import capture, launch_server
from dbgym.plans import PlanCatalog, featurize, parse_plans_only
from dbgym.plans.reference import featurize_reference

REPLICATE = 8
MIN_SPEEDUP_OVER_PYTHON = 10.0
MAX_RATIO_TO_PARSE_FLOOR = 2.0


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresInstance]:
    with launch_server() as inst:
        yield inst


@pytest.fixture(scope="module")
def batch(server: PostgresInstance) -> list[str]:
    return [p.text for p in capture(server)] * REPLICATE


@pytest.fixture(scope="module")
def catalog(server: PostgresInstance) -> PlanCatalog:
    return PlanCatalog.from_instance(server)


def _seconds(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@pytest.mark.parametrize("encoding", ["qppnet", "tcnn"])
def test_featurize_vs_python_and_parse_floor(
    benchmark: Any, batch: list[str], catalog: PlanCatalog, encoding: str
) -> None:
    def rust() -> Any:
        return featurize(batch, catalog=catalog, encoding=encoding)  # type: ignore[arg-type]

    def floor() -> int:
        return parse_plans_only(batch)

    def python() -> Any:
        return featurize_reference(batch, catalog, encoding)  # type: ignore[arg-type]

    # same work: the baseline's arrays equal the featurizer's
    ours, theirs = rust(), python()
    np.testing.assert_array_equal(ours.features, theirs.features)
    np.testing.assert_array_equal(ours.parent, theirs.parent)
    assert floor() == ours.n_nodes

    # Interleaved, so that all three see the same (shared, noisy) machine.
    t_rust: list[float] = []
    t_floor: list[float] = []
    t_py: list[float] = []
    for _ in range(4):
        t_py.append(_seconds(python))
        for _ in range(5):
            t_floor.append(_seconds(floor))
            t_rust.append(_seconds(rust))
    benchmark.pedantic(rust, rounds=5, iterations=1)

    best_rust, best_floor, t_python = min(t_rust), min(t_floor), min(t_py)
    speedup = t_python / best_rust
    floor_ratio = best_rust / best_floor
    benchmark.extra_info.update(
        plans=len(batch),
        nodes=ours.n_nodes,
        megabytes=round(sum(map(len, batch)) / 1e6, 1),
        rust_ms=round(best_rust * 1e3, 2),
        parse_floor_ms=round(best_floor * 1e3, 2),
        python_ms=round(t_python * 1e3, 1),
        speedup_over_python=round(speedup, 1),
        ratio_to_parse_floor=round(floor_ratio, 2),
    )
    print(
        f"\n[{encoding}] {len(batch)} plans, {ours.n_nodes} nodes: rust {best_rust * 1e3:.1f} ms, "
        f"parse-only {best_floor * 1e3:.1f} ms, python {t_python * 1e3:.0f} ms -> "
        f"{speedup:.1f}x over python, {floor_ratio:.2f}x the parse floor"
    )
    rust_ms = best_rust * 1e3
    record_all(
        benchmark,
        Guard(
            label=f"{encoding}: speedup over plain Python",
            figure=rust_ms,
            baseline=t_python * 1e3,
            unit="ms",
            ratio=speedup,
            bar=MIN_SPEEDUP_OVER_PYTHON,
            higher_is_better=True,
        ),
        Guard(
            label=f"{encoding}: time / the parse-only floor",
            figure=rust_ms,
            baseline=best_floor * 1e3,
            unit="ms",
            ratio=floor_ratio,
            bar=MAX_RATIO_TO_PARSE_FLOOR,
            higher_is_better=False,
        ),
    )
