"""WhatIfEstimator (dbgym/envs/estimate.py) on a real server holding TPC-H at SF 0.01:
hypothetical indexes lower the costs of the templates that filter on their column and
appear in the plans under their IndexSpec names, the cache answers repeats exactly and
keeps the entries of templates an index cannot affect, session settings and per-template
hints change costs and plans, blind knobs are reported, and a server restart is survived.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Iterator

import pytest

import dbgym
from dbgym.dbms.indexes import IndexSpec
from dbgym.envs.estimate import Estimate, TemplateRow, WhatIfEstimator
from dbgym.errors import InvalidArgumentError, KnobError
from dbgym.observe.plans import representatives
from dbgym.session import DbSession

SHIPDATE = IndexSpec("lineitem", ("l_shipdate",))
SHIPDATE_QTY = IndexSpec("lineitem", ("l_shipdate", "l_quantity"))
ORDERDATE = IndexSpec("orders", ("o_orderdate",))


@pytest.fixture(scope="module")
def tpch() -> Iterator[tuple[DbSession, list[TemplateRow]]]:
    state, workload_spec = dbgym.benchmarks.get("tpch").specs(scale=0.01, seed=15721)
    workload = dbgym.Workload.from_spec(workload_spec)
    counts = {t.id: t.count for t in workload.templates()}
    rows: list[TemplateRow] = [
        (int(tid), text, params, counts[int(tid)])
        for tid, text, params in representatives(workload)
    ]
    with dbgym.DbSession.launch(dbgym.InstanceSpec(), state=state, progress=False) as session:
        yield session, rows


@pytest.fixture
def est(tpch: tuple[DbSession, list[TemplateRow]]) -> Iterator[WhatIfEstimator]:
    session, rows = tpch
    with WhatIfEstimator(session, rows, timeout=10.0) as e:
        yield e


def _key(rows: list[TemplateRow], *needles: str) -> int:
    """The template whose SQL holds every needle (exactly one)."""
    found = [k for k, text, _, _ in rows if all(n in " ".join(text.split()) for n in needles)]
    assert len(found) == 1, (needles, found)
    return found[0]


def _same(a: Estimate, b: Estimate) -> None:
    assert a.per_template.keys() == b.per_template.keys()
    for k, cost in a.per_template.items():
        assert cost == b.per_template[k] or (math.isnan(cost) and math.isnan(b.per_template[k]))
    assert a.plans == b.plans
    assert a.errors == b.errors
    assert a.total == b.total


def test_index_lowers_cost_and_is_named_then_dropping_restores(
    est: WhatIfEstimator, tpch: tuple[DbSession, list[TemplateRow]]
) -> None:
    _, rows = tpch
    q6 = _key(rows, "l_discount between")
    base = est.estimate([], {}, {})
    assert not base.errors and len(base.per_template) == 22
    assert base.total == pytest.approx(sum(base.per_template[k] * count for k, _, _, count in rows))
    with_ix = est.estimate([SHIPDATE], {}, {})
    assert with_ix.per_template[q6] < base.per_template[q6]
    assert SHIPDATE.name in with_ix.plans[q6]
    assert not re.search(r'"<\d+>', with_ix.plans[q6])  # no hypopg "<oid>btree_..." name
    assert with_ix.total < base.total
    improved = [k for k in base.per_template if with_ix.per_template[k] < base.per_template[k]]
    assert q6 in improved
    assert all(SHIPDATE.name in with_ix.plans[k] for k in improved)

    again = est.estimate([SHIPDATE], {}, {})
    assert (again.hits, again.misses) == (22, 0)
    _same(again, with_ix)

    est.clear_cache()  # the costs after the drop come from EXPLAIN, not from the cache
    dropped = est.estimate([], {}, {})
    assert dropped.misses == 22
    _same(dropped, base)


def test_unrelated_templates_keep_their_cache_entries(est: WhatIfEstimator) -> None:
    est.estimate([], {}, {})
    reads = {k for k, tables in est.templates.items() if tables is None or "orders" in tables}
    assert 0 < len(reads) < 22
    r = est.estimate([ORDERDATE], {}, {})
    assert r.misses == len(reads)
    assert r.hits == 22 - len(reads)
    r = est.estimate([ORDERDATE, SHIPDATE], {}, {})
    lineitem_only = {
        k for k, t in est.templates.items() if t is not None and "lineitem" in t and k not in reads
    }
    assert lineitem_only
    assert r.misses == len({k for k, t in est.templates.items() if t is None or "lineitem" in t})


def test_results_do_not_depend_on_the_order_indexes_came_in(
    tpch: tuple[DbSession, list[TemplateRow]],
) -> None:
    session, rows = tpch
    wanted = [SHIPDATE, SHIPDATE_QTY, ORDERDATE]
    with WhatIfEstimator(session, rows, timeout=10.0) as a:
        a.estimate([SHIPDATE], {}, {})
        a.estimate([SHIPDATE, ORDERDATE], {}, {})
        first = a.estimate(wanted, {}, {})
    with WhatIfEstimator(session, rows, timeout=10.0) as b:
        b.estimate([SHIPDATE_QTY], {}, {})
        second = b.estimate(list(reversed(wanted)), {}, {})
    assert first.misses > 0 and second.misses > 0
    _same(first, second)


def test_settings_and_template_hints_change_costs_and_are_reset(est: WhatIfEstimator) -> None:
    base = est.estimate([], {}, {})
    cheap_random = est.estimate([SHIPDATE], {"random_page_cost": "1.1"}, {})
    with_ix = est.estimate([SHIPDATE], {}, {})
    changed = [
        k for k in base.per_template if cheap_random.per_template[k] != with_ix.per_template[k]
    ]
    assert changed, "random_page_cost 1.1 changed no cost"
    # same value, other spelling: the same cache entries
    spelled = est.estimate([SHIPDATE], {"random_page_cost": "1.10"}, {})
    assert spelled.misses == 0
    _same(spelled, cheap_random)

    hashed = [k for k, plan in base.plans.items() if '"Hash Join"' in plan]
    assert hashed
    target = hashed[0]
    hinted = est.estimate([], {}, {target: {"enable_hashjoin": "off", "jit": "off"}})
    assert hinted.misses == 1  # only the hinted template is explained again
    assert '"Hash Join"' not in hinted.plans[target]
    assert hinted.per_template[target] != base.per_template[target]
    for k in base.per_template:
        if k != target:
            assert hinted.per_template[k] == base.per_template[k]

    # the session holds no setting of an earlier estimate: explained again, all equal base
    est.clear_cache()
    _same(est.estimate([], {}, {}), base)


def test_blind_knobs_are_reported_and_change_nothing(est: WhatIfEstimator) -> None:
    names = ["shared_buffers", "work_mem", "max_wal_size", "effective_cache_size",
             "max_connections", "checkpoint_timeout", "random_page_cost"]  # fmt: skip
    assert est.blind_to(names) == [
        "shared_buffers",
        "max_wal_size",
        "max_connections",
        "checkpoint_timeout",
    ]
    base = est.estimate([], {}, {})
    blind = est.estimate([], {"shared_buffers": "1GB", "max_wal_size": "4GB"}, {})
    assert blind.misses == 0
    _same(blind, base)
    with pytest.raises(KnobError, match="no_such_knob"):
        est.blind_to(["no_such_knob"])


def test_caller_mistakes_raise_and_leave_the_estimator_usable(est: WhatIfEstimator) -> None:
    base = est.estimate([], {}, {})
    with pytest.raises(InvalidArgumentError, match="random_page_cst"):
        est.estimate([], {"random_page_cst": "2"}, {})
    with pytest.raises(KnobError, match="random_page_cost") as info:
        est.estimate([], {"random_page_cost": "fast"}, {})
    assert info.value.knob == "random_page_cost"
    with pytest.raises(KnobError, match="enable_hashjoin"):
        est.estimate([], {}, {0: {"enable_hashjoin": "perhaps"}})
    with pytest.raises(KnobError, match="shared_buffers"):  # blind, yet validated
        est.estimate([], {"shared_buffers": "-5"}, {})
    with pytest.raises(InvalidArgumentError, match="999"):
        est.estimate([], {}, {999: {"enable_hashjoin": "off"}})
    with pytest.raises(InvalidArgumentError, match="l_nothing"):
        est.estimate([IndexSpec("lineitem", ("l_nothing",))], {}, {})
    with pytest.raises(InvalidArgumentError, match="no_table"):
        est.estimate([IndexSpec("no_table", ("x",))], {}, {})
    _same(est.estimate([], {}, {}), base)


def test_a_failing_template_is_recorded_not_raised(
    tpch: tuple[DbSession, list[TemplateRow]],
) -> None:
    session, rows = tpch
    mixed: list[TemplateRow] = [
        rows[0],
        (100, "SELECT * FROM no_such_table", (), 3),
        (101, "BEGIN", (), 5),
        (102, "SELECT count(*) FROM lineitem WHERE l_shipdate < $1", ("1995-01-01",), 2),
    ]
    with WhatIfEstimator(session, mixed, timeout=10.0) as e:
        assert e.templates[100] is None and e.templates[102] == frozenset({"lineitem"})
        r = e.estimate([SHIPDATE], {}, {})
        assert set(r.errors) == {100, 101}
        assert r.errors[100].startswith("42P01")
        assert "not explainable" in r.errors[101]
        assert math.isnan(r.per_template[100]) and math.isnan(r.per_template[101])
        assert set(r.plans) == {rows[0][0], 102}
        assert SHIPDATE.name in r.plans[102]
        assert r.total == pytest.approx(
            r.per_template[rows[0][0]] * rows[0][3] + r.per_template[102] * 2
        )


def test_close_is_idempotent(tpch: tuple[DbSession, list[TemplateRow]]) -> None:
    session, rows = tpch
    e = WhatIfEstimator(session, rows[:3], timeout=10.0)
    assert e.estimate([SHIPDATE], {}, {}).misses > 0
    e.close()
    e.close()
    with pytest.raises(InvalidArgumentError, match="closed"):
        e.estimate([], {}, {})


def test_timings_warm_and_cold(est: WhatIfEstimator) -> None:
    """Loose sanity bounds; the printed figures are what to read (pytest -s)."""
    configs = [
        ([], {}, {}),
        ([SHIPDATE], {}, {}),
        ([SHIPDATE, ORDERDATE], {"random_page_cost": "1.1"}, {}),
        ([ORDERDATE], {"work_mem": "64MB"}, {3: {"enable_hashjoin": "off"}}),
        ([SHIPDATE_QTY], {"effective_cache_size": "1GB"}, {}),
    ]
    cold: list[float] = []
    first: list[Estimate] = []
    for round_ in range(4):
        for i, (indexes, settings, hints) in enumerate(configs):
            est.clear_cache()
            r = est.estimate(indexes, settings, hints)
            assert r.misses == 22
            cold.append(r.seconds)
            if round_ == 0:
                first.append(r)
            else:  # explained again (psycopg prepares repeated statements): the same
                _same(r, first[i])
    for indexes, settings, hints in configs:  # fill the cache with every configuration
        est.estimate(indexes, settings, hints)
    warm: list[float] = []
    for _ in range(40):
        for indexes, settings, hints in configs:
            r = est.estimate(indexes, settings, hints)
            assert r.hits == 22
            warm.append(r.seconds)
    t0 = time.perf_counter()
    for _ in range(3):
        est.clear_cache()
        est.estimate([SHIPDATE], {}, {})
    per_template = (time.perf_counter() - t0) / 3 / 22

    def ms(xs: list[float], q: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] * 1000

    print(
        f"\nestimate, 22 TPC-H templates: cold median {statistics.median(cold) * 1000:.2f} ms "
        f"p99 {ms(cold, 0.99):.2f} ms ({per_template * 1000:.3f} ms per template); warm "
        f"median {statistics.median(warm) * 1000:.3f} ms p99 {ms(warm, 0.99):.3f} ms"
    )
    assert statistics.median(warm) < 0.010
    assert statistics.median(cold) < 1.0


def test_reconnects_after_a_server_restart(
    est: WhatIfEstimator, tpch: tuple[DbSession, list[TemplateRow]]
) -> None:
    session, _ = tpch
    settings = {"random_page_cost": "2"}
    before = est.estimate([SHIPDATE, ORDERDATE], settings, {0: {"enable_hashjoin": "off"}})
    instance = session.instance
    assert instance is not None
    instance.stop()
    instance.start()
    est.clear_cache()
    after = est.estimate([SHIPDATE, ORDERDATE], settings, {0: {"enable_hashjoin": "off"}})
    assert after.misses == 22
    _same(after, before)
    assert any(SHIPDATE.name in plan for plan in after.plans.values())
