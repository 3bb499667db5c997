"""The TPC-H generator, query substitution and benchmark traces (no server needed)."""

from __future__ import annotations

import hashlib

import pytest

import dbgym
from dbgym import _core, benchmarks
from dbgym.benchmarks import pgbench, tpch
from dbgym.errors import InvalidArgumentError, SpecError

SPEC_SF_001 = {
    "region": 5,
    "nation": 25,
    "supplier": 100,
    "customer": 1_500,
    "part": 2_000,
    "partsupp": 8_000,
    "orders": 15_000,
}


def test_row_counts_follow_the_spec_and_match_the_copy_text() -> None:
    gen = _core.TpchGenerator(0.01, 1)
    rows = gen.rows()
    for table, n in SPEC_SF_001.items():
        assert rows[table] == n, table
    assert 15_000 <= rows["lineitem"] <= 7 * 15_000
    assert abs(rows["lineitem"] / 15_000 - 4.0) < 0.1  # 1..7 lines, 4 on average
    for table in tpch.TABLES:
        assert gen.table(table).count(b"\n") == rows[table], table


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    def digests(seed: int) -> dict[str, str]:
        gen = _core.TpchGenerator(0.01, seed)
        return {t: hashlib.sha256(gen.table(t)).hexdigest() for t in tpch.TABLES}

    a, b, c = digests(7), digests(7), digests(8)
    assert a == b
    assert all(a[t] != c[t] for t in tpch.TABLES if t not in ("region", "nation"))
    gen = _core.TpchGenerator(0.01, 7)
    whole = gen.table("lineitem")
    pieces = gen.table("lineitem", 0, 5000) + gen.table("lineitem", 5000, None)
    assert whole == pieces, "unit ranges concatenate to the whole table"


def test_bad_generator_input_raises_invalid_argument_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="scale factor"):
        _core.TpchGenerator(0.0, 1)
    gen = _core.TpchGenerator(0.01, 1)
    with pytest.raises(InvalidArgumentError, match='unknown TPC-H table "items"'):
        gen.table("items")
    with pytest.raises(InvalidArgumentError, match="reversed"):
        gen.table("orders", 10, 5)
    with pytest.raises(InvalidArgumentError, match=r"1\.\.=22"):
        _core.tpch_query(23)
    with pytest.raises(SpecError, match="scale must be in") as info:
        tpch.trace(scale=1000)
    assert info.value.key == "scale"


def test_queries_are_substituted_and_seeded() -> None:
    qs = tpch.queries(scale=0.1, seed=3)
    assert len(qs) == 22
    assert all("[" not in q for q in qs)
    assert qs == tpch.queries(scale=0.1, seed=3)
    assert sum(q != r for q, r in zip(qs, tpch.queries(scale=0.1, seed=4), strict=True)) >= 20
    assert "0.0010000000" in qs[10], "Q11 fraction is 0.0001 / SF"
    assert "[DELTA]" in _core.tpch_template(1)


def test_tpch_trace_one_session_per_stream() -> None:
    t = benchmarks.trace("tpch", scale=0.1, seed=5, streams=4)
    assert len(t) == 4 * 22
    t2 = benchmarks.trace("tpch", scale=0.1, seed=5, streams=1, queries=[1, 6], shuffle=False)
    assert len(t2) == 2


def test_pgbench_trace_and_bad_options() -> None:
    t = pgbench.trace("tpcb-like", scale=2, clients=3, transactions=10, protocol="extended")
    assert len(t) == 7 * 3 * 10
    assert len(benchmarks.trace("pgbench", script="select-only", clients=2, transactions=5)) == 10
    # caller mistakes: SpecError (an InvalidArgumentError, also a ValueError) naming the key
    with pytest.raises(SpecError, match="unknown pgbench script 'tpcc'") as info:
        pgbench.trace("tpcc")
    assert info.value.key == "script"
    with pytest.raises(SpecError, match="unknown pgbench protocol 'prepared'"):
        pgbench.trace(protocol="prepared")
    with pytest.raises(SpecError, match="clients: must be a positive integer") as info:
        pgbench.trace(clients=0)
    assert info.value.key == "clients"
    with pytest.raises(InvalidArgumentError, match="unknown benchmark 'tpcc'; did you mean 'tpch'"):
        benchmarks.trace("tpcc")
    with pytest.raises(SpecError, match="unknown parameter 'sf' of benchmark 'tpch'") as info:
        benchmarks.trace("tpch", sf=1)
    assert info.value.key == "sf"
    with pytest.raises(SpecError, match="keys: a state parameter of tpch, not a workload one"):
        benchmarks.trace("tpch", keys=False)


def test_benchmark_workloads_carry_templatizer_templates() -> None:
    w = dbgym.Workload.benchmark("tpch", scale=0.1, seed=9, streams=3)
    assert len(w) == 66 and len(w.sessions) == 3
    templates = w.templates()
    assert [t.id for t in templates] == list(range(22))
    assert all(t.count == 3 for t in templates)
    for i in range(len(w)):
        st = w.statement(i)
        # template id = query number - 1, and the text is what the templatizer makes of the SQL
        assert st.sql == tpch.query(st.template_id + 1, 0.1, 9, st.session)
        assert _core.templatize(st.sql)[0] == templates[st.template_id].text
    p = dbgym.Workload.benchmark("pgbench", script="tpcb-like", clients=2, transactions=4)
    assert len(p) == 56 and len(p.sessions) == 2
    texts = [t.text for t in p.templates()]
    assert "select abalance from pgbench_accounts where aid = $1" in texts
    assert len(texts) == 7
    simple = dbgym.Workload.benchmark("pgbench", script="select-only", transactions=2)
    assert simple.statement(0).sql.startswith("SELECT abalance FROM pgbench_accounts WHERE aid = ")
    assert simple.statement(0).sql.endswith(";")


def test_the_tpch_scale_limit_has_one_source() -> None:
    """Python takes the generator's limit from the extension (`_core.TPCH_MAX_SCALE`); the
    spec, the loader and the query functions all check against that one value, and so does
    Rust."""
    assert tpch.MAX_SCALE == _core.TPCH_MAX_SCALE == 300.0
    assert tpch.check_scale(tpch.MAX_SCALE) == tpch.MAX_SCALE
    above = tpch.MAX_SCALE * 1.01
    calls = (
        lambda: tpch.check_scale(above),
        lambda: benchmarks.get("tpch").state(scale=above),
        lambda: benchmarks.get("tpch").workload(scale=above),
        lambda: tpch.query(1, above),
    )
    for call in calls:
        with pytest.raises(SpecError, match=f"scale must be in .*{tpch.MAX_SCALE:g}"):
            call()
    with pytest.raises(dbgym.errors.InvalidArgumentError):  # Rust refuses what Python refuses
        _core.TpchGenerator(above, 1)
