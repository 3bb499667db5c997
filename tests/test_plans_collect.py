"""collect_plans on a real server: TPC-H and pgbench workloads, ANALYZE of DML rolled back,
timeouts and errors recorded, extended-protocol statements through PREPARE/EXECUTE."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

import dbgym
from dbgym import Workload
from dbgym.errors import ConnectError, InvalidArgumentError
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
        timeout=0.2,
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
    forced = collect_plans(inst, q, planner_settings=settings)[0].plan
    assert default is not None and forced is not None
    assert json.loads(forced)[0]["Plan"]["Node Type"] == "Nested Loop"
    assert json.loads(default)[0]["Plan"]["Node Type"] != "Nested Loop"
    with pytest.warns(DeprecationWarning, match=r"collect_plans\(settings=...\) is deprecated"):
        old = collect_plans(inst, q, settings=settings)[0].plan
    assert old is not None and json.loads(old)[0]["Plan"]["Node Type"] == "Nested Loop"


def test_the_deprecated_timeout_ms_still_means_milliseconds() -> None:
    with pytest.warns(DeprecationWarning, match=r"timeout_ms=...\) is deprecated"):
        (p,) = collect_plans(
            corpus_server(), {"slow": "select pg_sleep(3)"}, analyze=True, timeout_ms=200
        )
    assert p.error is not None and p.error.startswith("57014:") and p.seconds < 2.5


JOINS = (
    "select * from nation join region on n_regionkey = r_regionkey;\n"
    "select * from supplier join nation on s_nationkey = n_nationkey;\n"
)


def node_types(plans: list[dbgym.CollectedPlan]) -> list[str]:
    return [json.loads(p.plan)[0]["Plan"]["Node Type"] if p.plan else "" for p in plans]


def test_template_settings_apply_to_their_template_only(tmp_path: Path) -> None:
    """The per-template settings replay takes ({template id: {GUC: value}}) steer one
    template's plan; planner_settings apply to all, and a template's own settings win."""
    (tmp_path / "joins.sql").write_text(JOINS)
    wl = Workload.from_sql(tmp_path / "joins.sql")
    first, second = (t.id for t in wl.templates())
    no_hash = {"enable_hashjoin": False, "enable_mergejoin": False}
    inst = corpus_server()
    assert node_types(collect_plans(inst, wl)) == ["Hash Join", "Hash Join"]
    steered = collect_plans(inst, wl, template_settings={first: no_hash})
    assert node_types(steered) == ["Nested Loop", "Hash Join"]
    both = collect_plans(
        inst,
        wl,
        planner_settings=no_hash,
        template_settings={second: {"enable_hashjoin": True}},
    )
    assert node_types(both) == ["Nested Loop", "Hash Join"]
    with pytest.raises(InvalidArgumentError, match=r"template_settings\[99\]: the workload has no"):
        collect_plans(inst, wl, template_settings={99: no_hash})
    with pytest.raises(InvalidArgumentError, match=r"template_settings\[0\]\['x'\]: value must"):
        collect_plans(inst, wl, template_settings={0: {"x": [1]}})  # type: ignore[dict-item]


def test_any_target_a_dsn_an_instance_or_a_connection() -> None:
    inst = corpus_server()
    q = {"n": "select count(*) from nation"}
    with psycopg.connect(inst.dsn, autocommit=True) as conn:
        plans = [collect_plans(t, q)[0] for t in (inst.dsn, inst, conn)]
    assert all(p.ok for p in plans) and len({p.plan for p in plans}) == 1


def test_a_dsn_nobody_listens_on_is_a_connect_error_without_the_password() -> None:
    with pytest.raises(ConnectError, match=r"cannot connect to collect plans \(host 127") as e:
        collect_plans("postgresql://u:s3cret-pw@127.0.0.1:1/db", {"q": "select 1"})
    assert "s3cret-pw" not in str(e.value) and e.value.port == 1
    with pytest.raises(InvalidArgumentError, match="invalid connection string") as bad:
        collect_plans("postgresql://u:s3cret-pw@[nope/db", {"q": "select 1"})
    assert "s3cret-pw" not in str(bad.value)
