"""The index action on a real TPC-H (SF 0.01) server: candidates mined from the
workload's plans, HypoPG sizes against built indexes, the default budget, parse_budget,
and IndexSpace's repair / SWIRL masks / sb3-contrib mask layout."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pytest

import dbgym
from dbgym.dbms.indexes import IndexSpec
from dbgym.envs import index_space as ix
from dbgym.envs.index_space import (
    IndexSpace,
    default_budget,
    estimate_sizes,
    mine_candidates,
    parse_budget,
)
from dbgym.errors import InvalidArgumentError, SpecError
from dbgym.observe.plans import representatives


def _mine(
    conn: psycopg.Connection[Any],
    statements: list[str],
    *,
    max_width: int = 2,
    min_rows: int = 1000,
    max_candidates: int = 64,
) -> list[IndexSpec]:
    return mine_candidates(
        conn,
        statements,
        max_width=max_width,
        min_rows=min_rows,
        max_candidates=max_candidates,
    )


@dataclass
class Tpch:
    session: dbgym.DbSession
    conn: psycopg.Connection[Any]
    statements: list[str]
    candidates: list[IndexSpec]
    sizes: list[int]


@pytest.fixture(scope="module")
def tpch() -> Iterator[Tpch]:
    state, workload = dbgym.benchmarks.get("tpch").specs(scale=0.01, seed=15721)
    statements = [sql for _, sql, _ in representatives(dbgym.Workload.from_spec(workload))]
    with dbgym.DbSession.launch(dbgym.InstanceSpec(), state=state) as session:
        conn = session.connection()
        candidates = _mine(conn, statements)
        yield Tpch(session, conn, statements, candidates, estimate_sizes(conn, candidates))


def _pos(space: IndexSpace, table: str, *columns: str) -> int:
    return space.candidates.index(IndexSpec(table, columns))


# -- mining ------------------------------------------------------------------------------
def test_tpch_candidates(tpch: Tpch) -> None:
    c = tpch.candidates
    assert 20 <= len(c) <= 64
    assert IndexSpec("lineitem", ("l_shipdate",)) in c
    assert IndexSpec("orders", ("o_orderdate",)) in c
    assert len(set(c)) == len(c) and all(s.using == "btree" for s in c)
    # small tables (nation 25, region 5, supplier 100 rows) are left out
    assert not {s.table for s in c} & {"nation", "region", "supplier"}
    # the primary keys' and TPC-H foreign-key indexes' leading columns are left out
    for covered in [("orders", "o_orderkey"), ("lineitem", "l_orderkey"), ("orders", "o_custkey")]:
        assert IndexSpec(covered[0], covered[1:]) not in c
    # every multi-column candidate has its prefix, as a candidate or an existing index
    # that is no unique index's whole key (orders_custkey_idx, lineitem_pkey's l_orderkey)
    existing = ix._existing_prefixes(tpch.conn)
    oids = dict(tpch.conn.execute("SELECT relname, oid FROM pg_class WHERE relkind = 'r'"))
    for s in c:
        assert 1 <= len(s.columns) <= 2
        if len(s.columns) == 2:
            prefix = IndexSpec(s.table, s.columns[:1])
            assert prefix in c or existing.get((int(oids[s.table]), s.columns[:1])) is False, s
            if prefix in c:
                assert c.index(prefix) < c.index(s)
    assert IndexSpec("orders", ("o_orderkey", "o_orderdate")) not in c  # PK + column
    assert IndexSpec("orders", ("o_custkey", "o_orderdate")) in c  # non-unique FK index + column


def test_mining_is_deterministic_and_bounded(tpch: Tpch) -> None:
    assert _mine(tpch.conn, tpch.statements) == tpch.candidates
    assert _mine(tpch.conn, list(reversed(tpch.statements))) == tpch.candidates
    five = _mine(tpch.conn, tpch.statements, max_candidates=5)
    assert five == tpch.candidates[:5]
    singles = _mine(tpch.conn, tpch.statements, max_width=1)
    assert singles and all(len(s.columns) == 1 for s in singles)
    assert singles == [s for s in tpch.candidates if len(s.columns) == 1][: len(singles)]
    wide = _mine(tpch.conn, tpch.statements, max_width=3)
    assert any(len(s.columns) == 3 for s in wide)
    existing = ix._existing_prefixes(tpch.conn)
    oids = dict(tpch.conn.execute("SELECT relname, oid FROM pg_class WHERE relkind = 'r'"))
    for s in wide:
        if len(s.columns) == 3:  # after its prefix, or the prefix is an existing index's
            covered = existing.get((int(oids[s.table]), s.columns[:2])) is False
            assert covered or IndexSpec(s.table, s.columns[:2]) in wide[: wide.index(s)], s
    everything = mine_candidates(
        tpch.conn, tpch.statements, max_width=1, min_rows=0, max_candidates=1000
    )
    assert IndexSpec("region", ("r_name",)) in everything
    assert IndexSpec("nation", ("n_name",)) in everything


def test_mining_resolves_aliases_placeholders_and_skips_what_explain_refuses(tpch: Tpch) -> None:
    statements = [
        "BEGIN",
        "this is not SQL",
        "SELECT count(*) FROM lineitem l JOIN orders o ON l_orderkey = o.o_orderkey "
        "WHERE l_receiptdate > '1995-01-01' GROUP BY o_orderpriority ORDER BY o_orderpriority",
        "SELECT * FROM orders WHERE o_totalprice > $1 AND o_comment LIKE $2",
        "SELECT sum(ps_supplycost) FROM partsupp GROUP BY ps_availqty "
        "HAVING sum(ps_supplycost) > 3",
    ]
    got = mine_candidates(tpch.conn, statements, max_width=1, min_rows=1000, max_candidates=64)
    assert set(got) == {
        IndexSpec("lineitem", ("l_receiptdate",)),
        IndexSpec("orders", ("o_orderpriority",)),
        IndexSpec("orders", ("o_totalprice",)),
        IndexSpec("orders", ("o_comment",)),
        IndexSpec("partsupp", ("ps_availqty",)),  # the HAVING aggregate is no candidate
    }
    # with logged parameter values the statement is explained with them
    with_params = mine_candidates(
        tpch.conn,
        ["SELECT * FROM customer WHERE c_acctbal > $1"],
        max_width=1,
        min_rows=1000,
        max_candidates=64,
        params=[("100",)],
    )
    assert with_params == [IndexSpec("customer", ("c_acctbal",))]
    with pytest.raises(InvalidArgumentError, match="max_width"):
        mine_candidates(tpch.conn, statements, max_width=0, min_rows=0, max_candidates=1)
    with pytest.raises(InvalidArgumentError, match="parameter lists"):
        mine_candidates(
            tpch.conn, statements, max_width=1, min_rows=0, max_candidates=1, params=[()]
        )


# -- sizes and budget ----------------------------------------------------------------------
def test_hypopg_sizes_close_to_built_indexes(tpch: Tpch) -> None:
    assert len(tpch.sizes) == len(tpch.candidates) and min(tpch.sizes) > 0
    hypo = tpch.conn.execute("SELECT count(*) FROM hypopg_list_indexes").fetchone()
    assert hypo == (0,)  # estimate_sizes leaves no hypothetical index behind
    picks = [
        IndexSpec("lineitem", ("l_shipdate",)),  # deduplicated: a third of HypoPG's figure
        IndexSpec("orders", ("o_orderdate",)),
        IndexSpec("orders", ("o_custkey", "o_orderdate")),
        IndexSpec("lineitem", ("l_orderkey", "l_suppkey")),  # HypoPG: 1.8x without correction
        IndexSpec("lineitem", ("l_quantity",)),  # numeric: no deduplication
        IndexSpec("orders", ("o_comment",)),  # varchar
    ]
    estimated = estimate_sizes(tpch.conn, picks)
    assert all(size % 8192 == 0 for size in estimated)
    fallback = [ix._fallback_size(tpch.conn, s) for s in picks]
    tpch.session.apply(indexes=picks)
    try:
        for spec, est, fb in zip(picks, estimated, fallback, strict=True):
            row = tpch.conn.execute("SELECT pg_relation_size(%s)", (spec.name,)).fetchone()
            assert row is not None
            real = int(row[0])
            assert real / 2 <= est <= real * 2, (spec, est, real)
            assert 0.7 * real <= est <= 1.4 * real, (spec, est, real)  # measured: 0.85-1.2
            assert 0.7 * real <= fb <= 1.4 * real, (spec, fb, real)
    finally:
        tpch.session.apply(indexes=[])
    # HypoPG's own figure for two integer columns is rescaled (it counts the per-tuple
    # overhead once per column); the HypoPG path stays HypoPG's for every table size
    two = IndexSpec("lineitem", ("l_orderkey", "l_suppkey"))
    oid = tpch.conn.execute(
        "SELECT indexrelid FROM hypopg_create_index(%s)", (ix._index_ddl(tpch.conn, two),)
    ).fetchone()
    assert oid is not None
    raw = tpch.conn.execute("SELECT hypopg_relation_size(%s)", oid).fetchone()
    tpch.conn.execute("SELECT hypopg_drop_index(%s)", oid)
    assert raw is not None and estimated[3] < 0.7 * int(raw[0])
    stats = ix._stats(tpch.conn, two)
    assert ix._hypopg_corrected(3 * 2**20, stats) == 3 * 2**20  # not HypoPG's formula: kept
    with pytest.raises(InvalidArgumentError, match="no_such_column"):
        estimate_sizes(tpch.conn, [IndexSpec("orders", ("no_such_column",))])
    assert estimate_sizes(tpch.conn, []) == []


def test_default_budget_is_the_tables_size(tpch: Tpch) -> None:
    row = tpch.conn.execute(
        "SELECT sum(pg_table_size(oid)) FROM pg_class WHERE relkind = 'r' "
        "AND relnamespace = 'public'::regnamespace"
    ).fetchone()
    assert row is not None
    assert default_budget(tpch.conn) == int(row[0]) > 5 * 2**20


def test_parse_budget() -> None:
    assert parse_budget(4096) == 4096
    assert parse_budget("2GB") == 2 * 2**30
    assert parse_budget("500MB") == 500 * 2**20
    assert parse_budget("1g") == 2**30
    assert parse_budget("64kB") == 64 * 2**10
    assert parse_budget(" 7 ") == 7
    for bad in ["2 parsecs", "", "-1GB", "1.5GB", 0, -3, True, 2.0, None]:
        with pytest.raises(SpecError, match="index_budget") as err:
            parse_budget(bad)  # type: ignore[arg-type]
        assert err.value.key == "index_budget"


# -- IndexSpace rules ----------------------------------------------------------------------
@pytest.fixture
def space(tpch: Tpch) -> IndexSpace:
    """The mined candidates under a 6 MB budget (about a tenth of their total size)."""
    return IndexSpace(tpch.candidates, tpch.sizes, 6 * 2**20)


def _valid(space: IndexSpace, bits: np.ndarray) -> bool:
    chosen = bits.astype(bool)
    prefix_ok = all(space.prefix[j] < 0 or chosen[space.prefix[j]] for j in np.flatnonzero(chosen))
    return prefix_ok and int(space.sizes[chosen].sum()) <= space.budget_bytes


def test_space_basics(space: IndexSpace, tpch: Tpch) -> None:
    n = len(tpch.candidates)
    assert space.space.n == n and space.candidates == tuple(tpch.candidates)
    assert space.sizes.dtype == np.int64 and list(space.sizes) == tpch.sizes
    bits = np.zeros(n, np.int8)
    bits[[0, 2]] = 1
    assert space.specs(bits) == [tpch.candidates[0], tpch.candidates[2]]
    assert np.array_equal(space.bits(space.specs(bits)), bits)
    assert space.bits([]).dtype == np.int8
    with pytest.raises(InvalidArgumentError, match="not one of the index candidates"):
        space.bits([IndexSpec("nation", ("n_name",))])
    # the indexes in force by name, as dbgym.dbms.indexes.managed lists them
    named = [tpch.candidates[2].name, tpch.candidates[0].name]
    assert np.array_equal(space.bits(named), bits)
    with pytest.raises(InvalidArgumentError, match="dbgym_ix_nope"):
        space.bits(["dbgym_ix_nope"])
    with pytest.raises(InvalidArgumentError, match="list"):
        space.bits(tpch.candidates[0].name)
    with pytest.raises(InvalidArgumentError, match="int"):
        space.bits([3])  # type: ignore[list-item]
    for bad in [
        np.zeros(n + 1, np.int8),
        np.zeros((1, n), np.int8),
        np.full(n, 2),
        np.full(n, 0.5),
    ]:
        for call in (space.specs, space.repair, space.mask, space.sb3_mask):
            with pytest.raises(InvalidArgumentError):
                call(bad)
    with pytest.raises(InvalidArgumentError, match="sizes"):
        IndexSpace(tpch.candidates, tpch.sizes[:-1], 1)
    with pytest.raises(InvalidArgumentError, match="twice"):
        IndexSpace([tpch.candidates[0]] * 2, [1, 1], 1)
    with pytest.raises(InvalidArgumentError, match="at least one"):
        IndexSpace([], [], 0)
    with pytest.raises(InvalidArgumentError, match="budget_bytes"):
        IndexSpace(tpch.candidates, tpch.sizes, -1)


def test_repair(space: IndexSpace) -> None:
    n = len(space.candidates)
    # an extension without its prefix is dropped, with a note naming it
    ext = next(j for j in range(n) if space.prefix[j] >= 0)
    action = np.zeros(n, np.int8)
    action[ext] = 1
    fixed, notes = space.repair(action)
    assert not fixed.any() and len(notes) == 1 and str(space.candidates[ext]) in notes[0]
    assert "prefix" in notes[0]
    # with its prefix it stays
    action[space.prefix[ext]] = 1
    fixed, notes = space.repair(action)
    assert np.array_equal(fixed, action) and notes == []
    # over budget: the highest positions go first (with their extensions)
    everything = np.ones(n, np.int8)
    fixed, notes = space.repair(everything)
    kept = np.flatnonzero(fixed)
    assert _valid(space, fixed) and notes and all("budget" in m for m in notes)
    assert kept.max() < n - 1 and fixed[0] == 1
    # any action comes out valid, deterministically, and a valid one unchanged
    rng = np.random.default_rng(15721)
    for _ in range(300):
        action = (rng.random(n) < rng.random()).astype(np.int8)
        fixed, notes = space.repair(action)
        again, _ = space.repair(action)
        assert _valid(space, fixed) and np.array_equal(fixed, again)
        assert ((fixed == 1) <= (action == 1)).all()  # repair only drops
        assert (notes == []) == np.array_equal(fixed, action)
        again, notes = space.repair(fixed)
        assert np.array_equal(again, fixed) and notes == []


def _currents(space: IndexSpace, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(space.candidates)
    out = [np.zeros(n, np.int8)]
    while len(out) < count:
        out.append(space.repair((rng.random(n) < 0.15).astype(np.int8))[0])
    return out


def test_mask_follows_swirl(space: IndexSpace) -> None:
    n = len(space.candidates)
    ext = next(j for j in range(n) if space.prefix[j] >= 0)
    p = int(space.prefix[ext])
    none = np.zeros(n, np.int8)
    m = space.mask(none)
    assert m.dtype == np.int8 and m[ext] == 0 and m[p] == 2
    with_prefix = none.copy()
    with_prefix[p] = 1
    assert space.mask(with_prefix)[ext] == 2
    both = with_prefix.copy()
    both[ext] = 1
    m = space.mask(both)
    assert m[p] == 1 and m[ext] == 2  # the prefix stays while its extension is in force
    # nothing bigger than the remaining budget
    tight = IndexSpace(space.candidates, space.sizes, int(space.sizes[p]) + 1)
    m = tight.mask(with_prefix)
    assert (m[np.flatnonzero(with_prefix == 0)] == 0).all()
    m = tight.mask(none)
    assert ((m == 2) == (tight.sizes <= tight.budget_bytes) & (tight.prefix < 0)).all()
    # every single change the mask allows needs no repair
    for current in _currents(space, 12, seed=7):
        m = space.mask(current)
        for i in range(n):
            for value in (0, 1):
                if value == current[i] or m[i] == (1 - value):
                    continue
                action = current.copy()
                action[i] = value
                fixed, notes = space.repair(action)
                assert np.array_equal(fixed, action) and notes == [], (i, value, notes)


def test_masked_samples_respect_the_prefix_rule(space: IndexSpace) -> None:
    space.space.seed(15721)
    currents = _currents(space, 10, seed=3)
    for k in range(200):
        current = currents[k % len(currents)]
        m = space.mask(current)
        sample = space.space.sample(mask=m)
        new = np.flatnonzero((sample == 1) & (current == 0))
        for j in new:
            p = int(space.prefix[j])
            assert p < 0 or current[p] == 1, (k, j)
            assert space.sizes[j] <= space.budget_bytes - int(space.sizes[current == 1].sum())
        assert (sample[m == 1] == 1).all() and (sample[m == 0] == 0).all()
        assert _valid(space, space.repair(sample)[0])


def test_sb3_mask_layout(space: IndexSpace) -> None:
    import torch as th
    from sb3_contrib.common.maskable.distributions import MaskableBernoulliDistribution

    n = len(space.candidates)
    current = _currents(space, 2, seed=11)[1]
    m = space.mask(current)
    flat = space.sb3_mask(current)
    assert flat.dtype == np.bool_ and flat.shape == (2 * n,)
    pairs = flat.reshape(n, 2)
    assert np.array_equal(pairs[:, 0], m != 1) and np.array_equal(pairs[:, 1], m != 0)
    assert pairs.any(axis=1).all()
    # sb3-contrib's own MultiBinary distribution samples within it
    th.manual_seed(0)
    dist = MaskableBernoulliDistribution(n)
    dist.proba_distribution(th.randn(64, 2 * n))
    dist.apply_masking(np.tile(flat, (64, 1)))
    samples = dist.sample().numpy()
    assert samples.shape == (64, n)
    assert (samples[:, m == 0] == 0).all() and (samples[:, m == 1] == 1).all()
    assert (samples[:, m == 2] == 1).any() and (samples[:, m == 2] == 0).any()


def test_strict_mask_samples_need_no_repair(space: IndexSpace) -> None:
    n = len(space.candidates)
    none = np.zeros(n, np.int8)
    m = space.mask(none, strict=True)
    loose = space.mask(none)
    # strict allows a subset of what the SWIRL mask allows, and its new picks fit together
    assert ((m == 2) <= (loose == 2)).all() and ((m == 0) >= (loose == 0)).all()
    assert 0 < int(space.sizes[m == 2].sum()) <= space.budget_bytes
    assert (m == 2).sum() < (loose == 2).sum()  # the 6 MB budget hides some
    # the prefix of an allowed new extension must stay; the loose mask lets it go
    ext = next(j for j in range(n) if space.prefix[j] >= 0)
    p = int(space.prefix[ext])
    with_prefix = none.copy()
    with_prefix[p] = 1
    assert space.mask(with_prefix)[p] == 2 and space.mask(with_prefix)[ext] == 2
    m = space.mask(with_prefix, strict=True)
    assert m[ext] == 2 and m[p] == 1
    # 200 seeded samples from valid configurations: all valid, repair changes nothing
    space.space.seed(15721)
    currents = _currents(space, 10, seed=5)
    loose_fixed = 0
    for k in range(200):
        current = currents[k % len(currents)]
        sample = space.space.sample(mask=space.mask(current, strict=True))
        fixed, notes = space.repair(sample)
        assert _valid(space, sample) and np.array_equal(fixed, sample) and notes == [], k
        loose_sample = space.space.sample(mask=space.mask(current))
        loose_fixed += not np.array_equal(space.repair(loose_sample)[0], loose_sample)
    assert loose_fixed > 0  # the SWIRL mask alone does need repair now and then
    flat = space.sb3_mask(with_prefix, strict=True).reshape(n, 2)
    assert list(flat[p]) == [False, True] and list(flat[ext]) == [True, True]


# -- pgbench -----------------------------------------------------------------------------
Statements = list[tuple[str, tuple[str | None, ...]]]


@pytest.fixture(scope="module")
def pgbench() -> Iterator[tuple[dbgym.DbSession, Statements]]:
    entry = dbgym.benchmarks.get("pgbench")
    workload = dbgym.Workload.from_spec(
        entry.workload(scale=1, transactions=20, script="tpcb-like", protocol="extended")
    )
    statements = [(sql, params) for _, sql, params in representatives(workload)]
    with dbgym.DbSession.launch(dbgym.InstanceSpec(), state=entry.state(scale=1)) as session:
        yield session, statements


def test_pgbench_candidates(pgbench: tuple[dbgym.DbSession, Statements]) -> None:
    session, statements = pgbench
    conn = session.connection()
    texts = [sql for sql, _ in statements]
    assert any("$2" in t for t in texts) and any(t.startswith("BEGIN") for t in texts)
    # tpcb-like reads and updates by aid, tid, bid: the primary keys, so nothing to mine,
    # whether the $n statements are explained with their logged values or generically
    for min_rows in (1000, 0):
        assert _mine(conn, texts, min_rows=min_rows) == []
        got = mine_candidates(
            conn,
            texts,
            max_width=2,
            min_rows=min_rows,
            max_candidates=64,
            params=[p for _, p in statements],
        )
        assert got == []
    # columns no key covers are mined; the primary key (aid) and its extensions are not
    # (aid is unique: nothing left for a second column to narrow)
    extra = [
        "SELECT aid, abalance FROM pgbench_accounts WHERE bid = $1 AND abalance > $2 ORDER BY aid",
        "SELECT count(*) FROM pgbench_accounts a JOIN pgbench_branches b USING (bid) "
        "WHERE a.aid BETWEEN $1 AND $2 AND a.abalance < 0",
    ]
    got = _mine(conn, [*texts, *extra])
    accounts = [s.columns for s in got if s.table == "pgbench_accounts"]
    assert len(accounts) == len(got) and accounts[:2] == [("abalance",), ("bid",)]
    assert {("abalance", "bid"), ("bid", "abalance"), ("abalance", "aid")} <= set(accounts)
    assert not [c for c in accounts if c[0] == "aid"]
    # sizes: abalance and bid hold one value each (deduplicated to ~7 bytes a row),
    # (abalance, aid) has a distinct key per row
    picks = [
        IndexSpec("pgbench_accounts", ("bid",)),
        IndexSpec("pgbench_accounts", ("abalance", "aid")),
    ]
    estimated = estimate_sizes(conn, picks)
    session.apply(indexes=picks)
    try:
        for spec, est in zip(picks, estimated, strict=True):
            row = conn.execute("SELECT pg_relation_size(%s)", (spec.name,)).fetchone()
            assert row is not None and 0.7 * row[0] <= est <= 1.4 * row[0], (spec, est, row)
    finally:
        session.apply(indexes=[])
    assert estimated[0] < estimated[1] / 2
    assert default_budget(conn) > sum(estimate_sizes(conn, got))
