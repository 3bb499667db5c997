"""collect_plans on a real server: TPC-H and pgbench workloads, ANALYZE of DML rolled back,
timeouts and errors recorded, extended-protocol statements through PREPARE/EXECUTE."""

from __future__ import annotations

import json

import pytest

from dbgym import Workload
from dbgym.observe import collect_plans
from dbgym.plans import featurize
from tests.plan_corpus import TPCH_SCALE, corpus_server


def test_tpch_templates_each_get_a_plan() -> None:
    wl = Workload.benchmark("tpch", scale=TPCH_SCALE, streams=2)
    plans = collect_plans(corpus_server(), wl, progress=True)
    assert [p.template for p in plans] == list(range(22))
    assert all(p.ok and p.error is None for p in plans), [p.error for p in plans if not p.ok]
    batch = featurize([p.plan for p in plans if p.plan is not None])
    assert batch.n_plans == 22 and batch.targets is None


def test_pgbench_analyze_rolls_back_and_skips_transaction_control() -> None:
    inst = corpus_server()
    with inst.connect() as conn:
        before = conn.execute(
            "SELECT (SELECT sum(abalance) FROM pgbench_accounts),"
            " (SELECT count(*) FROM pgbench_history)"
        ).fetchone()
    wl = Workload.benchmark("pgbench", script="tpcb-like", transactions=3)
    plans = collect_plans(inst, wl, analyze=True, buffers=True)
    by_sql = {p.sql.split()[0].upper().rstrip(";"): p for p in plans}
    assert by_sql["BEGIN"].error == "not explainable: BEGIN statement"
    assert by_sql["END"].error == "not explainable: END statement"
    for kind in ("UPDATE", "SELECT", "INSERT"):
        p = by_sql[kind]
        assert p.ok, p.error
        assert p.plan is not None and "Actual Loops" in p.plan
    batch = featurize([p.plan for p in plans if p.plan is not None])
    assert batch.targets is not None
    with inst.connect() as conn:
        after = conn.execute(
            "SELECT (SELECT sum(abalance) FROM pgbench_accounts),"
            " (SELECT count(*) FROM pgbench_history)"
        ).fetchone()
    assert after == before  # EXPLAIN ANALYZE of the DML was rolled back


def test_extended_protocol_statements_use_prepare_execute() -> None:
    wl = Workload.benchmark("pgbench", script="select-only", transactions=2, protocol="extended")
    st = wl.statement(0)
    assert "$1" in st.sql and st.params
    plans = collect_plans(corpus_server(), wl)
    assert len(plans) == 1 and plans[0].ok, plans[0].error
    assert plans[0].params == st.params
    assert plans[0].plan is not None
    node = json.loads(plans[0].plan)[0]["Plan"]
    assert node["Node Type"] == "Index Scan" and node["Relation Name"] == "pgbench_accounts"


def test_timeouts_and_errors_are_recorded_not_raised() -> None:
    plans = collect_plans(
        corpus_server(),
        {
            "slow": "select pg_sleep(3)",
            "broken": "select * from no_such_table",
            "syntax": "selec 1",
            "fine": "select count(*) from nation",
        },
        analyze=True,
        timeout_ms=200,
    )
    by = {p.template: p for p in plans}
    assert by["slow"].error is not None and by["slow"].error.startswith("57014:")
    assert by["slow"].seconds < 2.5
    assert by["broken"].error is not None and by["broken"].error.startswith("42P01:")
    assert by["syntax"].error == "not explainable: SELEC statement"
    assert by["fine"].ok


@pytest.mark.parametrize("settings", [{"enable_hashjoin": "off", "enable_mergejoin": "off"}])
def test_planner_settings_apply_to_the_explain(settings: dict[str, str]) -> None:
    q = {"join": "select * from nation join region on n_regionkey = r_regionkey"}
    inst = corpus_server()
    default = collect_plans(inst, q)[0].plan
    forced = collect_plans(inst, q, settings=settings)[0].plan
    assert default is not None and forced is not None
    assert json.loads(forced)[0]["Plan"]["Node Type"] == "Nested Loop"
    assert json.loads(default)[0]["Plan"]["Node Type"] != "Nested Loop"
